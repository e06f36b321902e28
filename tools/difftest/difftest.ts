/**
 * Differential test of the software CPU against QEMU 7.2 TCG, instruction by instruction.
 *
 * QEMU runs the guest (`-M microvm,acpi=off -accel tcg -singlestep -icount shift=0,sleep=off`), stopped by its
 * gdbstub at the PVH entry (0x1000600, after qboot). There the RAM is saved (`pmemsave`) and logging
 * (`-d cpu,exec,nochain,int`) is switched on into a FIFO. Our CPU (core/cpu interpreter, optionally the block
 * translator) starts from that RAM image and the first record's registers on a device-less harness board and is
 * stepped in lockstep with the log: after each instruction our GPRs, rip and flags are compared with the
 * state QEMU logged before its next instruction.
 *
 * What is not a CPU bug is synchronised instead of reported (documented in README.md):
 * - hardware interrupts: QEMU's `Servicing hardware INT=0xNN` is replayed into ours at the same instruction
 *   boundary (we have no devices, so ours never raises one by itself);
 * - values from devices or the host: after an instruction that read a port or MMIO (harness bus reads are
 *   flagged), or after rdtsc/rdtscp/rdmsr/cpuid/rdrand/rdseed, a mismatch is fixed by copying QEMU's GPRs;
 * - flags-only differences are listed as warnings and copied (x86 leaves some flags undefined).
 * - REP string iterations (one log record each in QEMU) are merged into one instruction.
 *
 * Usage: deno run -A tools/difftest/difftest.ts [--max N] [--cpu qemu64] [--append STR] [--initrd FILE|none]
 *        [--kernel FILE] [--drive FILE] [--translate] [--keep-going N] [--out DIR] [--from-log FILE --ram FILE]
 *        [--start-at ADDR] (default the PVH entry; e.g. 0x40ebf0 = busybox _start: user-space mode) [--lstar ADDR]
 * @module
 */
import { Cpu, CpuFault, CS, DS, ES, FS, GS, LDTR, SS, TR } from "../../core/cpu/cpu.ts";
import { Interp } from "../../core/cpu/interp.ts";
import { attachJit, type Jit } from "../../core/cpu/jit.ts";
import { deliver, raise } from "../../core/cpu/system.ts";
import { makeHarnessBoard } from "../../core/cpu/harness.ts";
import type { AccelBoard } from "../../core/accel.ts";
import { guestFile } from "../../core/host/guest_files.ts";
import { diffState, GPR_NAMES, QemuLogParser, type TraceRecord } from "./qemu_log.ts";
import { ensureQemu, GdbClient, HmpClient } from "./qemu_ctl.ts";
import { disasm } from "./disasm.ts";

/** PVH entry point of the test kernel (qboot jumps here). */
export const PVH_ENTRY = 0x1000600;
const RAM_BYTES = 512 << 20;
const SYNC_MNEMONICS = new Set([
  "rdtsc",
  "rdtscp",
  "rdmsr",
  "cpuid",
  "rdrand",
  "rdseed",
  "in",
  "insb",
  "insd",
  "rdpkru", // PKRU is not in QEMU's log
  "xgetbv", // nor is XCR0
]);

/** Options of the lockstep comparison. */
export interface LockstepOptions {
  max: number;
  translate: boolean;
  keepGoing: number;
  log: (s: string) => void;
}

/** The software CPU on a device-less board that flags every port/MMIO read. */
export class OurCpu {
  readonly c: Cpu;
  readonly it: Interp;
  readonly tr: Jit;
  readonly ram: Uint8Array;
  /** Set when the current instruction read a port or MMIO. */
  touched = false;
  /** The last exception raised by our CPU (for reports). */
  lastFault = "";

