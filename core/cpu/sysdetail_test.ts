/**
 * Issue 13 item 4: segment limit/type checks in protected mode, single-page INVLPG, the TSS I/O permission
 * bitmap and SYSENTER/SYSEXIT, checked at register level on short code sequences.
 */
import assert from "node:assert/strict";
import { CODE, flat32Entry, longModeCpu, runUntil, setReg } from "./_testcpu.ts";
import { type Cpu, CpuFault, CS, DS, ES, FS, GS, SS, TR } from "./cpu.ts";
import { Cpu as CpuClass } from "./cpu.ts";
import { makeHarnessBoard } from "./harness.ts";
import { Interp, SoftCpuAccelerator } from "./mod.ts";
import { wrmsr } from "./system.ts";
import type { FlatRam } from "./harness.ts";

const GDT = 0x1000;

/** 32-bit protected mode without paging, flat CS (0x08) / DS,ES,SS (0x10), a GDT at 0x1000. */
function protCpu(cpuModel?: string): { c: Cpu; it: Interp; ram: FlatRam } {
  const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20, cpuModel });
  const c = new CpuClass(board, 0);
  c.cr0 = 0x11;
  c.gdtBase = GDT;
  c.gdtLimit = 0xff;
  desc(ram, 1, 0, 0xfffff, 0xc09b);
  desc(ram, 2, 0, 0xfffff, 0xc093);
  c.segSel[CS] = 0x08;
  c.segAttr[CS] = 0xc09b;
  c.segLimit[CS] = 0xffffffff;
  c.segBase[CS] = 0;
  for (const s of [DS, ES, SS, FS, GS]) {
    c.segSel[s] = 0x10;
    c.segAttr[s] = 0xc093;
    c.segLimit[s] = 0xffffffff;
    c.segBase[s] = 0;
  }
  c.updateMode();
  c.flushTlb();
  c.r[4] = 0x8000;
  return { c, it: new Interp(c), ram };
}

/** GDT entry `i`: base, 20-bit limit, attr in VMX layout (type|S|DPL|P at bits 0..7, AVL|L|D|G at 12..15). */
function desc(ram: FlatRam, i: number, base: number, limit: number, attr: number): void {
  const lo = ((base & 0xffff) << 16) | (limit & 0xffff);
  const hi = (base & 0xff000000) | ((attr & 0xf0ff) << 8) | (limit & 0xf0000) | ((base >>> 16) & 0xff);
  ram.writeU32(GDT + i * 8, lo >>> 0);
  ram.writeU32(GDT + i * 8 + 4, hi >>> 0);
}

/** Run one instruction at CODE; returns "ok" or "vec:err" of the fault raised. */
function exec(c: Cpu, it: Interp, ram: FlatRam, bytes: number[]): string {
  ram.write(CODE, new Uint8Array(bytes));
  c.rip = CODE;
  try {
    it.step();
    return "ok";
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    return `${e.vec}:${e.err}`;
  }
}

const MOV_DS_AX = [0x8e, 0xd8], MOV_SS_AX = [0x8e, 0xd0];

