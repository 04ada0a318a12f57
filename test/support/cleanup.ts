// One Cleanup for every test (and the benchmark): a last-in first-out list of undo steps
// (processes, mounts, namespaces, links, temp dirs). run() tries every step, even after one
// fails, then throws an AggregateError naming each failure: a leak fails the suite loudly.
// Use one per file or describe: `const cleanup = new Cleanup(); afterAll(() => cleanup.run());`.
// Steps added with addSync are synchronous and also run when the process exits before run()
// did (the runner killed mid-file), so no namespace, link or directory outlives the run.
import { rmSync } from 'node:fs';
import { tempDir } from './tmp.js';

interface Step {
  readonly label: string;
  readonly fn: () => unknown;
  readonly atExit: boolean;
}

const live = new Set<Cleanup>();
let exitHook = false;

export class Cleanup {
  private readonly steps: Step[] = [];

  constructor() {
    live.add(this);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const cleanup of live) cleanup.runAtExit();
      });
    }
  }

  /** An undo step; it may be async. */
  add(label: string, fn: () => unknown): void {
    this.steps.push({ label, fn, atExit: false });
  }

  /** A synchronous undo step, run at process exit too if run() never came. */
  addSync(label: string, fn: () => void): void {
    this.steps.push({ label, fn, atExit: true });
  }

  /** A file or directory to remove recursively. */
  addPath(path: string): void {
    this.addSync(`rm ${path}`, () => rmSync(path, { recursive: true, force: true }));
  }

  /** A fresh temp dir (tmp.ts: tmpfs when there is one, or under `base`), removed at cleanup. */
  tempDir(label: string, base?: string): string {
    const dir = tempDir(label, base);
    this.addPath(dir);
    return dir;
  }

  get pending(): number {
    return this.steps.length;
  }

  async run(): Promise<void> {
    const errors: Error[] = [];
    while (this.steps.length > 0) {
      const { label, fn } = this.steps.pop()!;
      try {
        await fn();
      } catch (err) {
        errors.push(new Error(`${label}: ${err instanceof Error ? err.message : String(err)}`));
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `cleanup failed: ${errors.map((e) => e.message).join('; ')}`);
  }

  private runAtExit(): void {
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      if (!step.atExit) continue;
      try {
        step.fn();
      } catch {
        // best effort while the process exits
      }
    }
  }
}