  constructor(ramImage: Uint8Array, cpuModel: string) {
    const { board } = makeHarnessBoard({ ramBytes: RAM_BYTES, cpuModel });
    const wrapped: AccelBoard = {
      ...board,
      io: {
        read: (port: number, size: 1 | 2 | 4): number => {
          this.touched = true;
          return board.io.read(port, size);
        },
        write: (p: number, s: 1 | 2 | 4, v: number) => board.io.write(p, s, v),
      },
      mmio: {
        read: (a: number, size: 1 | 2 | 4): number => {
          this.touched = true;
          return board.mmio.read(a, size);
        },
        write: (a: number, s: 1 | 2 | 4, v: number) => board.mmio.write(a, s, v),
      },
    };
    this.ram = board.phys.u8;
    this.ram.set(ramImage.subarray(0, Math.min(ramImage.length, this.ram.length)));
    this.c = new Cpu(wrapped, 0);
    this.it = new Interp(this.c);
    this.tr = attachJit(this.c, 2);
  }

  /** Load registers, segments, tables and control registers from a full record. */
  loadRecord(r: TraceRecord): void {
    const c = this.c;
    this.setGprs(r);
    const segs: Array<[string, number]> = [
      ["ES", ES],
      ["CS", CS],
      ["SS", SS],
      ["DS", DS],
      ["FS", FS],
      ["GS", GS],
      ["LDT", LDTR],
      ["TR", TR],
    ];
    for (const [n, i] of segs) {
      const s = r.seg[n];
      if (!s) continue;
      c.segSel[i] = s[0];
      c.segBase[i] = Number(BigInt.asIntN(64, s[1]));
      c.segLimit[i] = s[2];
      c.segAttr[i] = (s[3] >> 8) & 0xf0ff;
    }
    c.gdtBase = Number(BigInt.asIntN(64, r.cr.GDT_BASE ?? 0n));
    c.gdtLimit = Number(r.cr.GDT_LIMIT ?? 0n);
    c.idtBase = Number(BigInt.asIntN(64, r.cr.IDT_BASE ?? 0n));
    c.idtLimit = Number(r.cr.IDT_LIMIT ?? 0n);
    c.cr0 = Number(r.cr.CR0 ?? 0x11n) | 0;
    c.cr2 = Number(r.cr.CR2 ?? 0n);
    c.cr3 = Number(r.cr.CR3 ?? 0n);
    c.cr4 = Number(r.cr.CR4 ?? 0n);
    c.efer = Number(r.cr.EFER ?? 0n);
    c.rip = Number(BigInt.asIntN(64, r.pc)) - c.segBase[CS];
    c.halted = false;
    c.updateMode();
    c.flushTlb();
  }

  /** Copy GPRs and flags from a record (synchronisation). */
  setGprs(r: TraceRecord): void {
    const c = this.c;
    const n = r.wide ? 16 : 8;
    for (let i = 0; i < n; i++) {
      const v = r.regs[i];
      c.r[i] = Number(v & 0xffffffffn) | 0;
      c.r[i + 16] = Number(v >> 32n) | 0;
    }
    c.setFlags(r.rflags);
  }

  /** Current state as compared with QEMU's records. */
  snapshot(): { pc: bigint; regs: bigint[]; rflags: number } {
    const c = this.c;
    const regs = GPR_NAMES.map((_, i) => (BigInt(c.r[i + 16] >>> 0) << 32n) | BigInt(c.r[i] >>> 0));
    return { pc: BigInt.asUintN(64, BigInt(c.rip + c.segBase[CS])), regs, rflags: c.getFlags() };
  }

  /** Up to 15 code bytes at linear address la (fewer when unmapped). */
  codeBytes(la: number): Uint8Array {
    const out: number[] = [];
    const cr2 = this.c.cr2; // a probe that faults must not leave its address in CR2
    for (let i = 0; i < 15; i++) {
      try {
        out.push(this.c.rd8(la + i) & 0xff);
      } catch (_e) {
        break;
      }
    }
    this.c.cr2 = cr2;
    return new Uint8Array(out);
  }

