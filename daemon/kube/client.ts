// The Kubernetes API as reservoird uses it: a handful of reads and watches, behind a small
// interface so that the rest of the daemon never sees a client-node type. The client library is
// loaded here, lazily (load.ts), only when the integration is on.
import { loadClientNode } from './load.js';

export interface ObjectList {
  readonly items: readonly unknown[];
  readonly resourceVersion: string;
}

/** A watch event as the API sends it ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"). */
export type WatchHandler = (type: string, object: any) => void;

export interface KubeClient {
  /** The object, or undefined when the API answers 404. Rejects on any other failure. */
  getPod(namespace: string, name: string): Promise<unknown | undefined>;
  getStatefulSet(namespace: string, name: string): Promise<unknown | undefined>;
  /** A Node object, or undefined when the API answers 404 (the node is gone; NotReady is not). */
  getNode(name: string): Promise<unknown | undefined>;
  listPods(fieldSelector: string): Promise<ObjectList>;
  listStatefulSets(): Promise<ObjectList>;
  /**
   * Watch a collection from a resourceVersion. `done` is called once: with undefined when the
   * server (or the library's 30 s inactivity timeout) ended the watch, else with the error.
   */
  watch(path: string, query: Record<string, string>, onEvent: WatchHandler, done: (err: WatchError | undefined) => void): Promise<() => void>;
  /** Where the API is, for logs. */
  readonly server: string;
  /** Where the client library was loaded from, for logs. */
  readonly library: string;
}

export interface WatchError {
  /** HTTP status, when the API answered with one (410: the resourceVersion is too old). */
  readonly status: number | undefined;
  readonly message: string;
  /** The library's inactivity timeout: not a failure, resume from the last resourceVersion. */
  readonly timeout: boolean;
}

export interface KubeConnection {
  /** A kubeconfig file; undefined = in cluster (service account). */
  readonly kubeconfig: string | undefined;
  /** client-node's watch inactivity timeout (its default 30 s); tests shorten it. */
  readonly watchIdleMs?: number | undefined;
}

/** 404 means "no such object"; everything else is the API failing. */
function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown; statusCode?: unknown }).code ?? (err as { statusCode?: unknown }).statusCode;
  return typeof code === 'number' ? code : undefined;
}

/**
 * An API refusal in a line that stays the same from one try to the next: client-node's message
 * carries the response headers (Date among them), which would make every log line new.
 */
function apiError(err: unknown): unknown {
  const code = statusOf(err);
  if (code === undefined) return err;
  let body = (err as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      // not a Status object: the status code says enough
    }
  }
  const said = (body as { message?: unknown } | undefined)?.message;
  return Object.assign(new Error(`HTTP ${code}${typeof said === 'string' ? `: ${said}` : ''}`, { cause: err }), { code });
}

export async function connect(connection: KubeConnection): Promise<KubeClient> {
  const { k8s, from } = await loadClientNode();
  const config = new k8s.KubeConfig();
  if (connection.kubeconfig !== undefined) config.loadFromFile(connection.kubeconfig);
  else config.loadFromCluster();
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new Error(`kubeconfig ${connection.kubeconfig ?? '(in cluster)'} has no current cluster`);
  const core = config.makeApiClient(k8s.CoreV1Api);
  const apps = config.makeApiClient(k8s.AppsV1Api);
  const watcher = new k8s.Watch(config);
  // requestTimeoutMs is private in the typings but a plain field (client-node 2.0.1 watch.js).
  if (connection.watchIdleMs !== undefined) (watcher as unknown as { requestTimeoutMs: number }).requestTimeoutMs = connection.watchIdleMs;
  const orAbsent = async (read: () => Promise<unknown>): Promise<unknown | undefined> => {
    try {
      return await read();
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw apiError(err);
    }
  };
  const listOf = (list: { items: unknown[]; metadata?: { resourceVersion?: string } }): ObjectList => ({
    items: list.items,
    resourceVersion: list.metadata?.resourceVersion ?? '',
  });
  return {
    server: cluster.server,
    library: from,
    getPod: (namespace, name) => orAbsent(() => core.readNamespacedPod({ namespace, name })),
    getStatefulSet: (namespace, name) => orAbsent(() => apps.readNamespacedStatefulSet({ namespace, name })),
    getNode: (name) => orAbsent(() => core.readNode({ name })),
    listPods: async (fieldSelector) => listOf(await core.listPodForAllNamespaces({ fieldSelector }).catch((err: unknown) => Promise.reject(apiError(err)))),
    listStatefulSets: async () => listOf(await apps.listStatefulSetForAllNamespaces().catch((err: unknown) => Promise.reject(apiError(err)))),
    async watch(path, query, onEvent, done) {
      const controller = await watcher.watch(path, query, onEvent, (err: unknown) => {
        if (err === null || err === undefined) return done(undefined);
        const name = (err as { name?: unknown }).name;
        done({ status: statusOf(err), message: err instanceof Error ? err.message : String(err), timeout: name === 'TimeoutError' });
      });
      return () => controller.abort();
    },
  };
}
