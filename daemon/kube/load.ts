// Loads @kubernetes/client-node only when the Kubernetes integration is on: its bundle (6 MB)
// would otherwise cost every daemon start-up (and the plugin must never load it).
// Packaged, it is kube-client.cjs beside the executable (scripts/build.mjs bundles it apart from
// reservoird; a single executable's own require() loads built-in modules only, so it is loaded
// through createRequire); from sources or dist/, it comes from node_modules.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const KUBE_CLIENT_FILE = 'kube-client.cjs';

type ClientNode = typeof import('@kubernetes/client-node');

/** The library, and where it came from (for the start-up log). */
export async function loadClientNode(): Promise<{ k8s: ClientNode; from: string }> {
  const script = typeof __filename === 'string' ? __filename : undefined;
  for (const dir of [dirname(process.execPath), ...(script ? [dirname(script)] : [])]) {
    const file = join(dir, KUBE_CLIENT_FILE);
    if (existsSync(file)) return { k8s: createRequire(file)(file) as ClientNode, from: file };
  }
  try {
    return { k8s: await import('@kubernetes/client-node'), from: 'node_modules' };
  } catch (err) {
    const beside = join(dirname(process.execPath), KUBE_CLIENT_FILE);
    throw new Error(`the Kubernetes client is missing: install ${KUBE_CLIENT_FILE} (build/bin, from npm run package) as ${beside}, beside reservoird (${(err as Error).message})`);
  }
}