  /** Execute one instruction (a whole REP string op) or one translated block; returns instructions retired. */
  exec(useTranslator: boolean): number {
    const c = this.c;
    const start = c.rip;
    const before = c.icount;
    try {
      if (useTranslator && c.atBranch) {
        // As the run loop (mod.ts #runCpu) does: blocks only at branch targets, icount added by the caller.
        const m = this.tr.run(c, 1);
        if (m > 0) {
          c.icount += m;
          return m;
        }
      }
      c.atBranch = false;
      this.it.step();
      // REP string ops may retire in slices: finish the instruction.
      for (
        let k = 0;
        k < 1 << 20 && c.rip === start && isRepString(this.codeBytes(start + c.segBase[CS]));
        k++
      ) {
        this.it.step();
      }
      return 1;
    } catch (e) {
      if (!(e instanceof CpuFault)) throw e;
      c.atBranch = true;
      this.lastFault = `exception ${e.vec} err 0x${e.err.toString(16)} at 0x${c.rip.toString(16)} cr2 0x${
        c.cr2.toString(16)
      }`;
      if (!raise(c, e.vec, e.err)) throw new Error(`Triple fault: ${this.lastFault}`);
      // A block that faults after i instructions adds i to icount; the faulting one is logged by QEMU too.
      return c.icount - before + 1;
    }
  }

  /** Deliver an external interrupt vector now (replayed from QEMU's log). */
  interrupt(vec: number): void {
    const c = this.c;
    c.halted = false;
    c.atBranch = true;
    try {
      deliver(c, vec, -1, c.rip, 0);
    } catch (e) {
      if (!(e instanceof CpuFault)) throw e;
      raise(c, e.vec, e.err);
    }
  }
}

function lastUser(pcs: bigint[]): string {
  for (let i = pcs.length - 1; i >= 0; i--) if (pcs[i] < 0x800000000000n) return "0x" + pcs[i].toString(16);
  return "none in the last 64";
}

function sameState(a: TraceRecord, b: TraceRecord): boolean {
  if (a.rflags !== b.rflags) return false;
  for (let i = 0; i < 16; i++) if (a.regs[i] !== b.regs[i]) return false;
  return true;
}

/** True when `b` (instruction bytes) is a REP/REPNE-prefixed string instruction. */
export function isRepString(b: Uint8Array): boolean {
  let rep = false;
  for (let i = 0; i < b.length; i++) {
    const x = b[i];
    if (x === 0xf2 || x === 0xf3) rep = true;
    else if (
      x === 0x66 || x === 0x67 || x === 0x2e || x === 0x3e || x === 0x26 || x === 0x36 || x === 0x64 ||
      x === 0x65 || (x >= 0x40 && x <= 0x4f)
    ) continue;
    else return rep && ((x >= 0xa4 && x <= 0xa7) || (x >= 0xaa && x <= 0xaf) || (x >= 0x6c && x <= 0x6f));
  }
  return false;
}

/** Result of a lockstep run. */
export interface LockstepResult {
  instructions: number;
  divergences: string[];
  synced: Map<string, number>;
  flagWarnings: string[];
}

function fmtRegs(regs: bigint[], rflags: number, wide: boolean): string {
  const n = wide ? 16 : 8;
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(`${GPR_NAMES[i]}=${regs[i].toString(16)}`);
  return parts.join(" ") + ` rfl=${rflags.toString(16)}`;
}

/**
 * Step `ours` in lockstep with QEMU's records (from `next()`, first record already loaded).
 * Returns when the log ends, `max` instructions ran, or more than `keepGoing` divergences were found.
 */
