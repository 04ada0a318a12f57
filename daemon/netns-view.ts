// Whether this daemon can see the runtime's network namespaces. "The path does not exist" means
// "the namespace is gone" only where the daemon sees the directory the runtime puts them in: a
// reservoird in a container without the host's netns directory mounted (or without the host's
// PID namespace, for /proc/PID/ns/net paths) sees nothing there, and must then neither reclaim a
// lease nor hand a stateful app's IP to a new container by that test.
//
// Evidence, best first: an ADD's own namespace exists (the runtime has just made it), so whether
// the daemon sees it says whether it sees its directory; a lease's namespace that exists proves
// the same. Without evidence a directory counts as visible when it exists (after a reboot every
// old namespace is gone and no ADD has come yet, and those leases must still be reclaimed);
// /proc/PID paths count only with evidence, since /proc exists in every PID namespace.
import { existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from './log.js';

export type NetnsState = 'present' | 'gone' | 'unknown';

export interface NetnsRootView {
  /** "/var/run/netns", or "/proc" for /proc/PID/ns/net paths. */
  readonly root: string;
  readonly visible: boolean;
  readonly why: string;
}

export interface NetnsProbe {
  exists(path: string): boolean;
  isDirectory(path: string): boolean;
}

const fsProbe: NetnsProbe = {
  exists: existsSync,
  isDirectory: (path) => {
    try {
      return statSync(path).isDirectory();
    } catch {
      return false;
    }
  },
};

/** The directory whose visibility decides for a path: its parent, or /proc for /proc/PID/... */
export function netnsRoot(path: string): string {
  return path.startsWith('/proc/') ? '/proc' : dirname(path);
}

export class NetnsView {
  /** Per root: what the last evidence said, and from which path. */
  private readonly evidence = new Map<string, { visible: boolean; path: string }>();
  /** Every root a lease or an ADD named. */
  private readonly seen = new Set<string>();

  constructor(
    private readonly log: Logger,
    private readonly probe: NetnsProbe = fsProbe,
  ) {}

  /** An ADD's own namespace, which the runtime guarantees exists. */
  observeAdd(path: string): void {
    if (path === '') return;
    this.record(netnsRoot(path), this.probe.exists(path), path);
  }

  state(path: string): NetnsState {
    const root = netnsRoot(path);
    this.seen.add(root);
    if (this.probe.exists(path)) {
      this.record(root, true, path);
      return 'present';
    }
    return this.visible(root) ? 'gone' : 'unknown';
  }

  /** Every root seen so far, for `reservoirctl health`. */
  roots(): NetnsRootView[] {
    return [...this.seen].sort().map((root) => this.describe(root));
  }

  private visible(root: string): boolean {
    const known = this.evidence.get(root);
    if (known) return known.visible;
    return root !== '/proc' && this.probe.isDirectory(root);
  }

  private describe(root: string): NetnsRootView {
    const known = this.evidence.get(root);
    if (known?.visible) return { root, visible: true, why: `namespace ${known.path} seen` };
    if (known) {
      return {
        root,
        visible: false,
        why: `the ADD namespace ${known.path} does not exist for reservoird: mount the runtime's netns directory (hostPath, mountPropagation HostToContainer)${root === '/proc' ? ' and run with the host PID namespace' : ''}; leases there are neither reclaimed nor taken over`,
      };
    }
    return this.visible(root) ? { root, visible: true, why: 'directory exists' } : { root, visible: false, why: `${root} is not visible to reservoird; leases there are not reclaimed` };
  }

  private record(root: string, visible: boolean, path: string): void {
    const before = this.evidence.get(root);
    this.seen.add(root);
    this.evidence.set(root, { visible, path });
    if (before?.visible === visible) return;
    if (!visible) this.log.warn('network namespaces not visible: no reclaim or take-over by namespace', { root, path });
    else if (before) this.log.info('network namespaces visible again', { root, path });
  }
}