Deno.test("segment loads check type, DPL and presence with the selector as error code", () => {
  const { c, it, ram } = protCpu();
  desc(ram, 3, 0, 0xfff, 0x0093 & ~0x80); // not present data
  desc(ram, 4, 0, 0xfff, 0x0091); // read-only data
  desc(ram, 5, 0, 0xfff, 0x0089); // 32-bit TSS (system)
  desc(ram, 6, 0, 0xfff, 0x0098); // execute-only code
  c.r[0] = 0x18;
  assert.equal(exec(c, it, ram, MOV_DS_AX), "11:24"); // #NP(0x18)
  c.r[0] = 0x28;
  assert.equal(exec(c, it, ram, MOV_DS_AX), "13:40"); // #GP(0x28): system descriptor
  c.r[0] = 0x30;
  assert.equal(exec(c, it, ram, MOV_DS_AX), "13:48"); // #GP(0x30): execute-only code into DS
  c.r[0] = 0x20;
  assert.equal(exec(c, it, ram, MOV_SS_AX), "13:32"); // #GP(0x20): read-only data into SS
  c.r[0] = 0x100;
  assert.equal(exec(c, it, ram, MOV_DS_AX), "13:256"); // #GP(0x100): beyond the GDT limit
  // DPL rules: SS needs RPL == DPL == CPL; data needs DPL >= max(CPL, RPL).
  desc(ram, 7, 0, 0xfff, 0x00b3); // DPL 1 writable data
  c.r[0] = 0x38;
  assert.equal(exec(c, it, ram, MOV_SS_AX), "13:56"); // DPL 1 != CPL 0
  c.r[0] = 0x38 | 1;
  assert.equal(exec(c, it, ram, MOV_SS_AX), "13:56"); // RPL 1 != CPL 0
  c.r[0] = 0x3b;
  assert.equal(exec(c, it, ram, MOV_DS_AX), "13:56"); // RPL 3 > DPL 1
  c.r[0] = 0x39;
  assert.equal(exec(c, it, ram, MOV_DS_AX), "ok"); // RPL 1 <= DPL 1, CPL 0
  c.r[0] = 0x20;
  assert.equal(exec(c, it, ram, MOV_DS_AX), "ok");
  assert.equal(c.segLimit[DS], 0xfff);
  assert.equal(c.segChk, true, "a limited segment turns the checks on");
});

Deno.test("accesses beyond a segment limit raise #GP(0), stack accesses #SS(0); LEA does not fault", () => {
  const { c, it, ram } = protCpu();
  assert.equal(c.segChk, false, "flat segments: no checks");
  desc(ram, 3, 0x100000, 0xfff, 0x4093); // data, byte-granular limit 0xfff, base 1 MiB
  desc(ram, 4, 0x100000, 0xfff, 0x4091); // read-only
  desc(ram, 7, 0x200000, 0xfff, 0x4097); // expand-down writable, B=1: valid 0x1000..0xffffffff
  c.r[0] = 0x18;
  assert.equal(exec(c, it, ram, MOV_DS_AX), "ok");
  ram.writeU32(0x100ffc, 0x12345678);
  assert.equal(exec(c, it, ram, [0x8b, 0x1d, 0xfc, 0x0f, 0, 0]), "ok"); // mov ebx, [0xffc]
  assert.equal(c.r[3], 0x12345678);
  assert.equal(exec(c, it, ram, [0x8b, 0x1d, 0xfd, 0x0f, 0, 0]), "13:0"); // mov ebx, [0xffd]: last byte past
  assert.equal(exec(c, it, ram, [0x8a, 0x1d, 0xff, 0x0f, 0, 0]), "ok"); // mov bl, [0xfff]
  assert.equal(exec(c, it, ram, [0x88, 0x1d, 0x00, 0x10, 0, 0]), "13:0"); // mov [0x1000], bl
  assert.equal(exec(c, it, ram, [0x8d, 0x1d, 0x00, 0x00, 0x10, 0]), "ok"); // lea ebx, [0x100000]
  // Read-only data: reads pass, writes #GP(0).
  c.r[0] = 0x20;
  assert.equal(exec(c, it, ram, [0x8e, 0xc0]), "ok"); // mov es, ax
  assert.equal(exec(c, it, ram, [0x26, 0x8b, 0x1d, 0, 0, 0, 0]), "ok"); // mov ebx, es:[0]
  assert.equal(exec(c, it, ram, [0x26, 0x89, 0x1d, 0, 0, 0, 0]), "13:0"); // mov es:[0], ebx
  // Expand-down stack: push below limit+1 is #SS(0).
  c.r[0] = 0x38;
  assert.equal(exec(c, it, ram, MOV_SS_AX), "ok");
  c.r[4] = 0x2000;
  assert.equal(exec(c, it, ram, [0x50]), "ok"); // push eax
  assert.equal(ram.readU32(0x200000 + 0x1ffc), 0x38);
  c.r[4] = 0x1002;
  assert.equal(exec(c, it, ram, [0x50]), "12:0");
  // String destination through ES beyond its limit.
  c.r[0] = 0x18;
  assert.equal(exec(c, it, ram, [0x8e, 0xc0]), "ok");
  c.r[7] = 0x1000;
  assert.equal(exec(c, it, ram, [0xaa]), "13:0"); // stosb
  c.r[7] = 0xfff;
  assert.equal(exec(c, it, ram, [0xaa]), "ok");
  assert.equal(ram.readU8(0x100fff), 0x18);
  // Back to flat: the checks (and the JIT gate in mod.ts) switch off.
  c.r[0] = 0x10;
  for (const op of [0xc0, 0xd0, 0xd8]) assert.equal(exec(c, it, ram, [0x8e, op]), "ok");
  assert.equal(c.segChk, false);
});

