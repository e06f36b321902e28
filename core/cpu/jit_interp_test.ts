/**
 * The instructions a translated block hands to the interpreter from inside the block (jit_interp.ts): REP string
 * ops, BT*, LOCK CMPXCHG/XADD, SHLD/SHRD, TZCNT/LZCNT/POPCNT/BSF/BSR, PUSHF/POPF, SSE, ... give the same
 * registers, flags and memory as the interpreter alone, the block keeps running after them, and a fault in the
 * middle of a REP op leaves the state the interpreter leaves.
 */
import assert from "node:assert/strict";
import { CODE, flat32Entry, getReg, longModeCpu, setReg } from "./_testcpu.ts";
import { attachJit } from "./jit.ts";
import { type Cpu, CpuFault } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import { makeHarnessBoard } from "./harness.ts";
import { SoftCpuAccelerator } from "./mod.ts";

const DATA = 0x30000;

/** One family: code between a preamble and HLT. */
const FAMILIES: [string, number[]][] = [
  ["rep movsb / movsq / stosd", [
    0xf3,
    0xa4,
    0xb9,
    3,
    0,
    0,
    0,
    0xf3,
    0x48,
    0xa5,
    0xb9,
    5,
    0,
    0,
    0,
    0xf3,
    0xab,
  ]],
  ["repe cmpsb / repne scasb / lodsq", [0xf3, 0xa6, 0xb9, 40, 0, 0, 0, 0xf2, 0xae, 0x48, 0xad]],
  ["bt/bts/btr/btc reg and imm, memory", [
    0x48,
    0x0f,
    0xa3,
    0xd8, // bt rax, rbx
    0x0f,
    0xab,
    0xda, // bts edx, ebx
    0x48,
    0x0f,
    0xba,
    0xf0,
    0x11, // btr rax, 17
    0x48,
    0x0f,
    0xba,
    0xfa,
    0x3f, // btc rdx, 63
    0x48,
    0x0f,
    0xab,
    0x1e, // bts [rsi], rbx
    0x0f,
    0xba,
    0x2f,
    0x05, // bts dword [rdi], 5
  ]],
  ["lock cmpxchg / xadd / cmpxchg16b", [
    0xf0,
    0x48,
    0x0f,
    0xb1,
    0x1e, // lock cmpxchg [rsi], rbx
    0xf0,
    0x0f,
    0xc1,
    0x17, // lock xadd [rdi], edx
    0x48,
    0x0f,
    0xb1,
    0xda, // cmpxchg rdx, rbx
    0xf0,
    0x48,
    0x0f,
    0xc7,
    0x0e, // lock cmpxchg16b [rsi]
  ]],
  ["shld/shrd imm and cl", [
    0x48,
    0x0f,
    0xa4,
    0xd8,
    0x0d, // shld rax, rbx, 13
    0x0f,
    0xad,
    0xda, // shrd edx, ebx, cl
    0x48,
    0x0f,
    0xac,
    0x1e,
    0x07, // shrd [rsi], rbx, 7
  ]],
  ["tzcnt/lzcnt/popcnt/bsf/bsr", [
    0xf3,
    0x48,
    0x0f,
    0xbc,
    0xc3, // tzcnt rax, rbx
    0xf3,
    0x0f,
    0xbd,
    0xd0, // lzcnt edx, eax
    0xf3,
    0x48,
    0x0f,
    0xb8,
    0xcb, // popcnt rcx, rbx
    0x48,
    0x0f,
    0xbc,
    0x16, // bsf rdx, [rsi]
    0x0f,
    0xbd,
    0xc2, // bsr eax, edx
  ]],
  ["pushf/popf/cli/std/cld/lahf/sahf", [
    0x9c,
    0x5a,
    0xfd,
    0x9c,
    0x59,
    0xfc,
    0x9f,
    0x80,
    0xf4,
    0x01,
    0x9e,
    0xfa,
    0x52,
    0x9d,
  ]],
  ["sse: movdqu/paddd/pshufd/movq", [
    0xf3,
    0x0f,
    0x6f,
    0x06, // movdqu xmm0, [rsi]
    0x66,
    0x0f,
    0xfe,
    0xc0, // paddd xmm0, xmm0
    0x66,
    0x0f,
    0x70,
    0xc8,
    0x1b, // pshufd xmm1, xmm0, 0x1b
    0xf3,
    0x0f,
    0x7f,
    0x0f, // movdqu [rdi], xmm1
    0x66,
    0x48,
    0x0f,
    0x7e,
    0xc8, // movq rax, xmm1
  ]],
  ["bswap/xlat/leave-free cpuid", [0x48, 0x0f, 0xc8, 0x0f, 0xca, 0x53, 0x48, 0x89, 0xf3, 0xd7, 0x5b]],
];

