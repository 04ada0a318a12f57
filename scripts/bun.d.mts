// Types of scripts/bun.mjs for the TypeScript that imports it (test/support/build.ts).
export interface Bun {
  readonly path: string;
  readonly version: string;
}
export const BUN_FLAGS: readonly string[];
export function findBun(): Bun;
export function compilePlugin(outFile: string, options?: { entry?: string; bun?: Bun }): { out: string; size: number; bun: Bun };
