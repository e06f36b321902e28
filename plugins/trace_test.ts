import assert from "node:assert/strict";
import { PluginManager } from "./loader.ts";
import { buildFuzzMachine } from "./fuzz/machine.ts";
import { traceLine } from "./trace.ts";
import "../shell/fuzz_argv.ts"; // the fuzzer's command-line parser

Deno.test("trace prints QEMU-style memory_region_ops lines for the chosen regions only", async () => {
  const fm = buildFuzzMachine();
  const out: string[] = [];
  const pm = new PluginManager(fm.vm, { print: (t) => out.push(t) });
  await pm.load("trace", ["regions=rtc:rtc-index"]);
  fm.clock.step(1234);
  fm.vm.io.write(0x70, 1, 0x0b);
  fm.vm.io.read(0x71, 1);
  fm.vm.io.read(0x3fd, 1); // serial: not traced
  pm.unload("trace");
  const lines = out.join("").trimEnd().split("\n");
  assert.equal(lines.length, 2);
  assert.equal(
    lines[0],
    "@1234:memory_region_ops_write cpu -1 addr 0x0 value 0xb size 1 name 'rtc-index' space io at 0x70",
  );
  assert.match(
    lines[1],
    /^@1234:memory_region_ops_read cpu -1 addr 0x1 value 0x[0-9a-f]+ size 1 name 'rtc' space io at 0x71$/,
  );
});

Deno.test("trace writes to a file and covers MMIO regions by device id", async () => {
  const fm = buildFuzzMachine();
  const path = await Deno.makeTempFile({ suffix: ".trace" });
  try {
    const pm = new PluginManager(fm.vm);
    await pm.load("trace", [`file=${path}`, "regions=virtio-mmio@feb00e00", "space=memory"]);
    fm.vm.memory.read(0xfeb00e00, 4);
    pm.unloadAll();
    assert.equal(
      Deno.readTextFileSync(path),
      "@0:memory_region_ops_read cpu -1 addr 0x0 value 0x74726976 size 4 name 'virtio-mmio' space memory at 0xfeb00e00\n",
    );
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("trace refuses an unknown region and a bad space", async () => {
  const pm = new PluginManager(buildFuzzMachine().vm);
  await assert.rejects(pm.load("trace", ["regions=nosuch", "space=io"]), /no region or device "nosuch"/);
  await assert.rejects(pm.load("trace", ["space=xyz"]), /must be io, memory or both/);
  assert.equal(typeof traceLine, "function");
});
