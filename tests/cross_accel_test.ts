/**
 * Issue 6 cross-check: every KVM test guest also runs on the software CPU, and both accelerators must
 * produce the same port/MMIO trace, serial output, exit and final registers — each checks the other.
 */
import assert from "node:assert/strict";
import { SoftCpuAccelerator } from "../core/cpu/mod.ts";
import { KvmAccelerator, probeKvm } from "../core/kvm/mod.ts";
import { type GuestRun, KVM_TEST_GUESTS, runGuest } from "./kvm_guests.ts";

const probe = probeKvm();
if (!probe.usable) console.log(`SKIP: KVM side of the cross-check: /dev/kvm: ${probe.error}`);

function check(name: string, r: GuestRun, g: (typeof KVM_TEST_GUESTS)[number]): void {
  assert.deepEqual(r.trace, g.expect.trace, `${name}: trace`);
  assert.equal(r.serial, g.expect.serial, `${name}: serial`);
  assert.equal(r.exit.kind, g.expect.exit, `${name}: exit`);
  for (const [reg, v] of Object.entries(g.expect.regs)) assert.equal(r.regs.gpr[reg], v, `${name}: ${reg}`);
  if (g.expect.halted !== undefined) assert.equal(r.regs.halted, g.expect.halted, `${name}: halted`);
}

for (const g of KVM_TEST_GUESTS) {
  Deno.test(`cross-check ${g.name}: software CPU and KVM give the same trace, exit and registers`, async () => {
    const soft = await runGuest(new SoftCpuAccelerator(), g);
    check("tcg", soft, g);
    if (!probe.usable) return;
    const kvm = await runGuest(new KvmAccelerator({ warn: () => {} }), g);
    check("kvm", kvm, g);
    assert.deepEqual(soft.trace, kvm.trace);
    for (const reg of Object.keys(g.expect.regs)) assert.equal(soft.regs.gpr[reg], kvm.regs.gpr[reg], reg);
  });
}
