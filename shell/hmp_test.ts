/**
 * Human monitor tests against a fake machine: output formats compared with QEMU 7.2's captures
 * (info registers, xp), expressions, errors, lifecycle and device commands.
 * @module
 */
import assert from "node:assert/strict";
import type { CpuRegisters } from "../core/accel.ts";
import { captureCpu0, makeFakeMachine } from "./_fake_machine_test_util.ts";
import { HmpSession } from "./hmp.ts";
import { formatRegisters } from "./hmp_format.ts";
import { parseExpr } from "./hmp_expr.ts";

/** Provenance: QEMU 7.2 `info registers -a`, CPU#0, shared/reference/qemu-7.2-microvm/captures/tcg-legacy-blk-net.hmp.txt. */
const CAPTURE_CPU0 = `
CPU#0
RAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000
RSI=0000000000000046 RDI=00000000000051d4 RBP=ffffffff81a13600 RSP=ffffffff81a03ed0
R8 =0000000000000000 R9 =ffff88801f41fec0 R10=0000000000000001 R11=ffff88801f41ff40
R12=0000000000000000 R13=0000000000000000 R14=ffffffff81a13120 R15=0000000000000000
RIP=ffffffff812ba653 RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1
ES =0000 0000000000000000 00000000 00000000
CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]
SS =0018 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
DS =0000 0000000000000000 00000000 00000000
FS =0000 0000000000000000 00000000 00000000
GS =0000 ffff88801f400000 00000000 00000000
LDT=0000 0000000000000000 00000000 00008200 DPL=0 LDT
TR =0040 fffffe0000003000 00000067 00008900 DPL=0 TSS64-avl
GDT=     fffffe0000001000 0000007f
IDT=     fffffe0000000000 00000fff
CR0=80050033 CR2=000000003c6cf730 CR3=0000000000a93000 CR4=007506b0
DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 
DR6=00000000ffff0ff0 DR7=0000000000000400
EFER=0000000000000d01
FCW=037f FSW=0000 [ST=0] FTW=00 MXCSR=00001f80
FPR0=0000000000000000 0000 FPR1=0000000000000000 0000
FPR2=0000000000000000 0000 FPR3=0000000000000000 0000
FPR4=0000000000000000 0000 FPR5=0000000000000000 0000
FPR6=0000000000000000 0000 FPR7=0000000000000000 0000
YMM00=0000000000000000 0000000000000000 7461706c61657200 6b6e696c64616572
YMM01=0000000000000000 0000000000000000 0000000000000000 0000000000000000
YMM02=0000000000000000 0000000000000000 00000000000000ff 0000000000000000
YMM03=0000000000000000 0000000000000000 ffffffff00000000 0000ff0000000000
YMM04=0000000000000000 0000000000000000 0000000000000004 0302000100008881
YMM05=0000000000000000 0000000000000000 6566780031313a30 3063303062656678
YMM06=0000000000000000 0000000000000000 ffffffff00000000 ffffffff0000ff00
YMM07=0000000000000000 0000000000000000 2f2f2f2f2f2f2f2f 2f2f2f2f2f2f2f2f
YMM08=0000000000000000 0000000000000000 0000000000000000 0000000000000000
YMM09=0000000000000000 0000000000000000 0000000000000000 0000000000000000
YMM10=0000000000000000 0000000000000000 0000000000000000 0000000000000000
YMM11=0000000000000000 0000000000000000 0000000000000000 0000000000000000
YMM12=0000000000000000 0000000000000000 0000000000000000 0000000000000000
YMM13=0000000000000000 0000000000000000 0000000000000000 0000000000000000
YMM14=0000000000000000 0000000000000000 0000000000000000 0000000000000000
YMM15=0000000000000000 0000000000000000 0000000000000000 0000000000000000
`;

