/**
 * Block translator: hot 64-bit-mode basic blocks are decoded once and compiled to a JS function
 * (new Function) that runs their instructions without re-decoding. Only a common integer subset is
 * translated (MOV/ALU/LEA/PUSH/POP/Jcc/CALL/RET/shifts/MOVZX/CMOVcc/SETcc...); a block ends before
 * anything else and the interpreter takes over. Semantics come from the same helpers as the interpreter
 * (alu.ts), so lazy flags stay identical. A block remembers its code bytes and physical location and is
 * re-checked on every entry, so self-modifying code, code patching and DMA into code pages are safe
 * without write tracking.
 * @module
 */
import { alu, imul2, incdec, shift } from "./alu.ts";
import { type Cpu, CpuFault, EXC_GP, F_TF, MASK } from "./cpu.ts";

const TWO32 = 4294967296;
/** Executions of an address before it is translated. */
const HOT = 40;
/** Most instructions per block. */
const MAX_INSNS = 48;

/** A translated block. */
interface Block {
  fn: (c: Cpu) => number;
  /** u8 offset of the first byte when translated. */
  off: number;
  bytes: Uint8Array;
}

type Helpers = {
  lea: (c: Cpu, base: number, index: number, scale: number, disp: number) => number;
  alu: typeof alu;
  incdec: typeof incdec;
  shift: typeof shift;
  imul2: typeof imul2;
  canon: (c: Cpu, v: number) => number;
  MASK: readonly number[];
};

const HELPERS: Helpers = {
  lea: (c: Cpu, base: number, index: number, scale: number, disp: number) => {
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
  },
  alu,
  incdec,
  shift,
  imul2,
  canon: (c: Cpu, v: number) => {
    if (v < -0x800000000000 || v >= 0x800000000000) throw new CpuFault(EXC_GP, 0);
    return v;
  },
  MASK,
};

const SLOTS = 1 << 16;

/** Per-vCPU cache of translated blocks: a direct-mapped table keyed by linear rip. */
export class Translator {
  readonly #rip = new Float64Array(SLOTS).fill(NaN);
  readonly #blocks: (Block | null)[] = new Array(SLOTS).fill(null);
  readonly #count = new Uint16Array(SLOTS);
  /** Blocks compiled so far. */
  compiled = 0;
  /** Set false to disable translation (debugging, tests). */
  enabled = true;

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
    const rip = c.rip;
    const h = (rip ^ (rip / SLOTS)) & (SLOTS - 1);
    let b: Block | null;
    if (this.#rip[h] === rip) {
      b = this.#blocks[h];
      if (b === null) return 0;
    } else {
      const n = this.#count[h] + 1;
      if (n < HOT) {
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
    if (off !== b.off || !same(c, off, b.bytes)) {
      // Code changed or is mapped elsewhere: retranslate when hot again.
      this.#rip[h] = NaN;
      this.#blocks[h] = null;
      return 0;
    }
    return b.fn(c);
  }

  /** u8 offset of executable code at linear `la` via the TLB only (no walk), or -1. */
  #codeOff(c: Cpu, la: number): number {
    const vpn = Math.floor(la / 4096);
    const i = vpn & 4095;
    if (c.tlbTag[i] === vpn && (c.tlbPerm[i] & c.exMask)) return c.tlbOff[i] + (la - vpn * 4096);
    return -1;
  }

  #translate(c: Cpu, rip: number, off: number): Block | null {
    const g = new Gen(c.u8, off, rip);
    let n = 0;
    while (n < MAX_INSNS) {
      const ok = g.insn();
      if (!ok) break;
      n++;
      if (g.ended) break;
      if (g.pageLeft() < 16) break;
    }
    if (n === 0) return null;
    const src = g.finish(n);
    let fn: (c: Cpu) => number;
    try {
      fn = new Function("H", src)(HELPERS) as (c: Cpu) => number;
    } catch (e) {
      c.log(`translator: bad code for ${rip.toString(16)}: ${(e as Error).message}`);
      return null;
    }
    this.compiled++;
    return { fn, off, bytes: c.u8.slice(off, g.pos) };
  }
}

function same(c: Cpu, off: number, bytes: Uint8Array): boolean {
  const n = bytes.length;
  const u8 = c.u8;
  let i = 0;
  if (n >= 4) {
    const dv = c.dv;
    const w = new DataView(bytes.buffer, bytes.byteOffset, n);
    for (; i + 4 <= n; i += 4) if (dv.getInt32(off + i, true) !== w.getInt32(i, true)) return false;
  }
  for (; i < n; i++) if (u8[off + i] !== bytes[i]) return false;
  return true;
}

