// reservoir_call.node: one HTTP exchange over a unix socket, synchronously, for the plugin.
//
// Why native: the plugin is a process started for every pod, and loading node:net (with the
// stream machinery it pulls in) costs a cold Node ~4-5 ms, as much as the rest of the plugin's
// work; this addon loads in a fraction of a millisecond. It only moves bytes: src/client.ts
// builds the request and parses the answer exactly as it does over node:net.
//
//   call(socketPath: string, request: Buffer, timeoutMs: number): Buffer   (the whole answer)
//   read(fd: number, buffer: Buffer): number      (bytes read into buffer; 0 at end of file)
//   write(fd: number, buffer: Buffer): number     (bytes written)
//
// read and write are the plugin's stdin and stdout: under bun, loading node:fs for readSync and
// writeSync costs a plugin start ~1.4 ms, a tenth of its ADD. They are read(2) and write(2)
// (EINTR retried) and throw as call does; the plugin redoes anything unusual with node:fs, so
// every error it reports is node:fs's own.
//
// Connects, sends the request, reads until the daemon closes (it answers "Connection: close"),
// all before one deadline. Never half-closes: reservoird drops a request whose client ended its
// side. Failures throw an Error whose `code` is the errno name Node would use (ENOENT,
// ECONNREFUSED, EACCES, ...) or ETIMEDOUT at the deadline, and whose `syscall` names the step.
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

// Answers are small JSON; this bounds memory if something else listens on the socket.
#define MAX_ANSWER_BYTES (16u << 20)

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static const char *errno_name(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOTDIR: return "ENOTDIR";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOMEM: return "ENOMEM";
    case E2BIG: return "E2BIG";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    default: return "EIO";
  }
}

/** Throw an Error with code and syscall set; returns NULL for the caller to return. */
static napi_value throw_errno(napi_env env, int e, const char *syscall) {
  const char *code = errno_name(e);
  char text[96];
  snprintf(text, sizeof text, "%s %s", syscall, code);
  napi_value error, message, code_value, syscall_value;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "code", code_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  napi_throw(env, error);
  return NULL;
}

/** Wait until fd is ready for `events`; -1 with errno (ETIMEDOUT at the deadline). */
static int wait_ready(int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
    if (r > 0) return 0;
    if (r < 0 && errno != EINTR) return -1;
  }
}

static int connect_before(int fd, const struct sockaddr_un *address, long long deadline) {
  for (;;) {
    if (connect(fd, (const struct sockaddr *)address, sizeof *address) == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      // A unix socket's backlog is full: the daemon is busy. Retry until the deadline.
      if (now_ms() >= deadline) {
        errno = ETIMEDOUT;
        return -1;
      }
      struct timespec pause = {0, 1000000};
      nanosleep(&pause, NULL);
      continue;
    }
    if (errno != EINPROGRESS) return -1;
    if (wait_ready(fd, POLLOUT, deadline) < 0) return -1;
    int so_error = 0;
    socklen_t length = sizeof so_error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &length) < 0) return -1;
    if (so_error == 0) return 0;
    errno = so_error;
    return -1;
  }
}

static int write_all(int fd, const char *bytes, size_t length, long long deadline) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = send(fd, bytes + done, length - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      if (wait_ready(fd, POLLOUT, deadline) < 0) return -1;
    } else {
      return -1;
    }
  }
  return 0;
}

/** Read to EOF into a malloc'd buffer (*out, *length); -1 with errno. */
static int read_all(int fd, char **out, size_t *length, long long deadline) {
  size_t capacity = 16384, used = 0;
  char *buffer = malloc(capacity);
  if (buffer == NULL) return -1;
  for (;;) {
    if (used == capacity) {
      if (capacity >= MAX_ANSWER_BYTES) {
        free(buffer);
        errno = E2BIG;
        return -1;
      }
      char *grown = realloc(buffer, capacity * 2);
      if (grown == NULL) {
        free(buffer);
        errno = ENOMEM;
        return -1;
      }
      buffer = grown;
      capacity *= 2;
    }
    ssize_t n = read(fd, buffer + used, capacity - used);
    if (n > 0) {
      used += (size_t)n;
    } else if (n == 0) {
      *out = buffer;
      *length = used;
      return 0;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == ECONNRESET && used > 0) {
      // The daemon closed without reading all we sent (it answered early): keep its answer.
      *out = buffer;
      *length = used;
      return 0;
    } else if (errno == EAGAIN) {
      if (wait_ready(fd, POLLIN, deadline) < 0) {
        int e = errno;
        free(buffer);
        errno = e;
        return -1;
      }
    } else {
      int e = errno;
      free(buffer);
      errno = e;
      return -1;
    }
  }
}

