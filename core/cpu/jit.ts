/**
 * The JIT: hot guest basic blocks (32-bit protected and 64-bit mode) compiled to JS functions by jit_gen.ts,
 * run back to back with a bounded instruction budget.
 *
 * - Blocks are keyed by the physical address of their first byte plus the CPU mode (64-bit / 32-bit,
 *   stack size, CS base), so they survive CR3 switches and are shared by all vCPUs. Each vCPU finds them
 *   through a small direct-mapped table keyed by linear rip; that table, and the successor cached on each
 *   block (its "chain": one for the fall-through/taken target, one per indirect site), are stamped with the
 *   vCPU's TLB generation, which every TLB flush (CR3 write, INVLPG, paging-mode change) bumps. So a
 *   remapped page is looked up again through the page tables; nothing is compared byte by byte.
 * - Write tracking: a physical page holding translated code is marked in `codePages`; the software TLB
 *   never grants write permission to such a page (cpu.ts fillTlb), so guest stores to it take the slow path,
 *   which calls `Cpu.codeWrite` and invalidates every block on that page (QEMU's
 *   tb_invalidate_phys_page_range). Device DMA through GuestRam reaches `dmaWrite` through a hook.
 * - A block executes only if it starts in a page the current CPL may execute (the table entry records
 *   the permission mask it was found with).
 * - A store that invalidates code sets `Cpu.smc`; a running block checks it after each storing instruction
 *   and leaves, so even code patched by the block that runs it takes effect at the next instruction.
 * - A page mapped at two linear addresses gets a block per address (rip constants are absolute).
 * - Blocks are superblocks: a not-taken Jcc falls through inside the block (side exit when taken), and a
 *   direct JMP/CALL into the same page is followed (jit_gen.ts).
 * - Instructions the generator does not emit inline (REP string ops, BT*, CMPXCHG, SSE, port I/O, ...) are run
 *   by the interpreter from inside the block (jit_interp.ts); control transfers and mode changes end it.
 * - A block whose branch goes back to its own first instruction loops inside its function while the run
 *   budget lasts (locals T: instructions retired by earlier passes, B: the budget).
 * - Cold code stays in the interpreter: a rip is translated after JIT_HOT visits at a branch target
 *   (compiling one block costs 0.3-1.5 ms of V8 parse/compile on this host: see bench/results.md).
 * - The cache is bounded: past MAX_BLOCKS everything is dropped and rebuilt from hot code.
 * @module
 */
import { alu, div1, imul2, incdec, mul1, shift } from "./alu.ts";
import { type Cpu, CpuFault, CS, EXC_GP, F_TF, F_VM } from "./cpu.ts";
import { JitGen } from "./jit_gen.ts";
import { Interp } from "./interp.ts";

const TWO32 = 4294967296;
/** Visits of a branch target before it is translated. */
export const JIT_HOT = 1000;
/** Most blocks kept before the cache is flushed. */
const MAX_BLOCKS = 32768;
/** Per-vCPU lookup table size (direct mapped by linear rip). */
const SLOTS = 1 << 14;

/** Exact 64-bit LEA (low half returned, high half in c.hi). */
function lea64(c: Cpu, base: number, index: number, scale: number, disp: number): number {
  let lo = disp >>> 0, hi = disp >> 31;
  const r = c.r;
  if (base >= 0) {
    lo += r[base] >>> 0;
    hi += r[base + 16];
  }
  if (index >= 0) {
    let il = r[index] >>> 0, ih = r[index + 16];
    if (scale) {
      ih = (ih << scale) | (il >>> (32 - scale));
      il = (il << scale) >>> 0;
    }
    lo += il;
    hi += ih;
  }
  const carry = Math.floor(lo / TWO32);
  c.hi = (hi + carry) | 0;
  return (lo - carry * TWO32) | 0;
}

/** Helpers the generated code calls (same semantics as the interpreter). */
const HELPERS = {
  alu,
  shift,
  incdec,
  imul2,
  mul1,
  div1,
  lea64,
  /** 64-bit register n as a JS number (exact for canonical addresses). */
  reg64(r: Int32Array, n: number): number {
    return r[n + 16] * TWO32 + (r[n] >>> 0);
  },
  gp0(): never {
    throw new CpuFault(EXC_GP, 0);
  },
};

