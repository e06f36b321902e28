/**
 * Replays every fuzz reproducer in tests/fuzz/corpus/<device>/NNN-what.qtest (QEMU's qtest wire format)
 * on a fresh fuzz machine: none may crash, hang or break an invariant. A file with a
 * `# known-failing: <reason>` line is a bug not fixed yet: it is skipped with a loud line while it still
 * fails, and reported (so the marker gets removed) once it passes.
 */
import assert from "node:assert/strict";
import { parseQtest } from "../plugins/fuzz/input.ts";
import { replayOps } from "../plugins/fuzz/exec.ts";
import "../shell/fuzz_argv.ts"; // the fuzzer's command-line parser

const CORPUS = new URL("./fuzz/corpus/", import.meta.url);

function files(dir: URL): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.isDirectory) out.push(...files(new URL(`${e.name}/`, dir)).map((f) => `${e.name}/${f}`));
    else if (e.name.endsWith(".qtest")) out.push(e.name);
  }
  return out.sort();
}

Deno.test("fuzz corpus: every reproducer replays without a finding", () => {
  const all = files(CORPUS);
  assert.ok(all.length > 0, "tests/fuzz/corpus is empty");
  const failures: string[] = [];
  for (const f of all) {
    const s = parseQtest(Deno.readTextFileSync(new URL(f, CORPUS)));
    const known = s.comments.find((c) => c.startsWith("known-failing:"));
    // Host-time hangs depend on the machine; replays check crashes and invariants.
    const found = replayOps(s.ops, s.argv, { hangMs: Infinity });
    const what = found.map((x) => `${x.kind} in ${x.device} at op ${x.op + 1}: ${x.message}`).join("; ");
    if (known) {
      if (found.length) console.log(`KNOWN-FAILING (skipped) ${f}: ${what}`);
      else console.log(`FIXED? ${f} no longer fails: remove its "# known-failing" line`);
      continue;
    }
    if (found.length) failures.push(`${f}: ${what}`);
  }
  assert.deepEqual(failures, []);
});