const CAPTURE_VEC: bigint[][] = [
  [0x6b6e696c64616572n, 0x7461706c61657200n, 0x0000000000000000n, 0x0000000000000000n],
  [0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n],
  [0x0000000000000000n, 0x00000000000000ffn, 0x0000000000000000n, 0x0000000000000000n],
  [0x0000ff0000000000n, 0xffffffff00000000n, 0x0000000000000000n, 0x0000000000000000n],
  [0x0302000100008881n, 0x0000000000000004n, 0x0000000000000000n, 0x0000000000000000n],
  [0x3063303062656678n, 0x6566780031313a30n, 0x0000000000000000n, 0x0000000000000000n],
  [0xffffffff0000ff00n, 0xffffffff00000000n, 0x0000000000000000n, 0x0000000000000000n],
  [0x2f2f2f2f2f2f2f2fn, 0x2f2f2f2f2f2f2f2fn, 0x0000000000000000n, 0x0000000000000000n],
  [0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n],
  [0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n],
  [0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n],
  [0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n],
  [0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n],
  [0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n],
  [0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n],
  [0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n, 0x0000000000000000n],
];

/** Long-mode CPU whose CR3 (0x10000) maps virtual 0xffffffff81000000 → physical 0x80000 with 4 KiB pages. */
function pagedCpu(): CpuRegisters {
  const r = captureCpu0();
  r.cr.cr3 = 0x10000n;
  return r;
}

function writePageTables(mem: { writeU64(a: number, v: bigint): boolean }): void {
  const va = 0xffffffff81000000n;
  const idx = (s: bigint) => Number((va >> s) & 0x1ffn);
  // PML4 at 0x10000 → PDPT 0x11000 → PD 0x12000 → PT 0x13000 → page 0x80000 (present, rw) and 0x81000 (ro).
  mem.writeU64(0x10000 + idx(39n) * 8, 0x11000n | 0x3n);
  mem.writeU64(0x11000 + idx(30n) * 8, 0x12000n | 0x3n);
  mem.writeU64(0x12000 + idx(21n) * 8, 0x13000n | 0x3n);
  mem.writeU64(0x13000 + idx(12n) * 8, 0x80000n | 0x63n);
  mem.writeU64(0x13000 + (idx(12n) + 1) * 8, 0x81000n | 0x1n);
}

Deno.test("HmpSession prints info registers -a exactly as QEMU 7.2 (CPU#0 of the capture)", () => {
  const r = captureCpu0();
  const text = "\nCPU#0\n" + formatRegisters(r, { ymm: true, vec: CAPTURE_VEC });
  assert.equal(text, CAPTURE_CPU0);
});

Deno.test("HmpSession info registers without AVX prints XMM pairs and reset FPU state", () => {
  const m = makeFakeMachine();
  const out = new HmpSession(m).execute("info registers");
  assert.ok(out.startsWith("\nCPU#0\nRAX=0000000000000000 RBX="));
  assert.ok(out.includes("FCW=037f FSW=0000 [ST=0] FTW=00 MXCSR=00001f80\n"));
  assert.ok(
    out.includes("XMM00=0000000000000000 0000000000000000 XMM01=0000000000000000 0000000000000000\n"),
  );
  assert.ok(out.endsWith("XMM15=0000000000000000 0000000000000000\n"));
});

Deno.test("HmpSession xp /16xw matches QEMU's MP floating pointer dump", () => {
  const m = makeFakeMachine();
  const words = [
    0x5f504d5f,
    0x0009fc10,
    0x008b0401,
    0x00000000,
    0x504d4350,
    0xf60400ec,
    0x4f4f4251,
    0x20202054,
    0x30303030,
    0x30303030,
    0x30303030,
    0x00000000,
    0x00000000,
    0xfee00000,
    0x00000000,
    0x03140000,
  ];
  words.forEach((w, i) => m.mem.writeU32(0x9fc00 + i * 4, w));
  const out = new HmpSession(m).execute("xp /16xw 0x9fc00");
  assert.equal(
    out,
    "000000000009fc00: 0x5f504d5f 0x0009fc10 0x008b0401 0x00000000\n" +
      "000000000009fc10: 0x504d4350 0xf60400ec 0x4f4f4251 0x20202054\n" +
      "000000000009fc20: 0x30303030 0x30303030 0x30303030 0x00000000\n" +
      "000000000009fc30: 0x00000000 0xfee00000 0x00000000 0x03140000\n",
  );
});

Deno.test("HmpSession xp reads MMIO through the machine", () => {
  const m = makeFakeMachine();
  assert.equal(new HmpSession(m).execute("xp /1xw 0xfeb00000"), "00000000feb00000: 0x74726976\n");
});

