/**
 * Golden-file helpers: read a capture copied into tests/golden/ (first line = provenance) and compare
 * text with a line diff on failure.
 * @module
 */
import assert from "node:assert/strict";

/** Golden text without its provenance line. */
export function golden(rel: string): string {
  const text = Deno.readTextFileSync(new URL(`../golden/${rel}`, import.meta.url));
  return text.slice(text.indexOf("\n") + 1);
}

/** Assert equal text, printing the first differing lines. */
export function assertText(actual: string, expected: string): void {
  if (actual === expected) return;
  const a = actual.split("\n");
  const e = expected.split("\n");
  const diff: string[] = [];
  for (let i = 0; i < Math.max(a.length, e.length); i++) {
    if (a[i] !== e[i]) diff.push(`line ${i + 1}:\n- ${e[i]}\n+ ${a[i]}`);
  }
  assert.fail(`text differs from golden:\n${diff.slice(0, 12).join("\n")}`);
}
