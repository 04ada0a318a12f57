// The etcd3 client, imported only when reservoird is given --etcd-endpoints (daemon/app.ts ->
// etcd-kv.ts): a daemon of node networks never evaluates grpc. It is bundled into reservoird;
// scripts/build.mjs inlines the client's .proto service definitions, which it would otherwise
// read from beside its own source.
export type Etcd3Module = typeof import('etcd3');

export async function loadEtcd(): Promise<Etcd3Module> {
  return await import('etcd3');
}