Deno.test("HmpSession x walks 4-level page tables from CR3", () => {
  const m = makeFakeMachine({ cpus: [pagedCpu()] });
  writePageTables(m.mem);
  m.mem.writeU32(0x80000, 0x51258d48);
  m.mem.writeU32(0x80004, 0x4800a03f);
  const h = new HmpSession(m);
  assert.equal(h.execute("x /2xw 0xffffffff81000000"), "ffffffff81000000: 0x51258d48 0x4800a03f\n");
  assert.equal(h.execute("x /1xw 0xffffffff82000000"), "ffffffff82000000: Cannot access memory\n");
  assert.equal(
    h.execute("info mem"),
    "ffffffff81000000-ffffffff81001000 0000000000001000 -rw\n" +
      "ffffffff81001000-ffffffff81002000 0000000000001000 -r-\n",
  );
  assert.equal(
    h.execute("info tlb"),
    "ffffffff81000000: 0000000000080000 ---DA--UW\n".replace("---DA--UW", "---DA---W") +
      "ffffffff81001000: 0000000000081000 ---------\n",
  );
});

Deno.test("HmpSession x formats: d u o c t and sizes b h g, default size sticks", () => {
  const m = makeFakeMachine();
  m.mem.write(0x100, new Uint8Array([0x41, 0x0a, 0xff, 0x27, 0x80, 0x00, 0x00, 0x00]));
  const h = new HmpSession(m);
  assert.equal(h.execute("xp /4cb 0x100"), "0000000000000100: 'A' '\\n' '\\xff' '\\''\n");
  // QEMU quirk kept: /c with the default word size dumps count*4 bytes as characters.
  assert.equal(h.execute("xp /1cw 0x100"), "0000000000000100: 'A' '\\n' '\\xff' '\\''\n");
  assert.equal(h.execute("xp /2db 0x100"), "0000000000000100:  65  10\n");
  assert.equal(h.execute("xp /1uh 0x100"), "0000000000000100:  2625\n");
  assert.equal(h.execute("xp /1ob 0x100"), "0000000000000100: 0101\n");
  assert.equal(h.execute("xp /1tb 0x100"), "0000000000000100: 01000001\n");
  assert.equal(h.execute("xp /1xg 0x100"), "0000000000000100: 0x0000008027ff0a41\n");
  assert.equal(h.execute("xp /1dg 0x100"), "0000000000000100:         550426839617\n");
  // The last size (g) and format stay the defaults, as QEMU's default_fmt_size/format.
  assert.equal(h.execute("xp /x 0x100"), "0000000000000100: 0x0000008027ff0a41\n");
  assert.equal(h.execute("xp /9xb 0x100").split("\n").length, 3);
});

Deno.test("HmpSession x /i disassembles in QEMU's capstone layout", () => {
  const m = makeFakeMachine({ cpus: [pagedCpu()] });
  writePageTables(m.mem);
  // lea rsp,[rip+0xa03f51]; nop; mov $0x1,%eax
  m.mem.write(
    0x80000,
    new Uint8Array([0x48, 0x8d, 0x25, 0x51, 0x3f, 0xa0, 0x00, 0x90, 0xb8, 0x01, 0x00, 0x00, 0x00]),
  );
  const out = new HmpSession(m).execute("x /3i 0xffffffff81000000");
  assert.equal(
    out,
    "0xffffffff81000000:  48 8d 25 51 3f a0 00     leaq     0xa03f51(%rip), %rsp\n" +
      "0xffffffff81000007:  90                       nop      \n" +
      "0xffffffff81000008:  b8 01 00 00 00           movl     $1, %eax\n",
  );
});

Deno.test("HmpSession answers unknown commands with QEMU's message and goes on", () => {
  const h = new HmpSession(makeFakeMachine());
  assert.equal(h.execute("foo"), "unknown command: 'foo'\n");
  assert.equal(h.execute("info foo"), "unknown command: 'info foo'\n");
  assert.equal(h.execute("help foo"), "unknown command: 'foo'\n");
  assert.equal(h.execute("info status"), "VM status: running\n");
});

