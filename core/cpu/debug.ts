/**
 * Debugger support for the software CPU (the gdbstub's `setDebug`): breakpoints kept by the CPU and checked
 * before each instruction, data watchpoints on the memory slow path (watched pages are kept out of the TLB's
 * fast path through `Cpu.dbgPages`, and `Cpu.dbgWatch` sees every slow-path access), and the full register
 * file in the layout of core/accel.ts `DebugRegisters`.
 *
 * The run loop (mod.ts) holds a `CpuDebugger` only while a breakpoint, watchpoint or single-step is active;
 * then it runs the interpreter only (no translated blocks), so every instruction start is seen here.
 * @module
 */
import type { DebugExit, DebugRegisters, DebugSettings, DebugWatch } from "../accel.ts";
import { type Cpu, CS, DS, ES, FS, GS, SS } from "./cpu.ts";

/** TLB permission bits (cpu.ts P_KR|P_UR and P_KW|P_UW). */
const PERM_READ = 1 | 4, PERM_WRITE = 2 | 8;

/** One debugging session's state over all vCPUs. */
export class CpuDebugger {
  readonly bps: ReadonlySet<number>;
  readonly watches: readonly DebugWatch[];
  /** vCPU to single-step, or -1. */
  readonly step: number;
  /** Why the vCPUs must stop (set by a watch hit or a breakpoint), consumed by the run loop. */
  hit: DebugExit | null = null;
  readonly #cpus: readonly Cpu[];

  constructor(d: DebugSettings, cpus: readonly Cpu[]) {
    this.bps = new Set(d.breakpoints);
    this.watches = d.watchpoints.map((w) => ({ ...w }));
    this.step = d.singleStep;
    this.#cpus = cpus;
    const pages = new Map<number, number>();
    for (const w of this.watches) {
      const strip = w.type === "write" ? PERM_WRITE : w.type === "read" ? PERM_READ : PERM_READ | PERM_WRITE;
      const last = Math.floor((w.addr + Math.max(1, w.len) - 1) / 4096);
      for (let vpn = Math.floor(w.addr / 4096); vpn <= last; vpn++) {
        pages.set(vpn, (pages.get(vpn) ?? 0) | strip);
      }
    }
    cpus.forEach((c, i) => {
      c.dbgPages = pages.size ? pages : null;
      c.dbgWatch = this.watches.length ? (la, acc) => this.#access(i, la, acc) : null;
      c.flushTlb();
    });
  }

  /** True when any breakpoint, watchpoint or single-step is set (otherwise the run loop needs no debugger). */
  get active(): boolean {
    return this.bps.size > 0 || this.watches.length > 0 || this.step >= 0;
  }

  /** Remove the hooks from every vCPU. */
  detach(): void {
    for (const c of this.#cpus) {
      c.dbgPages = null;
      c.dbgWatch = null;
      c.flushTlb();
    }
  }

  /** Before vCPU `i` runs its next instruction: true (and `hit` set) when a breakpoint is there. */
  atBreakpoint(c: Cpu, i: number): boolean {
    if (this.bps.size === 0) return false;
    const la = c.long64 ? c.rip : c.segBase[CS] + c.rip;
    if (!this.bps.has(la)) return false;
    this.hit = { kind: "debug", cpu: i, reason: "breakpoint" };
    return true;
  }

  #access(i: number, la: number, acc: number): void {
    if (this.hit !== null) return;
    for (const w of this.watches) {
      if (la < w.addr || la >= w.addr + w.len) continue;
      if (w.type === "write" ? acc !== 1 : w.type === "read" ? acc !== 0 : false) continue;
      this.hit = { kind: "debug", cpu: i, reason: "watchpoint", watch: { ...w } };
      // End the run slice after this instruction: the stop is reported with the access done, as x86 does.
      this.#cpus[i].brk = true;
      return;
    }
  }
}

const u64 = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
const lin = (v: number): bigint => BigInt.asUintN(64, BigInt(v));
const SEL_ORDER = [ES, CS, SS, DS, FS, GS];

