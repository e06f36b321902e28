import assert from "node:assert/strict";
import { CODE, flat32Entry, getReg, installTables, longModeCpu, runUntil, setReg } from "./_testcpu.ts";
import { CpuFault, EXC_GP, EXC_PF, EXC_UD } from "./cpu.ts";
import { raise, wrmsr } from "./system.ts";
import { Cpu } from "./cpu.ts";
import { ManualClock } from "../../tests/fakes.ts";
import { cpuid } from "./cpuid.ts";
import { makeHarnessBoard } from "./harness.ts";
import { Interp, SoftCpuAccelerator } from "./mod.ts";
import type { CpuEntryState, LocalApicPort, SegmentState } from "../accel.ts";

/** Execute one instruction; on a fault deliver it as the run loop does. Returns the vector or -1. */
function stepDeliver(it: { step(): void }, c: Parameters<typeof raise>[0]): number {
  try {
    it.step();
    return -1;
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    assert.ok(raise(c, e.vec, e.err));
    return e.vec;
  }
}

Deno.test("Cpu delivers #PF through the IDT with error code and CR2", () => {
  const { c, it, ram } = longModeCpu();
  installTables(c, ram);
  setReg(c, 4, 0x8000n);
  // mov rax, [0x40000000]  (outside the 1 GiB identity map)
  ram.write(CODE, new Uint8Array([0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x00, 0x40]));
  c.rip = CODE;
  assert.equal(stepDeliver(it, c), EXC_PF);
  assert.equal(c.cr2, 0x40000000);
  assert.equal(c.rip, 0x20000 + EXC_PF * 16);
  // Frame: err, rip, cs, rflags, rsp, ss (aligned stack).
  assert.equal(ram.readU32(0x8000 - 48), 0); // not present, read, supervisor
  assert.equal(ram.readU32(0x8000 - 40), CODE);
  assert.equal(ram.readU32(0x8000 - 32), 0x10);
  assert.equal(ram.readU32(0x8000 - 16), 0x8000);
});

Deno.test("Cpu sets accessed and dirty bits and faults on NX and read-only pages", () => {
  const { c, it, ram } = longModeCpu();
  installTables(c, ram);
  setReg(c, 4, 0x8000n);
  // Map 0x40000000 through 4 KiB tables: PDPT[1] -> PD 0x5000 -> PT 0x6000.
  ram.writeU64(0x2008, 0x5007n);
  ram.writeU64(0x5000, 0x6007n);
  ram.writeU64(0x6000, 0x100007n); // 0x40000000 -> 0x100000, RW
  ram.writeU64(0x6008, 0x101005n); // 0x40001000 -> 0x101000, read-only
  ram.writeU64(0x6010, 0x8000000000102007n); // 0x40002000 NX
  // mov eax, [0x40000000]
  ram.write(CODE, new Uint8Array([0x8b, 0x04, 0x25, 0x00, 0x00, 0x00, 0x40]));
  runUntil(c, it, CODE, CODE + 7);
  assert.equal(ram.readU32(0x6000) & 0x60, 0x20);
  // mov [0x40000000], eax
  ram.write(CODE, new Uint8Array([0x89, 0x04, 0x25, 0x00, 0x00, 0x00, 0x40]));
  runUntil(c, it, CODE, CODE + 7);
  assert.equal(ram.readU32(0x6000) & 0x60, 0x60);
  // mov [0x40001000], eax -> #PF(P|W) with CR0.WP
  ram.write(CODE, new Uint8Array([0x89, 0x04, 0x25, 0x00, 0x10, 0x00, 0x40]));
  c.rip = CODE;
  assert.equal(stepDeliver(it, c), EXC_PF);
  assert.equal(ram.readU32(0x8000 - 48), 3);
  // jmp to the NX page -> instruction-fetch #PF (P|I/D)
  setReg(c, 4, 0x8000n);
  setReg(c, 0, 0x40002000n);
  ram.write(CODE, new Uint8Array([0xff, 0xe0]));
  runUntil(c, it, CODE, 0x40002000);
  assert.equal(stepDeliver(it, c), EXC_PF);
  assert.equal(ram.readU32(0x8000 - 48), 0x11);
});

