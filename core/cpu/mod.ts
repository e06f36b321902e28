/**
 * The software x86-64 CPU (`-accel tcg`): an interpreter of real, protected and long mode with
 * 4-level paging, driven by a run loop that interleaves vCPUs, fires the virtual clock's timers,
 * delivers LAPIC interrupts, sleeps on HLT and yields to the JS event loop every few milliseconds.
 *
 * Files: cpu.ts (state, lazy flags, TLB/paging, memory), interp.ts (decoder + integer ISA),
 * alu.ts, string.ts, system.ts (segments, interrupts, MSRs, CRs), sse.ts (SSE2/FXSAVE), x87.ts + x87_stack.ts +
 * x87_mem.ts + x87_trans.ts + f80.ts (the x87 FPU, 80-bit softfloat), mmx.ts (MMX),
 * cpuid.ts (CPU model), jit.ts + jit_gen.ts (the JIT: hot blocks compiled to JS), disasm.ts (in_asm),
 * harness.ts (stand-alone boot without devices/; tools/cpu/run_linux.ts drives it).
 *
 * @example
 * ```ts ignore
 * const accel = new SoftCpuAccelerator({ log: (m) => console.error(m) });
 * accel.init(board.accelBoard(), boot.entry);   // entry from core/boot loadLinux()
 * const exit = await accel.run();               // { kind: "shutdown", reason: "triple-fault" } ...
 * ```
 * @module
 */
import {
  type AccelBoard,
  type Accelerator,
  type CpuEntryState,
  type CpuRegisters,
  type DebugRegisters,
  type DebugSettings,
  GPR_NAMES,
  type RunExit,
  type SegmentState,
} from "../accel.ts";
import { Cpu, CpuFault, CS, DS, ES, EXC_NMI, F_IF, FS, GS, LDTR, SS, TR } from "./cpu.ts";
import { Interp } from "./interp.ts";
import { Jit } from "./jit.ts";
import { formatJitInfo } from "./jit_info.ts";
import { deliver, raise } from "./system.ts";
import { CpuDebugger, readDebugRegisters, writeDebugRegisters } from "./debug.ts";
import { loadCpuState, saveCpuState } from "./state.ts";
import { StateError } from "../types.ts";

export { Cpu, CpuFault } from "./cpu.ts";
export { Interp } from "./interp.ts";

/** Options for the software CPU. */
export interface SoftCpuOptions {
  /** Sink for `-d unimp`/`-d int` style messages (unimplemented opcodes, triple faults). */
  log?: (msg: string) => void;
  /** Per-instruction trace hook (`-d in_asm`-like; slow). */
  trace?: (cpu: number, rip: number) => void;
  /**
   * `-d in_asm`: receives the disassembly of each instruction the first time it runs (per address space),
   * with QEMU's `IN:` block headers (slow; disables translation).
   */
  inAsm?: (line: string) => void;
  /** Log every interrupt/exception delivered (`-d int`). */
  logInterrupts?: boolean;
  /** Called with (vCPU, rip) about every 512 instructions: a sampling profiler hook. */
  sample?: (cpu: number, rip: number) => void;
  /**
   * Compile hot 32/64-bit code to JS (jit.ts; default true). False (`-accel tcg,jit=off`) interprets
   * every instruction: the reference behaviour. Tracing and `-d in_asm` always interpret.
   */
  jit?: boolean;
  /** Visits of a branch target before the JIT compiles it (default jit.ts JIT_HOT; benchmarks, tests). */
  jitHot?: number;
  /** Host milliseconds to run before yielding to the event loop (default 4). */
  sliceMs?: number;
  /**
   * A cheap async host operation that makes the event loop poll for I/O (e.g. `() => Deno.stat("/")`),
   * awaited every few ms of guest run time; without it a setTimeout(0) (~2 ms each) is used every 25 ms.
   */
  pollHost?: () => Promise<unknown>;
}