/** JS for the 64-bit value of register n as a number (exact below 2^53). */
function num(n: number): string {
  return `(r[${n + 16}] * 4294967296 + (r[${n}] >>> 0))`;
}

/** Code generator for one block. */
class Gen {
  readonly u8: Uint8Array;
  readonly start: number;
  pos: number;
  /** Linear address of the current instruction. */
  rip: number;
  readonly rip0: number;
  readonly out: string[] = [];
  ended = false;
  // Per-instruction decode state.
  opsz = 4;
  rex = 0;
  seg = -1;
  mod = 0;
  reg = 0;
  rm = 0;
  isReg = false;
  eaParts: string[] = [];
  ripRelDisp = 0;
  ripRel = false;

  constructor(u8: Uint8Array, off: number, rip: number) {
    this.u8 = u8;
    this.start = off;
    this.pos = off;
    this.rip = rip;
    this.rip0 = rip;
  }

  pageLeft(): number {
    return 4096 - (this.rip - Math.floor(this.rip / 4096) * 4096);
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
    const u = this.u8;
    const p = this.pos;
    this.pos += 4;
    return u[p] | (u[p + 1] << 8) | (u[p + 2] << 16) | (u[p + 3] << 24);
  }
  imm(sz: number): number {
    return sz === 1 ? this.b8() : sz === 2 ? this.i16() : this.i32();
  }

  /** Decode ModRM for 64-bit addressing; false for forms not handled. */
  modrm(): boolean {
    const m = this.b8();
    this.mod = m >> 6;
    this.reg = ((m >> 3) & 7) | ((this.rex & 4) << 1);
    const rmv = m & 7;
    this.ripRel = false;
    this.eaParts = [];
    if (this.mod === 3) {
      this.isReg = true;
      this.rm = rmv | ((this.rex & 1) << 3);
      return true;
    }
    this.isReg = false;
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
    if (this.ripRel) {
      this.ripRelDisp = disp;
      return true;
    }
    this.leaSpec = `${base}, ${index}, ${scale}, ${disp}`;
    if (base >= 0) this.eaParts.push(num(base));
    if (index >= 0) this.eaParts.push(scale ? `${num(index)} * ${1 << scale}` : num(index));
    if (disp) this.eaParts.push(String(disp));
    return true;
  }

  /** JS expression of the operand's linear address (call after the whole instruction is decoded). */
  la(): string {
    let e: string;
    if (this.ripRel) e = String(this.nextRip() + this.ripRelDisp);
    else e = this.eaParts.length ? this.eaParts.join(" + ") : "0";
    if (this.seg >= 0) e = `${e} + c.segBase[${this.seg}]`;
    return e;
  }

  nextRip(): number {
    return this.rip + (this.pos - this.curStart);
  }

  curStart = 0;

  emit(s: string): void {
    this.out.push(s);
  }

  /** Statements reading register n of size sz into (lo, hi) variable names. */
  readReg(sz: number, n: number, lo: string, hi: string): void {
    switch (sz) {
      case 1:
        if (n < 4 || this.rex) this.emit(`${lo} = r[${n}] & 0xff;`);
        else this.emit(`${lo} = (r[${n - 4}] >> 8) & 0xff;`);
        this.emit(`${hi} = 0;`);
        return;
      case 2:
        this.emit(`${lo} = r[${n}] & 0xffff; ${hi} = 0;`);
        return;
      case 4:
        this.emit(`${lo} = r[${n}]; ${hi} = 0;`);
        return;
      default:
        this.emit(`${lo} = r[${n}]; ${hi} = r[${n + 16}];`);
    }
  }

  writeReg(sz: number, n: number, lo: string, hi: string): void {
    switch (sz) {
      case 1:
        if (n < 4 || this.rex) this.emit(`r[${n}] = (r[${n}] & ~0xff) | (${lo} & 0xff);`);
        else this.emit(`r[${n - 4}] = (r[${n - 4}] & ~0xff00) | ((${lo} & 0xff) << 8);`);
        return;
      case 2:
        this.emit(`r[${n}] = (r[${n}] & ~0xffff) | (${lo} & 0xffff);`);
        return;
      case 4:
        this.emit(`r[${n}] = ${lo}; r[${n + 16}] = 0;`);
        return;
      default:
        this.emit(`r[${n}] = ${lo}; r[${n + 16}] = ${hi};`);
    }
  }

