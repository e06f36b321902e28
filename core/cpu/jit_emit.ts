/**
 * JIT code generator, part 1: the helpers (the opcode map is jit_gen.ts). A block of guest code (32-bit
 * protected or 64-bit mode) becomes the JavaScript source of a function that runs it. Semantics match the interpreter (interp.ts) and use its
 * helpers (alu.ts) and lazy-flag layout (cpu.ts); the common integer forms are emitted inline, with
 * flags stored only where they can be observed (liveness: a later flag reader, a possible fault, the
 * block's end) and compare/test fused into the following Jcc/SETcc/CMOVcc. An opcode not handled
 * here is run by the interpreter from inside the block (jit_interp.ts) or ends the block before it.
 *
 * Precise exceptions: an instruction that may fault first records its index in the local `n` and has
 * every pending flag store emitted; its own register writes come after its last possible fault. The
 * function's catch handler sets `c.rip` to that instruction and rethrows (see jit.ts).
 * @module
 */

/** Most guest instructions in one block. */
export const MAX_BLOCK_INSNS = 48;

export const TWO32 = 4294967296;

/** Prefix bytes (legacy). */
const LEGACY = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);

/** A decoded block ready for `new Function`. */
export interface GenBlock {
  /** Function body source; the function takes (c) and returns instructions retired. */
  src: string;
  /** Guest instructions in the block. */
  n: number;
  /** Bytes of guest code covered. */
  len: number;
  /** CS offsets (rip values) of each instruction, for fault recovery. */
  rips: number[];
  /** True when the block ended before an instruction the translator does not handle. */
  stopped: boolean;
  /** True when a branch back to the first instruction loops inside the function (locals T, B). */
  loops: boolean;
}

/** Flags produced by an earlier instruction whose store to the Cpu is still pending. */
export interface Pending {
  /** "sub" (SUB/CMP), "add", "logic" (AND/OR/XOR/TEST). */
  kind: string;
  sz: number;
  a: string;
  ah: string;
  b: string;
  bh: string;
  r: string;
  rh: string;
  /** inc/dec: expression of the carry flag kept from before (0/1). */
  cf?: string;
}

/** Memory or register operand of a ModRM byte. */
export interface Operand {
  isReg: boolean;
  rm: number;
  /** Name of the local holding the linear address (memory operands). */
  la: string;
  /** LEA parts (64-bit): base, index, scale, disp, or an absolute rip-relative value. */
  base: number;
  index: number;
  scale: number;
  disp: number;
  ripAbs: number | null;
  /** 32-bit effective address expression (address size 4). */
  ea32: string;
}

/** Decoding and emitting helpers for one block (jit_gen.ts JitGen adds the opcode map). */
export class JitEmitter {
  readonly u8: Uint8Array;
  /** u8 offset of the next byte; decoding stops before `limit` (the page end). */
  pos: number;
  readonly limit: number;
  readonly long: boolean;
  /** CS base (32-bit mode) and CS offset of the first instruction. */
  readonly csBase: number;
  readonly startRip: number;
  readonly startPos: number;
  readonly ssB: boolean;
  out: string[] = [];
  pend: Pending | null = null;
  rips: number[] = [];
  /** The current instruction writes memory. */
  stored = false;
  /** u8 offset of the instruction the block stopped before (when it did). */
  stopPos = -1;
  /** Guest code bytes decoded; a followed JMP/CALL records its own length in tracedLen. */
  bytes = 0;
  traced = false;
  tracedLen = 0;
  idSeq = 0;
  /** A branch back to the block's start was emitted as a loop. */
  loops = false;
  // Per-instruction decode state.
  opsz = 4;
  adsz = 4;
  rex = 0;
  rexW = false;
  rexR = 0;
  rexX = 0;
  rexB = 0;
  seg = -1;
  lock = false;
  rep = 0;
  /** CS offset of the current instruction and of the next one. */
  rip = 0;
  idx = 0;

  constructor(
    u8: Uint8Array,
    off: number,
    limit: number,
    rip: number,
    long: boolean,
    csBase: number,
    ssB: boolean,
  ) {
    this.u8 = u8;
    this.pos = off;
    this.startPos = off;
    this.limit = limit;
    this.startRip = rip;
    this.long = long;
    this.csBase = csBase;
    this.ssB = ssB;
  }