export async function lockstep(
  ours: OurCpu,
  first: TraceRecord,
  next: () => Promise<TraceRecord | null>,
  opts: LockstepOptions,
): Promise<LockstepResult> {
  const res: LockstepResult = { instructions: 0, divergences: [], synced: new Map(), flagWarnings: [] };
  const ring: Array<{ pc: bigint; bytes: Uint8Array; wide: boolean }> = [];
  /** QEMU's last instruction addresses (every instruction, also inside what ours ran as one block). */
  const qring: bigint[] = [];
  let cur = first;
  let pending: TraceRecord | null = null;
  const pull = async (): Promise<TraceRecord | null> => {
    if (pending) {
      const p = pending;
      pending = null;
      return p;
    }
    return await next();
  };
  /** The record after the instruction at `r` (REP iterations merged). */
  const after = async (r: TraceRecord): Promise<TraceRecord | null> => {
    const rep = isRepString(ours.codeBytes(Number(BigInt.asIntN(64, r.pc))));
    for (;;) {
      const n = await pull();
      if (n === null) return null;
      if (rep && n.pc === r.pc && n.hwInt < 0) continue;
      // Under -icount a TB can be entered and left before its instruction ran (budget expired): QEMU logs
      // the same pc with the same state again. Drop such repeats.
      if (n.pc === r.pc && n.hwInt < 0 && sameState(n, r)) continue;
      qring.push(n.pc);
      if (qring.length > 64) qring.shift();
      return n;
    }
  };
  while (res.instructions < opts.max) {
    const pcNum = Number(BigInt.asIntN(64, cur.pc));
    const bytes = ours.codeBytes(pcNum);
    const wide = cur.wide;
    const insnText = () =>
      bytes.length ? disasm(bytes.subarray(0, 15), cur.pc, wide ? 64 : 32)[0] ?? "?" : "?";
    ring.push({ pc: cur.pc, bytes, wide });
    if (ring.length > 12) ring.shift();
    const before = ours.snapshot();
    ours.touched = false;
    let k: number;
    try {
      k = ours.exec(opts.translate);
    } catch (e) {
      res.divergences.push(
        `${e instanceof Error ? e.message : String(e)} after ${res.instructions} instructions`,
      );
      opts.log(res.divergences[res.divergences.length - 1]);
      for (const x of ring) {
        opts.log(`    0x${x.pc.toString(16)}: ${disasm(x.bytes, x.pc, x.wide ? 64 : 32)[0] ?? "?"}`);
      }
      return res;
    }
    let nx: TraceRecord | null = cur;
    for (let i = 0; i < k && nx; i++) {
      nx = await after(nx);
      if (nx && nx.hwInt >= 0 && i < k - 1) {
        res.divergences.push(
          `QEMU took interrupt 0x${nx.hwInt.toString(16)} inside a translated block; stopping`,
        );
        return res;
      }
    }
    if (nx === null) break;
    res.instructions += k;
    if (nx.hwInt >= 0) ours.interrupt(nx.hwInt);
    let d = diffState(nx, ours.snapshot());
    if (d.length && d[0].startsWith("rip") && nx.hwInt < 0) {
      // A fault on fetching the next instruction leaves no QEMU record for it (the TB is never built): the
      // handler's record comes next. Let ours fetch (and fault) once more to line up.
      const save = ours.lastFault;
      ours.lastFault = "";
      try {
        ours.exec(false);
      } catch (_e) {
        // reported below as a divergence
      }
      if (ours.lastFault !== "") res.synced.set("fetch fault", (res.synced.get("fetch fault") ?? 0) + 1);
      else ours.lastFault = save;
      d = diffState(nx, ours.snapshot());
    }
    if (d.length) {
      const text = insnText();
      const mnem = text.split(" ")[0];
      const onlyFlags = d.every((x) => x.startsWith("rflags"));
      if (ours.touched || SYNC_MNEMONICS.has(mnem) || onlyFlags) {
        const why = onlyFlags && !ours.touched && !SYNC_MNEMONICS.has(mnem)
          ? `flags after ${mnem}`
          : ours.touched
          ? "port/MMIO read"
          : mnem;
        res.synced.set(why, (res.synced.get(why) ?? 0) + 1);
        if (onlyFlags && why.startsWith("flags") && (res.synced.get(why) ?? 0) <= 3) {
          res.flagWarnings.push(`#${res.instructions} 0x${cur.pc.toString(16)} ${text}: ${d.join("; ")}`);
        }
        ours.setGprs(nx);
      } else {
        const rep = [
          `DIVERGENCE after ${res.instructions} instructions (QEMU log line ${nx.line}${
            k > 1 ? `, translated block of ${k}` : ""
          })`,
          `  instruction: 0x${cur.pc.toString(16)}: ${text}   [${
            Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ")
          }]`,
          `  before qemu: ${fmtRegs(cur.regs, cur.rflags, cur.wide)}`,
          `  before ours: ${fmtRegs(before.regs, before.rflags, cur.wide)}`,
          `  after  qemu: ${fmtRegs(nx.regs, nx.rflags, nx.wide)} rip=${nx.pc.toString(16)}`,
          ...d.map((x) => "  diff " + x),
          `  qemu's last pcs: ${qring.slice(-16, -1).map((p) => p.toString(16)).join(" ")}`,
          `  qemu's last user-mode pc: ${lastUser(qring)}`,
          "  last instructions (ours; block starts only with --translate):",
          ...ring.map((x) =>
            `    0x${x.pc.toString(16)}: ${disasm(x.bytes, x.pc, x.wide ? 64 : 32)[0] ?? "?"}`
          ),
        ].join("\n");
        res.divergences.push(rep);
        opts.log(rep);
        if (res.divergences.length > opts.keepGoing) return res;
        ours.setGprs(nx);
        if (d.some((x) => x.startsWith("rip"))) {
          ours.c.rip = Number(BigInt.asIntN(64, nx.pc)) - ours.c.segBase[CS];
          ours.c.atBranch = true;
        }
      }
    }
    cur = nx;
  }
  return res;
}