  readMem(sz: number, la: string, lo: string, hi: string): void {
    switch (sz) {
      case 1:
        this.emit(`${lo} = c.rd8(${la}); ${hi} = 0;`);
        return;
      case 2:
        this.emit(`${lo} = c.rd16(${la}); ${hi} = 0;`);
        return;
      case 4:
        this.emit(`${lo} = c.rd32(${la}); ${hi} = 0;`);
        return;
      default:
        this.emit(`${lo} = c.rd64(${la}); ${hi} = c.hi;`);
    }
  }

  writeMem(sz: number, la: string, lo: string, hi: string): void {
    switch (sz) {
      case 1:
        this.emit(`c.wr8(${la}, ${lo});`);
        return;
      case 2:
        this.emit(`c.wr16(${la}, ${lo});`);
        return;
      case 4:
        this.emit(`c.wr32(${la}, ${lo});`);
        return;
      default:
        this.emit(`c.wr64(${la}, ${lo}, ${hi});`);
    }
  }

  /** Read the r/m operand into (lo, hi); memory address in variable `la`. */
  readE(sz: number, lo: string, hi: string): void {
    if (this.isReg) this.readReg(sz, this.rm, lo, hi);
    else this.readMem(sz, "la", lo, hi);
  }

  writeE(sz: number, lo: string, hi: string): void {
    if (this.isReg) this.writeReg(sz, this.rm, lo, hi);
    else this.writeMem(sz, "la", lo, hi);
  }

  /** Start of a memory-touching instruction: precise rip for faults, and the address. */
  memPrologue(): void {
    this.emit(`c.rip = ${this.rip}; n = ${this.count};`);
    if (!this.isReg) this.emit(`la = ${this.la()};`);
  }

  count = 0;

  /** Constant immediate of size sz as (lo, hi) JS literals, sign-extended for 8-byte operands. */
  immLit(v: number, sz: number): [string, string] {
    if (sz === 8) return [String(v | 0), String(v >> 31)];
    return [String(v & MASK[sz === 1 ? 1 : sz === 2 ? 2 : 4]), "0"];
  }

  /** Translate one instruction; false when unsupported (the block ends before it). */
  insn(): boolean {
    const save = this.pos;
    const saveLen = this.out.length;
    this.curStart = this.pos;
    const ok = this.#insn();
    if (!ok) {
      this.pos = save;
      this.out.length = saveLen;
      return false;
    }
    this.rip += this.pos - save;
    this.count++;
    return true;
  }

