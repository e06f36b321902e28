/**
 * Small statistics and table helpers for the benchmarks: median/min/max of samples, number formatting,
 * ratios and markdown tables.
 * @module
 */

/** Median, minimum and maximum of a sample set (NaN fields when there are no samples). */
export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Summarize the finite values of `xs`. */
export function summarize(xs: readonly number[]): Summary {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1], n: v.length };
}

/** A number with `digits` decimals, or "n/a" when not finite. */
export function fmt(x: number, digits = 0): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

/** "median / min / max" of a summary, or "n/a". */
export function fmtSummary(s: Summary, digits = 0): string {
  if (s.n === 0) return "n/a";
  if (s.n === 1) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} / ${fmt(s.min, digits)} / ${fmt(s.max, digits)}`;
}

/** `a / b` as "1.23x", or "n/a" when either side is missing. */
export function fmtRatio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return "n/a";
  const r = a / b;
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)}x`;
}

/** A rate with an SI suffix: 1234567 → "1.23 M". */
export function fmtRate(x: number): string {
  if (!Number.isFinite(x)) return "n/a";
  if (x >= 1e9) return `${(x / 1e9).toFixed(2)} G`;
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k`;
  return x.toFixed(1);
}

/** A markdown table (pipes, header separator); cells are used as given. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(3, h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    "| " + widths.map((w, i) => (cells[i] ?? "").padEnd(w)).join(" | ") + " |";
  return [
    line(headers),
    "| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |",
    ...rows.map(line),
  ].join("\n");
}

/** One benchmark section: a title, a table and notes, printable as markdown. */
export interface Section {
  title: string;
  headers: string[];
  rows: string[][];
  notes: string[];
}

/** Render a section as markdown text. */
export function renderSection(s: Section): string {
  const parts = [`## ${s.title}`, "", markdownTable(s.headers, s.rows)];
  if (s.notes.length) parts.push("", ...s.notes.map((n) => `- ${n}`));
  return parts.join("\n") + "\n";
}
