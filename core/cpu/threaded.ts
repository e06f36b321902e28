/**
 * Threaded-code block builder: a hot 64-bit basic block becomes an array of pre-decoded closures, one per
 * instruction, built by a fixed set of closure factories. Unlike per-block generated JS, every closure of a
 * kind shares one optimised function, so blocks run fast from their first execution and building one costs
 * microseconds. Semantics come from the interpreter's helpers (alu.ts) with the same lazy flags.
 * @module
 */
import { alu, imul2, incdec, shift } from "./alu.ts";
import { type Cpu, CpuFault, EXC_GP, MASK } from "./cpu.ts";

const TWO32 = 4294967296;
/** Most instructions in one block. */
const MAX_OPS = 64;

/** One pre-decoded instruction; returns true when it left the block (c.rip already set). */
type Op = (c: Cpu) => boolean | void;
/** Linear address of a memory operand. */
type Ea = (c: Cpu) => number;

function canon(v: number): number {
  if (v < -0x800000000000 || v >= 0x800000000000) throw new CpuFault(EXC_GP, 0);
  return v;
}

function rdR(c: Cpu, sz: number, n: number, rex: number): number {
  const r = c.r;
  switch (sz) {
    case 1:
      c.hi = 0;
      return n < 4 || rex ? r[n] & 0xff : (r[n - 4] >> 8) & 0xff;
    case 2:
      c.hi = 0;
      return r[n] & 0xffff;
    case 4:
      c.hi = 0;
      return r[n];
    default:
      c.hi = r[n + 16];
      return r[n];
  }
}

function wrR(c: Cpu, sz: number, n: number, rex: number, v: number, vh: number): void {
  const r = c.r;
  switch (sz) {
    case 1:
      if (n < 4 || rex) r[n] = (r[n] & ~0xff) | (v & 0xff);
      else r[n - 4] = (r[n - 4] & ~0xff00) | ((v & 0xff) << 8);
      return;
    case 2:
      r[n] = (r[n] & ~0xffff) | (v & 0xffff);
      return;
    case 4:
      r[n] = v;
      r[n + 16] = 0;
      return;
    default:
      r[n] = v;
      r[n + 16] = vh;
  }
}

function rdM(c: Cpu, sz: number, la: number): number {
  switch (sz) {
    case 1:
      c.hi = 0;
      return c.rd8(la);
    case 2:
      c.hi = 0;
      return c.rd16(la);
    case 4:
      c.hi = 0;
      return c.rd32(la);
    default:
      return c.rd64(la);
  }
}

/** Operand E: register n (ea null) or memory at ea(c). */
function rdE(c: Cpu, sz: number, rex: number, n: number, ea: Ea | null, la: number): number {
  return ea === null ? rdR(c, sz, n, rex) : rdM(c, sz, la);
}

/** rdE for a read-modify-write destination: faults on an unwritable operand before any flag changes. */
function rdEw(c: Cpu, sz: number, rex: number, n: number, ea: Ea | null, la: number): number {
  if (ea !== null) {
    c.checkW(la);
    c.checkW(la + sz - 1);
  }
  return rdE(c, sz, rex, n, ea, la);
}

function wrE(
  c: Cpu,
  sz: number,
  rex: number,
  n: number,
  ea: Ea | null,
  la: number,
  v: number,
  vh: number,
): void {
  if (ea === null) wrR(c, sz, n, rex, v, vh);
  else c.wr(sz, la, v, vh);
}

function pushQ(c: Cpu, lo: number, hi: number): void {
  const r = c.r;
  const sp = r[20] * TWO32 + (r[4] >>> 0) - 8;
  c.wr64(sp, lo, hi);
  r[4] = sp | 0;
  r[20] = Math.floor(sp / TWO32) | 0;
}

function popQ(c: Cpu): number {
  const r = c.r;
  const sp = r[20] * TWO32 + (r[4] >>> 0);
  const v = c.rd64(sp);
  const h = c.hi;
  r[4] = (sp + 8) | 0;
  r[20] = Math.floor((sp + 8) / TWO32) | 0;
  c.hi = h;
  return v;
}

function reg64(r: Int32Array, n: number): number {
  return r[n + 16] * TWO32 + (r[n] >>> 0);
}

