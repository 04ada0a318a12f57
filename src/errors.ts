// Every error code reservoir can return, defined once. The CNI spec reserves 1-99 (and we use its
// meanings only); 999 is our "internal error"; ours start at 100, which the spec leaves to plugins.
// test/readme.test.ts keeps the README's table in step with this list; test/src/errors.test.ts
// checks that codes are unique.

export interface ErrorCodeInfo {
  readonly code: number;
  readonly name: string;
  /** HTTP status the daemon answers with, so `curl` users see a meaningful status line. */
  readonly http: number;
  readonly meaning: string;
}

function define<const T extends Record<string, Omit<ErrorCodeInfo, 'name'>>>(table: T) {
  const out = {} as { [K in keyof T]: ErrorCodeInfo & { name: K } };
  for (const [name, info] of Object.entries(table)) {
    (out as Record<string, ErrorCodeInfo>)[name] = { name, ...info };
  }
  return out;
}

export const ErrorCodes = define({
  INCOMPATIBLE_VERSION: { code: 1, http: 400, meaning: 'cniVersion not supported' },
  UNSUPPORTED_FIELD: { code: 2, http: 400, meaning: 'a field of the configuration is not supported' },
  UNKNOWN_CONTAINER: { code: 3, http: 404, meaning: 'the container is unknown or does not exist' },
  INVALID_ENV: { code: 4, http: 400, meaning: 'missing or invalid CNI_* environment variable' },
  IO_FAILURE: { code: 5, http: 500, meaning: 'I/O failure' },
  DECODE_FAILURE: { code: 6, http: 400, meaning: 'stdin or request body could not be decoded' },
  INVALID_CONFIG: { code: 7, http: 400, meaning: 'invalid network configuration' },
  TRY_AGAIN_LATER: { code: 11, http: 503, meaning: 'the daemon is unreachable or busy; retry' },
  NOT_READY: { code: 50, http: 503, meaning: 'STATUS: the plugin cannot serve ADD now' },
  NOT_READY_LIMITED: { code: 51, http: 503, meaning: 'STATUS: the plugin can serve only some ADDs' },
  INTERNAL: { code: 999, http: 500, meaning: 'internal error (a bug: please report it)' },

  POOL_EXHAUSTED: { code: 100, http: 409, meaning: 'no free dynamic IP left in a range set' },
  IP_IN_USE: { code: 101, http: 409, meaning: 'the requested IP is held by someone else (the message names the holder)' },
  IP_NOT_IN_RANGE: { code: 102, http: 400, meaning: 'the requested IP lies outside every allocatable range' },
  GROUP_EXHAUSTED: { code: 103, http: 409, meaning: 'no free reserved IP left in the requested group' },
  UNKNOWN_GROUP: { code: 104, http: 404, meaning: 'the requested reserved group does not exist in this network' },
  RESERVED_IN_USE: { code: 105, http: 409, meaning: 'a reserved entry cannot change: some of its IPs are in use (the message names every holder)' },
  RESERVED_CONFLICT: { code: 106, http: 409, meaning: 'a reserved entry overlaps another, covers a gateway or lies outside the ranges' },
  UNKNOWN_NETWORK: { code: 107, http: 404, meaning: 'no such network is registered with the daemon' },
  UNKNOWN_RESERVED: { code: 108, http: 404, meaning: 'no such reserved entry' },
  NO_LEASE: { code: 109, http: 404, meaning: 'CHECK: the attachment holds no lease' },
  LEASE_MISMATCH: { code: 110, http: 409, meaning: 'CHECK: prevResult differs from the lease' },
  HOLD_ATTACHED: { code: 111, http: 409, meaning: 'a stateful hold cannot be released while a container is attached' },
  UNKNOWN_HOLD: { code: 112, http: 404, meaning: 'no such stateful app holds an IP' },
  STORE_UNAVAILABLE: { code: 113, http: 503, meaning: 'the lease store cannot be written (disk full, read-only, locked)' },
  BAD_REQUEST: { code: 114, http: 400, meaning: 'the daemon rejected a malformed request' },
  NOT_FOUND: { code: 115, http: 404, meaning: 'no such API endpoint' },
  REQUEST_TOO_LARGE: { code: 116, http: 413, meaning: 'request body over the size limit' },
  RESERVED_FORBIDDEN: { code: 117, http: 403, meaning: "the requested reserved IP or group is only for other namespaces (the message names them)" },
  RESERVED_FROM_CONFIG: { code: 118, http: 409, meaning: "a reserved entry declared by the network's config changes only there: edit the config file" },
  LEASE_MISFIT: { code: 119, http: 409, meaning: "a lease no longer fits its network's config (subnet, range or gateway changed); release it (reservoirctl misfits NET --release)" },
  METHOD_NOT_ALLOWED: { code: 122, http: 405, meaning: 'the read-only status port (--http-listen) answers GET and HEAD only' },
});

export type ErrorCodeName = keyof typeof ErrorCodes;

/** An error that carries a CNI code. Anything else that escapes becomes 999 (INTERNAL). */
export class ReservoirError extends Error {
  readonly code: number;
  readonly codeName: ErrorCodeName;
  readonly details: string | undefined;

  constructor(codeName: ErrorCodeName, msg: string, details?: string, options?: { cause?: unknown }) {
    super(msg, options);
    this.name = 'ReservoirError';
    this.codeName = codeName;
    this.code = ErrorCodes[codeName].code;
    this.details = details;
  }

  get http(): number {
    return ErrorCodes[this.codeName].http;
  }

  /**
   * The CNI error object: the spec's shape, printed on stdout and sent over the wire. JSON.stringify
   * calls this with the property key ("" at the top level), which is not a version and is ignored.
   */
  toJSON(cniVersion?: string): CniErrorBody {
    const body: CniErrorBody = { code: this.code, msg: this.message };
    if (cniVersion !== undefined && /^\d+\.\d+\.\d+$/.test(cniVersion)) body.cniVersion = cniVersion;
    if (this.details !== undefined) body.details = this.details;
    return body;
  }
}

export interface CniErrorBody {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

const codeToName = new Map<number, ErrorCodeName>(
  Object.values(ErrorCodes).map((info) => [info.code, info.name as ErrorCodeName]),
);

export function codeName(code: number): ErrorCodeName | undefined {
  return codeToName.get(code);
}

/** Rebuild a typed error from a wire body; unknown codes keep their message under INTERNAL. */
export function errorFromBody(body: unknown): ReservoirError {
  if (body && typeof body === 'object') {
    const { code, msg, details } = body as Record<string, unknown>;
    const name = typeof code === 'number' ? codeName(code) : undefined;
    if (name && typeof msg === 'string') {
      return new ReservoirError(name, msg, typeof details === 'string' ? details : undefined);
    }
    if (typeof code === 'number' && typeof msg === 'string') {
      const note = `the daemon answered with unknown code ${code}`;
      return new ReservoirError('INTERNAL', msg, typeof details === 'string' ? `${note}; ${details}` : note);
    }
  }
  return new ReservoirError('INTERNAL', 'the daemon answered with a malformed error', JSON.stringify(body));
}

/** Typed errors pass through; anything else is a bug and becomes INTERNAL without a stack trace. */
export function asReservoirError(err: unknown): ReservoirError {
  if (err instanceof ReservoirError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ReservoirError('INTERNAL', `internal error: ${message}`, undefined, { cause: err });
}