/** Before and after each family: ALU work whose flags and registers feed it and read it. */
const PRE = [0x48, 0x01, 0xd8, 0x48, 0x83, 0xe9, 0x00]; // add rax, rbx; sub rcx, 0
const POST = [0x48, 0x01, 0xc2, 0x48, 0x11, 0xcb, 0xf4]; // add rdx, rax; adc rbx, rcx; hlt

function setup(seed: number, code: number[]): { c: Cpu; it: Interp; mem: () => Uint8Array } {
  const { c, it, ram } = longModeCpu();
  let s = seed * 2654435761 >>> 0;
  const rnd = () => (s = (s * 1103515245 + 12345) >>> 0);
  for (const n of [0, 2, 3, 5, 8, 9]) setReg(c, n, (BigInt(rnd()) << 32n) | BigInt(rnd()));
  setReg(c, 1, BigInt(rnd() % 9)); // counts
  setReg(c, 4, 0x8000n);
  setReg(c, 6, BigInt(DATA));
  setReg(c, 7, BigInt(DATA + 0x100 + (rnd() % 8)));
  const d = new Uint8Array(0x200);
  for (let i = 0; i < d.length; i++) d[i] = rnd() % 3 === 0 ? d[i - 1] ?? 0 : rnd() & 255;
  ram.write(DATA, d);
  ram.write(CODE, new Uint8Array([...PRE, ...code, ...POST]));
  c.setFlags(0x2 | (rnd() & 0x8d5));
  c.rip = CODE;
  return { c, it, mem: () => ram.read(DATA, 0x200)! };
}

function state(c: Cpu, mem: Uint8Array): string {
  const regs = Array.from({ length: 16 }, (_, n) => getReg(c, n).toString(16));
  const xmm = Array.from(c.xmm.subarray(0, 8), (x) => (x >>> 0).toString(16));
  return `rip=${c.rip.toString(16)} f=${(c.getFlags() & 0xcd5).toString(16)} ${
    regs.join(" ")
  } xmm=${xmm} mem=${Array.from(mem).join(",")}`;
}

/** Interpreter alone until HLT (or a fault). */
function interp(c: Cpu, it: Interp): string {
  let fault = "";
  try {
    for (let i = 0; i < 10000 && !c.halted; i++) it.step();
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    fault = `#${e.vec}`;
  }
  return fault;
}