  tmp(p = "t"): string {
    return `${p}${this.idSeq++}`;
  }

  emit(s: string): void {
    this.out.push(s);
  }

  b8(): number {
    return this.u8[this.pos++];
  }

  i8(): number {
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

  /** CS offset of the byte after what has been decoded. */
  nextRip(): number {
    return this.startRip + (this.pos - this.startPos);
  }

  /** The stores that make the pending flags architectural ("" when none). */
  flushCode(): string {
    const p = this.pend;
    if (!p) return "";
    const op = p.kind === "sub" ? 2 : p.kind === "add" ? 1 : p.kind === "inc" ? 5 : p.kind === "dec" ? 6 : 7;
    // inc/dec keep CF: read it (from the Cpu, or the earlier pending operands) before anything is stored.
    let s = p.cf !== undefined ? `c.ccAux = ${p.cf}; ` : "";
    s += `c.ccOp = ${op}; c.ccSz = ${p.sz}; c.ccR = ${p.r};`;
    if (p.sz === 8) s += ` c.ccRh = ${p.rh};`;
    if (op === 7) s += " c.ccAux = 0;";
    else {
      s += ` c.ccA = ${p.a}; c.ccB = ${p.b};`;
      if (p.sz === 8) s += ` c.ccAh = ${p.ah}; c.ccBh = ${p.bh};`;
    }
    return s;
  }

  /** Emit the pending flag stores. */
  flush(): void {
    if (!this.pend) return;
    this.emit(this.flushCode());
    this.pend = null;
  }

  /** Before an instruction that may fault: flags stored, fault index recorded. */
  mayFault(): void {
    this.flush();
    this.emit(`n = ${this.idx};`);
  }

  /** Leave the block at CS offset `target` (a JS expression) after this instruction. */
  exitTo(target: string): void {
    this.flush();
    this.emit(`c.rip = ${target}; return T + ${this.idx + 1};`);
  }

  /** Inline condition code evaluation (fused with pending flags when possible). */
  cond(cc: number): string {
    const p = this.pend;
    if (p) {
      const e = fusedCond(p, cc);
      if (e !== null) return e;
    }
    this.flush();
    return `c.cond(${cc})`;
  }

  // ------------------------------------------------------------ registers

  reg(sz: number, n: number): string {
    if (sz >= 4) return `r[${n}]`;
    if (sz === 2) return `(r[${n}] & 65535)`;
    if (n < 4 || this.rex) return `(r[${n}] & 255)`;
    return `((r[${n - 4}] >> 8) & 255)`;
  }

  regHi(sz: number, n: number): string {
    return sz === 8 ? `r[${n + 16}]` : "0";
  }

  setReg(sz: number, n: number, lo: string, hi: string): string {
    switch (sz) {
      case 8:
        return `r[${n}] = ${lo}; r[${n + 16}] = ${hi};`;
      case 4:
        return `r[${n}] = ${lo}; r[${n + 16}] = 0;`;
      case 2:
        return `r[${n}] = (r[${n}] & -65536) | (${lo} & 65535);`;
      default:
        if (n < 4 || this.rex) return `r[${n}] = (r[${n}] & -256) | (${lo} & 255);`;
        return `r[${n - 4}] = (r[${n - 4}] & -65281) | ((${lo} & 255) << 8);`;
    }
  }

  // ------------------------------------------------------------ memory

  /**
   * Emit a load of size sz from linear address local `la` into fresh locals; returns [lo, hi]. The Cpu's
   * access methods hold the software-TLB fast path (V8 inlines them into a hot block); a miss walks the page
   * tables and may fault. (An inline copy of the TLB probe here measured no faster and made every block's
   * source, and so its compile time, about twice as large.)
   */
  load(sz: number, la: string): [string, string] {
    const v = this.tmp("v");
    if (sz === 8) {
      const h = this.tmp("h");
      this.emit(`const ${v} = c.rd64(${la}), ${h} = c.hi;`);
      return [v, h];
    }
    this.emit(`const ${v} = c.rd${sz * 8}(${la});`);
    return [v, "0"];
  }

  store(sz: number, la: string, lo: string, hi: string): void {
    this.stored = true;
    if (sz === 8) this.emit(`c.wr64(${la}, ${lo}, ${hi});`);
    else this.emit(`c.wr${sz * 8}(${la}, ${lo});`);
  }

  /** Decode ModRM (+SIB/disp); memory operands get their linear address in a local. Null: unsupported. */
  modrm(immBytes: number, noLa = false): { op: Operand; reg: number } | null {
    const m = this.b8();
    const mod = m >> 6, rmv = m & 7;
    const reg = ((m >> 3) & 7) | this.rexR;
    const op: Operand = {
      isReg: mod === 3,
      rm: rmv | this.rexB,
      la: "",
      base: -1,
      index: -1,
      scale: 0,
      disp: 0,
      ripAbs: null,
      ea32: "",
    };
    if (mod === 3) return { op, reg };
    if (this.adsz === 2) return null;
    let base = -1, index = -1, scale = 0, ripRel = false;
    if (rmv === 4) {
      const sib = this.b8();
      scale = sib >> 6;
      index = ((sib >> 3) & 7) | this.rexX;
      if (index === 4) index = -1;
      base = (sib & 7) | this.rexB;
      if ((sib & 7) === 5 && mod === 0) base = -1;
    } else if (rmv === 5 && mod === 0) ripRel = this.long;
    else base = rmv | this.rexB;
    let disp = 0;
    if (mod === 1) disp = this.i8();
    else if (mod === 2 || base === -1) disp = this.i32();
    let defSeg = 3;
    if (base === 4 || base === 5) defSeg = 2;
    const s = this.seg >= 0 ? this.seg : defSeg;
    op.base = base;
    op.index = index;
    op.scale = scale;
    op.disp = disp;
    const la = this.tmp("la");
    op.la = la;
    if (this.adsz === 8) {
      const parts: string[] = [];
      if (ripRel) {
        const abs = this.nextRip() + immBytes + disp;
        op.ripAbs = abs;
        parts.push(String(abs));
      } else if (disp !== 0 || (base < 0 && index < 0)) parts.push(String(disp));
      if (base >= 0) parts.push(`G(r, ${base})`);
      if (index >= 0) parts.push(`G(r, ${index})${scale ? ` * ${1 << scale}` : ""}`);
      if (s >= 4) parts.push(`c.segBase[${s}]`);
      if (!noLa) this.emit(`const ${la} = ${parts.join(" + ")};`);
      return { op, reg };
    }
    const parts: string[] = [];
    if (ripRel) parts.push(String(this.nextRip() + immBytes + disp));
    else if (disp !== 0 || (base < 0 && index < 0)) parts.push(String(disp));
    if (base >= 0) parts.push(`r[${base}]`);
    if (index >= 0) parts.push(scale ? `(r[${index}] << ${scale})` : `r[${index}]`);
    op.ea32 = `((${parts.join(" + ")}) >>> 0)`;
    if (noLa) return { op, reg };
    if (this.long) {
      this.emit(`const ${la} = ${op.ea32}${s >= 4 ? ` + c.segBase[${s}]` : ""};`);
    } else this.emit(`const ${la} = (${op.ea32} + c.segBase[${s}]) >>> 0;`);
    return { op, reg };
  }

  /** Read operand E (register or memory) of size sz; may emit a load (caller did mayFault). */
  readE(op: Operand, sz: number): [string, string] {
    if (op.isReg) return [this.reg(sz, op.rm), this.regHi(sz, op.rm)];
    return this.load(sz, op.la);
  }

  /** Before a helper that sets flags and then a memory store: fault on an unwritable operand first. */
  probeW(op: Operand, sz: number): void {
    if (!op.isReg) this.emit(`c.checkW(${op.la}); c.checkW(${op.la} + ${sz - 1});`);
  }

  writeE(op: Operand, sz: number, lo: string, hi: string): void {
    if (op.isReg) this.emit(this.setReg(sz, op.rm, lo, hi));
    else this.store(sz, op.la, lo, hi);
  }

  // ------------------------------------------------------------ stack

  /** Emit a push of (lo, hi) of size sz. False: unsupported stack form. */
  push(sz: number, lo: string, hi: string): boolean {
    if (this.long) {
      if (sz !== 8) return false;
      const l = this.tmp("sl"), nh = this.tmp("sh");
      const la = this.tmp("la");
      this.emit(`const ${l} = (r[4] >>> 0) - 8, ${nh} = ${l} < 0 ? (r[20] - 1) | 0 : r[20];`);
      this.emit(`const ${la} = ${nh} * ${TWO32} + ((${l} | 0) >>> 0);`);
      this.store(8, la, lo, hi);
      this.emit(`r[4] = ${l} | 0; r[20] = ${nh};`);
      return true;
    }
    if (!this.ssB || sz !== 4) return false;
    const e = this.tmp("sp");
    this.emit(`const ${e} = (r[4] - 4) | 0;`);
    const la = this.tmp("la");
    this.emit(`const ${la} = ((${e} >>> 0) + c.segBase[2]) >>> 0;`);
    this.store(4, la, lo, "0");
    this.emit(`r[4] = ${e};`);
    return true;
  }

  /** Emit a pop of size sz into fresh locals (rsp updated). Null: unsupported stack form. */
  pop(sz: number, extra = 0): [string, string] | null {
    if (this.long) {
      if (sz !== 8) return null;
      const l = this.tmp("sl"), la = this.tmp("la");
      this.emit(`const ${la} = G(r, 4);`);
      const [v, h] = this.load(8, la);
      this.emit(`const ${l} = (r[4] >>> 0) + ${8 + extra};`);
      this.emit(`r[4] = ${l} | 0; r[20] = (r[20] + (${l} >= ${TWO32} ? 1 : 0)) | 0;`);
      return [v, h];
    }
    if (!this.ssB || sz !== 4) return null;
    const la = this.tmp("la");
    this.emit(`const ${la} = ((r[4] >>> 0) + c.segBase[2]) >>> 0;`);
    const [v] = this.load(4, la);
    this.emit(`r[4] = (r[4] + ${4 + extra}) | 0;`);
    return [v, "0"];
  }

  // ------------------------------------------------------------ decode

  /** Decode prefixes; returns the opcode byte or -1 (unsupported). */
  prefixes(): number {
    const def = this.long ? 4 : 4;
    this.opsz = def;
    this.adsz = this.long ? 8 : 4;
    this.rex = 0;
    this.seg = -1;
    this.lock = false;
    this.rep = 0;
    let b = this.b8();
    for (let k = 0; k < 14; k++) {
      if (LEGACY.has(b)) {
        this.rex = 0;
        if (b === 0x66) this.opsz = 2;
        else if (b === 0x67) this.adsz = this.long ? 4 : 2;
        else if (b === 0x64) this.seg = 4;
        else if (b === 0x65) this.seg = 5;
        else if (b === 0xf0) this.lock = true;
        else if (b === 0xf2) this.rep = 2;
        else if (b === 0xf3) this.rep = 1;
        else if (!this.long) this.seg = (b >> 3) & 3;
        b = this.b8();
        continue;
      }
      if (this.long && (b & 0xf0) === 0x40) {
        this.rex = b;
        b = this.b8();
        continue;
      }
      break;
    }
    const x = this.rex;
    this.rexW = (x & 8) !== 0;
    this.rexR = (x & 4) << 1;
    this.rexX = (x & 2) << 2;
    this.rexB = (x & 1) << 3;
    if (this.rexW) this.opsz = 8;
    return b;
  }

  /**
   * Trace through a direct JMP/CALL whose target lies in the block's own page (so the page's write tracking
   * covers it): decoding continues there. Backward jumps end the block (loops go through the dispatcher).
   */
  follow(target: number, call: boolean): boolean {
    const page = Math.floor(this.startRip / 4096) * 4096;
    if (target < page || target >= page + 4096) return false;
    if (!call && target <= this.nextRip()) return false;
    if (this.idx + 1 >= MAX_BLOCK_INSNS) return false;
    this.traced = true;
    this.tracedLen = this.nextRip() - this.rip;
    this.pos = this.startPos + (target - this.startRip);
    return true;
  }

  /** A direct branch target, canonical-checked (64-bit) or truncated (32-bit); null: let the interpreter fault. */
  target(t: number): number | null {
    if (this.long) {
      if (t < -0x800000000000 || t >= 0x800000000000) return null;
      return t;
    }
    return t >>> 0;
  }
}

export function regOperand(n: number): Operand {
  return { isReg: true, rm: n, la: "", base: -1, index: -1, scale: 0, disp: 0, ripAbs: null, ea32: "" };
}

/** CF (0/1) of pending flags as an expression over their locals. */
export function carryOf(p: Pending): string {
  const { sz, a, ah, b, bh, r, rh } = p;
  switch (p.kind) {
    case "logic":
      return "0";
    case "inc":
    case "dec":
      return p.cf as string;
    case "sub":
      if (sz === 8) {
        return `((${ah} >>> 0) < (${bh} >>> 0) || (${ah} === ${bh} && (${a} >>> 0) < (${b} >>> 0)) ? 1 : 0)`;
      }
      return `((${a} >>> 0) < (${b} >>> 0) ? 1 : 0)`;
    default:
      if (sz === 8) {
        return `((${rh} >>> 0) < (${ah} >>> 0) || (${rh} === ${ah} && (${r} >>> 0) < (${a} >>> 0)) ? 1 : 0)`;
      }
      return `((${r} >>> 0) < (${a} >>> 0) ? 1 : 0)`;
  }
}

function sx(e: string, sz: number): string {
  if (sz === 1) return `((${e} << 24) >> 24)`;
  if (sz === 2) return `((${e} << 16) >> 16)`;
  return e;
}

/** A JS boolean expression for condition cc straight from pending flag operands, or null. */
export function fusedCond(p: Pending, cc: number): string | null {
  const { sz, a, ah, b, bh, r, rh } = p;
  if (p.kind === "logic") {
    const zero = sz === 8 ? `((${r} | ${rh}) === 0)` : `(${r} === 0)`;
    const neg = sz === 8 ? `(${rh} < 0)` : `(${sx(r, sz)} < 0)`;
    switch (cc) {
      case 0:
      case 2:
        return "false";
      case 1:
      case 3:
        return "true";
      case 4:
      case 6:
        return zero;
      case 5:
      case 7:
        return `!${zero}`;
      case 8:
      case 0xc:
        return neg;
      case 9:
      case 0xd:
        return `!${neg}`;
      case 0xe:
        return `(${zero} || ${neg})`;
      case 0xf:
        return `!(${zero} || ${neg})`;
    }
    return null;
  }
  if (p.kind === "sub") {
    if (sz === 8) {
      const ult = `((${ah} >>> 0) < (${bh} >>> 0) || (${ah} === ${bh} && (${a} >>> 0) < (${b} >>> 0)))`;
      const slt = `(${ah} < ${bh} || (${ah} === ${bh} && (${a} >>> 0) < (${b} >>> 0)))`;
      const eq = `(${a} === ${b} && ${ah} === ${bh})`;
      switch (cc) {
        case 2:
          return ult;
        case 3:
          return `!${ult}`;
        case 4:
          return eq;
        case 5:
          return `!${eq}`;
        case 6:
          return `(${ult} || ${eq})`;
        case 7:
          return `!(${ult} || ${eq})`;
        case 0xc:
          return slt;
        case 0xd:
          return `!${slt}`;
        case 0xe:
          return `(${slt} || ${eq})`;
        case 0xf:
          return `!(${slt} || ${eq})`;
      }
      return null;
    }
    switch (cc) {
      case 2:
        return `((${a} >>> 0) < (${b} >>> 0))`;
      case 3:
        return `((${a} >>> 0) >= (${b} >>> 0))`;
      case 4:
        return `(${a} === ${b})`;
      case 5:
        return `(${a} !== ${b})`;
      case 6:
        return `((${a} >>> 0) <= (${b} >>> 0))`;
      case 7:
        return `((${a} >>> 0) > (${b} >>> 0))`;
      case 8:
        return `(${sx(r, sz)} < 0)`;
      case 9:
        return `(${sx(r, sz)} >= 0)`;
      case 0xc:
        return `(${sx(a, sz)} < ${sx(b, sz)})`;
      case 0xd:
        return `(${sx(a, sz)} >= ${sx(b, sz)})`;
      case 0xe:
        return `(${sx(a, sz)} <= ${sx(b, sz)})`;
      case 0xf:
        return `(${sx(a, sz)} > ${sx(b, sz)})`;
    }
    return null;
  }
  // add
  const zero = sz === 8 ? `((${r} | ${rh}) === 0)` : `(${r} === 0)`;
  if (cc === 4) return zero;
  if (cc === 5) return `!${zero}`;
  if (cc === 8) return sz === 8 ? `(${rh} < 0)` : `(${r} < 0)`;
  if (cc === 9) return sz === 8 ? `(${rh} >= 0)` : `(${r} >= 0)`;
  return null;
}
