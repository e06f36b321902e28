import assert from "node:assert/strict";
import { CODE, longModeCpu, runUntil, setReg } from "./_testcpu.ts";
import { CpuFault, EXC_GP, EXC_UD } from "./cpu.ts";

function fault(hex: string, model = "max"): number {
  const { c, it, ram } = longModeCpu(4 << 20, { cpuModel: model });
  setReg(c, 3, 0x30000n);
  const code = new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
  ram.write(CODE, code);
  try {
    runUntil(c, it, CODE, CODE + code.length, 5);
  } catch (e) {
    if (e instanceof CpuFault) return e.vec;
    throw e;
  }
  return -1;
}

Deno.test("CMPXCHG16B on a misaligned operand raises #GP(0)", () => {
  assert.equal(fault("480fc74b08"), EXC_GP); // cmpxchg16b [rbx+8]
  assert.equal(fault("480fc70b"), -1); // cmpxchg16b [rbx]
});

Deno.test("VEX BMI: #UD for VEX.L=1, a legacy 66 prefix, or when the model lacks BMI1", () => {
  assert.equal(fault("c4e2e0f2c1"), -1); // andn rax, rbx, rcx
  assert.equal(fault("c4e2e4f2c1"), EXC_UD); // VEX.L = 1
  assert.equal(fault("66c4e2e0f2c1"), EXC_UD); // 66 before VEX
  assert.equal(fault("c4e2e0f2c1", "qemu64"), EXC_UD);
});

Deno.test("XADD with one register as both operands leaves the sum (SDM: SRC ← DEST, then DEST ← sum)", () => {
  const { c, it, ram } = longModeCpu();
  const code = new Uint8Array([0xb8, 5, 0, 0, 0, 0x0f, 0xc1, 0xc0]); // mov eax, 5; xadd eax, eax
  ram.write(CODE, code);
  runUntil(c, it, CODE, CODE + code.length);
  assert.equal(c.r[0], 10);
});
