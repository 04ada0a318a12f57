// Types of scripts/image.mjs for the TypeScript that imports it (test/deploy/).
export const IMAGE_LIB_DIR: string;
export const IMAGE_CNI_DIR: string;
export const CONTAINERFILE: string;
export const DEFAULT_TAG: string;
export function baseImage(log?: (line: string) => void): string;
export function buildImage(options?: { tag?: string; log?: (line: string) => void }): { tag: string; base: string; size: number };