/** The register file of vCPU `c` (FXSAVE's ST(i)/XMM layout). */
export function readDebugRegisters(c: Cpu): DebugRegisters {
  const gpr: bigint[] = [];
  for (let i = 0; i < 16; i++) gpr.push(u64(c.r[i], c.r[i + 16]));
  const st = new Uint8Array(80);
  for (let i = 0; i < 8; i++) st.set(c.fpr.subarray(i * 16, i * 16 + 10), i * 10);
  const xmm = new Uint8Array(256);
  new Int32Array(xmm.buffer).set(c.xmm);
  return {
    gpr,
    rip: lin(c.rip),
    rflags: BigInt(c.getFlags() >>> 0),
    sel: SEL_ORDER.map((s) => c.segSel[s]),
    fsBase: lin(c.segBase[FS]),
    gsBase: lin(c.segBase[GS]),
    kernelGsBase: lin(c.kernelGsBase),
    cr0: BigInt(c.cr0 >>> 0),
    cr2: lin(c.cr2),
    cr3: BigInt(c.cr3),
    cr4: BigInt(c.cr4 >>> 0),
    cr8: BigInt(c.cr8),
    efer: BigInt(c.efer),
    fcw: c.fpuCw,
    fsw: c.fpuSw,
    ftw: c.fpuTw & 0xff,
    st,
    xmm,
    mxcsr: c.mxcsr,
    halted: c.halted || c.waitSipi,
  };
}

const num = (v: bigint): number => Number(BigInt.asIntN(64, v));

/** Write a register file back into vCPU `c` (only what changed, so derived state stays intact). */
export function writeDebugRegisters(c: Cpu, r: DebugRegisters): void {
  const old = readDebugRegisters(c);
  for (let i = 0; i < 16; i++) {
    if (r.gpr[i] === old.gpr[i]) continue;
    const v = BigInt.asUintN(64, r.gpr[i]);
    c.r[i] = Number(v & 0xffffffffn) | 0;
    c.r[i + 16] = Number(v >> 32n) | 0;
  }
  if (r.rip !== old.rip) {
    c.rip = num(r.rip);
    c.atBranch = true;
  }
  if (r.rflags !== old.rflags) c.setFlags(Number(r.rflags & 0xffffffffn));
  SEL_ORDER.forEach((s, i) => {
    if (r.sel[i] !== old.sel[i]) c.segSel[s] = r.sel[i] & 0xffff;
  });
  if (r.fsBase !== old.fsBase) c.segBase[FS] = num(r.fsBase);
  if (r.gsBase !== old.gsBase) c.segBase[GS] = num(r.gsBase);
  if (r.kernelGsBase !== old.kernelGsBase) c.kernelGsBase = num(r.kernelGsBase);
  let mode = false;
  if (r.cr0 !== old.cr0) (c.cr0 = Number(r.cr0 & 0xffffffffn) | 0, mode = true);
  if (r.cr2 !== old.cr2) c.cr2 = num(r.cr2);
  if (r.cr3 !== old.cr3) (c.cr3 = Number(r.cr3 & 0xffffffffffffn), mode = true);
  if (r.cr4 !== old.cr4) (c.cr4 = Number(r.cr4 & 0xffffffffn), mode = true);
  if (r.cr8 !== old.cr8) c.cr8 = Number(r.cr8 & 0xfn);
  if (r.efer !== old.efer) (c.efer = Number(r.efer & 0xffffffffn), mode = true);
  if (mode) {
    c.updateMode();
    c.flushTlb();
  }
  c.fpuCw = r.fcw & 0xffff;
  c.fpuSw = r.fsw & 0xffff;
  c.fpuTw = r.ftw & 0xff;
  for (let i = 0; i < 8; i++) c.fpr.set(r.st.subarray(i * 10, i * 10 + 10), i * 16);
  c.xmm.set(new Int32Array(r.xmm.slice().buffer));
  c.mxcsr = r.mxcsr >>> 0;
}
