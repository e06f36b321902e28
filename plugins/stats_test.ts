import assert from "node:assert/strict";
import { PluginManager } from "./loader.ts";
import { buildFuzzMachine } from "./fuzz/machine.ts";
import { formatStats } from "./stats.ts";
import "../shell/fuzz_argv.ts"; // the fuzzer's command-line parser

Deno.test("stats counts accesses per region and prints the table as a monitor command and at exit", async () => {
  const fm = buildFuzzMachine();
  const out: string[] = [];
  const pm = new PluginManager(fm.vm, { print: (t) => out.push(t) });
  await pm.load("stats");
  for (let i = 0; i < 3; i++) fm.vm.io.read(0x3fd, 1);
  fm.vm.io.write(0x20, 1, 0x0b);
  fm.vm.memory.read(0xfeb00e00, 4);
  fm.vm.io.read(0x600, 1); // unassigned
  const table = pm.runCommand("stats", [])!;
  const lines = table.split("\n");
  assert.match(lines[1], /^io\s+0x00000000000003f8 serial\s+serial0\s+3\s+0\s+3$/);
  assert.match(table, /io\s+0x0000000000000020 pic\s+pic\s+0\s+1\s+1/);
  assert.match(table, /memory\s+0x00000000feb00e00 virtio-mmio\s+virtio-mmio@feb00e00\s+1\s+0\s+4/);
  assert.match(table, /io\s+0x0000000000000000 io\s+1\s+0\s+1/); // the I/O root fills the gaps (QEMU "io")
  pm.unloadAll();
  assert.equal(out.join(""), table);
});

Deno.test("formatStats prints a placeholder with no accesses", () => {
  assert.match(formatStats([]), /\(no accesses\)/);
});