Deno.test("INVLPG drops one page (4 KiB or large) and keeps the other translations", () => {
  const { c, it, ram } = longModeCpu(8 << 20);
  // PDPT[1] -> PD 0x5000; PD[0] -> PT 0x6000 (4 KiB pages at 0x40000000); PD[1] = 2 MiB page at 0x40200000.
  ram.writeU64(0x2008, 0x5007n);
  ram.writeU64(0x5000, 0x6007n);
  ram.writeU64(0x6000, 0x100007n);
  ram.writeU64(0x6008, 0x101007n);
  ram.writeU64(0x5008, 0x200087n);
  ram.writeU32(0x100000, 1);
  ram.writeU32(0x101000, 2);
  ram.writeU32(0x102000, 3);
  ram.writeU32(0x103000, 4);
  ram.writeU32(0x205000, 5);
  ram.writeU32(0x405000, 6);
  const rd = (la: number) => {
    setReg(c, 3, BigInt(la));
    ram.write(CODE, new Uint8Array([0x8b, 0x03])); // mov eax, [rbx]
    runUntil(c, it, CODE, CODE + 2);
    return c.r[0];
  };
  const invlpg = (la: number) => {
    setReg(c, 3, BigInt(la));
    ram.write(CODE, new Uint8Array([0x0f, 0x01, 0x3b])); // invlpg [rbx]
    runUntil(c, it, CODE, CODE + 3);
  };
  assert.equal(rd(0x40000000), 1);
  assert.equal(rd(0x40001000), 2);
  assert.equal(rd(0x40205000), 5);
  ram.writeU64(0x6000, 0x102007n);
  ram.writeU64(0x6008, 0x103007n);
  ram.writeU64(0x5008, 0x400087n);
  invlpg(0x40000000);
  assert.equal(rd(0x40000000), 3, "the invalidated page is walked again");
  assert.equal(rd(0x40001000), 2, "the other page's translation is kept (single-page INVLPG)");
  invlpg(0x40200000); // another 4 KiB piece of the same 2 MiB page
  assert.equal(rd(0x40205000), 6, "every piece of a large page goes");
  invlpg(0x40001000);
  assert.equal(rd(0x40001000), 4);
  // CPL 3: #GP(0).
  c.segAttr[CS] = 0xa0fb;
  c.updateMode();
  assert.equal(exec(c, it, ram, [0x0f, 0x01, 0x3b]), "13:0");
});

