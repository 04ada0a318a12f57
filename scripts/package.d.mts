// Types of scripts/package.mjs for the TypeScript that imports it (test/integration/plugin-golden.test.ts, test/deploy/).
export interface NodeBinary {
  readonly path: string;
  readonly version: string;
  readonly size: number;
}
export function findNodeBinary(): NodeBinary;
export function makeSea(node: NodeBinary, options: { name: string; main: string; out: string; useCodeCache?: boolean; useSnapshot?: boolean }): { out: string; blobSize: number };
export const INSTALLED_FILES: {
  readonly plugin: readonly string[];
  readonly daemon: readonly string[];
  readonly aliases: Readonly<Record<string, string>>;
};