/** Build the address closure for a ModRM memory operand. */
function mkEa(base: number, index: number, scale: number, disp: number, seg: number, abs: number | null): Ea {
  let f: Ea;
  const mul = 1 << scale;
  if (abs !== null) f = () => abs;
  else if (base >= 0 && index >= 0) f = (c) => reg64(c.r, base) + reg64(c.r, index) * mul + disp;
  else if (base >= 0) f = (c) => reg64(c.r, base) + disp;
  else if (index >= 0) f = (c) => reg64(c.r, index) * mul + disp;
  else f = () => disp;
  if (seg < 0) return f;
  const g = f;
  return (c) => g(c) + c.segBase[seg];
}

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

/** A block: its instructions and where each starts. */
export interface ThreadedBlock {
  run: (c: Cpu) => number;
  /** Bytes consumed from the block start. */
  length: number;
}

/** Decoder producing closures for one block. */
export class ThreadedGen {
  readonly u8: Uint8Array;
  pos: number;
  rip: number;
  curStart = 0;
  ended = false;
  readonly ops: Op[] = [];
  readonly rips: number[] = [];
  // Decode state.
  rex = 0;
  seg = -1;
  opsz = 4;
  mod = 0;
  reg = 0;
  rm = 0;
  ea: Ea | null = null;
  leaBase = -1;
  leaIndex = -1;
  leaScale = 0;
  leaDisp = 0;
  ripRel = false;
  ripDisp = 0;

  constructor(u8: Uint8Array, off: number, rip: number) {
    this.u8 = u8;
    this.pos = off;
    this.rip = rip;
  }

  b8(): number {
    return this.u8[this.pos++];
  }
  s8(): number {
    return (this.u8[this.pos++] << 24) >> 24;
  }
  i16(): number {
    const v = this.u8[this.pos] | (this.u8[this.pos + 1] << 8);
    this.pos += 2;
    return v;
  }
  i32(): number {
    const u = this.u8, p = this.pos;
    this.pos += 4;
    return u[p] | (u[p + 1] << 8) | (u[p + 2] << 16) | (u[p + 3] << 24);
  }
  imm(sz: number): number {
    return sz === 1 ? this.b8() : sz === 2 ? this.i16() : this.i32();
  }
  nextRip(): number {
    return this.rip + (this.pos - this.curStart);
  }
  pageLeft(): number {
    return 4096 - (this.rip - Math.floor(this.rip / 4096) * 4096);
  }

  modrm(): void {
    const m = this.b8();
    this.mod = m >> 6;
    this.reg = ((m >> 3) & 7) | ((this.rex & 4) << 1);
    const rmv = m & 7;
    this.ripRel = false;
    if (this.mod === 3) {
      this.rm = rmv | ((this.rex & 1) << 3);
      this.ea = null;
      return;
    }
    let base = -1, index = -1, scale = 0;
    if (rmv === 4) {
      const sib = this.b8();
      scale = sib >> 6;
      index = ((sib >> 3) & 7) | ((this.rex & 2) << 2);
      if (index === 4) index = -1;
      base = (sib & 7) | ((this.rex & 1) << 3);
      if ((sib & 7) === 5 && this.mod === 0) base = -1;
    } else if (rmv === 5 && this.mod === 0) this.ripRel = true;
    else base = rmv | ((this.rex & 1) << 3);
    let disp = 0;
    if (this.mod === 1) disp = this.s8();
    else if (this.mod === 2 || base === -1) disp = this.i32();
    this.leaBase = base;
    this.leaIndex = index;
    this.leaScale = scale;
    this.leaDisp = disp;
    this.ripDisp = disp;
    // Placeholder: finalised by fixEa() once the instruction length is known (RIP-relative).
    this.ea = () => 0;
  }

  /** Build the address closure (after immediates are decoded). */
  fixEa(): Ea | null {
    if (this.ea === null) return null;
    const abs = this.ripRel ? this.nextRip() + this.ripDisp : null;
    this.ea = mkEa(this.leaBase, this.leaIndex, this.leaScale, this.leaDisp, this.seg, abs);
    return this.ea;
  }

  /** Decode one instruction into a closure; false when unsupported. */
  insn(): boolean {
    const save = this.pos;
    this.curStart = this.pos;
    const op = this.#decode();
    if (op === null) {
      this.pos = save;
      return false;
    }
    this.ops.push(op);
    this.rips.push(this.rip);
    this.rip += this.pos - save;
    return true;
  }

