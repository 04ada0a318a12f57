// A faithful fake of the part of the Kubernetes API that reservoird uses, for tests driven
// through the real @kubernetes/client-node: pods and nodes (core/v1; nodes are cluster-scoped),
// statefulsets and replicasets (apps/v1); get (404 with the API's NotFound Status body), list
// (with resourceVersion and fieldSelector spec.nodeName), watch from a resourceVersion (JSON
// lines; 410 Gone as an ERROR event once the history is compacted, as the API server does),
// bearer-token authentication (401 otherwise). The test drives it: create,
// update and delete objects; refuse a kind's get (403); break every watch; take the API down and back up on the same port;
// make it hang (accept and never answer).
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

type Kind = 'pods' | 'statefulsets' | 'replicasets' | 'nodes';

const GROUPS: Record<Kind, { prefix: string; kind: string; apiVersion: string }> = {
  pods: { prefix: '/api/v1', kind: 'Pod', apiVersion: 'v1' },
  nodes: { prefix: '/api/v1', kind: 'Node', apiVersion: 'v1' },
  statefulsets: { prefix: '/apis/apps/v1', kind: 'StatefulSet', apiVersion: 'apps/v1' },
  replicasets: { prefix: '/apis/apps/v1', kind: 'ReplicaSet', apiVersion: 'apps/v1' },
};

interface Event {
  readonly rv: number;
  readonly kind: Kind;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: any;
}

interface Watcher {
  readonly kind: Kind;
  readonly nodeName: string | undefined;
  readonly res: ServerResponse;
}

export interface FakePodSpec {
  readonly namespace?: string;
  readonly name: string;
  readonly nodeName?: string;
  readonly annotations?: Record<string, string>;
  readonly labels?: Record<string, string>;
  /** The controller: a StatefulSet or ReplicaSet object made by this fake. */
  readonly owner?: any;
}

export interface FakeStatefulSetSpec {
  readonly namespace?: string;
  readonly name: string;
  readonly replicas?: number;
  readonly ordinalsStart?: number;
  readonly annotations?: Record<string, string>;
}

const clone = <T>(x: T): T => structuredClone(x);

export class FakeKube {
  readonly token = `token-${randomUUID()}`;
  private readonly objects = new Map<string, any>();
  private readonly history: Event[] = [];
  /** Events at or below this resourceVersion are gone: a watch from before it gets 410. */
  private compactedTo = 0;
  private rv = 100;
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private server: Server;
  private port = 0;
  private hanging = false;
  /** Kinds whose get is refused as RBAC refuses it (403 Forbidden). */
  private readonly forbidden = new Set<Kind>();
  private held: ServerResponse[] = [];
  /** Requests served, by "METHOD path?watch" (for tests that count calls). */
  readonly requests: string[] = [];

  private constructor() {
    this.server = this.makeServer();
  }