/** Async line reader over a byte stream. */
async function* lines(r: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of r) {
    buf += dec.decode(chunk, { stream: true });
    let i: number;
    let s = 0;
    while ((i = buf.indexOf("\n", s)) >= 0) {
      yield buf.slice(s, i);
      s = i + 1;
    }
    buf = buf.slice(s);
  }
  if (buf) yield buf;
}

/** Turn a line stream into a record stream. */
function recordStream(src: AsyncGenerator<string>, parser: QemuLogParser): () => Promise<TraceRecord | null> {
  let done = false;
  return async () => {
    if (done) return null;
    for (;;) {
      const n = await src.next();
      if (n.done) {
        done = true;
        return parser.flush();
      }
      const r = parser.push(n.value);
      if (r) {
        parser.full = false;
        return r;
      }
    }
  };
}

/** A u64 of the kernel image by virtual address (text mapping: VA - 0xffffffff80000000, phys_base 0). */
function readKernelU64(ram: Uint8Array, va: number): bigint {
  const pa = Number(BigInt.asUintN(64, BigInt(va)) - 0xffffffff80000000n);
  if (pa < 0 || pa + 8 > ram.length) return 0n;
  return new DataView(ram.buffer, ram.byteOffset).getBigUint64(pa, true);
}

/** Address of `name` in an ELF kernel's symbol table (via nm), or 0. */
async function kernelSymbol(path: string, name: string): Promise<number> {
  try {
    const o = await new Deno.Command("nm", { args: [path], stdout: "piped", stderr: "null" }).output();
    const m = new RegExp(`^([0-9a-f]+) \\w ${name}$`, "m").exec(new TextDecoder().decode(o.stdout));
    return m ? Number(BigInt.asIntN(64, BigInt("0x" + m[1]))) : 0;
  } catch (_e) {
    return 0;
  }
}

function arg(name: string, def: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : def;
}

