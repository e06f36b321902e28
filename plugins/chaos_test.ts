import assert from "node:assert/strict";
import { PluginManager } from "./loader.ts";
import { buildFuzzMachine } from "./fuzz/machine.ts";
import "../shell/fuzz_argv.ts"; // the fuzzer's command-line parser

async function reads(seed: number, rate: number): Promise<number[]> {
  const fm = buildFuzzMachine();
  const pm = new PluginManager(fm.vm);
  await pm.load("chaos", [`seed=${seed}`, `rate=${rate}`, "devices=serial0"]);
  const out: number[] = [];
  for (let i = 0; i < 64; i++) out.push(fm.vm.io.read(0x3fb, 1)); // LCR: 0 after reset
  return out;
}

Deno.test("chaos perturbs reads of the chosen device on a seeded schedule", async () => {
  const a = await reads(3, 0.25);
  assert.deepEqual(a, await reads(3, 0.25));
  assert.notDeepEqual(a, await reads(4, 0.25));
  const changed = a.filter((v) => v !== 0).length;
  assert.ok(changed > 4 && changed < 40, `changed ${changed}`);
  assert.ok(a.every((v) => v >= 0 && v <= 0xff));
  assert.deepEqual(await reads(3, 0), new Array(64).fill(0));
});

Deno.test("chaos leaves other devices alone and counts perturbations", async () => {
  const fm = buildFuzzMachine();
  const pm = new PluginManager(fm.vm);
  await pm.load("chaos", ["rate=1", "devices=rtc"]);
  assert.equal(fm.vm.io.read(0x3fb, 1), 0);
  fm.vm.io.read(0x71, 1);
  assert.equal(pm.runCommand("chaos", []), "chaos: 1 reads perturbed\n");
});

Deno.test("chaos refuses a device that does not exist", async () => {
  const pm = new PluginManager(buildFuzzMachine().vm);
  await assert.rejects(pm.load("chaos", ["devices=rtc:nosuch"]), /no region or device "nosuch"/);
});