Deno.test("IN/OUT at CPL > IOPL consult the TSS I/O permission bitmap", () => {
  const { c, it, ram } = protCpu();
  const TSS = 0x3000;
  c.segBase[TR] = TSS;
  c.segLimit[TR] = 0x68 + 0x2000; // bitmap for all 65536 ports + the terminating byte
  c.segAttr[TR] = 0x8b;
  ram.writeU32(TSS + 0x64, 0x68 << 16);
  ram.writeU8(TSS + 0x68 + (0x80 >> 3), 1); // port 0x80 denied
  ram.writeU8(TSS + 0x68 + (0x3f9 >> 3), 0x02); // port 0x3f9 denied
  c.segAttr[CS] = 0xc0fb; // CPL 3, IOPL 0
  c.updateMode();
  assert.equal(c.cpl, 3);
  assert.equal(exec(c, it, ram, [0xe6, 0x80]), "13:0"); // out 0x80, al
  assert.equal(exec(c, it, ram, [0xe4, 0x81]), "ok"); // in al, 0x81
  assert.equal(exec(c, it, ram, [0xe4, 0x7f]), "ok"); // in al, 0x7f
  c.r[2] = 0x7f;
  assert.equal(exec(c, it, ram, [0x66, 0xed]), "13:0"); // in ax, dx: 0x7f..0x80
  c.r[2] = 0x3f8;
  assert.equal(exec(c, it, ram, [0xec]), "ok"); // in al, dx (0x3f8)
  assert.equal(exec(c, it, ram, [0xed]), "13:0"); // in eax, dx: 0x3f8..0x3fb includes 0x3f9
  // Bitmap beyond the TSS limit: denied.
  c.segLimit[TR] = 0x68 + 0x10;
  c.r[2] = 0x100;
  assert.equal(exec(c, it, ram, [0xec]), "13:0");
  c.r[2] = 0x70;
  assert.equal(exec(c, it, ram, [0xec]), "ok");
  // IOPL 3 skips the bitmap.
  c.flags |= 0x3000;
  assert.equal(exec(c, it, ram, [0xe6, 0x80]), "ok");
  // A 16-bit TSS has no bitmap.
  c.flags &= ~0x3000;
  c.segAttr[TR] = 0x83;
  assert.equal(exec(c, it, ram, [0xe4, 0x81]), "13:0");
});

Deno.test("SYSENTER/SYSEXIT switch rings through the SYSENTER MSRs (32-bit and 64-bit forms)", () => {
  const { c, it, ram } = protCpu();
  c.segAttr[CS] = 0xc0fb;
  c.segSel[CS] = 0x23;
  c.flags |= 0x200;
  c.updateMode();
  assert.equal(exec(c, it, ram, [0x0f, 0x34]), "13:0", "SYSENTER_CS = 0: #GP(0)");
  assert.ok(wrmsr(c, 0x174, 0x10n));
  assert.ok(wrmsr(c, 0x175, 0x7000n));
  assert.ok(wrmsr(c, 0x176, 0x20000n));
  assert.equal(exec(c, it, ram, [0x0f, 0x34]), "ok");
  assert.equal(c.cpl, 0);
  assert.equal(c.segSel[CS], 0x10);
  assert.equal(c.segSel[SS], 0x18);
  assert.equal(c.rip, 0x20000);
  assert.equal(c.r[4], 0x7000);
  assert.equal(c.flags & 0x200, 0, "IF cleared");
  c.r[1] = 0x9000; // ecx: user esp
  c.r[2] = 0x30000; // edx: user eip
  assert.equal(exec(c, it, ram, [0x0f, 0x35]), "ok");
  assert.equal(c.cpl, 3);
  assert.equal(c.segSel[CS], 0x23);
  assert.equal(c.segSel[SS], 0x2b);
  assert.equal(c.rip, 0x30000);
  assert.equal(c.r[4], 0x9000);
  assert.equal(exec(c, it, ram, [0x0f, 0x35]), "13:0", "SYSEXIT at CPL 3: #GP(0)");
  // 64-bit: SYSEXIT with REX.W returns to a 64-bit CS (SYSENTER_CS + 32).
  const l = longModeCpu();
  assert.ok(wrmsr(l.c, 0x174, 0x10n));
  setReg(l.c, 1, 0x7fff00001000n);
  setReg(l.c, 2, 0x7fff00002000n);
  assert.equal(exec(l.c, l.it, l.ram, [0x48, 0x0f, 0x35]), "ok");
  assert.equal(l.c.segSel[CS], 0x33);
  assert.equal(l.c.segSel[SS], 0x3b);
  assert.equal(l.c.long64, true);
  assert.equal(l.c.rip, 0x7fff00002000);
  setReg(l.c, 2, 0x800000000000n);
  l.c.segAttr[CS] = 0xa09b;
  l.c.updateMode();
  assert.equal(exec(l.c, l.it, l.ram, [0x48, 0x0f, 0x35]), "13:0", "non-canonical RDX");
  // SYSENTER in long mode: #UD on an AMD model, enters 64-bit mode on an Intel one.
  assert.equal(exec(l.c, l.it, l.ram, [0x0f, 0x34]), "6:-1");
  const k = longModeCpu(4 << 20, { cpuModel: "kvm64" });
  assert.ok(wrmsr(k.c, 0x174, 0x10n));
  assert.ok(wrmsr(k.c, 0x175, 0xffff800000001000n));
  assert.ok(wrmsr(k.c, 0x176, 0xffffffff81000000n));
  k.c.segAttr[CS] = 0xa0fb;
  k.c.updateMode();
  assert.equal(exec(k.c, k.it, k.ram, [0x0f, 0x34]), "ok");
  assert.equal(k.c.long64, true);
  assert.equal(k.c.cpl, 0);
  assert.equal(k.c.rip, -0x7f000000);
  assert.equal(k.c.regNum(4), -0x7ffffffff000);
});

