// Placeholder loader (the etcd groundwork branch brings the real one, bundled apart like the Kubernetes client).
export type Etcd3Module = typeof import('etcd3');

export async function loadEtcd(): Promise<Etcd3Module> {
  return await import('etcd3');
}