Deno.test("Cpu raises #UD for an undefined opcode and #GP for a non-canonical address", () => {
  const { c, it, ram } = longModeCpu();
  installTables(c, ram);
  setReg(c, 4, 0x8000n);
  ram.write(CODE, new Uint8Array([0x0f, 0x0b]));
  c.rip = CODE;
  assert.equal(stepDeliver(it, c), EXC_UD);
  setReg(c, 4, 0x8000n);
  setReg(c, 3, 0x0000800000000000n);
  ram.write(CODE, new Uint8Array([0x8b, 0x03])); // mov eax, [rbx]
  c.rip = CODE;
  assert.equal(stepDeliver(it, c), EXC_GP);
});

Deno.test("Cpu SYSCALL enters LSTAR at CPL 0 and SYSRETQ returns to CPL 3", () => {
  const { c, it, ram } = longModeCpu();
  installTables(c, ram);
  c.star = (0x1bn << 48n) | (0x10n << 32n);
  c.lstar = 0x30000;
  c.sfmask = 0x200;
  ram.write(0x30000, new Uint8Array([0x48, 0x0f, 0x07])); // sysretq
  ram.write(CODE, new Uint8Array([0x0f, 0x05, 0x90])); // syscall; nop
  c.setFlags(0x202);
  runUntil(c, it, CODE, 0x30000);
  assert.equal(c.cpl, 0);
  assert.equal(getReg(c, 1), BigInt(CODE + 2));
  assert.equal(getReg(c, 11), 0x202n);
  assert.equal(c.getFlags() & 0x200, 0);
  it.step();
  assert.equal(c.rip, CODE + 2);
  assert.equal(c.cpl, 3);
  assert.equal(c.segSel[1], 0x2b);
  assert.equal(c.getFlags() & 0x200, 0x200);
});

Deno.test("cpuid advertises the KVM signature, kvmclock and the TSC frequency", () => {
  const { c } = longModeCpu();
  const sig = cpuid(c, 0x40000000, 0);
  const text = [sig[1], sig[2], sig[3]].map((v) =>
    String.fromCharCode(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff)
  ).join("");
  assert.equal(text, "KVMKVMKVM\0\0\0");
  assert.equal(cpuid(c, 0x40000001, 0)[0], (1 << 3) | (1 << 24));
  assert.equal(cpuid(c, 0x40000010, 0)[0], 1000000);
  assert.ok(cpuid(c, 1, 0)[2] & (1 << 24)); // TSC-deadline
  assert.ok(cpuid(c, 0x80000001, 0)[3] & (1 << 29)); // long mode
});

Deno.test("Interp runs 16-bit real-mode code with 16-bit addressing", () => {
  const { board, ram } = makeHarnessBoard({ ramBytes: 1 << 20 });
  const accel = new SoftCpuAccelerator();
  const seg = (selector: number, attrs: number): SegmentState => ({
    selector,
    base: selector * 16,
    limit: 0xffff,
    attrs,
  });
  const entry: CpuEntryState = {
    regs: { rip: 0x100n, rflags: 2n, rsp: 0xfffen },
    cs: seg(0x1000, 0x9b),
    ds: seg(0x2000, 0x93),
    es: seg(0, 0x93),
    ss: seg(0x3000, 0x93),
    fs: seg(0, 0x93),
    gs: seg(0, 0x93),
    tr: { selector: 0, base: 0, limit: 0xffff, attrs: 0x8b },
    ldtr: { selector: 0, base: 0, limit: 0xffff, attrs: 0x82 },
    gdt: { base: 0, limit: 0xffff },
    idt: { base: 0, limit: 0x3ff },
    cr0: 0x10n,
    cr3: 0n,
    cr4: 0n,
    efer: 0n,
  };
  accel.init(board, entry);
  // mov bx, 0x10; mov si, 4; mov ax, [bx+si+2]; add ax, 1; mov [0x20], ax; push ax; pop cx; hlt
  ram.write(
    0x10100,
    new Uint8Array([
      0xbb,
      0x10,
      0x00,
      0xbe,
      0x04,
      0x00,
      0x8b,
      0x40,
      0x02,
      0x05,
      0x01,
      0x00,
      0xa3,
      0x20,
      0x00,
      0x50,
      0x59,
      0xf4,
    ]),
  );
  ram.writeU16(0x20016, 0x1234);
  const c = accel.cpus[0];
  const it = new Interp(c);
  for (let i = 0; i < 8 && !c.halted; i++) it.step();
  assert.equal(ram.readU16(0x20020), 0x1235);
  assert.equal(c.r[1] & 0xffff, 0x1235);
  assert.equal(c.halted, true);
});