  /** The block runner. */
  finish(): ThreadedBlock {
    const ops = this.ops, rips = this.rips;
    const n = ops.length;
    const end = this.rip;
    const ended = this.ended;
    const run = (c: Cpu): number => {
      let i = 0;
      try {
        for (; i < n; i++) if (ops[i](c)) return i + 1;
      } catch (e) {
        c.rip = rips[i];
        c.icount += i;
        throw e;
      }
      if (!ended) c.rip = end;
      return n;
    };
    return { run, length: 0 };
  }

  /** Conditional branch: a side exit when taken, fall through inside the block otherwise. */
  #jcc(cc: number, target: number): Op {
    const next = this.nextRip();
    if (this.ops.length + 1 >= MAX_OPS || this.pageLeft() - (this.pos - this.curStart) < 16) {
      this.ended = true;
      return (c) => {
        c.rip = c.cond(cc) ? target : next;
        return true;
      };
    }
    return (c) => {
      if (!c.cond(cc)) return false;
      c.rip = target;
      return true;
    };
  }

  #decode(): Op | null {
    this.opsz = 4;
    this.rex = 0;
    this.seg = -1;
    let b = this.b8();
    let p66 = false;
    for (;;) {
      if (b === 0x66) p66 = true;
      else if (b === 0x64 || b === 0x65) this.seg = b - 0x60;
      else if (b !== 0xf0 && b !== 0x2e && b !== 0x3e && b !== 0x26 && b !== 0x36) break;
      b = this.b8();
    }
    if ((b & 0xf0) === 0x40) {
      this.rex = b;
      b = this.b8();
    }
    if (p66) this.opsz = 2;
    if (this.rex & 8) this.opsz = 8;
    const sz = this.opsz;
    const rex = this.rex;
    if (b === 0x0f) return this.#op0f(this.b8());
    if (b < 0x40 && (b & 7) < 6) {
      const aop = b >> 3;
      const form = b & 7;
      if (form < 4) {
        const s = form & 1 ? sz : 1;
        this.modrm();
        const ea = this.fixEa(), rm = this.rm, reg = this.reg;
        if (form < 2) {
          if (aop === 7) {
            return (c) => {
              const la = ea === null ? 0 : ea(c);
              const a = rdE(c, s, rex, rm, ea, la), ah = c.hi;
              const t = rdR(c, s, reg, rex);
              alu(c, 7, s, a, ah, t, c.hi);
            };
          }
          return (c) => {
            const la = ea === null ? 0 : ea(c);
            const a = rdEw(c, s, rex, rm, ea, la), ah = c.hi;
            const t = rdR(c, s, reg, rex);
            const x = alu(c, aop, s, a, ah, t, c.hi);
            wrE(c, s, rex, rm, ea, la, x, c.hi);
          };
        }
        return (c) => {
          const la = ea === null ? 0 : ea(c);
          const t = rdE(c, s, rex, rm, ea, la), th = c.hi;
          const a = rdR(c, s, reg, rex);
          const x = alu(c, aop, s, a, c.hi, t, th);
          if (aop !== 7) wrR(c, s, reg, rex, x, c.hi);
        };
      }
      const s = form === 4 ? 1 : sz;
      const v = this.imm(s === 8 ? 4 : s);
      const il = s === 8 ? v | 0 : v & MASK[s], ih = s === 8 ? v >> 31 : 0;
      return (c) => {
        const a = rdR(c, s, 0, rex);
        const x = alu(c, aop, s, a, c.hi, il, ih);
        if (aop !== 7) wrR(c, s, 0, rex, x, c.hi);
      };
    }
    if (b >= 0x50 && b < 0x58) {
      if (p66) return null;
      const n = (b & 7) | ((rex & 1) << 3);
      return (c) => pushQ(c, c.r[n], c.r[n + 16]);
    }
    if (b >= 0x58 && b < 0x60) {
      if (p66) return null;
      const n = (b & 7) | ((rex & 1) << 3);
      return (c) => {
        const v = popQ(c);
        c.r[n] = v;
        c.r[n + 16] = c.hi;
      };
    }
    if (b >= 0x70 && b < 0x80) {
      const d = this.s8();
      return this.#jcc(b & 15, this.nextRip() + d);
    }
    if (b >= 0xb8 && b < 0xc0) {
      const n = (b & 7) | ((rex & 1) << 3);
      if (sz === 8) {
        const lo = this.i32(), hi = this.i32();
        return (c) => {
          c.r[n] = lo;
          c.r[n + 16] = hi;
        };
      }
      const v = this.imm(sz);
      return (c) => wrR(c, sz, n, rex, v, 0);
    }
    if (b >= 0xb0 && b < 0xb8) {
      const n = (b & 7) | ((rex & 1) << 3);
      const v = this.b8();
      return (c) => wrR(c, 1, n, rex, v, 0);
    }
    switch (b) {
      case 0x63: {
        this.modrm();
        const ea = this.fixEa(), rm = this.rm, reg = this.reg;
        return (c) => {
          const a = rdE(c, 4, rex, rm, ea, ea === null ? 0 : ea(c));
          if (sz === 8) wrR(c, 8, reg, rex, a, a >> 31);
          else wrR(c, sz, reg, rex, a & MASK[sz], 0);
        };
      }
      case 0x80:
      case 0x81:
      case 0x83: {
        const s = b === 0x80 ? 1 : sz;
        this.modrm();
        const aop = this.reg & 7;
        const v = b === 0x81 ? this.imm(s === 8 ? 4 : s) : b === 0x83 ? this.s8() : this.b8();
        const il = s === 8 ? v | 0 : v & MASK[s], ih = s === 8 ? v >> 31 : 0;
        const ea = this.fixEa(), rm = this.rm;
        const rd = aop !== 7 ? rdEw : rdE;
        return (c) => {
          const la = ea === null ? 0 : ea(c);
          const a = rd(c, s, rex, rm, ea, la);
          const x = alu(c, aop, s, a, c.hi, il, ih);
          if (aop !== 7) wrE(c, s, rex, rm, ea, la, x, c.hi);
        };
      }
      case 0x84:
      case 0x85: {
        const s = b === 0x84 ? 1 : sz;
        this.modrm();
        const ea = this.fixEa(), rm = this.rm, reg = this.reg;
        return (c) => {
          const a = rdE(c, s, rex, rm, ea, ea === null ? 0 : ea(c)), ah = c.hi;
          const t = rdR(c, s, reg, rex);
          c.setRes(s, a & t, ah & c.hi, 0);
        };
      }
      case 0x86:
      case 0x87: {
        const s = b === 0x86 ? 1 : sz;
        this.modrm();
        const ea = this.fixEa(), rm = this.rm, reg = this.reg;
        return (c) => {
          const la = ea === null ? 0 : ea(c);
          const a = rdE(c, s, rex, rm, ea, la), ah = c.hi;
          const t = rdR(c, s, reg, rex);
          wrE(c, s, rex, rm, ea, la, t, c.hi);
          wrR(c, s, reg, rex, a, ah);
        };
      }
      case 0x88:
      case 0x89: {
        const s = b === 0x88 ? 1 : sz;
        this.modrm();
        const ea = this.fixEa(), rm = this.rm, reg = this.reg;
        if (ea === null) return (c) => wrR(c, s, rm, rex, rdR(c, s, reg, rex), c.hi);
        if (s === 8) return (c) => c.wr64(ea(c), c.r[reg], c.r[reg + 16]);
        return (c) => {
          const v = rdR(c, s, reg, rex);
          c.wr(s, ea(c), v, 0);
        };
      }
      case 0x8a:
      case 0x8b: {
        const s = b === 0x8a ? 1 : sz;
        this.modrm();
        const ea = this.fixEa(), rm = this.rm, reg = this.reg;
        if (ea === null) return (c) => wrR(c, s, reg, rex, rdR(c, s, rm, rex), c.hi);
        if (s === 8) {
          return (c) => {
            const v = c.rd64(ea(c));
            c.r[reg] = v;
            c.r[reg + 16] = c.hi;
          };
        }
        return (c) => {
          const v = rdM(c, s, ea(c));
          wrR(c, s, reg, rex, v, 0);
        };
      }
      case 0x8d: {
        this.modrm();
        if (this.ea === null || this.seg >= 0) return null;
        const reg = this.reg;
        if (this.ripRel) {
          const v = this.nextRip() + this.ripDisp;
          const lo = v % TWO32 | 0, hi = Math.floor(v / TWO32) | 0;
          return (c) => wrR(c, sz, reg, rex, lo, hi);
        }
        const bs = this.leaBase, ix = this.leaIndex, sc = this.leaScale, dp = this.leaDisp;
        return (c) => {
          const lo = lea64(c, bs, ix, sc, dp);
          wrR(c, sz, reg, rex, sz === 2 ? lo & 0xffff : lo, c.hi);
        };
      }
      case 0x90:
        if (rex & 1) return null;
        return () => {};
      case 0x98:
        if (sz === 8) return (c) => void (c.r[16] = c.r[0] >> 31);
        if (sz === 4) {
          return (c) => {
            c.r[0] = (c.r[0] << 16) >> 16;
            c.r[16] = 0;
          };
        }
        return null;
      case 0x99:
        if (sz === 8) return (c) => void (c.r[2] = c.r[18] = c.r[16] >> 31);
        if (sz === 4) {
          return (c) => {
            c.r[2] = c.r[0] >> 31;
            c.r[18] = 0;
          };
        }
        return null;
      case 0xa8:
      case 0xa9: {
        const s = b === 0xa8 ? 1 : sz;
        const v = this.imm(s === 8 ? 4 : s);
        const il = s === 8 ? v | 0 : v & MASK[s], ih = s === 8 ? v >> 31 : 0;
        return (c) => {
          const a = rdR(c, s, 0, rex);
          c.setRes(s, a & il, c.hi & ih, 0);
        };
      }
      case 0xc0:
      case 0xc1:
      case 0xd0:
      case 0xd1:
      case 0xd3: {
        const s = b & 1 ? sz : 1;
        this.modrm();
        const kind = this.reg & 7;
        const cnt = b < 0xd0 ? this.b8() : b === 0xd3 ? -1 : 1;
        const ea = this.fixEa(), rm = this.rm;
        return (c) => {
          const la = ea === null ? 0 : ea(c);
          const a = rdEw(c, s, rex, rm, ea, la);
          const x = shift(c, kind, s, a, c.hi, cnt < 0 ? c.r[1] & 0xff : cnt);
          wrE(c, s, rex, rm, ea, la, x, c.hi);
        };
      }
      case 0xc3:
        this.ended = true;
        return (c) => {
          const r = c.r;
          const sp = r[20] * TWO32 + (r[4] >>> 0);
          const lo = c.rd64(sp);
          const t = canon(c.hi * TWO32 + (lo >>> 0));
          r[4] = (sp + 8) | 0;
          r[20] = Math.floor((sp + 8) / TWO32) | 0;
          c.rip = t;
        };
      case 0xc6:
      case 0xc7: {
        const s = b === 0xc6 ? 1 : sz;
        this.modrm();
        if ((this.reg & 7) !== 0) return null;
        const v = this.imm(s === 8 ? 4 : s);
        const il = s === 8 ? v | 0 : v & MASK[s], ih = s === 8 ? v >> 31 : 0;
        const ea = this.fixEa(), rm = this.rm;
        if (ea === null) return (c) => wrR(c, s, rm, rex, il, ih);
        return (c) => c.wr(s, ea(c), il, ih);
      }
      case 0xe8: {
        const d = this.i32();
        const ret = this.nextRip();
        const target = ret + d;
        const lo = ret % TWO32 | 0, hi = Math.floor(ret / TWO32) | 0;
        this.ended = true;
        return (c) => {
          pushQ(c, lo, hi);
          c.rip = target;
        };
      }
      case 0xe9:
      case 0xeb: {
        const d = b === 0xeb ? this.s8() : this.i32();
        const target = this.nextRip() + d;
        this.ended = true;
        return (c) => {
          c.rip = target;
        };
      }
      case 0xf6:
      case 0xf7: {
        const s = b === 0xf6 ? 1 : sz;
        this.modrm();
        const kind = this.reg & 7;
        if (kind > 3) return null;
        let il = 0, ih = 0;
        if (kind < 2) {
          const v = this.imm(s === 8 ? 4 : s);
          il = s === 8 ? v | 0 : v & MASK[s];
          ih = s === 8 ? v >> 31 : 0;
        }
        const ea = this.fixEa(), rm = this.rm;
        const m = MASK[s === 8 ? 4 : s];
        const rd = kind >= 2 ? rdEw : rdE;
        return (c) => {
          const la = ea === null ? 0 : ea(c);
          const a = rd(c, s, rex, rm, ea, la), ah = c.hi;
          if (kind < 2) c.setRes(s, a & il, ah & ih, 0);
          else if (kind === 2) wrE(c, s, rex, rm, ea, la, ~a & m, ~ah);
          else {
            const x = alu(c, 5, s, 0, 0, a, ah);
            wrE(c, s, rex, rm, ea, la, x, c.hi);
          }
        };
      }
      case 0xfe:
      case 0xff: {
        const s = b === 0xfe ? 1 : sz;
        this.modrm();
        const kind = this.reg & 7;
        const ea = this.fixEa(), rm = this.rm;
        if (kind < 2) {
          const dir = kind === 0 ? 1 : -1;
          return (c) => {
            const la = ea === null ? 0 : ea(c);
            const a = rdEw(c, s, rex, rm, ea, la);
            const x = incdec(c, s, a, c.hi, dir);
            wrE(c, s, rex, rm, ea, la, x, c.hi);
          };
        }
        if (b === 0xfe) return null;
        if (kind === 2 || kind === 4) {
          const ret = this.nextRip();
          const lo = ret % TWO32 | 0, hi = Math.floor(ret / TWO32) | 0;
          this.ended = true;
          return (c) => {
            const v = rdE(c, 8, rex, rm, ea, ea === null ? 0 : ea(c));
            const t = canon(c.hi * TWO32 + (v >>> 0));
            if (kind === 2) pushQ(c, lo, hi);
            c.rip = t;
          };
        }
        if (kind === 6 && !p66) {
          return (c) => {
            const v = rdE(c, 8, rex, rm, ea, ea === null ? 0 : ea(c));
            pushQ(c, v, c.hi);
          };
        }
        return null;
      }
    }
    return null;
  }

  #op0f(b: number): Op | null {
    const sz = this.opsz;
    const rex = this.rex;
    if (b >= 0x80 && b < 0x90) {
      const d = this.i32();
      return this.#jcc(b & 15, this.nextRip() + d);
    }
    if (b >= 0x40 && b < 0x50) {
      this.modrm();
      const ea = this.fixEa(), rm = this.rm, reg = this.reg, cc = b & 15;
      return (c) => {
        const a = rdE(c, sz, rex, rm, ea, ea === null ? 0 : ea(c));
        if (c.cond(cc)) wrR(c, sz, reg, rex, a, c.hi);
        else if (sz === 4) c.r[reg + 16] = 0;
      };
    }
    if (b >= 0x90 && b < 0xa0) {
      this.modrm();
      const ea = this.fixEa(), rm = this.rm, cc = b & 15;
      return (c) => wrE(c, 1, rex, rm, ea, ea === null ? 0 : ea(c), c.cond(cc) ? 1 : 0, 0);
    }
    switch (b) {
      case 0x1f:
        this.modrm();
        return () => {};
      case 0xaf: {
        this.modrm();
        const ea = this.fixEa(), rm = this.rm, reg = this.reg;
        return (c) => {
          const t = rdE(c, sz, rex, rm, ea, ea === null ? 0 : ea(c)), th = c.hi;
          const a = rdR(c, sz, reg, rex);
          const x = imul2(c, sz, a, c.hi, t, th);
          wrR(c, sz, reg, rex, x, c.hi);
        };
      }
      case 0xb6:
      case 0xb7:
      case 0xbe:
      case 0xbf: {
        const ssz = b & 1 ? 2 : 1;
        const signed = b >= 0xbe;
        this.modrm();
        const ea = this.fixEa(), rm = this.rm, reg = this.reg;
        const m = MASK[sz === 8 ? 4 : sz];
        return (c) => {
          let a = rdE(c, ssz, rex, rm, ea, ea === null ? 0 : ea(c));
          if (signed) {
            a = ssz === 1 ? (a << 24) >> 24 : (a << 16) >> 16;
            wrR(c, sz, reg, rex, a & m, a >> 31);
          } else wrR(c, sz, reg, rex, a, 0);
        };
      }
    }
    return null;
  }
}