/** The answer as a Buffer; frees `answer`. */
static napi_value answer_buffer(napi_env env, char *answer, size_t length) {
  napi_value result;
  void *copy;
  napi_status status = napi_create_buffer_copy(env, length, answer, &copy, &result);
  free(answer);
  if (status != napi_ok) {
    napi_throw_error(env, NULL, "out of memory for the daemon's answer");
    return NULL;
  }
  return result;
}

static napi_value Call(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) {
    napi_throw_type_error(env, NULL, "call(socketPath, request, timeoutMs)");
    return NULL;
  }
  struct sockaddr_un address;
  memset(&address, 0, sizeof address);
  address.sun_family = AF_UNIX;
  // Measure first: a longer string would be cut to fit silently.
  size_t path_length = 0;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &path_length) != napi_ok || path_length == 0 ||
      path_length >= sizeof address.sun_path ||
      napi_get_value_string_utf8(env, argv[0], address.sun_path, sizeof address.sun_path, &path_length) != napi_ok) {
    napi_throw_type_error(env, NULL, "socketPath must be a string of 1 to 107 bytes");
    return NULL;
  }
  void *request = NULL;
  size_t request_length = 0;
  double timeout_ms = 0;
  if (napi_get_buffer_info(env, argv[1], &request, &request_length) != napi_ok ||
      napi_get_value_double(env, argv[2], &timeout_ms) != napi_ok || !(timeout_ms > 0)) {
    napi_throw_type_error(env, NULL, "request must be a Buffer and timeoutMs a positive number");
    return NULL;
  }
  long long deadline = now_ms() + (long long)timeout_ms;

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  if (connect_before(fd, &address, deadline) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "connect");
  }
  char *answer = NULL;
  size_t answer_length = 0;
  if (write_all(fd, request, request_length, deadline) < 0) {
    int e = errno;
    // The daemon may have answered and closed before reading everything (413): read that answer.
    if ((e == EPIPE || e == ECONNRESET) && read_all(fd, &answer, &answer_length, deadline) == 0 && answer_length > 0) {
      close(fd);
      return answer_buffer(env, answer, answer_length);
    }
    free(answer);
    close(fd);
    return throw_errno(env, e, "send");
  }
  if (read_all(fd, &answer, &answer_length, deadline) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "read");
  }
  close(fd);
  return answer_buffer(env, answer, answer_length);
}

/** fd and buffer of read(fd, buffer) and write(fd, buffer); 0 when it threw. */
static int fd_and_buffer(napi_env env, napi_callback_info info, int *fd, void **bytes, size_t *length) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t value = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_int32(env, argv[0], &value) != napi_ok || value < 0 ||
      napi_get_buffer_info(env, argv[1], bytes, length) != napi_ok) {
    napi_throw_type_error(env, NULL, "(fd, buffer)");
    return 0;
  }
  *fd = value;
  return 1;
}

static napi_value count(napi_env env, ssize_t n) {
  napi_value result;
  napi_create_int64(env, (int64_t)n, &result);
  return result;
}

static napi_value Read(napi_env env, napi_callback_info info) {
  int fd;
  void *bytes;
  size_t length;
  if (!fd_and_buffer(env, info, &fd, &bytes, &length)) return NULL;
  for (;;) {
    ssize_t n = read(fd, bytes, length);
    if (n >= 0) return count(env, n);
    if (errno != EINTR) return throw_errno(env, errno, "read");
  }
}

static napi_value Write(napi_env env, napi_callback_info info) {
  int fd;
  void *bytes;
  size_t length;
  if (!fd_and_buffer(env, info, &fd, &bytes, &length)) return NULL;
  for (;;) {
    ssize_t n = write(fd, bytes, length);
    if (n >= 0) return count(env, n);
    if (errno != EINTR) return throw_errno(env, errno, "write");
  }
}

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

NAPI_MODULE_INIT() {
  export_function(env, exports, "call", Call);
  export_function(env, exports, "read", Read);
  export_function(env, exports, "write", Write);
  return exports;
}