async function main(): Promise<void> {
  const max = Number(arg("max", "2000000"));
  const cpu = arg("cpu", "qemu64");
  const translate = Deno.args.includes("--translate");
  const keepGoing = Number(arg("keep-going", "0"));
  const out = arg("out", await Deno.makeTempDir({ prefix: "difftest" }));
  const fromLog = arg("from-log", "");
  const startAt = Number(arg("start-at", String(PVH_ENTRY)));
  let perCpuOffset = 0;
  let lstar = Number(arg("lstar", "0"));
  const log = (s: string) => console.log(s);
  let next: () => Promise<TraceRecord | null>;
  let ramImage: Uint8Array;
  let cleanup = () => {};
  if (fromLog) {
    // Offline mode: a saved log (starting at the PVH entry) and its RAM image.
    ramImage = await Deno.readFile(arg("ram", `${out}/ram.bin`));
    const f = await Deno.open(fromLog);
    next = recordStream(lines(f.readable), new QemuLogParser(true));
  } else {
    await ensureQemu();
    const kernel = arg("kernel", await guestFile("vmlinux"));
    if (!lstar) lstar = await kernelSymbol(kernel, "entry_SYSCALL_64");
    perCpuOffset = await kernelSymbol(kernel, "__per_cpu_offset");
    const initrdArg = arg("initrd", "");
    const initrd = initrdArg === "none" ? "" : initrdArg || await guestFile("initramfs.cpio.gz");
    const append = arg("append", "earlyprintk=ttyS0 console=ttyS0 reboot=t");
    const drive = arg("drive", "");
    const port = 20000 + Math.floor(Math.random() * 20000);
    const mon = `${out}/mon.sock`;
    const fifo = `${out}/log.fifo`;
    await new Deno.Command("mkfifo", { args: [fifo] }).output();
    const qargs = [
      ...["-M", "microvm,acpi=off", "-accel", "tcg", "-cpu", cpu, "-m", "512", "-smp", "1"],
      ...["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"],
      ...["-serial", `file:${out}/serial.txt`, "-kernel", kernel, "-append", append],
      ...(initrd ? ["-initrd", initrd] : []),
      ...(drive
        ? [
          "-drive",
          `file=${drive},if=none,id=d0,format=raw,snapshot=on`,
          "-device",
          "virtio-blk-device,drive=d0",
        ]
        : []),
      ...["-icount", "shift=0,sleep=off", "-singlestep", "-S", "-gdb", `tcp:127.0.0.1:${port}`],
      ...["-monitor", `unix:${mon},server=on,wait=off`],
    ];
    log(`qemu-system-x86_64 ${qargs.join(" ")}`);
    const child = new Deno.Command("qemu-system-x86_64", { args: qargs, stdout: "null", stderr: "inherit" })
      .spawn();
    cleanup = () => {
      try {
        child.kill("SIGKILL");
      } catch (_e) {
        // already gone
      }
    };
    const gdb = await GdbClient.connect(port);
    const hmp = await HmpClient.connect(mon);
    const entry = startAt.toString(16);
    if ((await gdb.command(`Z1,${entry},1`)) !== "OK") throw new Error("Cannot set the PVH-entry breakpoint");
    const stop = await gdb.command("c");
    log(`gdbstub stop: ${stop}`);
    await gdb.command(`z1,${entry},1`);
    await hmp.command(`pmemsave 0 0x${RAM_BYTES.toString(16)} "${out}/ram.bin"`);
    ramImage = await Deno.readFile(`${out}/ram.bin`);
    // Open the FIFO for reading while QEMU opens it for writing (both block until the other side arrives).
    const reader = Deno.open(fifo, { read: true });
    await hmp.command(`logfile ${fifo}`);
    await hmp.command("log cpu,exec,nochain,int");
    const f = await reader;
    await gdb.command("D");
    gdb.close();
    next = recordStream(lines(f.readable), new QemuLogParser(true));
  }
  try {
    const first = await next();
    if (!first) throw new Error("Cannot read the first QEMU record");
    log(`first record: pc 0x${first.pc.toString(16)} (${first.wide ? "64" : "32"}-bit)`);
    const ours = new OurCpu(ramImage, cpu);
    ours.loadRecord(first);
    // Linux's syscall MSRs (arch/x86/kernel/cpu/common.c syscall_init) and the swapgs base from the gdbstub.
    ours.c.star = 0x0023001000000000n;
    ours.c.sfmask = 0x257fd5;
    if (lstar) ours.c.lstar = lstar;
    // KERNEL_GS_BASE is not in the log: CPU 0's per-CPU base is __per_cpu_offset[0] (x86-64 zero-based
    // per-CPU area). Whichever of GS_BASE/KERNEL_GS_BASE is not the current GS base gets it.
    // (Only when starting after boot: at the PVH entry the kernel has not written the MSR yet.)
    const pco = perCpuOffset && startAt !== PVH_ENTRY ? readKernelU64(ramImage, perCpuOffset) : 0n;
    if (pco) {
      const gsNow = BigInt.asUintN(64, BigInt(ours.c.segBase[GS]));
      ours.c.kernelGsBase = gsNow === pco ? 0 : Number(BigInt.asIntN(64, pco));
      log(`per-CPU base 0x${pco.toString(16)}, GS base now 0x${gsNow.toString(16)}`);
    }
    const res = await lockstep(ours, first, next, { max, translate, keepGoing, log });
    log(`compared ${res.instructions} instructions; ${res.divergences.length} divergence(s)`);
    log(`synchronised: ${JSON.stringify(Object.fromEntries(res.synced))}`);
    if (res.flagWarnings.length) log(`flag-only differences (first 3 per instruction kind):`);
    for (const w of res.flagWarnings) log("  " + w);
  } finally {
    cleanup();
  }
  Deno.exit(0);
}

if (import.meta.main) await main();
