// Types of scripts/native.mjs for the TypeScript that imports it.
export const NATIVE_CALL_FILE: string;
export function buildNativeCall(outFile: string): string;
export function addonInitialised(ldDebug: string): boolean;
