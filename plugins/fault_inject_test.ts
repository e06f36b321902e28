import assert from "node:assert/strict";
import { PluginManager } from "./loader.ts";
import { buildFuzzMachine } from "./fuzz/machine.ts";
import { blkInit, blkRead, blkStatus, blkUsedIdx } from "./_test_blk.ts";
import "../shell/fuzz_argv.ts"; // the fuzzer's command-line parser

function machine() {
  const fm = buildFuzzMachine();
  const printed: string[] = [];
  const pm = new PluginManager(fm.vm, { print: (t) => printed.push(t), report: (l) => printed.push(l) });
  return { fm, pm, printed };
}

Deno.test("fault-inject without the plugin: the virtio-blk read completes with status OK", () => {
  const { fm } = machine();
  blkInit(fm);
  assert.equal(blkRead(fm, 0), 1);
  assert.equal(blkUsedIdx(fm), 1);
  assert.equal(blkStatus(fm), 0);
});

Deno.test("fault-inject mode=ioerr rate=1 turns every completed request into VIRTIO_BLK_S_IOERR", async () => {
  const { fm, pm } = machine();
  await pm.load("fault-inject", ["mode=ioerr", "rate=1", "seed=5"]);
  blkInit(fm);
  for (let i = 0; i < 3; i++) {
    blkRead(fm, i);
    assert.equal(blkStatus(fm), 1);
  }
  assert.equal(pm.runCommand("fault-inject", []), "fault-inject: 3 ioerr\n");
});

Deno.test("fault-inject ioerr schedule is seeded: same seed, same failures", async () => {
  const run = async (seed: number) => {
    const { fm, pm } = machine();
    await pm.load("fault-inject", ["mode=ioerr", "rate=0.5", `seed=${seed}`]);
    blkInit(fm);
    const out: number[] = [];
    for (let i = 0; i < 16; i++) {
      blkRead(fm, i);
      out.push(blkStatus(fm));
    }
    return out.join("");
  };
  const a = await run(7);
  assert.equal(a, await run(7));
  assert.match(a, /0/);
  assert.match(a, /1/);
});

Deno.test("fault-inject mode=drop-irq hides the interrupt and acknowledges it behind the guest", async () => {
  const { fm, pm } = machine();
  await pm.load("fault-inject", ["mode=drop-irq", "rate=1"]);
  blkInit(fm);
  assert.equal(blkRead(fm, 0), 0); // guest saw no interrupt cause
  assert.equal(fm.vm.gsi.level(12), true); // still asserted until the deferred ack runs
  fm.clock.step(0);
  assert.equal(fm.vm.gsi.level(12), false);
  assert.equal(blkStatus(fm), 0); // the request itself completed
});

Deno.test("fault-inject refuses bad arguments and missing devices", async () => {
  const { pm } = machine();
  await assert.rejects(pm.load("fault-inject", ["mode=nope"]), /must be ioerr or drop-irq/);
  await assert.rejects(
    pm.load("fault-inject", ["device=virtio-mmio@feb00000", "mode=ioerr"]),
    /no transport/,
  );
});
