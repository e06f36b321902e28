/**
 * Issue 3 acceptance: both seed command lines assemble the machine, and `info mtree` / `info mtree -f`
 * under `-S -monitor stdio` match QEMU 7.2's captures. QEMU prints address-space blocks in hash-table
 * order, so blocks are compared as sets; each block must match byte for byte.
 */
import assert from "node:assert/strict";
import { golden } from "./lib/golden.ts";
import { seedDir } from "./lib/boot.ts";
import { SEED_LINE_1, SEED_LINE_2, withTcg } from "./lib/machine.ts";

const dir = await seedDir();
const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function monitor(args: string[], commands: string[]): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", MAIN, ...args, "-S", "-monitor", "stdio"],
    cwd: dir,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(commands.join("\n") + "\nquit\n"));
  await w.close();
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

/** Every golden block must appear, byte for byte, among the output's blank-line separated blocks. */
function assertBlocks(out: string, goldenText: string): void {
  const have = new Set(blocks(out.replaceAll("\r\n", "\n").replace(/^\(qemu\) .*\n/gm, "\n")));
  for (const b of blocks(goldenText)) {
    assert.ok(have.has(b), `block missing or different:\n${b}\n--- output ---\n${out}`);
  }
}

function blocks(text: string): string[] {
  // FlatView numbers follow the (hash-table) order of the blocks too.
  return text.replace(/^FlatView #\d+$/gm, "FlatView #N").split(/\n\n+/).map((b) => b.trim()).filter((b) =>
    b.length > 0
  ).sort();
}

for (
  const [name, line, cap] of [
    ["seed line 1", SEED_LINE_1, "tcg-legacy-blk-net"],
    ["seed line 2", SEED_LINE_2, "tcg-nolegacy-blk-hvc"],
  ] as const
) {
  Deno.test(`${name} (-accel tcg) under -S -monitor stdio: info mtree and info mtree -f match QEMU 7.2`, async () => {
    // stdio goes to the monitor (QEMU refuses two stdio users too): the guest consoles go to null.
    const args = withTcg([...line]).map((a) =>
      a === "stdio,id=virtiocon0" ? "null,id=virtiocon0" : a === "stdio" ? "null" : a
    );
    const out = await monitor(args, ["info mtree", "info mtree -f", "info status"]);
    assertBlocks(out, golden(`mtree/${cap}.mtree.txt`));
    assertBlocks(out, golden(`mtree/${cap}.mtree-f.txt`));
    assert.match(out, /VM status: paused \(prelaunch\)/);
  });
}
