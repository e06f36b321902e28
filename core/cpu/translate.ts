/**
 * Block translator: hot 64-bit-mode basic blocks are decoded once into threaded code (threaded.ts) and
 * then run without re-decoding. Only a common integer subset is
 * translated (MOV/ALU/LEA/PUSH/POP/Jcc/CALL/RET/shifts/MOVZX/CMOVcc/SETcc...); a block ends before
 * anything else and the interpreter takes over. Semantics come from the same helpers as the interpreter
 * (alu.ts), so lazy flags stay identical. A block remembers its code bytes and physical location and is
 * re-checked on every entry, so self-modifying code, code patching and DMA into code pages are safe
 * without write tracking.
 * @module
 */
import { type Cpu, F_TF } from "./cpu.ts";
import { ThreadedGen } from "./threaded.ts";

/** Executions of an address before it is translated. */
const HOT = 16;
/** Most instructions per block. */
const MAX_INSNS = 64;

/** A translated block. */
interface Block {
  fn: (c: Cpu) => number;
  /** u8 offset of the first byte when translated. */
  off: number;
  bytes: Uint8Array;
  /** The same bytes as little-endian int32 words (whole words only). */
  words: Int32Array;
}

const SLOTS = 1 << 16;

/** Per-vCPU cache of translated blocks: a direct-mapped table keyed by linear rip. */
export class Translator {
  readonly #rip = new Float64Array(SLOTS).fill(NaN);
  readonly #blocks: (Block | null)[] = new Array(SLOTS).fill(null);
  readonly #count = new Uint16Array(SLOTS);
  /** Blocks compiled so far. */
  compiled = 0;
  /** Instructions retired inside translated blocks. */
  executed = 0;
  /** Block executions. */
  entries = 0;
  /** Blocks dropped because their code bytes or location changed. */
  invalidated = 0;
  /** Set false to disable translation (debugging, tests). */
  enabled = true;
  /** Executions of a branch target before it is translated. */
  readonly hot: number;
  /** Debug: bytes of instructions that ended blocks (set to a Map to collect). */
  stops: Map<string, number> | null = null;

  constructor(hot = HOT) {
    this.hot = hot;
  }

  /** Drop every block (e.g. memory topology changed). */
  clear(): void {
    this.#rip.fill(NaN);
    this.#blocks.fill(null);
    this.#count.fill(0);
  }

  /**
   * Run one translated block at c.rip if possible. Returns the number of instructions retired, or 0 when
   * the caller must interpret the next instruction.
   */
  run(c: Cpu): number {
    if (!c.long64 || (c.flags & F_TF) !== 0 || !this.enabled) return 0;
    // Chain blocks while they exist and nothing needs the run loop's attention.
    let total = 0;
    for (let k = 0; k < 16; k++) {
      const m = this.#one(c);
      if (m === 0) break;
      total += m;
      if (c.brk) break;
    }
    return total;
  }

  #one(c: Cpu): number {
    const rip = c.rip;
    const h = (rip >= -2147483648 && rip < 2147483648 ? rip : rip % 2147483648) & (SLOTS - 1);
    let b: Block | null;
    if (this.#rip[h] === rip) {
      b = this.#blocks[h];
      if (b === null) return 0;
    } else {
      const n = this.#count[h] + 1;
      if (n < this.hot) {
        this.#count[h] = n;
        return 0;
      }
      this.#count[h] = 0;
      const off = this.#codeOff(c, rip);
      if (off < 0) return 0;
      b = this.#translate(c, rip, off);
      this.#rip[h] = rip;
      this.#blocks[h] = b;
      if (b === null) return 0;
    }
    const off = this.#codeOff(c, rip);
    if (off < 0) return 0; // not in the TLB: let the interpreter fetch (and walk) first
    if (off !== b.off || !same(c, off, b)) {
      // Code changed or is mapped elsewhere: retranslate when hot again.
      this.invalidated++;
      this.#rip[h] = NaN;
      this.#blocks[h] = null;
      return 0;
    }
    const k = b.fn(c);
    this.executed += k;
    this.entries++;
    return k;
  }

  /** u8 offset of executable code at linear `la` via the TLB only (no walk), or -1. */
  #codeOff(c: Cpu, la: number): number {
    const vpn = Math.floor(la / 4096);
    const i = vpn & 4095;
    if (c.tlbTag[i] === vpn && (c.tlbPerm[i] & c.exMask)) return c.tlbOff[i] + (la - vpn * 4096);
    return -1;
  }

  #translate(c: Cpu, rip: number, off: number): Block | null {
    const g = new ThreadedGen(c.u8, off, rip);
    // u8 offset where rip's page ends: the next virtual page need not follow physically, so no
    // instruction may be decoded unless all its bytes (at most 15) lie before this point.
    const pageEnd = off + 4096 - (rip - Math.floor(rip / 4096) * 4096);
    let n = 0;
    while (n < MAX_INSNS) {
      if (pageEnd - g.pos < 16) break;
      if (!g.insn()) {
        if (this.stops) {
          const k = Array.from(c.u8.slice(g.pos, g.pos + 4), (x) => x.toString(16).padStart(2, "0")).join(
            " ",
          );
          this.stops.set(k, (this.stops.get(k) ?? 0) + 1);
        }
        break;
      }
      n++;
      if (g.ended) break;
    }
    if (n === 0) return null;
    const fn = g.finish().run;
    this.compiled++;
    const bytes = c.u8.slice(off, g.pos);
    const words = new Int32Array(bytes.length >> 2);
    const dv = new DataView(bytes.buffer);
    for (let i = 0; i < words.length; i++) words[i] = dv.getInt32(4 * i, true);
    return { fn, off, bytes, words };
  }
}

function same(c: Cpu, off: number, b: Block): boolean {
  const words = b.words;
  const dv = c.dv;
  for (let i = 0; i < words.length; i++) if (dv.getInt32(off + 4 * i, true) !== words[i]) return false;
  const bytes = b.bytes;
  const u8 = c.u8;
  for (let i = words.length * 4; i < bytes.length; i++) if (u8[off + i] !== bytes[i]) return false;
  return true;
}
