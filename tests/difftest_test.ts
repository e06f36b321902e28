/**
 * Self-test of tools/difftest on canned data: the QEMU log parser, the lockstep comparator, REP detection,
 * the ISA fuzzer's flag bookkeeping and state comparison, and the software CPU harness of the fuzzer.
 * No QEMU, gcc or network needed.
 */
import assert from "node:assert/strict";
import { diffState, parseQemuLog } from "../tools/difftest/qemu_log.ts";
import { isRepString } from "../tools/difftest/difftest.ts";
import { AF, CF, OF, Rng, undefinedAfter, type Unit, validSequence, ZF } from "../tools/difftest/isa_gen.ts";
import {
  CODE,
  compareStates,
  DATA,
  type MachineState,
  makeSoftCpu,
  runFuzz,
  runSoft,
} from "../tools/difftest/isa_fuzz.ts";
import { runPageCross } from "../tools/difftest/repro_page_cross.ts";
import { RMW_CASES, runRmwFault } from "../tools/difftest/repro_rmw_fault.ts";

const LOG32 = `CCS=00800000 CCD=01000600 CCO=LOGICL
Trace 0: 0x7f00900545c0 [0000000000000000/0000000001000600/000000b0/ff020201] 
EAX=2badb002 EBX=000f31e0 ECX=01000600 EDX=00000511
ESI=000efec0 EDI=000eff50 EBP=00000006 ESP=00007b60
EIP=01000600 EFL=00000006 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=0
ES =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
CS =0008 00000000 ffffffff 00cf9b00 DPL=0 CS32 [-RA]
GDT=     ffffffc1 00000027
IDT=     00000000 0000ffff
CR0=00000011 CR2=00000000 CR3=00000000 CR4=00000000
EFER=0000000000000000
Trace 0: 0x7f0090054700 [0000000000000000/0000000001000601/000000b0/ff020201] 
EAX=2badb002 EBX=000f31e0 ECX=01000600 EDX=00000511
ESI=000efec0 EDI=000eff50 EBP=00000006 ESP=00007b60
EIP=01000601 EFL=00000006 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=0
`;

const LOG64 = `Trace 0: 0x7f0 [0000000000000000/ffffffff81025f96/00c0b0/ff020201] 
RAX=0000000000000020 RBX=ffffffff81c70e9f RCX=0000000000000000 RDX=00000000000003f8
RSI=0000000000000000 RDI=00000000000003f8 RBP=ffffffff81c70ecf RSP=ffffffff81a03ce0
R8 =000000000000003f R9 =3030303030783020 R10=206d656d5b203a30 R11=3238652d534f4942
R12=ffffffff81c70e80 R13=ffffffff81a03dbf R14=ffffffff81c6ee40 R15=0000000000000001
RIP=ffffffff81025f96 RFL=00000046 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=0
Servicing hardware INT=0xec
     5: v=ec e=0000 i=0 cpl=0 IP=0010:ffffffff81025f97 pc=ffffffff81025f97 SP=0018:ffffffff81a03ce0 env->regs[R_EAX]=0000000000000020
RAX=1111111111111111 RBX=ffffffff81c70e9f RCX=0000000000000000 RDX=00000000000003f8
Trace 0: 0x7f1 [0000000000000000/ffffffff81400800/00c0b0/ff020201] 
RAX=0000000000000020 RBX=ffffffff81c70e9f RCX=0000000000000000 RDX=00000000000003f8
RSI=0000000000000000 RDI=00000000000003f8 RBP=ffffffff81c70ecf RSP=ffffffff81a03cb8
R8 =000000000000003f R9 =3030303030783020 R10=206d656d5b203a30 R11=3238652d534f4942
R12=ffffffff81c70e80 R13=ffffffff81a03dbf R14=ffffffff81c6ee40 R15=0000000000000001
RIP=ffffffff81400800 RFL=00000046 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=0
`;

Deno.test("QemuLogParser reads 32-bit records with segments and control registers", () => {
  const rs = parseQemuLog(LOG32, true);
  assert.equal(rs.length, 2);
  assert.equal(rs[0].pc, 0x1000600n);
  assert.equal(rs[0].wide, false);
  assert.equal(rs[0].regs[0], 0x2badb002n);
  assert.equal(rs[0].regs[3], 0xf31e0n);
  assert.equal(rs[0].regs[4], 0x7b60n);
  assert.equal(rs[0].rflags, 6);
  assert.deepEqual(rs[0].seg.CS, [8, 0n, 0xffffffff, 0x00cf9b00]);
  assert.equal(rs[0].cr.GDT_BASE, 0xffffffc1n);
  assert.equal(rs[0].cr.CR0, 0x11n);
  assert.equal(rs[1].pc, 0x1000601n);
});

Deno.test("QemuLogParser attaches a serviced hardware interrupt to the next record and skips its dump", () => {
  const rs = parseQemuLog(LOG64);
  assert.equal(rs.length, 2);
  assert.equal(rs[0].wide, true);
  assert.equal(rs[0].hwInt, -1);
  assert.equal(rs[0].regs[0], 0x20n, "the interrupt dump's RAX must not overwrite the record");
  assert.equal(rs[0].regs[8], 0x3fn);
  assert.equal(rs[0].regs[15], 1n);
  assert.equal(rs[1].hwInt, 0xec);
  assert.equal(rs[1].pc, 0xffffffff81400800n);
});

