// Types of scripts/build.mjs for the TypeScript that imports it (test/support/build.ts).
export const ROOT: string;
export const ENTRIES: readonly string[];
export class BuildError extends Error {}
export function buildBundles(options?: {
  entryDir?: string;
  outdir?: string;
  names?: readonly string[];
  log?: (message: string) => void;
}): Promise<{ outputs: Record<string, string>; nativeCall: string; metafile: unknown }>;
export function bundleFile(options: { entry: string; outfile: string; external?: readonly string[] }): Promise<string>;