/** A translated block. */
export interface Block {
  fn: (c: Cpu, it: Interp, budget: number) => number;
  /** Physical page index (u8 offset / 4096) holding the code, and the cache key. */
  page: number;
  key: number;
  /** Linear address it was translated for (its rip constants are absolute), and the next block of the same
   * physical code translated for another linear address (a page mapped twice, e.g. the vDSO). */
  lin: number;
  alias: Block | null;
  valid: boolean;
  n: number;
  stopped: boolean;
  /** Cached successor: linear rip, TLB generation, block. */
  s0Lin: number;
  s0Gen: number;
  s0: Block | null;
  s1Lin: number;
  s1Gen: number;
  s1: Block | null;
}

/** Counters for `info jit`. */
export interface JitStats {
  blocks: number;
  translated: number;
  codeBytes: number;
  guestBytes: number;
  invalidatedBlocks: number;
  invalidatedPages: number;
  flushes: number;
  compileMs: number;
  jitInsns: number;
  failed: number;
}

/** Per-vCPU lookup state. */
class VcpuTable {
  readonly lin = new Float64Array(SLOTS).fill(NaN);
  readonly gen = new Int32Array(SLOTS);
  readonly mask = new Uint8Array(SLOTS);
  readonly blk: (Block | null)[] = new Array(SLOTS).fill(null);
  readonly hot = new Uint16Array(SLOTS);
  /** Runs the instructions blocks leave to the interpreter (jit_interp.ts). */
  readonly it: Interp;
  constructor(c: Cpu) {
    this.it = new Interp(c);
  }
}

/** The block cache shared by all vCPUs of one machine. */
export class Jit {
  enabled = true;
  readonly hot: number;
  readonly stats: JitStats = {
    blocks: 0,
    translated: 0,
    codeBytes: 0,
    guestBytes: 0,
    invalidatedBlocks: 0,
    invalidatedPages: 0,
    flushes: 0,
    compileMs: 0,
    jitInsns: 0,
    failed: 0,
  };
  /** Development aid: set to a Map to count the code bytes blocks stopped before (unhandled opcodes). */
  stops: Map<string, number> | null = null;
  /** 1 where the physical page (u8 offset / 4096) holds translated code. */
  readonly codePages: Uint8Array;
  readonly #byKey = new Map<number, Block>();
  readonly #byPage = new Map<number, Block[]>();
  /** Keys whose translation produced no block (first instruction unsupported). */
  readonly #none = new Set<number>();
  readonly #cpus: Cpu[] = [];
  readonly #tables: VcpuTable[] = [];

  constructor(ramBytes: number, hot = JIT_HOT) {
    this.codePages = new Uint8Array(Math.ceil(ramBytes / 4096) + 1);
    this.hot = hot;
  }

  /** Attach a vCPU: its stores to code pages and its TLB flushes now reach this cache. */
  attach(c: Cpu): void {
    c.codePages = this.codePages;
    c.jitIndex = this.#cpus.length;
    c.onCodeWrite = (p, len) => this.#write(p, len);
    this.#cpus.push(c);
    this.#tables.push(new VcpuTable(c));
  }

  /** Device DMA wrote backing bytes [off, off+len). */
  dmaWrite(off: number, len: number): void {
    this.#write(off, len);
  }

