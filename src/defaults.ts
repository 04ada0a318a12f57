// Defaults and limits that the plugin's fast path, the full validator, the client and the daemon
// all need. The bottom layer of src/: it imports nothing, so the plugin can use it without
// loading validation (config.ts, address.ts, ipaddr.js) on every pod.

/** Where reservoird listens unless ipam.socket says otherwise. */
export const DEFAULT_SOCKET = '/run/reservoir/reservoir.sock';
/** How long the plugin waits for reservoird unless ipam.timeout says otherwise, and its bounds. */
export const DEFAULT_TIMEOUT_MS = 5_000;
export const MIN_TIMEOUT_MS = 100;
export const MAX_TIMEOUT_MS = 120_000;
/** sun_path holds 108 bytes on Linux, one of them the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
/** The largest network configuration the plugin accepts on stdin. */
export const MAX_STDIN_BYTES = 1024 * 1024;
/** The largest request body reservoird reads. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Epoch ms by which the daemon answers an ADD or leaves nothing of it (set by src/client.ts; daemon/write-queue.ts). */
export const DEADLINE_HEADER = 'x-reservoir-deadline';

/** Whether `value` can name the daemon's socket: an absolute path that fits sun_path. */
export function isSocketPath(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith('/') && !value.includes('\0') && Buffer.byteLength(value) <= MAX_SOCKET_PATH_BYTES;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** "500ms", "5s", "30m", "24h", "7d" -> milliseconds (unbounded, unrounded); undefined if not a duration. */
export function durationMs(value: unknown): number | undefined {
  const match = typeof value === 'string' ? DURATION.exec(value) : null;
  return match ? Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS] : undefined;
}
