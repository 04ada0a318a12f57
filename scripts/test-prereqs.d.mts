// Types of scripts/test-prereqs.mjs for the TypeScript that imports it (test/scripts/test-prereqs.test.ts).
export const PACKAGE_LIST: string;
export function parsePackageList(text: string): string[];
export function missingPackages(wanted: string[], status: string): string[];
export function installAdvice(missing: string[]): string;
