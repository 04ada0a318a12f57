// reservoird's Kubernetes flags: --kubeconfig (env KUBECONFIG) or in cluster turns the
// integration on; --node-name (env RESERVOIR_NODE_NAME) defaults to the host name.
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SERVICE_ACCOUNT_TOKEN, parseDaemonFlags } from '../../daemon/flags.js';
import { removeDir, tempDir } from '../support/tmp.js';

const dir = tempDir('kube-flags');
afterAll(() => removeDir(dir));
const kubeconfig = join(dir, 'kubeconfig');
writeFileSync(kubeconfig, '{}');

describe('Kubernetes flags', () => {
  it('off without a kubeconfig or a cluster', () => {
    expect(parseDaemonFlags([], {}).kube).toBeUndefined();
  });

  it('--kubeconfig or KUBECONFIG turns it on, for this host name unless told another node', () => {
    expect(parseDaemonFlags(['--kubeconfig', kubeconfig], {}).kube).toEqual({ kubeconfig, nodeName: hostname() });
    expect(parseDaemonFlags([], { KUBECONFIG: kubeconfig, RESERVOIR_NODE_NAME: 'node-7' }).kube).toEqual({ kubeconfig, nodeName: 'node-7' });
    expect(parseDaemonFlags(['--kubeconfig', kubeconfig, '--node-name', 'node-9'], { RESERVOIR_NODE_NAME: 'node-7' }).kube?.nodeName).toBe('node-9');
  });

  it('a kubeconfig that does not exist is refused at start, naming it', () => {
    expect(() => parseDaemonFlags(['--kubeconfig', join(dir, 'nope')], {})).toThrow(/--kubeconfig .*nope: no such file/);
  });

  it('in cluster only with both KUBERNETES_SERVICE_HOST and the service account token', () => {
    // this machine runs no pod: the token is not there, so the service host alone changes nothing
    expect(SERVICE_ACCOUNT_TOKEN).toBe('/var/run/secrets/kubernetes.io/serviceaccount/token');
    expect(parseDaemonFlags([], { KUBERNETES_SERVICE_HOST: '10.96.0.1' }).kube).toBeUndefined();
  });
});
