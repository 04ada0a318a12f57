// Run by test/daemon/install-cni.test.ts as a process of its own, to be killed mid-copy:
// installs argv[2] as argv[3]/reservoir.
import { installFileAtomic } from '../../daemon/install-cni.js';

installFileAtomic(process.argv[2]!, process.argv[3]!, 'reservoir', 0o755).catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