/** Translated code (hot at once) as the run loop runs it, until HLT (or a fault). */
function jitted(c: Cpu, it: Interp): { fault: string; jitInsns: number } {
  const jit = attachJit(c, 1);
  c.fetchOff(CODE); // the JIT enters code through the TLB only
  let fault = "";
  try {
    for (let i = 0; i < 10000 && !c.halted; i++) {
      const m = c.atBranch ? jit.run(c, 1000) : 0;
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
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    fault = `#${e.vec}`;
  }
  return { fault, jitInsns: jit.stats.jitInsns };
}

for (const [name, code] of FAMILIES) {
  Deno.test(`JIT: ${name} run by the interpreter inside a block match the interpreter alone`, () => {
    for (let seed = 1; seed <= 8; seed++) {
      const a = setup(seed, code), b = setup(seed, code);
      const fa = interp(a.c, a.it);
      const { fault: fb, jitInsns } = jitted(b.c, b.it);
      assert.equal(fb, fa, `seed ${seed}: fault`);
      assert.equal(state(b.c, b.mem()), state(a.c, a.mem()), `seed ${seed}`);
      assert.equal(b.c.icount, a.c.icount, `seed ${seed}: instructions retired`);
      if (fa === "") {
        // Everything but the final HLT ran inside translated blocks.
        assert.ok(
          jitInsns >= a.c.icount - 1,
          `seed ${seed}: ${jitInsns} of ${a.c.icount} in translated code`,
        );
      }
    }
  });
}

Deno.test("JIT: a page fault in the middle of REP MOVSB inside a block leaves the interpreter's state", () => {
  // rsi runs off the end of the mapped 1 GiB after 8 bytes: #PF with rcx/rsi/rdi advanced by 8.
  const code = [0x48, 0x89, 0xd9, 0xf3, 0xa4, 0x48, 0x31, 0xc0]; // mov rcx, rbx; rep movsb; xor rax, rax
  const runs = [false, true].map((useJit) => {
    const r = setup(7, code);
    setReg(r.c, 3, 32n);
    setReg(r.c, 6, 0x40000000n - 8n);
    const f = useJit ? jitted(r.c, r.it).fault : interp(r.c, r.it);
    return { f, s: state(r.c, r.mem()), rcx: getReg(r.c, 1), cr2: r.c.cr2, rip: r.c.rip };
  });
  assert.equal(runs[0].f, "#14");
  assert.equal(runs[1].f, "#14");
  assert.equal(runs[0].rcx, 24n, "8 iterations done before the fault");
  assert.equal(runs[0].rip, CODE + PRE.length + 3, "rip at the REP MOVSB");
  assert.equal(runs[1].s, runs[0].s);
  assert.equal(runs[1].cr2, runs[0].cr2);
});

Deno.test("JIT: a block that branches back to its start loops inside its function, within the run budget and with precise faults", () => {
  // L: add rax, rcx; mov [rdi], rax; add rdi, 8; dec ecx; jnz L; hlt — rdi walks off the mapped 1 GiB.
  const code = [0x48, 0x01, 0xc8, 0x48, 0x89, 0x07, 0x48, 0x83, 0xc7, 0x08, 0xff, 0xc9, 0x75, 0xf2, 0xf4];
  const mk = () => {
    const { c, it, ram } = longModeCpu();
    ram.write(CODE, new Uint8Array(code));
    setReg(c, 1, 1000n);
    setReg(c, 7, 0x40000000n - 8n * 300n);
    c.rip = CODE;
    return { c, it };
  };
  const a = mk();
  const fa = interp(a.c, a.it);
  const b = mk();
  const jit = attachJit(b.c, 1);
  b.c.fetchOff(CODE);
  const first = jit.run(b.c, 1);
  assert.ok(first === 5 || first === 10, `budget 1 ran ${first} instructions (one pass, at most one more)`);
  b.c.icount += first;
  const m = jit.run(b.c, 100);
  assert.ok(m >= 100 && m <= 105, `budget 100 ran ${m} instructions`);
  b.c.icount += m;
  const fb = jitted(b.c, b.it).fault;
  assert.equal(fa, "#14");
  assert.equal(fb, fa);
  assert.equal(b.c.rip, CODE + 3, "rip at the faulting store");
  assert.equal(getReg(b.c, 1), 1000n - 300n);
  assert.equal(state(b.c, new Uint8Array()), state(a.c, new Uint8Array()));
  assert.equal(b.c.icount, a.c.icount, "instructions retired before the fault");
});

Deno.test("JIT: a MOV DS a block runs through the interpreter that loads a limited segment hands the next block to the interpreter (limit checks)", async () => {
  // jmp $+2; mov eax, 0x12345678; mov ebx, 0x1000; mov cx, 0x20; mov ds, cx; mov eax, [ebx] (#GP: limit 0xfff);
  // ud2. The IDT is empty: either fault triple-faults; EAX tells whether the load ran.
  const code = [0xeb, 0x00, 0xb8, 0x78, 0x56, 0x34, 0x12, 0xbb, 0x00, 0x10, 0, 0, 0x66, 0xb9, 0x20, 0x00];
  code.push(0x8e, 0xd9, 0x8b, 0x03, 0x0f, 0x0b);
  for (const limited of [true, false]) {
    const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20 });
    // GDT at 0x800: 0x20 = data, base 0x100000, limit 0xfff (byte granular) or 4 GiB.
    ram.writeU64(0x800 + 0x20, limited ? 0x0040931000000fffn : 0x00cf93100000ffffn);
    ram.writeU32(0x101000, 0xabcd);
    const accel = new SoftCpuAccelerator({ jitHot: 1 });
    const entry = flat32Entry({ gdt: { base: 0x800, limit: 0x27 } });
    ram.write(0x1000, new Uint8Array(code));
    accel.init(board, entry);
    const exit = await accel.run();
    assert.deepEqual(exit, { kind: "shutdown", reason: "triple-fault" });
    const c = accel.cpus[0];
    assert.ok(accel.jit!.stats.translated > 0, "the block with MOV DS was translated");
    if (limited) {
      assert.equal(c.r[0], 0x12345678, "the load past the limit faulted");
      assert.equal(c.rip, 0x1012);
    } else assert.equal(c.r[0], 0xabcd, "4 GiB limit: the load ran");
  }
});