interface SteppedClock {
  nextDeadline?: () => number;
  runDue?: () => void;
  onEarlierDeadline?: (() => void) | null;
}

/** Longest run (host ms) between yields that let the host poll I/O: with SoftCpuOptions.pollHost, else by timer. */
const POLL_HOST_MS = 8, POLL_TIMER_MS = 25;

const SEG_KEYS = ["es", "cs", "ss", "ds", "fs", "gs"] as const;

/** The `-accel tcg` accelerator: a software x86-64 CPU per vCPU. */
export class SoftCpuAccelerator implements Accelerator {
  readonly name = "tcg" as const;
  #board: AccelBoard | null = null;
  #cpus: Cpu[] = [];
  #interps: Interp[] = [];
  #jit: Jit | null = null;
  #stop = false;
  #running = false;
  readonly #opts: SoftCpuOptions;
  #wake: (() => void) | null = null;
  /** Breakpoints/watchpoints/single-step (debug.ts); null when none is set (the run loop's fast case). */
  #dbg: CpuDebugger | null = null;

  constructor(opts: SoftCpuOptions = {}) {
    this.#opts = { ...opts };
  }

  /** The vCPU objects (tests, debugging). */
  get cpus(): readonly Cpu[] {
    return this.#cpus;
  }

  /** The JIT's block cache (null before init), for `info jit` and tests. */
  get jit(): Jit | null {
    return this.#jit;
  }

  /** `info jit` text. */
  infoJit(): string {
    const j = this.#jit;
    if (!j) return "JIT not initialised\n";
    return formatJitInfo(j.stats, this.icount, j.enabled);
  }