Deno.test("SoftCpuAccelerator reports a triple fault as shutdown", async () => {
  const { board, ram } = makeHarnessBoard({ ramBytes: 1 << 20 });
  const accel = new SoftCpuAccelerator();
  const entry = flat32Entry();
  ram.write(0x1000, new Uint8Array([0x0f, 0x0b])); // ud2 with an empty IDT
  accel.init(board, entry);
  const exit = await accel.run();
  assert.deepEqual(exit, { kind: "shutdown", reason: "triple-fault" });
});

Deno.test("SoftCpuAccelerator wakes from HLT and delivers a LAPIC interrupt", async () => {
  let pending = false;
  let acked = 0;
  let stop = () => {};
  const lapic: LocalApicPort = {
    apicId: 0,
    hasInterrupt: () => pending,
    acknowledge: () => {
      pending = false;
      acked++;
      return 0x30;
    },
    takeNmi: () => {
      if (acked === 1) stop();
      return false;
    },
    takeStartup: () => -1,
    mmioRead: () => 0,
    mmioWrite: () => {},
    readMsr: () => undefined,
    writeMsr: () => false,
    baseAddress: 0xfee00000,
    reset: () => {},
  };
  const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20, lapics: [lapic] });
  const accel = new SoftCpuAccelerator();
  ram.writeU64(0x1000, 0x2000n | 7n);
  ram.writeU64(0x2000, 0x83n | 4n);
  const code64: SegmentState = { selector: 0x10, base: 0, limit: 0xffffffff, attrs: 0xa09b };
  const data: SegmentState = { selector: 0x18, base: 0, limit: 0xffffffff, attrs: 0xc093 };
  const entry: CpuEntryState = {
    regs: { rip: BigInt(CODE), rflags: 0x202n, rsp: 0x8000n },
    cs: code64,
    ds: data,
    es: data,
    ss: data,
    fs: data,
    gs: data,
    tr: { selector: 0, base: 0, limit: 0xffff, attrs: 0x8b },
    ldtr: { selector: 0, base: 0, limit: 0xffff, attrs: 0x82 },
    gdt: { base: 0x3000, limit: 0x2f },
    idt: { base: 0x4000, limit: 0xfff },
    cr0: 0x80050033n,
    cr3: 0x1000n,
    cr4: 0x220n,
    efer: 0xd01n,
  };
  accel.init(board, entry);
  installTables(accel.cpus[0], ram);
  ram.write(CODE, new Uint8Array([0xf4, 0xeb, 0xfd])); // hlt; jmp hlt
  // Handler for 0x30: ud2 with IDT vector 6 -> hlt... use a triple fault to end the run.
  ram.write(
    0x20000 + 0x30 * 16,
    new Uint8Array([0xc7, 0x04, 0x25, 0x00, 0x90, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0xf4]),
  );
  stop = () => accel.requestStop();
  board.clock.timer(() => {
    pending = true;
  }).arm(50_000);
  const exit = await accel.run();
  assert.deepEqual(exit, { kind: "paused" });
  assert.equal(acked, 1);
  assert.equal(ram.readU32(0x9000), 42);
});