  #write(off: number, len: number): void {
    const cp = this.codePages;
    const first = Math.floor(off / 4096), last = Math.floor((off + Math.max(len, 1) - 1) / 4096);
    let hit = false;
    for (let p = first; p <= last && p < cp.length; p++) {
      if (cp[p]) {
        this.invalidatePage(p);
        hit = true;
      }
    }
    // A block running now may hold code from that page: it leaves after the storing instruction.
    if (hit) { for (const c of this.#cpus) c.smc = true; }
  }

  /** Drop every block on physical page p (u8 offset / 4096). */
  invalidatePage(p: number): void {
    this.codePages[p] = 0;
    const list = this.#byPage.get(p);
    this.#byPage.delete(p);
    this.stats.invalidatedPages++;
    if (!list) return;
    for (const b of list) {
      if (!b.valid) continue;
      b.valid = false;
      this.#byKey.delete(b.key);
      this.stats.invalidatedBlocks++;
      this.stats.blocks--;
    }
  }

  /** Drop everything (cache full, memory topology changed, reset). */
  flush(): void {
    if (this.#byKey.size > 0) this.stats.flushes++;
    for (const b of this.#byKey.values()) b.valid = false;
    this.#byKey.clear();
    this.#byPage.clear();
    this.#none.clear();
    this.codePages.fill(0);
    this.stats.blocks = 0;
    for (const t of this.#tables) t.blk.fill(null);
  }

  /**
   * Run translated blocks for vCPU c from c.rip, at most about `budget` instructions, stopping when a block
   * needs the run loop (c.brk) or no block exists. Returns instructions retired (0: interpret next).
   */
  run(c: Cpu, budget: number): number {
    if (!this.enabled || (c.flags & (F_TF | F_VM)) !== 0) return 0;
    const t = this.#tables[c.jitIndex];
    let total = 0;
    let prev: Block | null = null;
    const gen = c.tlbGen;
    c.smc = false;
    while (total < budget) {
      let lin: number, mode: number;
      if (c.long64) {
        lin = c.rip;
        mode = 1;
      } else if (c.csD && !c.segChk) {
        // Blocks carry no segment-limit checks: a non-flat segment (loaded by an instruction a block ran
        // through the interpreter) sends the rest to the interpreter (seglimit.ts).
        lin = (c.rip + c.segBase[CS]) >>> 0;
        mode = c.ssB ? 2 : 0;
        if (mode === 0) break;
      } else break;
      let b: Block | null = null;
      if (prev !== null) {
        if (prev.s0Lin === lin && prev.s0Gen === gen) b = prev.s0;
        else if (prev.s1Lin === lin && prev.s1Gen === gen) b = prev.s1;
        if (b !== null && !b.valid) b = null;
      }
      if (b === null) {
        b = this.#lookup(c, t, lin, mode, gen);
        if (b === null) break;
        if (prev !== null) {
          // Remember the successor: the older slot is replaced (a per-site cache of two).
          if (prev.s0 === null || prev.s0Gen !== gen || !prev.s0.valid) {
            prev.s0 = b;
            prev.s0Lin = lin;
            prev.s0Gen = gen;
          } else {
            prev.s1 = b;
            prev.s1Lin = lin;
            prev.s1Gen = gen;
          }
        }
      }
      const k = b.fn(c, t.it, budget - total);
      total += k;
      prev = b;
      if (c.brk) break;
    }
    if (prev !== null && prev.stopped) c.jitAfter = true;
    this.stats.jitInsns += total;
    return total;
  }

  #lookup(c: Cpu, t: VcpuTable, lin: number, mode: number, gen: number): Block | null {
    const h = (lin >= -2147483648 && lin < 2147483648 ? lin : lin % 2147483648) & (SLOTS - 1);
    const exMask = c.exMask;
    const same = t.lin[h] === lin && t.gen[h] === gen && t.mask[h] === exMask;
    if (same) {
      const b = t.blk[h];
      if (b !== null) {
        if (b.valid) return b;
      } else if (t.hot[h] + 1 < this.hot) {
        // Cold and still counting visits: no further look-up.
        t.hot[h]++;
        return null;
      }
    }
    // Where is this code? Through the TLB only (a miss lets the interpreter walk and fault precisely).
    const vpn = Math.floor(lin / 4096);
    const i = vpn & 4095;
    if (c.tlbTag[i] !== vpn || !(c.tlbPerm[i] & exMask)) return null;
    const off = c.tlbOff[i] + (lin - vpn * 4096);
    // 32-bit code with a non-zero CS base (rare) stays interpreted.
    if (mode !== 1 && c.segBase[CS] !== 0) return null;
    const key = off * 4 + mode;
    let b = this.#byKey.get(key) ?? null;
    while (b !== null && b.lin !== lin) b = b.alias;
    if (b === null) {
      if (!same) {
        // First visit here (in this slot): start counting.
        t.lin[h] = lin;
        t.gen[h] = gen;
        t.mask[h] = exMask;
        t.blk[h] = null;
        t.hot[h] = 1;
        if (this.hot > 1) return null;
      }
      t.hot[h] = 0;
      if (this.#none.has(key)) {
        c.jitAfter = true;
        return null;
      }
      b = this.#translate(c, off, key, mode, lin);
      if (b === null) {
        this.#none.add(key);
        c.jitAfter = true;
        return null;
      }
    }
    t.lin[h] = lin;
    t.gen[h] = gen;
    t.mask[h] = exMask;
    t.blk[h] = b;
    return b;
  }

  #translate(c: Cpu, off: number, key: number, mode: number, lin: number): Block | null {
    if (this.stats.blocks >= MAX_BLOCKS) this.flush();
    const t0 = performance.now();
    const page = Math.floor(off / 4096);
    const limit = (page + 1) * 4096;
    const rip = mode === 1 ? lin : c.rip;
    const g = new JitGen(c.u8, off, limit, rip, mode === 1, 0, mode === 2);
    const gb = g.build();
    const stopAt = gb === null ? off : gb.stopped ? g.stopPos : -1;
    if (stopAt >= 0 && this.stops !== null) {
      const k = Array.from(c.u8.subarray(stopAt, stopAt + 4), (x) => x.toString(16).padStart(2, "0")).join(
        " ",
      );
      this.stops.set(k, (this.stops.get(k) ?? 0) + 1);
    }
    if (gb === null) {
      this.stats.failed++;
      return null;
    }
    const rips = JSON.stringify(gb.rips);
    // The parenthesised function is compiled eagerly (V8's PIFE heuristic): its cost counts as compile time.
    const src =
      `"use strict";\nconst RIPS = ${rips}, G = H.reg64;\nreturn (function jit_${
        off.toString(16)
      }(c, it, B) {\n` +
      `const r = c.r;\nlet n = 0;\n${gb.loops ? "let T = 0;\ntry {\nfor (;;) {" : "const T = 0;\ntry {"}\n` +
      `${gb.src}\n${gb.loops ? "}\n" : ""}} catch (e) {\n` +
      `c.rip = RIPS[n]; c.icount += T + n; c.atBranch = true; throw e;\n}\n});`;
    let fn: (c: Cpu, it: Interp, budget: number) => number;
    try {
      fn = new Function("H", src)(HELPERS) as (c: Cpu, it: Interp, budget: number) => number;
    } catch (e) {
      this.stats.failed++;
      c.log(`jit: cannot compile block at ${lin.toString(16)}: ${e}`);
      return null;
    }
    const b: Block = {
      fn,
      page,
      key,
      lin,
      alias: this.#byKey.get(key) ?? null,
      valid: true,
      n: gb.n,
      stopped: gb.stopped,
      s0Lin: NaN,
      s0Gen: 0,
      s0: null,
      s1Lin: NaN,
      s1Gen: 0,
      s1: null,
    };
    this.#byKey.set(key, b);
    let list = this.#byPage.get(page);
    if (!list) this.#byPage.set(page, list = []);
    list.push(b);
    if (!this.codePages[page]) {
      this.codePages[page] = 1;
      for (const cpu of this.#cpus) cpu.protectCodePage(page * 4096);
    }
    this.stats.blocks++;
    this.stats.translated++;
    this.stats.codeBytes += src.length;
    this.stats.guestBytes += gb.len;
    this.stats.compileMs += performance.now() - t0;
    return b;
  }
}

/** A JIT for one stand-alone vCPU (tests, difftest tools): `hot` visits before translation. */
export function attachJit(c: Cpu, hot = JIT_HOT): Jit {
  const j = new Jit(c.u8.length, hot);
  j.attach(c);
  return j;
}