  /** Turn the JIT on or off for every vCPU (takes effect at the next block boundary). */
  setJit(on: boolean): void {
    this.#opts.jit = on;
    if (this.#jit) this.#jit.enabled = on && !this.#opts.trace && !this.#opts.inAsm;
  }

  /** Install (or clear) the sampling profiler hook after construction (see SoftCpuOptions.sample). */
  setSampler(fn: ((cpu: number, rip: number) => void) | null): void {
    if (fn) this.#opts.sample = fn;
    else delete this.#opts.sample;
  }

  /** Total instructions retired by all vCPUs. */
  get icount(): number {
    let n = 0;
    for (const c of this.#cpus) n += c.icount;
    return n;
  }

  init(board: AccelBoard, entry: CpuEntryState): void {
    this.#board = board;
    board.msi = null;
    this.#cpus = [];
    this.#interps = [];
    const jit = new Jit(board.phys.u8.length, this.#opts.jitHot);
    jit.enabled = this.#opts.jit !== false && !this.#opts.trace && !this.#opts.inAsm;
    this.#jit = jit;
    // Device DMA into guest RAM invalidates translated code it overwrites (core/memory.ts GuestRam.onWrite).
    const ram = board.ram as { onWrite?: ((off: number, len: number) => void) | null };
    if ("onWrite" in ram) ram.onWrite = (off, len) => jit.dmaWrite(off, len);
    const n = Math.max(1, board.ncpus);
    for (let i = 0; i < n; i++) {
      const c = new Cpu(board, i);
      const log = this.#opts.log;
      if (log) c.log = (m) => log(`cpu${i}: ${m}`);
      const it = new Interp(c);
      const tr = this.#opts.trace;
      if (tr) it.trace = (cc) => tr(i, cc.rip);
      this.#cpus.push(c);
      this.#interps.push(it);
      jit.attach(c);
    }
    this.reset(entry);
  }

  reset(entry: CpuEntryState): void {
    this.#jit?.flush();
    this.#cpus.forEach((c, i) => {
      c.resetState();
      c.lapic?.reset();
      if (i === 0) applyEntry(c, entry);
      else c.waitSipi = true;
    });
  }

  requestStop(): void {
    this.#stop = true;
    this.#wake?.();
  }

  destroy(): void {
    this.#stop = true;
    this.#wake?.();
  }

  setDebug(d: DebugSettings | null): void {
    this.#dbg?.detach();
    this.#dbg = null;
    if (!d) return;
    const dbg = new CpuDebugger(d, this.#cpus);
    if (dbg.active) this.#dbg = dbg;
    else dbg.detach();
  }

  debugRegisters(index: number): DebugRegisters {
    const c = this.#cpus[index];
    if (!c) throw new RangeError(`no vCPU ${index}`);
    return readDebugRegisters(c);
  }

  setDebugRegisters(index: number, r: DebugRegisters): void {
    const c = this.#cpus[index];
    if (!c) throw new RangeError(`no vCPU ${index}`);
    writeDebugRegisters(c, r);
  }

  saveState(): unknown {
    return { ncpus: this.#cpus.length, cpus: this.#cpus.map((c) => saveCpuState(c)) };
  }

  loadState(state: unknown): void {
    const s = state as { ncpus?: unknown; cpus?: unknown };
    if (
      !s || s.ncpus !== this.#cpus.length || !Array.isArray(s.cpus) || s.cpus.length !== this.#cpus.length
    ) {
      throw new StateError(`Invalid vCPU state: expected ${this.#cpus.length} vCPUs`);
    }
    // Check every vCPU before changing any (a failed load leaves the machine as it was).
    const scratch = this.#cpus.map((c) => saveCpuState(c));
    try {
      this.#cpus.forEach((c, i) => loadCpuState(c, (s.cpus as unknown[])[i]));
    } catch (e) {
      this.#cpus.forEach((c, i) => loadCpuState(c, scratch[i]));
      throw e;
    }
    this.#jit?.flush();
  }

  setDirtyLog(bits: Uint8Array | null): void {
    for (const c of this.#cpus) {
      c.dirty = bits;
      c.flushTlb();
    }
  }

  registers(index: number): CpuRegisters {
    const c = this.#cpus[index];
    if (!c) throw new RangeError(`no vCPU ${index}`);
    return cpuRegisters(c);
  }

  async run(): Promise<RunExit> {
    const board = this.#board;
    if (!board) return { kind: "internal-error", message: "accelerator not initialised" };
    if (this.#running) return { kind: "internal-error", message: "already running" };
    this.#running = true;
    this.#stop = false;
    const inAsm = this.#opts.inAsm;
    if (inAsm) {
      const { Disassembler } = await import("./disasm.ts");
      const d = new Disassembler();
      // Like QEMU's in_asm (one listing per translated block, not per execution): each instruction is
      // listed the first time it runs, per address space for user code; a new run of them gets a header.
      const kernelSeen = new Set<number>();
      const userSeen = new Map<number, Set<number>>();
      this.#interps.forEach((it, i) => {
        const tr = this.#opts.trace;
        let next = NaN;
        it.trace = (c) => {
          tr?.(i, c.rip);
          let seen = kernelSeen;
          if (c.rip >= 0) {
            seen = userSeen.get(c.cr3) ?? new Set<number>();
            if (seen.size === 0) userSeen.set(c.cr3, seen);
          }
          if (seen.has(c.rip)) return;
          seen.add(c.rip);
          const line = d.line(c);
          inAsm(c.rip === next ? line : `----------------\nIN: cpu${i}\n${line}`);
          next = c.rip + d.length;
        };
      });
      if (this.#jit) this.#jit.enabled = false;
    }
    const chan = new MessageChannel();
    let resolveYield: (() => void) | null = null;
    chan.port1.onmessage = () => {
      const r = resolveYield;
      resolveYield = null;
      r?.();
    };
    // A MessageChannel round trip (~10 µs) never lets the host poll for new I/O (sockets, stdin), nor does
    // setImmediate reliably: at least every few ms of running, yield through an operation that parks the
    // host event loop: the runner's pollHost (an async file op, ~0.1 ms) or else setTimeout(0) (~2 ms).
    const pollHost = this.#opts.pollHost;
    const pollMs = pollHost ? POLL_HOST_MS : POLL_TIMER_MS;
    let lastPoll = performance.now();
    const polled = () => {
      lastPoll = performance.now();
    };
    const yieldNow = (): Promise<unknown> => {
      if (performance.now() - lastPoll >= pollMs) {
        if (pollHost) return pollHost().then(polled, polled);
        return new Promise<void>((res) => {
          setTimeout(() => {
            polled();
            res();
          }, 0);
        });
      }
      return new Promise<void>((res) => {
        resolveYield = res;
        chan.port2.postMessage(0);
      });
    };

    const clock = board.clock as unknown as SteppedClock;
    // LAPICs that can wake a halted vCPU (devices/lapic.ts `onWake`) end the HLT sleep at once.
    for (const l of board.lapics) {
      if ("onWake" in l) (l as { onWake: (() => void) | null }).onWake = () => this.#wake?.();
    }
    // So does a device timer armed from host I/O meanwhile (e.g. the UART's receive-FIFO timeout).
    if ("onEarlierDeadline" in clock) clock.onEarlierDeadline = () => this.#wake?.();
    const sliceMs = this.#opts.sliceMs ?? 4;
    try {
      if (this.#dbg !== null && this.#dbg.step >= 0) return await this.#singleStep(this.#dbg);
      for (;;) {
        if (this.#stop) return { kind: "paused" };
        const end = performance.now() + sliceMs;
        let allIdle = true;
        do {
          allIdle = true;
          for (let i = 0; i < this.#cpus.length; i++) {
            const r = this.#runCpu(i, 20000, end);
            if (r === -1) return { kind: "shutdown", reason: "triple-fault" };
            if (r === 2) return this.#debugExit();
            if (r === 0) allIdle = false;
            // requestStop() from an I/O handler ends the slice at that instruction's boundary (KVM exits per PIO).
            if (this.#stop) return { kind: "paused" };
          }
          clock.runDue?.();
        } while (!allIdle && performance.now() < end && !this.#stop);
        if (allIdle) {
          // Every vCPU halted: sleep until the next timer deadline (bounded, to poll host I/O).
          let waitMs = 10;
          const dl = clock.nextDeadline?.();
          if (dl !== undefined && Number.isFinite(dl)) {
            waitMs = Math.max(0, Math.min(10, (dl - board.clock.now()) / 1e6));
          }
          if (waitMs > 0.05) {
            await new Promise<void>((res) => {
              const t = setTimeout(() => {
                this.#wake = null;
                res();
              }, waitMs);
              this.#wake = () => {
                clearTimeout(t);
                this.#wake = null;
                res();
              };
            });
            polled();
          } else await yieldNow();
          clock.runDue?.();
        } else await yieldNow();
      }
    } finally {
      chan.port1.close();
      chan.port2.close();
      this.#running = false;
    }
  }

  /**
   * Run vCPU i for up to `budget` instructions or until host time `deadline` (checked between chunks: a
   * REP string slice counts as one instruction). Returns 0 ran, 1 idle (halted), -1 triple fault, 2 stopped for
   * the debugger (breakpoint or watchpoint: `#dbg.hit`).
   */
  #runCpu(i: number, budget: number, deadline: number): number {
    const c = this.#cpus[i];
    const it = this.#interps[i];
    const jit = this.#jit!;
    const lapic = c.lapic;
    if (lapic) {
      const s = lapic.takeStartup();
      if (s === -2) {
        c.resetState();
        c.waitSipi = true;
      } else if (s >= 0 && c.waitSipi) {
        startAp(c, s);
      }
    }
    if (c.waitSipi) return 1;
    const dbg = this.#dbg;
    while (budget > 0) {
      // Interrupt window.
      if (!c.intShadow && lapic) {
        if (!c.nmiBlocked && lapic.takeNmi()) {
          c.halted = false;
          c.nmiBlocked = true;
          if (!this.#deliver(c, EXC_NMI)) return -1;
        } else if ((c.flags & F_IF) && lapic.hasInterrupt()) {
          const vec = lapic.acknowledge();
          if (vec >= 0) {
            c.halted = false;
            if (this.#opts.logInterrupts) {
              this.#opts.log?.(`cpu${i}: interrupt 0x${vec.toString(16)} at ${c.rip.toString(16)}`);
            }
            if (!this.#deliver(c, vec)) return -1;
          }
        }
      }
      if (c.halted) return 1;
      const n = c.intShadow ? 1 : budget < 512 ? budget : 512;
      this.#opts.sample?.(i, c.rip);
      c.intShadow = false;
      let k = 0;
      try {
        while (k < n) {
          // Debugging: breakpoints are checked before each instruction, so translated blocks are not run.
          if (dbg !== null && dbg.atBreakpoint(c, i)) break;
          const m = c.atBranch && dbg === null && n > 1 && !c.segChk ? jit.run(c, n - k) : 0;
          if (m > 0) {
            c.icount += m;
            k += m;
          } else {
            // After a block stopped before an instruction the JIT does not handle, re-enter right after it.
            const again = c.jitAfter;
            c.jitAfter = false;
            c.atBranch = false;
            it.step();
            if (again) c.atBranch = true;
            k++;
          }
          if (c.brk) {
            c.brk = false;
            break;
          }
        }
      } catch (e) {
        if (!(e instanceof CpuFault)) throw e;
        if (this.#opts.logInterrupts) {
          this.#opts.log?.(
            `cpu${i}: exception ${e.vec} err ${e.err} at ${c.rip.toString(16)} cr2=${c.cr2.toString(16)}`,
          );
        }
        c.atBranch = true;
        if (!raise(c, e.vec, e.err)) {
          this.#opts.log?.(`cpu${i}: triple fault at ${c.rip.toString(16)}`);
          return -1;
        }
        k++;
      }
      budget -= k;
      if (dbg !== null && dbg.hit !== null) return 2;
      if (c.halted || this.#stop || performance.now() >= deadline) return 0;
    }
    return 0;
  }

  /** The debugger's stop: clears the hit so that the next run() starts afresh. */
  #debugExit(): RunExit {
    const dbg = this.#dbg;
    const hit = dbg?.hit ?? null;
    if (dbg) dbg.hit = null;
    return hit ?? { kind: "paused" };
  }

  /**
   * Execute one instruction on vCPU `dbg.step` only (QEMU's default SSTEP_ENABLE|NOIRQ|NOTIMER): no interrupt
   * is taken and no timer fires, unless the vCPU is halted: then it waits for its next interrupt and stops at
   * the handler's first instruction.
   */
  async #singleStep(dbg: CpuDebugger): Promise<RunExit> {
    const i = dbg.step;
    const c = this.#cpus[i];
    const board = this.#board;
    const step: RunExit = { kind: "debug", cpu: i, reason: "step" };
    if (!c || !board || c.waitSipi) return step;
    const lapic = c.lapic;
    const clock = board.clock as unknown as SteppedClock;
    while (c.halted) {
      if (this.#stop) return { kind: "paused" };
      clock.runDue?.();
      if (lapic && (c.flags & F_IF) && lapic.hasInterrupt()) {
        const vec = lapic.acknowledge();
        if (vec >= 0) {
          c.halted = false;
          return this.#deliver(c, vec) ? step : { kind: "shutdown", reason: "triple-fault" };
        }
      }
      await new Promise((res) => setTimeout(res, 1));
    }
    c.intShadow = false;
    try {
      this.#interps[i].step();
    } catch (e) {
      if (!(e instanceof CpuFault)) throw e;
      c.atBranch = true;
      if (!raise(c, e.vec, e.err)) return { kind: "shutdown", reason: "triple-fault" };
    }
    c.brk = false;
    c.atBranch = true;
    const hit = dbg.hit;
    dbg.hit = null;
    return hit?.reason === "watchpoint" ? { ...hit, cpu: i } : step;
  }

  #deliver(c: Cpu, vec: number): boolean {
    c.atBranch = true;
    try {
      deliver(c, vec, -1, c.rip, 0);
      return true;
    } catch (e) {
      if (!(e instanceof CpuFault)) throw e;
      return raise(c, e.vec, e.err);
    }
  }
}

/** Start an AP at SIPI vector v: real mode, CS = v << 8, IP = 0 (SDM 8.4.4). */
function startAp(c: Cpu, v: number): void {
  c.resetState();
  c.waitSipi = false;
  c.segSel[CS] = v << 8;
  c.segBase[CS] = v << 12;
  c.rip = 0;
  c.updateMode();
}

function loadSegState(c: Cpu, i: number, s: SegmentState): void {
  c.segSel[i] = s.selector;
  c.segBase[i] = s.base;
  c.segLimit[i] = s.limit;
  c.segAttr[i] = s.attrs;
}

/** Apply a boot loader's entry state to vCPU c. */
export function applyEntry(c: Cpu, e: CpuEntryState): void {
  GPR_NAMES.forEach((n, i) => {
    const v = BigInt.asUintN(64, e.regs[n] ?? 0n);
    c.r[i] = Number(v & 0xffffffffn) | 0;
    c.r[i + 16] = Number(v >> 32n) | 0;
  });
  loadSegState(c, ES, e.es);
  loadSegState(c, CS, e.cs);
  loadSegState(c, SS, e.ss);
  loadSegState(c, DS, e.ds);
  loadSegState(c, FS, e.fs);
  loadSegState(c, GS, e.gs);
  loadSegState(c, TR, e.tr);
  loadSegState(c, LDTR, e.ldtr);
  c.gdtBase = e.gdt.base;
  c.gdtLimit = e.gdt.limit;
  c.idtBase = e.idt.base;
  c.idtLimit = e.idt.limit;
  c.cr0 = Number(e.cr0 & 0xffffffffn) | 0;
  c.cr3 = Number(e.cr3);
  c.cr4 = Number(e.cr4);
  c.efer = Number(e.efer);
  c.setFlags(Number(e.regs.rflags ?? 2n));
  c.rip = Number(BigInt.asIntN(64, e.regs.rip ?? 0n));
  c.halted = false;
  c.waitSipi = false;
  c.updateMode();
  c.flushTlb();
}

/** Snapshot of vCPU c's registers. */
export function cpuRegisters(c: Cpu): CpuRegisters {
  const gpr: Record<string, bigint> = {};
  GPR_NAMES.forEach((n, i) => {
    gpr[n] = (BigInt(c.r[i + 16] >>> 0) << 32n) | BigInt(c.r[i] >>> 0);
  });
  gpr.rip = BigInt.asUintN(64, BigInt(c.rip));
  gpr.rflags = BigInt(c.getFlags() >>> 0);
  const seg = (i: number): SegmentState => ({
    selector: c.segSel[i],
    // Sign-extended canonical addresses stay exact as negative numbers (BigInt.asUintN(64, …) reads them).
    base: c.segBase[i],
    limit: c.segLimit[i],
    attrs: c.segAttr[i],
  });
  const s: Record<string, SegmentState> = {};
  SEG_KEYS.forEach((k, i) => s[k] = seg(i));
  return {
    gpr,
    seg: { es: s.es, cs: s.cs, ss: s.ss, ds: s.ds, fs: s.fs, gs: s.gs, ldt: seg(LDTR), tr: seg(TR) },
    gdt: { base: c.gdtBase, limit: c.gdtLimit },
    idt: { base: c.idtBase, limit: c.idtLimit },
    cr: {
      cr0: BigInt(c.cr0 >>> 0),
      cr2: BigInt.asUintN(64, BigInt(c.cr2)),
      cr3: BigInt(c.cr3),
      cr4: BigInt(c.cr4 >>> 0),
      cr8: BigInt(c.cr8),
    },
    efer: BigInt(c.efer),
    halted: c.halted,
  };
}
