// For a test file (or describe) that needs one daemon throughout: started in beforeAll, with the
// plugin bundle built (these tests drive the plugin process), and removed in afterAll. The handle
// can be taken at collection time; its members are read once the hook has run.
import { afterAll, beforeAll } from 'vitest';
import { bundlesReady } from './build.js';
import { DaemonProcess, type DaemonPaths, type InProcessDaemon, daemonPaths, startInProcessDaemon } from './daemon.js';
import type { DaemonOptions } from '../../daemon/app.js';
import { removeDir, tempDir } from './tmp.js';

function notYet(what: string): never {
  throw new Error(`${what} is not started yet: read it inside a test or a hook`);
}

/** startInProcessDaemon(label, options) for the enclosing file or describe. */
export function useInProcessDaemon(label: string, options: Partial<DaemonOptions> = {}): InProcessDaemon {
  let current: InProcessDaemon | undefined;
  beforeAll(async () => {
    await bundlesReady();
    current = await startInProcessDaemon(label, options);
  });
  afterAll(async () => {
    await current?.close();
  });
  const started = () => current ?? notYet(`the in-process daemon "${label}"`);
  return {
    get dir() {
      return started().dir;
    },
    get socket() {
      return started().socket;
    },
    get stateDir() {
      return started().stateDir;
    },
    get dbPath() {
      return started().dbPath;
    },
    get daemon() {
      return started().daemon;
    },
    stop: () => started().stop(),
    restart: () => started().restart(),
    close: () => started().close(),
  };
}

/** reservoird as a child process (the test bundle) in a fresh temp dir, for the enclosing file or describe. */
export function useDaemonProcess(label: string): { readonly paths: DaemonPaths; readonly process: DaemonProcess } {
  let paths: DaemonPaths | undefined;
  let running: DaemonProcess | undefined;
  beforeAll(async () => {
    paths = daemonPaths(tempDir(label));
    running = await DaemonProcess.start(paths);
  });
  afterAll(async () => {
    await running?.stop();
    removeDir(paths?.dir);
  });
  return {
    get paths() {
      return paths ?? notYet(`the daemon process "${label}"`);
    },
    get process() {
      return running ?? notYet(`the daemon process "${label}"`);
    },
  };
}
