import assert from "node:assert/strict";
import { Cpu, CpuFault, CS, DS, EXC_MF } from "./cpu.ts";
import { makeHarnessBoard } from "./harness.ts";
import { Interp } from "./interp.ts";
import { CODE, getReg, longModeCpu, runUntil, setReg } from "./_testcpu.ts";

const DATA = 0x20000;

/** Run `code` at CODE with rdi = DATA; returns the fault vector (or -1). */
function run(code: number[], setup?: (x: ReturnType<typeof longModeCpu>) => void) {
  const x = longModeCpu();
  x.ram.write(CODE, new Uint8Array(code));
  setReg(x.c, 7, BigInt(DATA));
  setup?.(x);
  let vec = -1;
  try {
    runUntil(x.c, x.it, CODE, CODE + code.length, 100);
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    vec = e.vec;
  }
  return { ...x, vec, bytes: (a: number, n: number) => Array.from(x.ram.read(a, n)!) };
}

Deno.test("xadd with the same register as both operands leaves the sum (as on hardware)", () => {
  // xadd eax, eax; xadd rcx, rcx; xadd dl, dl
  const r = run([0x0f, 0xc1, 0xc0, 0x48, 0x0f, 0xc1, 0xc9, 0x0f, 0xc0, 0xd2], ({ c }) => {
    setReg(c, 0, 5n);
    setReg(c, 1, 0x123456789n);
    setReg(c, 2, 0x90n);
  });
  assert.equal(getReg(r.c, 0), 10n);
  assert.equal(getReg(r.c, 1), 0x2468acf12n);
  assert.equal(getReg(r.c, 2) & 0xffn, 0x20n);
});

