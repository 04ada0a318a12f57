// Types of scripts/test-prereqs.mjs for the TypeScript that imports it (test/scripts/test-prereqs.test.ts).
export const PACKAGE_LIST: string;
export function parsePackageList(text: string): string[];
export function missingPackages(wanted: string[], status: string): string[];
export function installAdvice(missing: string[]): string;
/** Test package -> the system service its Debian package starts that the tests do not use. */
export const QUIET_SERVICES: Readonly<Record<string, string>>;
export function servicesToQuiet(installed: string[]): string[];
export function quietServices(services: string[]): void;
