// List, then watch from the list's resourceVersion (client-go's reflector): a cache of one kind of
// object that follows the API. A watch that ends (the server's timeout, or client-node's 30 s
// inactivity timeout) is resumed from the last resourceVersion seen; a watch that fails (the API
// unreachable) is retried with a back-off and starts over with a fresh list, and so does a 410
// Gone (the resourceVersion is too old). client-node's own Watch does neither by itself.
// `synced` is false from a failure until the next list: nothing is decided on a stale cache.
import type { Logger } from '../log.js';
import type { KubeClient, ObjectList, WatchError } from './client.js';

export interface ReflectorOptions<T> {
  readonly what: string;
  readonly list: () => Promise<ObjectList>;
  /** The collection's watch path, e.g. /api/v1/pods. */
  readonly path: string;
  readonly query: Record<string, string>;
  readonly facts: (object: unknown) => T | undefined;
  readonly key: (facts: T) => string;
  /** Called after each change of the cache (not for the initial list). */
  readonly onChange?: (type: 'ADDED' | 'MODIFIED' | 'DELETED', facts: T) => void;
  /** Called after each successful list. */
  readonly onSynced?: () => void;
  readonly retryMs: { readonly min: number; readonly max: number };
}

export class Reflector<T> {
  private readonly items = new Map<string, T>();
  private resourceVersion = '';
  private stopWatch: (() => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failures = 0;
  synced = false;
  lastError: string | undefined;
  /** Watches resumed after an end, and lists after a failure: for health and tests. */
  resumes = 0;
  relists = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly options: ReflectorOptions<T>,
    private readonly log: Logger,
  ) {}

  start(): void {
    void this.listAndWatch();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.stopWatch?.();
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  values(): IterableIterator<T> {
    return this.items.values();
  }

  private async listAndWatch(): Promise<void> {
    if (this.stopped) return;
    let list: ObjectList;
    try {
      list = await this.options.list();
    } catch (err) {
      return this.fail(`list ${this.options.what}: ${(err as Error).message}`);
    }
    if (this.stopped) return;
    this.items.clear();
    for (const object of list.items) {
      const facts = this.options.facts(object);
      if (facts) this.items.set(this.options.key(facts), facts);
    }
    this.resourceVersion = list.resourceVersion;
    if (!this.synced && this.lastError !== undefined) this.log.info('kubernetes watch back', { what: this.options.what, resourceVersion: this.resourceVersion });
    this.synced = true;
    this.failures = 0;
    this.lastError = undefined;
    this.options.onSynced?.();
    await this.watch();
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    let ended = false;
    const done = (err: WatchError | undefined): void => {
      if (ended) return;
      ended = true;
      this.stopWatch = undefined;
      if (this.stopped) return;
      if (err === undefined || err.timeout) {
        this.resumes++;
        void this.watch();
      } else if (err.status === 410) {
        this.relists++;
        void this.listAndWatch();
      } else {
        this.fail(`watch ${this.options.what}: ${err.message}${err.status ? ` (HTTP ${err.status})` : ''}`);
      }
    };
    try {
      this.stopWatch = await this.client.watch(
        this.options.path,
        { ...this.options.query, resourceVersion: this.resourceVersion, allowWatchBookmarks: 'true' },
        (type, object) => this.event(type, object, done),
        done,
      );
      if (ended) this.stopWatch = undefined;
    } catch (err) {
      done({ status: undefined, message: (err as Error).message, timeout: false });
    }
  }

  private event(type: string, object: any, done: (err: WatchError | undefined) => void): void {
    const version = object?.metadata?.resourceVersion;
    if (type === 'ERROR') {
      // The API reports an expired resourceVersion as an ERROR event with a Status object.
      const code = typeof object?.code === 'number' ? object.code : undefined;
      this.stopWatch?.();
      done({ status: code, message: String(object?.message ?? 'watch error'), timeout: false });
      return;
    }
    if (typeof version === 'string') this.resourceVersion = version;
    if (type === 'BOOKMARK') return;
    const facts = this.options.facts(object);
    if (!facts || (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED')) return;
    const key = this.options.key(facts);
    if (type === 'DELETED') this.items.delete(key);
    else this.items.set(key, facts);
    this.options.onChange?.(type, facts);
  }

  private fail(message: string): void {
    if (this.stopped) return;
    if (this.synced || this.lastError === undefined) this.log.warn('kubernetes API unreachable: releases paused', { what: this.options.what, error: message });
    this.synced = false;
    this.lastError = message;
    this.relists++;
    const { min, max } = this.options.retryMs;
    const delay = Math.min(max, min * 2 ** Math.min(this.failures, 10));
    this.failures++;
    this.retryTimer = setTimeout(() => void this.listAndWatch(), delay);
    this.retryTimer.unref();
  }
}