Deno.test("HmpSession print evaluates expressions and registers", () => {
  const h = new HmpSession(makeFakeMachine());
  assert.equal(h.execute("p 10"), "0xa\n");
  assert.equal(h.execute("p 0"), "0\n");
  assert.equal(h.execute("print /d (1+2)*3"), "9\n");
  assert.equal(h.execute("p/d $rsi"), "70\n");
  assert.equal(h.execute("p /x $rip"), "0xffffffff812ba653\n");
  assert.equal(h.execute("p/x $eax + 0x10 - 1"), "0xf\n");
  assert.equal(h.execute("p/d -1"), "-1\n");
  assert.equal(h.execute("p/x ~0 & 0xff"), "0xff\n");
  assert.equal(h.execute("p/u 010"), "8\n");
  assert.equal(h.execute("p/c 'A'"), "'A'\n");
  assert.equal(h.execute("p $nope"), 'unknown register\nTry "help p" for more information\n');
  assert.equal(h.execute("p 1/0"), 'division by zero\nTry "help p" for more information\n');
  assert.equal(h.execute("p (1"), `')' expected\nTry "help p" for more information\n`);
  assert.equal(h.execute("x"), 'unexpected end of expression\nTry "help x" for more information\n');
  assert.equal(h.execute("x /8q 0"), "invalid char in format: 'q'\nTry \"help x\" for more information\n");
});

Deno.test("parseExpr follows QEMU precedence: & binds tighter than + and *", () => {
  const v = (s: string) => parseExpr(s, () => undefined).value;
  assert.equal(v("1 + 2 & 3"), 3n); // 1 + (2 & 3)
  assert.equal(v("2 * 3 | 4"), 14n); // 2 * (3 | 4)
  assert.equal(v("0x10 % 3"), 1n);
});

Deno.test("HmpSession info version, name, kvm, cpus, chardev, block, status states", () => {
  const m = makeFakeMachine({ runState: "prelaunch", accel: "tcg" });
  const h = new HmpSession(m);
  assert.equal(h.execute("info version"), "7.2.0 (microvm.ts test)\n");
  assert.equal(h.execute("info name"), "fakevm\n");
  assert.equal(h.execute("info kvm"), "kvm support: disabled\n");
  assert.equal(h.execute("info cpus"), "* CPU #0: thread_id=7678\n");
  assert.equal(
    h.execute("info chardev"),
    "compat_monitor0: filename=unix:mon.sock,server=on\nserial0: filename=stdio\n",
  );
  assert.equal(
    h.execute("info block"),
    "test (#block116): rootfs.ext4 (raw)\n    Attached to:      /machine/peripheral-anon/device[0]\n" +
      "    Cache mode:       writeback\n",
  );
  assert.equal(h.execute("info status"), "VM status: paused (prelaunch)\n");
  h.execute("cont");
  assert.equal(h.execute("info status"), "VM status: running\n");
  h.execute("stop");
  assert.equal(h.execute("info status"), "VM status: paused\n");
  assert.equal(h.execute("info pic"), "PIC information not available.\n");
  assert.equal(h.execute("info lapic"), "local apic state not available\n");
  assert.equal(h.execute("info mtree -f"), "FlatView #0\n");
  assert.equal(
    h.execute("info history"),
    [
      "info version",
      "info name",
      "info kvm",
      "info cpus",
      "info chardev",
      "info block",
      "info status",
      "cont",
      "info status",
      "stop",
      "info status",
      "info pic",
      "info lapic",
      "info mtree -f",
      "info history",
    ].map((l, i) => `${i}: '${l}'\n`).join(""),
  );
});

Deno.test("HmpSession lifecycle commands reach the machine; errors print as 'Error: ...'", () => {
  const m = makeFakeMachine({ runState: "shutdown" });
  const h = new HmpSession(m);
  assert.equal(h.execute("c"), "Error: Resetting the Virtual Machine is required\n");
  assert.equal(h.execute("system_reset"), "");
  assert.equal(h.execute("q"), "");
  assert.deepEqual(m.log.calls, ["cont", "system_reset", "quit"]);
  assert.equal(
    h.execute("stop now"),
    'stop: extraneous characters at the end of line\nTry "help stop" for more information\n',
  );
});