Deno.test("Cpu RDTSC follows the clock (TSC = ns × kHz / 1e6) and WRMSR TSC offsets it", () => {
  const clock = new ManualClock();
  const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20, clock });
  (board as { tscKhz: number }).tscKhz = 2_500_000;
  const c = new Cpu(board, 0);
  const it = new Interp(c);
  ram.write(0x1000, new Uint8Array([0x0f, 0x31, 0x0f, 0x31]));
  c.segBase[1] = 0;
  c.rip = 0x1000;
  clock.set(5_000_000_000_123);
  it.step();
  const t = (BigInt(c.r[2] >>> 0) << 32n) | BigInt(c.r[0] >>> 0);
  assert.equal(t, 5_000_000_000_123n * 2_500_000n / 1_000_000n);
  assert.ok(wrmsr(c, 0x10, 1000n));
  it.step();
  const t2 = (BigInt(c.r[2] >>> 0) << 32n) | BigInt(c.r[0] >>> 0);
  assert.equal(t2, 1000n);
});

Deno.test("Interp leaves RFLAGS untouched when a read-modify-write to a read-only page faults", () => {
  // Regression (cpu_bugs.md bug 2): the ALU result flags were committed before the write raised #PF, so a
  // COW fault restarted adc/sbb/rcl with the wrong CF and the kernel saw a wrong flags image.
  const cases: Array<[string, number[]]> = [
    ["add qword [rbx],4", [0x48, 0x83, 0x03, 0x04]],
    ["adc dword [rbx],1", [0x83, 0x13, 0x01]],
    ["inc qword [rbx]", [0x48, 0xff, 0x03]],
    ["shl dword [rbx],3", [0xc1, 0x23, 0x03]],
    ["neg qword [rbx]", [0x48, 0xf7, 0x1b]],
    ["xadd [rbx],rax", [0x48, 0x0f, 0xc1, 0x03]],
    ["sub byte [rbx],1", [0x80, 0x2b, 0x01]],
    ["cmpxchg [rbx],rcx", [0x48, 0x0f, 0xb1, 0x0b]],
    ["bts dword [rbx],1", [0x0f, 0xba, 0x2b, 0x01]],
    ["add [rbx],eax", [0x01, 0x03]],
  ];
  for (const [name, bytes] of cases) {
    const { c, it, ram } = longModeCpu();
    installTables(c, ram);
    setReg(c, 4, 0x8000n);
    ram.writeU64(0x2008, 0x5007n);
    ram.writeU64(0x5000, 0x6007n);
    ram.writeU64(0x6008, 0x101005n); // 0x40001000 -> 0x101000, read-only
    ram.writeU32(0x101000, 0x10);
    setReg(c, 3, 0x40001000n);
    ram.write(CODE, new Uint8Array(bytes));
    c.rip = CODE;
    c.setFlags(0x247);
    assert.equal(stepDeliver(it, c), EXC_PF, name);
    // The frame's RFLAGS (pushed at rsp+16 after err and rip, cs) is the pre-instruction image.
    assert.equal(ram.readU32(0x8000 - 48) & 3, 3, `${name}: error code P|W`);
    assert.equal(ram.readU32(0x8000 - 24) & 0xfff, 0x247, `${name}: flags`);
    assert.equal(ram.readU32(0x101000), 0x10, `${name}: memory`);
  }
});

Deno.test("Cpu reports CR2 = the store address when a 16-byte SSE store faults in one page", () => {
  // Regression (cpu_bugs.md bug 2b): the probe of the last byte came first, so CR2 was address + 15.
  const { c, it, ram } = longModeCpu();
  installTables(c, ram);
  setReg(c, 4, 0x8000n);
  c.cr4 |= 0x200; // OSFXSR
  setReg(c, 3, 0x40000010n); // outside the 1 GiB identity map: not present
  ram.write(CODE, new Uint8Array([0x0f, 0x11, 0x03])); // movups [rbx], xmm0
  c.rip = CODE;
  assert.equal(stepDeliver(it, c), EXC_PF);
  assert.equal(c.cr2, 0x40000010);
});
