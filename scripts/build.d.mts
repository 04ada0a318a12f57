// Types of scripts/build.mjs for the TypeScript that imports it (test/support/build.ts).
export const ROOT: string;
export const ENTRIES: readonly string[];
/** Loaded at run time by daemon/kube/load.ts, from its own bundle beside the daemon. */
export const KUBE_CLIENT_PACKAGE: string;
export const KUBE_CLIENT_FILE: string;
/** Loaded at run time by daemon/cluster/etcd-client.ts, from its own bundle beside the daemon. */
export const ETCD_CLIENT_PACKAGE: string;
export const ETCD_CLIENT_FILE: string;
export class BuildError extends Error {}
export function buildBundles(options?: {
  entryDir?: string;
  outdir?: string;
  names?: readonly string[];
  log?: (message: string) => void;
}): Promise<{ outputs: Record<string, string>; nativeCall: string; kubeClient: string | undefined; etcdClient: string | undefined; metafile: unknown }>;
/** Bundles @kubernetes/client-node on its own into outdir/kube-client.cjs; returns the path. */
export function buildKubeClient(outdir: string): Promise<string>;
/** Bundles etcd3 (grpc-js, its .proto definitions inlined) on its own into outdir/etcd-client.cjs; returns the path. */
export function buildEtcdClient(outdir: string): Promise<string>;
export function bundleFile(options: { entry: string; outfile: string; external?: readonly string[] }): Promise<string>;