  static async start(): Promise<FakeKube> {
    const fake = new FakeKube();
    await fake.listen(0);
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A kubeconfig for this fake (JSON is YAML), written to `path`. */
  writeKubeconfig(path: string, token = this.token): string {
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      // Plain HTTP on loopback: client-node allows it only with insecure-skip-tls-verify.
      clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'reservoird', user: { token } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'reservoird' } }],
      'current-context': 'fake',
    };
    writeFileSync(path, JSON.stringify(config, null, 2));
    return path;
  }

  // --- the test's side ---------------------------------------------------------------------

  createStatefulSet(spec: FakeStatefulSetSpec): any {
    const sts: any = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { namespace: spec.namespace ?? 'default', name: spec.name, uid: randomUUID(), annotations: { ...spec.annotations } },
      spec: { replicas: spec.replicas ?? 1, serviceName: spec.name, selector: { matchLabels: { app: spec.name } }, template: {} },
    };
    if (spec.ordinalsStart !== undefined) sts.spec.ordinals = { start: spec.ordinalsStart };
    return this.put('statefulsets', sts, 'ADDED');
  }

  createReplicaSet(namespace: string, name: string): any {
    const rs = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { namespace, name, uid: randomUUID() }, spec: { replicas: 1 } };
    return this.put('replicasets', rs, 'ADDED');
  }

  /** Change a StatefulSet (replicas, annotations): a MODIFIED event. */
  updateStatefulSet(namespace: string, name: string, change: { replicas?: number; annotations?: Record<string, string | null> }): any {
    const sts = clone(this.objects.get(key('statefulsets', namespace, name)));
    if (!sts) throw new Error(`no statefulset ${namespace}/${name}`);
    if (change.replicas !== undefined) sts.spec.replicas = change.replicas;
    for (const [k, v] of Object.entries(change.annotations ?? {})) {
      if (v === null) delete sts.metadata.annotations[k];
      else sts.metadata.annotations[k] = v;
    }
    return this.put('statefulsets', sts, 'MODIFIED');
  }

  createPod(spec: FakePodSpec): any {
    const namespace = spec.namespace ?? 'default';
    const pod: any = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { namespace, name: spec.name, uid: randomUUID(), annotations: { ...spec.annotations }, labels: { ...spec.labels } },
      spec: { nodeName: spec.nodeName ?? 'node-a', containers: [{ name: 'main', image: 'busybox' }] },
      status: { phase: 'Running' },
    };
    if (spec.owner) {
      pod.metadata.ownerReferences = [
        { apiVersion: spec.owner.apiVersion, kind: spec.owner.kind, name: spec.owner.metadata.name, uid: spec.owner.metadata.uid, controller: true, blockOwnerDeletion: true },
      ];
    }
    return this.put('pods', pod, 'ADDED');
  }

  /** A StatefulSet's pod for one ordinal, named and labelled as the controller does. */
  createStatefulSetPod(sts: any, ordinal: number, nodeName = 'node-a', annotations: Record<string, string> = {}): any {
    return this.createPod({
      namespace: sts.metadata.namespace,
      name: `${sts.metadata.name}-${ordinal}`,
      nodeName,
      annotations,
      labels: { 'apps.kubernetes.io/pod-index': String(ordinal), 'statefulset.kubernetes.io/pod-name': `${sts.metadata.name}-${ordinal}` },
      owner: sts,
    });
  }

  /** A Node object, Ready; cluster-scoped (delete it with delete('nodes', '', name)). */
  createNode(name: string): any {
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, uid: randomUUID(), labels: { 'kubernetes.io/hostname': name } },
      spec: {},
      status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }] },
    };
    return this.put('nodes', node, 'ADDED');
  }

  /** The node's kubelet stops posting status: Ready Unknown (the node controller's NodeStatusUnknown). */
  setNodeNotReady(name: string): any {
    const node = clone(this.objects.get(key('nodes', '', name)));
    if (!node) throw new Error(`no node ${name}`);
    node.status.conditions = [{ type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown' }];
    return this.put('nodes', node, 'MODIFIED');
  }

  delete(kind: Kind, namespace: string, name: string): void {
    const k = key(kind, namespace, name);
    const object = this.objects.get(k);
    if (!object) throw new Error(`no ${kind} ${namespace}/${name}`);
    this.objects.delete(k);
    const gone = clone(object);
    gone.metadata.resourceVersion = String(++this.rv);
    this.emit({ rv: this.rv, kind, type: 'DELETED', object: gone });
  }

  get(kind: Kind, namespace: string, name: string): any {
    return this.objects.get(key(kind, namespace, name));
  }

  /** Forget the event history: a watch from any older resourceVersion gets 410 Gone. */
  compact(): void {
    this.compactedTo = this.rv;
    this.history.length = 0;
  }

  /** Cut every open watch connection (a network blip, an API server restart). */
  breakWatches(): void {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
  }

  /** The API goes away: the port refuses connections until up(). */
  async down(): Promise<void> {
    this.breakWatches();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async up(): Promise<void> {
    this.server = this.makeServer();
    await this.listen(this.port);
  }

  /** Refuse get of a kind (403 Forbidden, as RBAC does without the verb), until allowed again. */
  forbid(kind: Kind, on: boolean): void {
    if (on) this.forbidden.add(kind);
    else this.forbidden.delete(kind);
  }

  /** Accept requests and never answer them (a black-holed API), until hang(false). */
  hang(on: boolean): void {
    this.hanging = on;
    if (!on) {
      for (const res of this.held) res.destroy();
      this.held = [];
    }
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  async close(): Promise<void> {
    this.hang(false);
    await this.down().catch(() => undefined);
  }

  // --- the API's side ----------------------------------------------------------------------

  private put(kind: Kind, object: any, type: 'ADDED' | 'MODIFIED'): any {
    object.metadata.resourceVersion = String(++this.rv);
    object.metadata.creationTimestamp ??= new Date().toISOString();
    this.objects.set(key(kind, object.metadata.namespace ?? '', object.metadata.name), object);
    this.emit({ rv: this.rv, kind, type, object: clone(object) });
    return clone(object);
  }

  private emit(event: Event): void {
    this.history.push(event);
    for (const w of this.watchers) if (matches(w, event)) w.res.write(`${JSON.stringify({ type: event.type, object: event.object })}\n`);
  }

  private makeServer(): Server {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    return server;
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.hanging) {
      this.held.push(res);
      return;
    }
    const url = new URL(req.url ?? '/', 'http://fake');
    const watch = url.searchParams.get('watch') === 'true';
    this.requests.push(`${req.method} ${url.pathname}${watch ? '?watch' : ''}`);
    if (req.headers.authorization !== `Bearer ${this.token}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
    if (req.method !== 'GET') return status(res, 405, 'MethodNotAllowed', `${req.method} is not served by this fake`);
    const route = parse(url.pathname);
    if (!route) return status(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
    const { kind, namespace, name } = route;
    if (name !== undefined) {
      if (this.forbidden.has(kind)) {
        const scope = namespace === undefined ? 'at the cluster scope' : `in the namespace "${namespace}"`;
        return status(res, 403, 'Forbidden', `${kind} "${name}" is forbidden: User "system:serviceaccount:reservoir:reservoird" cannot get resource "${kind}" in API group "${GROUPS[kind].apiVersion === 'v1' ? '' : 'apps'}" ${scope}`, { name, kind });
      }
      const object = this.objects.get(key(kind, namespace ?? '', name));
      if (!object) return status(res, 404, 'NotFound', `${kind} "${name}" not found`, { name, kind });
      return json(res, 200, object);
    }
    const selector = url.searchParams.get('fieldSelector') ?? '';
    let nodeName: string | undefined;
    if (selector !== '') {
      const m = /^spec\.nodeName=([^,]+)$/.exec(selector);
      if (!m || kind !== 'pods') return status(res, 400, 'BadRequest', `field label not supported: ${selector}`);
      nodeName = m[1];
    }
    const filter = { kind, nodeName, namespace };
    if (!watch) {
      const items = [...this.objects.entries()].filter(([k, o]) => k.startsWith(`${kind}/`) && matchesObject(filter, o)).map(([, o]) => o);
      return json(res, 200, { kind: `${GROUPS[kind].kind}List`, apiVersion: GROUPS[kind].apiVersion, metadata: { resourceVersion: String(this.rv) }, items });
    }
    const from = Number(url.searchParams.get('resourceVersion') ?? '0');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (from < this.compactedTo) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `too old resource version: ${from} (${this.compactedTo})`, reason: 'Expired', code: 410 } })}\n`);
      return;
    }
    const watcher: Watcher = { kind, nodeName, res };
    for (const event of this.history) {
      if (event.rv > from && matches(watcher, event)) res.write(`${JSON.stringify({ type: event.type, object: event.object })}\n`);
    }
    this.watchers.add(watcher);
    res.on('close', () => this.watchers.delete(watcher));
  }
}

function key(kind: Kind, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

function matchesObject(filter: { kind: Kind; nodeName: string | undefined; namespace?: string | undefined }, object: any): boolean {
  if (filter.namespace !== undefined && object.metadata.namespace !== filter.namespace) return false;
  return filter.nodeName === undefined || object.spec?.nodeName === filter.nodeName;
}

function matches(watcher: Watcher, event: Event): boolean {
  return event.kind === watcher.kind && matchesObject(watcher, event.object);
}

/** /api/v1/pods, /api/v1/namespaces/NS/pods[/NAME], /apis/apps/v1/[namespaces/NS/]statefulsets[/NAME], /api/v1/nodes[/NAME] */
function parse(path: string): { kind: Kind; namespace: string | undefined; name: string | undefined } | undefined {
  const node = /^\/api\/v1\/nodes(?:\/([^/]+))?$/.exec(path);
  if (node) return { kind: 'nodes', namespace: undefined, name: node[1] && decodeURIComponent(node[1]) };
  const m = /^(\/api\/v1|\/apis\/apps\/v1)(?:\/namespaces\/([^/]+))?\/(pods|statefulsets|replicasets)(?:\/([^/]+))?$/.exec(path);
  if (!m) return undefined;
  const kind = m[3] as Kind;
  if (GROUPS[kind].prefix !== m[1]) return undefined;
  if (m[4] !== undefined && m[2] === undefined) return undefined;
  return { kind, namespace: m[2] && decodeURIComponent(m[2]), name: m[4] && decodeURIComponent(m[4]) };
}

function json(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function status(res: ServerResponse, code: number, reason: string, message: string, details?: { name: string; kind: string }): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code });
}