Deno.test("diffState reports rip, GPR and flag differences and masks 32-bit halves", () => {
  const [r] = parseQemuLog(LOG64);
  const same = { pc: r.pc, regs: [...r.regs], rflags: r.rflags | 0x10000 };
  assert.deepEqual(diffState(r, same), []);
  const bad = { pc: r.pc + 1n, regs: [...r.regs], rflags: r.rflags ^ 0x1 };
  bad.regs[9] = 0n;
  const d = diffState(r, bad);
  assert.equal(d.length, 3);
  assert.match(d[0], /^rip/);
  assert.match(d[1], /^r9: qemu 0x3030303030783020 ours 0x0/);
  assert.match(d[2], /^rflags/);
  const [r32] = parseQemuLog(LOG32);
  const hi = { pc: r32.pc, regs: r32.regs.map((v) => v | 0xdead00000000n), rflags: r32.rflags };
  assert.deepEqual(diffState(r32, hi), [], "32-bit records compare low halves only");
});

Deno.test("isRepString recognises REP string ops behind prefixes only", () => {
  assert.equal(isRepString(new Uint8Array([0xf3, 0xa4])), true); // rep movsb
  assert.equal(isRepString(new Uint8Array([0xf3, 0x48, 0xab])), true); // rep stosq
  assert.equal(isRepString(new Uint8Array([0x66, 0xf3, 0xa5])), true);
  assert.equal(isRepString(new Uint8Array([0xa4])), false); // movsb without rep
  assert.equal(isRepString(new Uint8Array([0xf3, 0x90])), false); // pause
  assert.equal(isRepString(new Uint8Array([0xf3, 0x0f, 0xbc, 0xc0])), false); // tzcnt
});

function unit(reads: number, writes: number, undef: number): Unit {
  return { asm: "", reads, writes: writes & ~undef, undef, group: "t" };
}

Deno.test("isa_gen flag bookkeeping refuses reads of undefined flags", () => {
  const mul = unit(0, CF | OF, 0xd4);
  const adc = unit(CF, 0x8d5, 0);
  const jz = unit(ZF, 0, 0);
  assert.equal(validSequence([mul, adc]), true, "CF is defined after mul");
  assert.equal(validSequence([mul, jz]), false, "ZF is undefined after mul");
  assert.equal(validSequence([mul, adc, jz]), true, "adc defines ZF again");
  assert.equal(undefinedAfter([mul]) & ZF, ZF);
  assert.equal(undefinedAfter([mul, adc]), 0);
  assert.equal(undefinedAfter([unit(0, 0x8d5, AF)]), AF);
});

Deno.test("Rng is deterministic per seed", () => {
  const a = new Rng(42), b = new Rng(42);
  for (let i = 0; i < 100; i++) assert.equal(a.u64(), b.u64());
});

function state(): MachineState {
  const g = new Array(16).fill(0n);
  g[3] = BigInt(DATA + 0x800);
  g[4] = BigInt(DATA + 0xf00);
  return { g, flags: 0x202, xmm: new Uint8Array(256), data: new Uint8Array(4096), fault: -1 };
}

Deno.test("compareStates masks undefined flags and reports GPR, XMM and memory differences", () => {
  const a = state(), b = state();
  b.flags = a.flags | ZF;
  assert.equal(compareStates(a, b, ZF).length, 0);
  assert.equal(compareStates(a, b, 0).length, 1);
  b.g[0] = 5n;
  b.xmm[17] = 1;
  b.data[0x810] = 9;
  const d = compareStates(a, b, ZF);
  assert.equal(d.length, 3);
  assert.match(d[0], /^rax: host 0x0 ours 0x5/);
  assert.match(d[1], /^xmm1:/);
  assert.match(d[2], /^mem\[rbx\+0x10\]/);
  assert.deepEqual(compareStates({ ...a, fault: 0 }, b, 0), ["fault: host 0 ours -1"]);
});

Deno.test("isa_fuzz software side runs code from CODE and captures registers and memory", () => {
  // add rax, rcx; mov [rbx], rax
  const fc = { units: [], bytes: [new Uint8Array([0x48, 0x01, 0xc8, 0x48, 0x89, 0x03])], init: state() };
  fc.init.g[0] = 40n;
  fc.init.g[1] = 2n;
  const got = runSoft(makeSoftCpu(), fc, null);
  assert.equal(got.fault, -1);
  assert.equal(got.g[0], 42n);
  assert.equal(got.data[0x800], 42);
  assert.equal(CODE, 0x200000);
});

Deno.test("issue h13-1: translated block must not decode across a page from physically adjacent bytes", () => {
  // cpu_bugs.md BUG 1: the interpreter is the reference, the translator must agree.
  assert.equal(runPageCross(false, false).rax, 0x1001);
  assert.equal(runPageCross(false, true).rax, 0x1001);
  assert.equal(runPageCross(true, false).rax, 0x1001, "block ending exactly at the page end");
  assert.equal(runPageCross(true, true).rax, 0x1001, "first instruction straddling the page");
});

Deno.test({
  name: "issue h13-2: a read-modify-write whose write faults leaves RFLAGS unchanged",
  // cpu_bugs.md BUG 2 (fixed 11:10): flags were computed before the write permission probe.
  fn() {
    for (const [name, code] of RMW_CASES) {
      assert.deepEqual(runRmwFault(code), [14, 0x247], name);
      assert.deepEqual(runRmwFault(code, 0x247, true), [14, 0x247], `${name} (translated)`);
    }
  },
});

Deno.test({
  name:
    "isa_fuzz: the ISA-extension groups agree with the host CPU (short run; long runs: tools/difftest/isa_fuzz.ts)",
  ignore: Deno.build.arch !== "x86_64",
  async fn() {
    const { lines, mismatches } = await runFuzz({
      seed: 7,
      ncases: 300,
      len: 3,
      groups: ["bmi", "sse4", "ssefp", "avx"],
      mode: "both",
      maxReport: 3,
      straddle: false,
    });
    assert.equal(mismatches, 0, lines.join("\n"));
  },
});