  #insn(): boolean {
    this.opsz = 4;
    this.rex = 0;
    this.seg = -1;
    let b = this.b8();
    let p66 = false;
    for (;;) {
      if (b === 0x66) p66 = true;
      else if (b === 0x64 || b === 0x65) this.seg = b - 0x60;
      else if (b === 0xf0 || b === 0x2e || b === 0x3e || b === 0x26 || b === 0x36) {
        // LOCK (one CPU at a time runs), and segment prefixes ignored in 64-bit mode.
      } else break;
      b = this.b8();
    }
    if ((b & 0xf0) === 0x40) {
      this.rex = b;
      b = this.b8();
    }
    if (p66) this.opsz = 2;
    if (this.rex & 8) this.opsz = 8;
    const sz = this.opsz;
    if (b === 0x0f) return this.#op0f(this.b8());
    // ALU forms 00-3D.
    if (b < 0x40 && (b & 7) < 6) {
      const op = b >> 3;
      const form = b & 7;
      if (form < 4) {
        const s = form & 1 ? sz : 1;
        this.modrm();
        if (!this.isReg) this.memPrologue();
        if (form < 2) {
          this.readE(s, "a", "ah");
          this.readReg(s, this.reg, "t", "th");
          this.emit(`x = H.alu(c, ${op}, ${s}, a, ah, t, th); xh = c.hi;`);
          if (op !== 7) this.writeE(s, "x", "xh");
        } else {
          this.readReg(s, this.reg, "a", "ah");
          this.readE(s, "t", "th");
          this.emit(`x = H.alu(c, ${op}, ${s}, a, ah, t, th); xh = c.hi;`);
          if (op !== 7) this.writeReg(s, this.reg, "x", "xh");
        }
        return true;
      }
      const s = form === 4 ? 1 : sz;
      const [il, ih] = this.immLit(this.imm(s === 8 ? 4 : s), s);
      this.readReg(s, 0, "a", "ah");
      this.emit(`x = H.alu(c, ${op}, ${s}, a, ah, ${il}, ${ih}); xh = c.hi;`);
      if (op !== 7) this.writeReg(s, 0, "x", "xh");
      return true;
    }
    if (b >= 0x50 && b < 0x58) {
      if (p66) return false;
      const n = (b & 7) | ((this.rex & 1) << 3);
      this.emit(`c.rip = ${this.rip}; n = ${this.count};`);
      this.emit(`sp = ${num(4)} - 8; c.wr64(sp, r[${n}], r[${n + 16}]);`);
      this.emit(`r[4] = sp % 4294967296 | 0; r[20] = Math.floor(sp / 4294967296) | 0;`);
      return true;
    }
    if (b >= 0x58 && b < 0x60) {
      if (p66) return false;
      const n = (b & 7) | ((this.rex & 1) << 3);
      this.emit(`c.rip = ${this.rip}; n = ${this.count};`);
      this.emit(`sp = ${num(4)}; x = c.rd64(sp); xh = c.hi; sp += 8;`);
      this.emit(`r[4] = sp % 4294967296 | 0; r[20] = Math.floor(sp / 4294967296) | 0;`);
      this.emit(`r[${n}] = x; r[${n + 16}] = xh;`);
      return true;
    }
    if (b >= 0x70 && b < 0x80) {
      const d = this.s8();
      this.#jcc(b & 15, this.nextRip() + d);
      return true;
    }
    if (b >= 0xb8 && b < 0xc0) {
      const n = (b & 7) | ((this.rex & 1) << 3);
      if (sz === 8) {
        const lo = this.i32(), hi = this.i32();
        this.emit(`r[${n}] = ${lo}; r[${n + 16}] = ${hi};`);
      } else this.writeReg(sz, n, String(this.imm(sz)), "0");
      return true;
    }
    if (b >= 0xb0 && b < 0xb8) {
      const n = (b & 7) | ((this.rex & 1) << 3);
      this.writeReg(1, n, String(this.b8()), "0");
      return true;
    }
    switch (b) {
      case 0x63: {
        this.modrm();
        if (!this.isReg) this.memPrologue();
        this.readE(4, "a", "ah");
        if (sz === 8) this.emit(`r[${this.reg}] = a; r[${this.reg + 16}] = a >> 31;`);
        else this.writeReg(sz, this.reg, "a", "0");
        return true;
      }
      case 0x80:
      case 0x81:
      case 0x83: {
        const s = b === 0x80 ? 1 : sz;
        this.modrm();
        const op = this.reg & 7;
        const v = b === 0x81 ? this.imm(s === 8 ? 4 : s) : b === 0x83 ? this.s8() : this.b8();
        const [il, ih] = this.immLit(v, s);
        if (!this.isReg) this.memPrologue();
        this.readE(s, "a", "ah");
        this.emit(`x = H.alu(c, ${op}, ${s}, a, ah, ${il}, ${ih}); xh = c.hi;`);
        if (op !== 7) this.writeE(s, "x", "xh");
        return true;
      }
      case 0x84:
      case 0x85: {
        const s = b === 0x84 ? 1 : sz;
        this.modrm();
        if (!this.isReg) this.memPrologue();
        this.readE(s, "a", "ah");
        this.readReg(s, this.reg, "t", "th");
        this.emit(`c.setRes(${s}, a & t, ah & th, 0);`);
        return true;
      }
      case 0x88:
      case 0x89: {
        const s = b === 0x88 ? 1 : sz;
        this.modrm();
        if (!this.isReg) this.memPrologue();
        this.readReg(s, this.reg, "a", "ah");
        this.writeE(s, "a", "ah");
        return true;
      }
      case 0x8a:
      case 0x8b: {
        const s = b === 0x8a ? 1 : sz;
        this.modrm();
        if (!this.isReg) this.memPrologue();
        this.readE(s, "a", "ah");
        this.writeReg(s, this.reg, "a", "ah");
        return true;
      }
      case 0x8d: {
        this.modrm();
        if (this.isReg || this.seg >= 0) return false;
        if (this.ripRel) {
          const v = this.nextRip() + this.ripRelDisp;
          this.writeReg(sz, this.reg, String(v % TWO32 | 0), String(Math.floor(v / TWO32) | 0));
          return true;
        }
        // Exact 64-bit sum of base + index*scale + disp in halves.
        this.emit(`x = H.lea(c, ${this.eaSpec()});`);
        this.writeReg(sz, this.reg, "x", "c.hi");
        return true;
      }
      case 0x90:
        if (this.rex & 1) return false;
        return true;
      case 0x98:
        if (sz === 8) this.emit(`r[16] = r[0] >> 31;`);
        else if (sz === 4) this.emit(`r[0] = (r[0] << 16) >> 16; r[16] = 0;`);
        else return false;
        return true;
      case 0x99:
        if (sz === 8) this.emit(`r[2] = r[18] = r[16] >> 31;`);
        else if (sz === 4) this.emit(`r[2] = r[0] >> 31; r[18] = 0;`);
        else return false;
        return true;
      case 0xa8:
      case 0xa9: {
        const s = b === 0xa8 ? 1 : sz;
        const [il, ih] = this.immLit(this.imm(s === 8 ? 4 : s), s);
        this.readReg(s, 0, "a", "ah");
        this.emit(`c.setRes(${s}, a & ${il}, ah & ${ih}, 0);`);
        return true;
      }
      case 0xc0:
      case 0xc1:
      case 0xd0:
      case 0xd1:
      case 0xd3: {
        const s = b & 1 ? sz : 1;
        this.modrm();
        const cnt = b < 0xd0 ? String(this.b8()) : b === 0xd3 ? "(r[1] & 0xff)" : "1";
        if (!this.isReg) this.memPrologue();
        this.readE(s, "a", "ah");
        this.emit(`x = H.shift(c, ${this.reg & 7}, ${s}, a, ah, ${cnt}); xh = c.hi;`);
        this.writeE(s, "x", "xh");
        return true;
      }
      case 0xc3:
        this.emit(`c.rip = ${this.rip}; n = ${this.count};`);
        this.emit(`sp = ${num(4)}; x = c.rd64(sp); xh = c.hi; t = H.canon(c, xh * 4294967296 + (x >>> 0)); sp += 8;`);
        this.emit(`r[4] = sp % 4294967296 | 0; r[20] = Math.floor(sp / 4294967296) | 0; c.rip = t;`);
        this.emit(`return ${this.count + 1};`);
        this.ended = true;
        return true;
      case 0xc6:
      case 0xc7: {
        const s = b === 0xc6 ? 1 : sz;
        this.modrm();
        if ((this.reg & 7) !== 0) return false;
        const [il, ih] = this.immLit(this.imm(s === 8 ? 4 : s), s);
        if (!this.isReg) this.memPrologue();
        this.writeE(s, il, ih);
        return true;
      }
      case 0xe8: {
        const d = this.i32();
        const ret = this.nextRip();
        const target = ret + d;
        this.emit(`c.rip = ${this.rip}; n = ${this.count};`);
        this.emit(`sp = ${num(4)} - 8; c.wr64(sp, ${ret % TWO32 | 0}, ${Math.floor(ret / TWO32) | 0});`);
        this.emit(`r[4] = sp % 4294967296 | 0; r[20] = Math.floor(sp / 4294967296) | 0;`);
        this.emit(`c.rip = ${target}; return ${this.count + 1};`);
        this.ended = true;
        return true;
      }
      case 0xe9:
      case 0xeb: {
        const d = b === 0xeb ? this.s8() : this.i32();
        this.emit(`c.rip = ${this.nextRip() + d}; return ${this.count + 1};`);
        this.ended = true;
        return true;
      }
      case 0xf6:
      case 0xf7: {
        const s = b === 0xf6 ? 1 : sz;
        this.modrm();
        const op = this.reg & 7;
        if (op > 3) return false;
        let il = "0", ih = "0";
        if (op < 2) [il, ih] = this.immLit(this.imm(s === 8 ? 4 : s), s);
        if (!this.isReg) this.memPrologue();
        this.readE(s, "a", "ah");
        if (op < 2) this.emit(`c.setRes(${s}, a & ${il}, ah & ${ih}, 0);`);
        else if (op === 2) {
          this.emit(`x = ~a & H.MASK[${s === 8 ? 4 : s}]; xh = ~ah;`);
          this.writeE(s, "x", "xh");
        } else {
          this.emit(`x = H.alu(c, 5, ${s}, 0, 0, a, ah); xh = c.hi;`);
          this.writeE(s, "x", "xh");
        }
        return true;
      }
      case 0xfe:
      case 0xff: {
        const s = b === 0xfe ? 1 : sz;
        this.modrm();
        const op = this.reg & 7;
        if (op < 2) {
          if (!this.isReg) this.memPrologue();
          this.readE(s, "a", "ah");
          this.emit(`x = H.incdec(c, ${s}, a, ah, ${op === 0 ? 1 : -1}); xh = c.hi;`);
          this.writeE(s, "x", "xh");
          return true;
        }
        if (b === 0xfe) return false;
        if (op === 2 || op === 4) {
          this.memPrologue();
          if (this.isReg) this.emit(`c.rip = ${this.rip};`);
          this.readE(8, "a", "ah");
          this.emit(`t = H.canon(c, ah * 4294967296 + (a >>> 0));`);
          if (op === 2) {
            const ret = this.nextRip();
            this.emit(`sp = ${num(4)} - 8; c.wr64(sp, ${ret % TWO32 | 0}, ${Math.floor(ret / TWO32) | 0});`);
            this.emit(`r[4] = sp % 4294967296 | 0; r[20] = Math.floor(sp / 4294967296) | 0;`);
          }
          this.emit(`c.rip = t; return ${this.count + 1};`);
          this.ended = true;
          return true;
        }
        if (op === 6 && !p66) {
          this.memPrologue();
          this.readE(8, "a", "ah");
          this.emit(`sp = ${num(4)} - 8; c.wr64(sp, a, ah);`);
          this.emit(`r[4] = sp % 4294967296 | 0; r[20] = Math.floor(sp / 4294967296) | 0;`);
          return true;
        }
        return false;
      }
    }
    return false;
  }

  /** Register numbers and constants for H.lea: "base, index, scale, disp". */
  eaSpec(): string {
    return this.leaSpec;
  }

  leaSpec = "";

  #jcc(cc: number, target: number): void {
    const next = this.nextRip();
    this.emit(`if (c.cond(${cc})) { c.rip = ${target}; return ${this.count + 1}; }`);
    this.emit(`c.rip = ${next}; return ${this.count + 1};`);
    this.ended = true;
  }

  #op0f(b: number): boolean {
    const sz = this.opsz;
    if (b >= 0x80 && b < 0x90) {
      const d = this.i32();
      this.#jcc(b & 15, this.nextRip() + d);
      return true;
    }
    if (b >= 0x40 && b < 0x50) {
      this.modrm();
      if (!this.isReg) this.memPrologue();
      this.readE(sz, "a", "ah");
      this.emit(`if (c.cond(${b & 15})) {`);
      this.writeReg(sz, this.reg, "a", "ah");
      if (sz === 4) this.emit(`} else r[${this.reg + 16}] = 0;`);
      else this.emit(`}`);
      return true;
    }
    if (b >= 0x90 && b < 0xa0) {
      this.modrm();
      if (!this.isReg) this.memPrologue();
      this.emit(`x = c.cond(${b & 15}) ? 1 : 0;`);
      this.writeE(1, "x", "0");
      return true;
    }
    switch (b) {
      case 0x1f:
        this.modrm();
        return true;
      case 0xaf: {
        this.modrm();
        if (!this.isReg) this.memPrologue();
        this.readE(sz, "t", "th");
        this.readReg(sz, this.reg, "a", "ah");
        this.emit(`x = H.imul2(c, ${sz}, a, ah, t, th); xh = c.hi;`);
        this.writeReg(sz, this.reg, "x", "xh");
        return true;
      }
      case 0xb6:
      case 0xb7:
      case 0xbe:
      case 0xbf: {
        const ssz = b & 1 ? 2 : 1;
        this.modrm();
        if (!this.isReg) this.memPrologue();
        this.readE(ssz, "a", "ah");
        if (b >= 0xbe) {
          this.emit(ssz === 1 ? `a = (a << 24) >> 24;` : `a = (a << 16) >> 16;`);
          this.writeReg(sz, this.reg, `(a & H.MASK[${sz === 8 ? 4 : sz}])`, "(a >> 31)");
        } else this.writeReg(sz, this.reg, "a", "0");
        return true;
      }
    }
    return false;
  }

  finish(n: number): string {
    if (!this.ended) this.emit(`c.rip = ${this.rip}; return ${n};`);
    return `"use strict";
return function block(c) {
  const r = c.r;
  let a = 0, ah = 0, t = 0, th = 0, x = 0, xh = 0, la = 0, sp = 0, n = 0;
  try {
${this.out.map((l) => "    " + l).join("\n")}
  } catch (e) {
    c.icount += n;
    throw e;
  }
};`;
  }
}

