import assert from "node:assert/strict";
import { CODE, getReg, installTables, loadVectors, longModeCpu, setReg } from "./_testcpu.ts";
import { attachJit, type Jit } from "./jit.ts";
import { type Cpu, CpuFault, CS, DS, ES, SS } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import { makeHarnessBoard } from "./harness.ts";
import { linux64EntryState } from "../boot/bzimage.ts";
import { SoftCpuAccelerator } from "./mod.ts";

const data = { vectors: loadVectors() };

/** Run as the run loop does (blocks at branch targets, the interpreter elsewhere) until HLT or `max` steps. */
function runLoop(c: Cpu, it: Interp, jit: Jit, max = 200): void {
  c.halted = false;
  c.atBranch = true;
  for (let i = 0; i < max && !c.halted; i++) {
    const m = c.atBranch ? jit.run(c, 64) : 0;
    if (m > 0) {
      c.icount += m;
      continue;
    }
    const again = c.jitAfter;
    c.jitAfter = false;
    c.atBranch = false;
    it.step();
    if (again) c.atBranch = true;
  }
}

Deno.test("JIT matches the host CPU on the ALU golden vectors it translates", () => {
  const { c, it, ram } = longModeCpu();
  const jit = attachJit(c, 1);
  const failures: string[] = [];
  const before = jit.stats.translated;
  for (const v of data.vectors) {
    const code = new Uint8Array(v.bytes.match(/../g)!.map((h) => parseInt(h, 16)));
    ram.write(CODE, code);
    ram.writeU8(CODE + code.length, 0xf4); // HLT ends the block
    jit.flush();
    let bad = 0;
    for (const k of v.cases) {
      const [a, cc, d, f, ra, rc, rd, rf] = k.map((x) => BigInt("0x" + x));
      setReg(c, 0, a);
      setReg(c, 1, cc);
      setReg(c, 2, d);
      c.setFlags(Number(f));
      c.rip = CODE;
      runLoop(c, it, jit, 10);
      const ga = getReg(c, 0), gc = getReg(c, 1), gd = getReg(c, 2);
      const gf = c.getFlags() & v.flagMask, ef = Number(rf) & v.flagMask;
      if (ga !== ra || gc !== rc || gd !== rd || gf !== ef) {
        if (bad++ < 2) {
          failures.push(
            `${v.asm.replace("\n", ";")}: in ${k.slice(0, 4).join(" ")} want ${k.slice(4).join(" ")} got ${
              [ga, gc, gd].map((x) => x.toString(16)).join(" ")
            } f=${gf.toString(16)}/${ef.toString(16)}`,
          );
        }
      }
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(jit.stats.translated - before > 200, `only ${jit.stats.translated - before} blocks translated`);
});

Deno.test("JIT: a guest store into a page holding a translated block invalidates it (self-modifying code)", () => {
  const { c, it, ram } = longModeCpu();
  installTables(c, ram);
  setReg(c, 4, 0x8000n);
  const jit = attachJit(c, 1);
  // CODE: call f; add rax, 1; mov byte [CODE+13], 99 (patch f's immediate); call f; hlt
  // f (CODE+0x40... placed in the same page): mov eax, 41; ret
  const f = CODE + 0x40;
  ram.write(f, new Uint8Array([0xb8, 41, 0, 0, 0, 0xc3]));
  const prog = [
    0xe8,
    ...le32(f - (CODE + 5)), // call f
    0x48,
    0x83,
    0xc0,
    0x01, // add rax, 1  (CODE+5)
    0x48,
    0x89,
    0xc3, // mov rbx, rax (CODE+9)
    0xc6,
    0x04,
    0x25,
    ...le32(f + 1),
    99, // mov byte [f+1], 99 (CODE+12)
    0xe8,
    ...le32(f - (CODE + 25)), // call f (CODE+20)
    0xf4,
  ];
  ram.write(CODE, new Uint8Array(prog));
  c.rip = CODE;
  runLoop(c, it, jit);
  assert.equal(getReg(c, 3), 42n, "first call ran the original code");
  assert.equal(getReg(c, 0), 99n, "second call ran the patched code");
  assert.ok(jit.stats.invalidatedBlocks >= 1, "the block of f was invalidated");
  assert.equal(getReg(c, 4), 0x8000n);
});

Deno.test("JIT: DMA into a code page (GuestMemory write) invalidates its blocks", () => {
  const { c, it, ram } = longModeCpu();
  setReg(c, 4, 0x8000n);
  const jit = attachJit(c, 1);
  ram.onWrite = (off, len) => jit.dmaWrite(off, len);
  ram.write(CODE, new Uint8Array([0xb8, 7, 0, 0, 0, 0xf4])); // mov eax, 7; hlt
  for (let round = 0; round < 3; round++) {
    c.rip = CODE;
    runLoop(c, it, jit);
    assert.equal(c.r[0], 7);
  }
  assert.ok(jit.stats.blocks >= 1);
  ram.writeU8(CODE + 1, 8); // a device writes the immediate
  c.rip = CODE;
  runLoop(c, it, jit);
  assert.equal(c.r[0], 8);
  assert.ok(jit.stats.invalidatedPages >= 1);
});

Deno.test("JIT: a fault in the middle of a block leaves rip, registers and flags as at the faulting instruction", () => {
  const { c, ram } = longModeCpu();
  const jit = attachJit(c, 1);
  // mov eax, 5; add eax, 3 (flags: result 8); mov ebx, eax; mov rcx, [0x7fff0000000] (#PF/#GP); mov edx, 1
  const code = [0xb8, 5, 0, 0, 0, 0x83, 0xc0, 0x03, 0x89, 0xc3];
  const faultAt = CODE + code.length;
  code.push(0x48, 0x8b, 0x0c, 0x25, ...le32(0x7ff00000), 0xba, 1, 0, 0, 0, 0xf4);
  ram.write(CODE, new Uint8Array(code));
  c.setFlags(0x2 | 0x1); // CF set beforehand
  setReg(c, 1, 0x1111n);
  c.rip = CODE;
  c.fetchOff(CODE); // the JIT enters code through the TLB only
  let fault: CpuFault | null = null;
  try {
    jit.run(c, 64);
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    fault = e;
  }
  assert.ok(fault, "the load faulted");
  assert.equal(fault.vec, 14);
  assert.equal(c.rip, faultAt);
  assert.equal(c.r[0], 8);
  assert.equal(c.r[3], 8);
  assert.equal(getReg(c, 1), 0x1111n, "destination untouched");
  assert.equal(c.r[2], 0, "later instruction not run");
  assert.equal(c.getFlags() & 0x8d5, 0, "flags of add eax, 3 (8: no CF/ZF/SF/OF/PF... )");
  assert.equal(c.cr2, 0x7ff00000);
});

Deno.test("JIT: chained blocks (a loop and a call/ret) compute what the interpreter computes", () => {
  const { c, it, ram } = longModeCpu();
  setReg(c, 4, 0x8000n);
  // xor eax, eax; mov ecx, 1000; L: call f; dec ecx; jnz L; hlt;  f: add rax, rcx; ret
  const f = CODE + 0x20;
  const prog = [
    0x31,
    0xc0,
    0xb9,
    ...le32(1000),
    0xe8,
    ...le32(f - (CODE + 12)),
    0xff,
    0xc9,
    0x75,
    0xf7,
    0xf4,
  ];
  ram.write(CODE, new Uint8Array(prog));
  ram.write(f, new Uint8Array([0x48, 0x01, 0xc8, 0xc3]));
  const jit = attachJit(c, 4);
  c.rip = CODE;
  runLoop(c, it, jit, 100000);
  assert.ok(c.halted);
  assert.equal(getReg(c, 0), 500500n);
  assert.equal(getReg(c, 4), 0x8000n);
  assert.ok(jit.stats.jitInsns > 2500, `only ${jit.stats.jitInsns} instructions in translated code`);
});

Deno.test("JIT runs 32-bit protected-mode code (flat segments) like the interpreter", async () => {
  const results: number[][] = [];
  let jitInsns = 0;
  for (const on of [false, true]) {
    const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20 });
    const accel = new SoftCpuAccelerator({ jit: on, jitHot: 4 });
    // mov ecx, 300; xor eax, eax; L: lea eax, [eax+ecx*2]; push eax; pop edx; movzx ebx, dl; sub eax, ebx;
    // cmp ecx, 150; setb bl; dec ecx; jnz L; ud2 (no IDT: triple fault ends the run)
    const prog = [
      0xb9,
      ...le32(300),
      0x31,
      0xc0,
      0x8d,
      0x04,
      0x48,
      0x50,
      0x5a,
      0x0f,
      0xb6,
      0xda,
      0x29,
      0xd8,
      0x81,
      0xf9,
      ...le32(150),
      0x0f,
      0x92,
      0xc3,
      0x49,
      0x75,
      0xea,
      0x0f,
      0x0b,
    ];
    ram.write(0x100000, new Uint8Array(prog));
    accel.init(board, linux64EntryState(ram, 0x100000));
    const c = accel.cpus[0];
    c.cr0 = 0x11;
    c.cr4 = 0;
    c.efer = 0;
    c.segAttr[CS] = 0xc09b;
    for (const s of [DS, ES, SS]) c.segAttr[s] = 0xc093;
    c.r[4] = 0x90000;
    c.updateMode();
    c.flushTlb();
    c.rip = 0x100000;
    const exit = await accel.run();
    assert.equal(exit.kind, "shutdown");
    results.push([c.r[0], c.r[1], c.r[2], c.r[3], c.r[4], c.rip, c.icount]);
    if (on) jitInsns = accel.jit!.stats.jitInsns;
    accel.destroy();
  }
  assert.equal(results[0][1], 0);
  assert.equal(results[0][5], 0x100000 + 29, "stopped at ud2");
  assert.deepEqual(results[1], results[0]);
  assert.ok(jitInsns > 1500, `only ${jitInsns} instructions in translated code`);
});

Deno.test("JIT: one physical page run at two linear addresses gets rip-relative values right at each", () => {
  const { c, it, ram } = longModeCpu();
  ram.writeU64(0x2008, 0x83n | 4n); // a second 1 GiB mapping of physical 0 at linear 0x40000000
  c.flushTlb();
  setReg(c, 4, 0x8000n);
  const jit = attachJit(c, 1);
  // lea rax, [rip+0]; call next; next: pop rbx; hlt
  ram.write(CODE, new Uint8Array([0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xe8, 0, 0, 0, 0, 0x5b, 0xf4]));
  for (const base of [0, 0, 0x40000000, 0x40000000, 0]) {
    c.rip = CODE + base;
    c.fetchOff(CODE + base); // the JIT enters code through the TLB only
    runLoop(c, it, jit);
    assert.equal(getReg(c, 0), BigInt(CODE + base + 7), `lea at +${base.toString(16)}`);
    assert.equal(getReg(c, 3), BigInt(CODE + base + 12), `return address at +${base.toString(16)}`);
  }
  assert.ok(jit.stats.translated >= 2);
});

function le32(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
}