Deno.test("FNSAVE/FRSTOR round-trip the stack, control, status and tag words (32- and 16-bit formats)", () => {
  for (const o16 of [false, true]) {
    const p = o16 ? [0x66] : [];
    const size = o16 ? 94 : 108;
    // fldcw [rdi]; fld1; fldpi; fldz; fdivr st0,st1 (1/0: ZE, masked); fnsave [rdi+0x100]; fnstsw ax;
    // frstor [rdi+0x100]; fnsave [rdi+0x200]
    const r = run([
      0xd9,
      0x2f,
      0xd9,
      0xe8,
      0xd9,
      0xeb,
      0xd9,
      0xee,
      0xd8,
      0xf9,
      ...p,
      0xdd,
      0xb7,
      0,
      1,
      0,
      0,
      0xdf,
      0xe0,
      ...p,
      0xdd,
      0xa7,
      0,
      1,
      0,
      0,
      ...p,
      0xdd,
      0xb7,
      0,
      2,
      0,
      0,
    ], ({ ram }) => ram.writeU16(DATA, 0x0b7f));
    assert.equal(r.vec, -1);
    const a = r.bytes(DATA + 0x100, size), b = r.bytes(DATA + 0x200, size);
    assert.deepEqual(a, b);
    const w = o16 ? 2 : 4;
    assert.equal(a[0] | (a[1] << 8), 0x0b7f); // CW (bit 6 reads as 1)
    const sw = a[w] | (a[w + 1] << 8);
    assert.equal(sw & 0x3f, 0x04); // ZE
    assert.equal((sw >> 11) & 7, 5); // TOP after three pushes
    assert.equal(a[2 * w] | (a[2 * w + 1] << 8), 0x0bff); // tags: p5 special (inf), p6/p7 valid, rest empty
    // After FNSAVE the FPU is reinitialised: FNSTSW AX saw TOP = 0 and no flags.
    assert.equal(getReg(r.c, 0) & 0xffffn, 0n);
    // ST(0) = +inf (1/0), ST(1) = pi, ST(2) = 1.
    const st = (i: number) => a.slice((o16 ? 14 : 28) + 10 * i, (o16 ? 14 : 28) + 10 * i + 10);
    assert.deepEqual(st(0), [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x7f]);
    assert.deepEqual(st(1).slice(8), [0x00, 0x40]);
    assert.deepEqual(st(2), [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
  }
});

Deno.test("an unmasked x87 exception is pending until the next waiting x87 instruction raises #MF", () => {
  // fldcw [rdi] (ZE unmasked); fld1; fldz; fdivr st0,st1 (1/0); fnstsw ax; fld1 (faults)
  const code = [0xd9, 0x2f, 0xd9, 0xe8, 0xd9, 0xee, 0xd8, 0xf9, 0xdf, 0xe0, 0xd9, 0xe8];
  const r = run(code, ({ ram }) => ram.writeU16(DATA, 0x037b));
  assert.equal(r.vec, EXC_MF);
  assert.equal(r.c.rip, CODE + 10); // the FLD1 after the no-wait FNSTSW
  const sw = Number(getReg(r.c, 0) & 0xffffn);
  assert.equal(sw & 0x80bf, 0x8084); // B, ES, ZE
  // The destination kept its value (0) and nothing was popped.
  assert.equal((sw >> 11) & 7, 6);
  // With CR0.NE clear the exception is not delivered (FERR# is not modelled).
  const q = run(code, ({ ram, c }) => {
    ram.writeU16(DATA, 0x037b);
    c.cr0 &= ~0x20;
  });
  assert.equal(q.vec, -1);
  // FNCLEX clears it: no fault afterwards; FWAIT raises it too.
  const n = run(
    [0xd9, 0x2f, 0xd9, 0xe8, 0xd9, 0xee, 0xd8, 0xf9, 0xdb, 0xe2, 0xd9, 0xe8],
    ({ ram }) => ram.writeU16(DATA, 0x037b),
  );
  assert.equal(n.vec, -1);
  const w = run(
    [0xd9, 0x2f, 0xd9, 0xe8, 0xd9, 0xee, 0xd8, 0xf9, 0x9b],
    ({ ram }) => ram.writeU16(DATA, 0x037b),
  );
  assert.equal(w.vec, EXC_MF);
});

Deno.test("FNSTENV/FLDENV round-trip and FNSTENV masks all exceptions", () => {
  // fldcw [rdi]; fld1; fnstenv [rdi+0x100]; fnstcw [rdi+8]; fldenv [rdi+0x100]; fnstenv [rdi+0x200]
  const r = run([
    0xd9,
    0x2f,
    0xd9,
    0xe8,
    0xd9,
    0xb7,
    0,
    1,
    0,
    0,
    0xd9,
    0x7f,
    0x08,
    0xd9,
    0xa7,
    0,
    1,
    0,
    0,
    0xd9,
    0xb7,
    0,
    2,
    0,
    0,
  ], ({ ram }) => ram.writeU16(DATA, 0x0360));
  assert.equal(r.vec, -1);
  assert.deepEqual(r.bytes(DATA + 0x100, 28), r.bytes(DATA + 0x200, 28));
  assert.equal(r.ram.readU16(DATA + 8), 0x037f);
  assert.equal(r.ram.readU16(DATA + 0x100), 0x0360);
  assert.equal(r.ram.readU16(DATA + 0x108), 0x3fff); // tag word: p7 valid
  assert.equal(r.ram.readU32(DATA + 0x10c), CODE + 2); // FIP: the FLD1
});

Deno.test("FXSAVE/FXRSTOR round-trip the x87 stack, tags and pointers", () => {
  // fldpi; fld1; fxsave [rdi+0x200]; fninit; fxrstor [rdi+0x200]; fstp tword [rdi]; fstp tword [rdi+16]; fnstsw ax
  const r = run([
    0xd9,
    0xeb,
    0xd9,
    0xe8,
    0x0f,
    0xae,
    0x87,
    0,
    2,
    0,
    0,
    0xdb,
    0xe3,
    0x0f,
    0xae,
    0x8f,
    0,
    2,
    0,
    0,
    0xdb,
    0x3f,
    0xdb,
    0x7f,
    0x10,
    0xdf,
    0xe0,
  ]);
  assert.equal(r.vec, -1);
  assert.equal(r.ram.readU8(DATA + 0x204), 0xc0); // abridged tags: p6, p7
  assert.equal(r.ram.readU16(DATA + 0x206), 0x1e8); // FOP of FLD1 (D9 E8)
  assert.deepEqual(r.bytes(DATA, 10), [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
  assert.deepEqual(r.bytes(DATA + 16, 10), [0x35, 0xc2, 0x68, 0x21, 0xa2, 0xda, 0x0f, 0xc9, 0x00, 0x40]);
  assert.equal(getReg(r.c, 0) & 0xffffn, 0n);
});

Deno.test("MMX registers alias the x87 significands: TOP 0, tags valid, exponent all ones, EMMS empties", () => {
  // fld1; movq mm3, [rdi]; fnstenv [rdi+0x100]; movq [rdi+8], mm7; emms; fnstenv [rdi+0x200]
  const r = run([
    0xd9,
    0xe8,
    0x0f,
    0x6f,
    0x1f,
    0xd9,
    0xb7,
    0,
    1,
    0,
    0,
    0x0f,
    0x7f,
    0x7f,
    0x08,
    0x0f,
    0x77,
    0xd9,
    0xb7,
    0,
    2,
    0,
    0,
  ], ({ ram }) => ram.writeU32(DATA, 0x11223344));
  assert.equal(r.vec, -1);
  assert.equal((r.ram.readU16(DATA + 0x104) >> 11) & 7, 0); // TOP = 0
  // Tags from the contents: p3 special (exponent 0xffff), p7 valid (1.0), the zeroed rest "zero".
  assert.equal(r.ram.readU16(DATA + 0x108), 0x1595);
  // mm7 is physical register 7, which holds FLD1's significand.
  assert.equal(r.ram.readU32(DATA + 12), 0x80000000);
  assert.equal(r.c.fpr[3 * 16 + 8] | (r.c.fpr[3 * 16 + 9] << 8), 0xffff);
  assert.equal(r.ram.readU16(DATA + 0x208), 0xffff); // EMMS: all empty
});

Deno.test("real-mode FNSTENV (16-bit operand size) stores the 20-bit FIP/FDP split with FOP", () => {
  const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20 });
  const c = new Cpu(board, 0);
  const it = new Interp(c);
  // CS = 0x1000 (base 0x10000), DS = 0x2000; fld1 at cs:0x0010; fld dword [0x0004]; fnstenv [0x0100]
  c.segSel[CS] = 0x1000;
  c.segBase[CS] = 0x10000;
  c.segSel[DS] = 0x2000;
  c.segBase[DS] = 0x20000;
  c.updateMode();
  const code = [0xd9, 0xe8, 0xd9, 0x06, 0x04, 0x00, 0xd9, 0x36, 0x00, 0x01];
  ram.write(0x10010, new Uint8Array(code));
  ram.writeU32(0x20004, 0x40400000); // 3.0f
  c.rip = 0x10;
  for (let i = 0; i < 3; i++) it.step();
  const w = (o: number) => ram.readU16(0x20100 + o);
  assert.equal(w(0), 0x037f);
  assert.equal((w(2) >> 11) & 7, 6);
  assert.equal(w(4), 0x0fff); // p6, p7 valid
  const fip = 0x10000 + 0x12, fdp = 0x20000 + 0x4;
  assert.equal(w(6), fip & 0xffff);
  assert.equal(w(8), ((fip >> 16) << 12) | 0x106); // FOP of D9 06 (modrm 06)
  assert.equal(w(10), fdp & 0xffff);
  assert.equal(w(12), (fdp >> 16) << 12);
});