Deno.test("a hot loop through a limited DS faults at the limit with the JIT on (blocks are not run while segChk)", async () => {
  // mov ebx, 0; L: mov eax, [ebx]; add ebx, 4; cmp ebx, 0x2000; jb L; ud2 (an empty IDT: triple fault)
  const code = [
    0xbb,
    0,
    0,
    0,
    0,
    0x8b,
    0x03,
    0x83,
    0xc3,
    0x04,
    0x81,
    0xfb,
    0,
    0x20,
    0,
    0,
    0x72,
    0xf3,
    0x0f,
    0x0b,
  ];
  for (const limit of [0xfff, 0xffffffff]) {
    const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20 });
    const accel = new SoftCpuAccelerator({ jitHot: 2 });
    const entry = flat32Entry({
      ds: { selector: 0x20, base: 0x100000, limit, attrs: limit === 0xfff ? 0x4093 : 0xc093 },
    });
    ram.write(0x1000, new Uint8Array(code));
    accel.init(board, entry);
    const exit = await accel.run();
    assert.deepEqual(exit, { kind: "shutdown", reason: "triple-fault" });
    const c = accel.cpus[0];
    if (limit === 0xfff) {
      assert.equal(c.r[3], 0x1000, "the first access past the limit faults");
      assert.equal(c.segChk, true);
    } else {
      assert.equal(c.r[3], 0x2000, "flat DS: the loop runs to its end");
      assert.ok(accel.jit!.stats.translated > 0, "the JIT ran the flat loop");
    }
  }
});

Deno.test("SSE and x87 memory operands beyond a segment limit raise #GP(0)", () => {
  const { c, it, ram } = protCpu();
  c.cr4 |= 0x600; // OSFXSR | OSXMMEXCPT
  desc(ram, 3, 0x100000, 0xfff, 0x4093);
  c.r[0] = 0x18;
  assert.equal(exec(c, it, ram, MOV_DS_AX), "ok");
  ram.writeU32(0x100ff8, 0x3f800000); // 1.0f
  assert.equal(exec(c, it, ram, [0xf3, 0x0f, 0x10, 0x05, 0xf8, 0x0f, 0, 0]), "ok"); // movss xmm0, [0xff8]
  assert.equal(c.xmm[0], 0x3f800000);
  assert.equal(exec(c, it, ram, [0x0f, 0x10, 0x05, 0xf8, 0x0f, 0, 0]), "13:0"); // movups xmm0, [0xff8]: 16 bytes
  assert.equal(exec(c, it, ram, [0xd8, 0x05, 0xfc, 0x0f, 0, 0]), "ok"); // fadd dword [0xffc]
  assert.equal(exec(c, it, ram, [0xdc, 0x05, 0xfc, 0x0f, 0, 0]), "13:0"); // fadd qword [0xffc]
  assert.equal(exec(c, it, ram, [0xd9, 0x05, 0x00, 0x10, 0, 0]), "13:0"); // fld dword [0x1000]
});