Deno.test("HmpSession device_add: help, prelaunch only, QEMU's errors", () => {
  const m = makeFakeMachine({ runState: "prelaunch" });
  const h = new HmpSession(m);
  assert.equal(
    h.execute("device_add help"),
    '\nStorage devices:\nname "virtio-blk-device", bus virtio-bus\n\nMisc devices:\nname "virtio-rng-device", bus virtio-bus\n',
  );
  assert.equal(h.execute("device_add virtio-rng-device,id=rng0"), "");
  assert.match(m.log.calls.at(-1)!, /^device_add virtio-rng-device \{\} rng0$/);
  assert.equal(h.execute("device_add nope"), "Error: 'nope' is not a valid device model name\n");
  assert.equal(h.execute("device_del rng0"), "Error: Bus 'virtio-mmio-bus.7' does not support hotplugging\n");
  assert.equal(h.execute("device_del zzz"), "Error: Device 'zzz' not found\n");
  m.cont();
  assert.equal(
    h.execute("device_add virtio-rng-device"),
    "Error: Bus 'virtio-mmio-bus.7' does not support hotplugging\n",
  );
});

Deno.test("HmpSession help lists commands in QEMU's 'name params -- help' form", () => {
  const h = new HmpSession(makeFakeMachine());
  const all = h.execute("help");
  assert.ok(all.includes("cont|c  -- resume emulation\n"));
  assert.ok(all.includes("x /fmt addr -- virtual memory dump starting at 'addr'\n"));
  assert.equal(h.execute("help info version"), "info version  -- show the version of QEMU\n");
  assert.ok(h.execute("info").includes("info mtree [-f][-d][-o][-D] -- show memory tree"));
  assert.ok(h.execute("help log").startsWith("Log items (comma separated):\nnone       remove all logs\n"));
});

Deno.test("HmpSession log and logfile set the machine's -d items", () => {
  const m = makeFakeMachine();
  const h = new HmpSession(m);
  assert.equal(h.execute("log guest_errors,unimp"), "");
  assert.deepEqual(m.log.logItems, ["guest_errors", "unimp"]);
  assert.ok(h.execute("log bogus").startsWith("Log items (comma separated):"));
  assert.equal(h.execute("log none"), "");
  assert.deepEqual(m.log.logItems, []);
  assert.equal(h.execute("logfile /tmp/x.log"), "");
  assert.equal(m.log.logFile, "/tmp/x.log");
});

Deno.test("HmpSession memsave and pmemsave write guest memory to a file", () => {
  const m = makeFakeMachine({ cpus: [pagedCpu()] });
  writePageTables(m.mem);
  m.mem.write(0x80000, new Uint8Array([1, 2, 3, 4]));
  const files = new Map<string, Uint8Array>();
  const h = new HmpSession(m, {
    openFile: (p) => {
      files.set(p, new Uint8Array(0));
      return { write: (d) => void files.set(p, new Uint8Array([...files.get(p)!, ...d])), close: () => {} };
    },
  });
  assert.equal(h.execute("pmemsave 0x80000 4 p.bin"), "");
  assert.deepEqual([...files.get("p.bin")!], [1, 2, 3, 4]);
  assert.equal(h.execute("memsave 0xffffffff81000002 2 v.bin"), "");
  assert.deepEqual([...files.get("v.bin")!], [3, 4]);
  assert.equal(
    h.execute("memsave 0x1000 16 bad.bin"),
    "Error: Invalid addr 0x0000000000001000/size 16 specified\n",
  );
  // As in QEMU, "4 /tmp/x" parses as a division: absolute paths need a leading "./" or a relative form.
  assert.equal(
    h.execute("pmemsave 0 4 /tmp/x"),
    'invalid char in expression\nTry "help pmemsave" for more information\n',
  );
  assert.equal(
    h.execute("pmemsave 0 4"),
    'pmemsave: string expected\nTry "help pmemsave" for more information\n',
  );
});

Deno.test("HmpSession i and o access I/O ports", () => {
  const m = makeFakeMachine();
  const h = new HmpSession(m);
  assert.equal(h.execute("o /b 0x70 0x0a"), "");
  assert.equal(h.execute("o /b 0x71 0x26"), "");
  assert.equal(h.execute("i /b 0x71"), "portb[0x0071] = 0x26\n");
  assert.equal(h.execute("i /h 0x80"), "portw[0x0080] = 0xffff\n");
  assert.equal(h.execute("i /w 0x80"), "portl[0x0080] = 0xffffffff\n");
});
