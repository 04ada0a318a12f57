// Plain-text output for reservoirctl: aligned columns, usage bars, human ages and counts.
// No dependency and no colors: the output must read the same in a terminal, a log or a pipe.

export interface Column {
  readonly header: string;
  /** Numbers read best right-aligned. */
  readonly align?: 'left' | 'right';
}

/** Control characters (an operator's note may hold a newline) would break the columns. */
export function clean(value: string): string {
  return value.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Columns separated by two spaces, no trailing blanks; ends with a newline. */
export function table(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const cells = rows.map((row) => columns.map((_, i) => clean(row[i] ?? '')));
  // reduce, not Math.max(...lengths): spreading ~150,000 rows (a big node's leases) overflows the stack.
  const widths = columns.map((col, i) => cells.reduce((width, row) => Math.max(width, row[i]!.length), col.header.length));
  const line = (row: readonly string[]) =>
    row
      .map((cell, i) => (columns[i]!.align === 'right' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n') + '\n';
}

/** Key/value lines, keys aligned. */
export function keyValues(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([key]) => key.length));
  return pairs.map(([key, value]) => `${key.padEnd(width)}  ${clean(value)}`.trimEnd()).join('\n') + '\n';
}

/** A decimal count from the daemon (may exceed 2^53: IPv6); huge ones shortened, e.g. 1.84e19. */
export function count(value: string | number | bigint): string {
  const text = BigInt(value).toString();
  if (text.length <= 12) return text;
  return `${text[0]}.${text.slice(1, 3)}e${text.length - 1}`;
}

/** Rounded used*scale/size, in BigInt (sizes of IPv6 ranges do not fit a double exactly). */
function scaled(used: bigint, size: bigint, scale: bigint): bigint {
  return (used * scale * 2n + size) / (2n * size);
}

/** "12.5%" with one decimal; never shows 0.0% for a non-empty pool nor 100.0% for a non-full one. */
export function percent(used: bigint, size: bigint): string {
  if (size <= 0n) return '-';
  let tenths = scaled(used, size, 1000n);
  if (used > 0n && tenths === 0n) return '<0.1%';
  if (used < size && tenths >= 1000n) tenths = 999n;
  return `${tenths / 10n}.${tenths % 10n}%`;
}

/** "[#####...............]  25.0%": `width` cells inside the brackets. */
export function usageBar(used: bigint, size: bigint, width = 20): string {
  let filled = size <= 0n ? 0 : Number(scaled(used > size ? size : used, size, BigInt(width)));
  if (used < size && filled >= width) filled = width - 1;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${percent(used, size).padStart(6)}`;
}

/** 5s, 3m, 2h, 4d: the largest unit, rounded down. */
export function age(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** null/undefined/"" as "-", so empty cells stay visible. */
export function dash(value: string | number | null | undefined): string {
  return value === null || value === undefined || value === '' ? '-' : String(value);
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
