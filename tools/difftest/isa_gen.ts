/**
 * Random x86-64 instruction sequences for isa_fuzz.ts, drawn from the forms the test guest executes
 * (shared/guest/ISA-PROFILE.md §3-5): integer ALU with flags, shifts/rotates, mul/div, bit ops, string ops,
 * cmov/setcc/jcc, and the SSE2 integer + scalar-double forms busybox uses. Each unit records which
 * arithmetic flags it reads, defines and leaves undefined (SDM vol. 2 "Flags Affected"), so a sequence never
 * consumes an undefined flag and the final compare masks flags left undefined.
 * @module
 */

/** EFLAGS bits used by the flag bookkeeping. */
export const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800, DF = 0x400;
/** All six arithmetic flags. */
export const ARITH = CF | PF | AF | ZF | SF | OF;

/** One generated instruction (or a tiny fixed group such as `jcc` over one instruction). */
export interface Unit {
  /** GNU as Intel-syntax text (may hold several lines). */
  asm: string;
  /** Arithmetic flags (and DF) the unit reads. */
  reads: number;
  /** Arithmetic flags the unit always defines. */
  writes: number;
  /** Arithmetic flags the unit leaves undefined (or possibly unchanged). */
  undef: number;
  /** Template group name (for statistics and reports). */
  group: string;
}

/** Seeded PRNG (mulberry32). */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** A uint32. */
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return this.u32() % n;
  }
  /** One element of a. */
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  /** A 64-bit value biased to edge cases. */
  u64(): bigint {
    const k = this.int(10);
    const r = (BigInt(this.u32()) << 32n) | BigInt(this.u32());
    switch (k) {
      case 0:
        return this.pick([0n, 1n, 0xffffffffffffffffn, 0x8000000000000000n, 0x7fffffffffffffffn]);
      case 1:
        return this.pick([0x80000000n, 0x7fffffffn, 0xffffffffn, 0x100000000n, 0xffffffff80000000n]);
      case 2:
        return BigInt(this.int(70));
      case 3:
        return r & 0xffffn;
      case 4:
        return r & 0xffffffffn;
      case 5:
        return BigInt.asUintN(64, -BigInt(this.int(300)));
      case 6:
        return this.pick([0x80n, 0x7fn, 0xffn, 0x8000n, 0x7fffn, 0xffffn]) | (r & 0xffffffff00000000n);
      default:
        return r;
    }
  }
}

const R64 = ["rax", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];
const R32 = [
  "eax",
  "ecx",
  "edx",
  "esi",
  "edi",
  "ebp",
  "r8d",
  "r9d",
  "r10d",
  "r11d",
  "r12d",
  "r13d",
  "r14d",
  "r15d",
];
const R16 = [
  "ax",
  "cx",
  "dx",
  "si",
  "di",
  "bp",
  "r8w",
  "r9w",
  "r10w",
  "r11w",
  "r12w",
  "r13w",
  "r14w",
  "r15w",
];
const R8 = [
  "al",
  "cl",
  "dl",
  "sil",
  "dil",
  "bpl",
  "r8b",
  "r9b",
  "r10b",
  "r11b",
  "r12b",
  "r13b",
  "r14b",
  "r15b",
];
const R8L = ["al", "cl", "dl", "ah", "ch", "dh"];
const PTR: Record<number, string> = { 1: "BYTE", 2: "WORD", 4: "DWORD", 8: "QWORD", 16: "XMMWORD" };
const CC: Array<[string, number]> = [
  ["o", OF],
  ["no", OF],
  ["b", CF],
  ["ae", CF],
  ["e", ZF],
  ["ne", ZF],
  ["be", CF | ZF],
  ["a", CF | ZF],
  ["s", SF],
  ["ns", SF],
  ["p", PF],
  ["np", PF],
  ["l", SF | OF],
  ["ge", SF | OF],
  ["le", ZF | SF | OF],
  ["g", ZF | SF | OF],
];

function hex(n: number): string {
  return n < 0 ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`;
}

/** A signed displacement for `[rbx<disp>]`. */
function disp(n: number): string {
  return n < 0 ? `-0x${(-n).toString(16)}` : `+0x${n.toString(16)}`;
}

/** Random register of `size` bytes; `legacy8` picks from al..dh (no REX). */
function reg(r: Rng, size: number, legacy8 = false): string {
  if (size === 8) return r.pick(R64);
  if (size === 4) return r.pick(R32);
  if (size === 2) return r.pick(R16);
  return legacy8 ? r.pick(R8L) : r.pick(R8);
}

/** Memory operand [rbx+disp] inside the 4 KiB data page (rbx = page + 0x800). */
function mem(r: Rng, size: number, align = 1): string {
  const a = Math.max(align, 1);
  let d = (r.int(0x700) - 0x380) & ~(a - 1);
  if (align === 1 && r.int(3) === 0) d |= r.int(8);
  return `${PTR[size]} PTR [rbx${d < 0 ? "-" : "+"}0x${Math.abs(d).toString(16)}]`;
}

function imm(r: Rng, size: number): string {
  const v = r.u64();
  if (size === 1) return hex(Number(v & 0xffn));
  if (size === 2) return hex(Number(v & 0xffffn));
  // 32-bit immediates (sign-extended for 64-bit operands).
  const x = Number(BigInt.asIntN(32, v & 0xffffffffn));
  return hex(x);
}

function sz(r: Rng): number {
  return r.pick([1, 2, 4, 8, 8, 4]);
}

type Gen = (r: Rng) => Unit;

function u(group: string, asm: string, reads: number, writes: number, undef: number): Unit {
  return { asm, reads, writes: writes & ~undef, undef, group };
}

/** Two operands of one size: reg,reg / reg,imm / reg,mem / mem,reg / mem,imm. */
function binOps(r: Rng, s: number, allowImm = true): string {
  const legacy = s === 1 && r.int(3) === 0;
  const k = r.int(allowImm ? 5 : 3);
  const a = reg(r, s, legacy);
  switch (k) {
    case 0:
      return `${a}, ${reg(r, s, legacy)}`;
    case 1:
      return `${a}, ${mem(r, s)}`;
    case 2:
      return `${mem(r, s)}, ${a}`;
    case 3:
      return `${a}, ${imm(r, s)}`;
    default:
      return `${mem(r, s)}, ${imm(r, s)}`;
  }
}

const ALU: Gen = (r) => {
  const op = r.pick(["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp", "test"]);
  const s = sz(r);
  const ops = op === "test" ? binOps(r, s).replace(/^(.*), (.*PTR.*)$/, "$2, $1") : binOps(r, s);
  const reads = op === "adc" || op === "sbb" ? CF : 0;
  const logic = op === "or" || op === "and" || op === "xor" || op === "test";
  return u("alu", `${op} ${ops}`, reads, ARITH, logic ? AF : 0);
};

const UNARY: Gen = (r) => {
  const op = r.pick(["inc", "dec", "neg", "not"]);
  const s = sz(r);
  const x = r.int(3) === 0 ? mem(r, s) : reg(r, s, s === 1 && r.int(3) === 0);
  if (op === "not") return u("unary", `not ${x}`, 0, 0, 0);
  if (op === "neg") return u("unary", `neg ${x}`, 0, ARITH, 0);
  return u("unary", `${op} ${x}`, 0, ARITH & ~CF, 0);
};

const SHIFT: Gen = (r) => {
  const op = r.pick(["shl", "shr", "sar", "rol", "ror", "rcl", "rcr", "shl", "shr", "sar"]);
  const s = sz(r);
  const x = r.int(4) === 0 ? mem(r, s) : reg(r, s);
  const rot = op[0] === "r";
  const reads = op === "rcl" || op === "rcr" ? CF : 0;
  const kind = r.int(3);
  const mask = s === 8 ? 63 : 31;
  if (kind === 0) {
    // Count 1: OF defined.
    const w = rot ? CF | OF : ARITH;
    return u("shift", `${op} ${x}, 1`, reads, w, rot ? 0 : AF);
  }
  if (kind === 1) {
    const n = r.pick([0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, r.int(256)]);
    const c = n & mask;
    if (c === 0) return u("shift", `${op} ${x}, ${n}`, reads, 0, 0);
    let und = c === 1 ? 0 : OF;
    if (!rot) und |= AF;
    if (!rot && s < 4 && c >= s * 8) und |= CF | OF | SF | ZF | PF;
    const w = rot ? CF | OF : ARITH;
    return u("shift", `${op} ${x}, ${n}`, reads, w & ~und, und);
  }
  // By CL: count may be zero (flags unchanged), so nothing becomes defined.
  let und = OF | (rot ? CF : ARITH);
  if (!rot && s < 4) und |= CF;
  return u("shift", `${op} ${x}, cl`, reads, 0, und);
};

const SHXD: Gen = (r) => {
  const op = r.pick(["shld", "shrd"]);
  const s = r.pick([4, 8]);
  const dst = r.int(3) === 0 ? mem(r, s) : reg(r, s);
  const src = reg(r, s);
  if (r.int(2) === 0) {
    const n = r.int(64) & (s === 8 ? 63 : 31);
    if (n === 0) return u("shxd", `${op} ${dst}, ${src}, 0`, 0, 0, 0);
    const und = AF | (n === 1 ? 0 : OF);
    return u("shxd", `${op} ${dst}, ${src}, ${n}`, 0, ARITH & ~und, und);
  }
  return u("shxd", `${op} ${dst}, ${src}, cl`, 0, 0, ARITH);
};

const MULDIV: Gen = (r) => {
  const s = r.pick([1, 2, 4, 8, 8]);
  const src = r.int(3) === 0 ? mem(r, s) : reg(r, s);
  switch (r.int(6)) {
    case 0:
      return u("mul", `mul ${src}`, 0, CF | OF, SF | ZF | AF | PF);
    case 1:
      return u("mul", `imul ${src}`, 0, CF | OF, SF | ZF | AF | PF);
    case 2: {
      const t = r.pick([2, 4, 8]);
      const d = reg(r, t);
      const sv = r.int(2) ? reg(r, t) : mem(r, t);
      const three = r.int(2) ? `, ${imm(r, t === 2 ? 2 : 4)}` : "";
      return u("mul", `imul ${d}, ${sv}${three}`, 0, CF | OF, SF | ZF | AF | PF);
    }
    case 3: {
      // Unsigned divide with a zeroed high half (rarely faults), divisor forced odd/non-zero via or.
      const d = r.pick(["rcx", "rsi", "rdi", "r8", "r9"]);
      const w = s === 1 ? 8 : s;
      const dd = w === 8 ? d : w === 4 ? R32[R64.indexOf(d)] : R16[R64.indexOf(d)];
      if (w === 8) return u("div", `or ${d}, 1\nxor edx, edx\ndiv ${dd}`, 0, 0, ARITH);
      return u("div", `or ${d}, 1\nxor edx, edx\ndiv ${dd}`, 0, 0, ARITH);
    }
    case 4: {
      const d = r.pick(["rcx", "rsi", "rdi", "r8", "r9"]);
      const w = r.pick([4, 8]);
      const dd = w === 8 ? d : R32[R64.indexOf(d)];
      return u("div", `or ${d}, 1\n${w === 8 ? "cqo" : "cdq"}\nidiv ${dd}`, 0, 0, ARITH);
    }
    default:
      return u("div", `${r.pick(["div", "idiv"])} ${src}`, 0, 0, ARITH);
  }
};

const BITS: Gen = (r) => {
  const op = r.pick(["bt", "bts", "btr", "btc"]);
  const s = r.pick([2, 4, 8]);
  const und = OF | SF | AF | PF;
  switch (r.int(4)) {
    case 0:
      return u("bt", `${op} ${reg(r, s)}, ${reg(r, s)}`, 0, CF, und);
    case 1:
      return u("bt", `${op} ${r.int(2) ? reg(r, s) : mem(r, s)}, ${r.int(256)}`, 0, CF, und);
    case 2: {
      // Memory bit string with a register offset (can reach beyond the operand): keep it inside the page.
      const o = r.pick(["ecx", "esi", "edi", "edx"]);
      return u(
        "bt",
        `and ${o}, 0x3ff\nsub ${o}, 0x200\n${s === 8 ? `movsxd r${o.slice(1)}, ${o}\n` : ""}${op} ${
          PTR[s]
        } PTR [rbx], ${s === 8 ? "r" + o.slice(1) : s === 2 ? o.slice(1) : o}`,
        0,
        CF,
        und | ARITH,
      );
    }
    default: {
      const bop = r.pick(["bsf", "bsr"]);
      return u(
        "bsf",
        `${bop} ${reg(r, s)}, ${r.int(2) ? reg(r, s) : mem(r, s)}`,
        0,
        ZF,
        CF | OF | SF | AF | PF,
      );
    }
  }
};

const MOVS: Gen = (r) => {
  switch (r.int(12)) {
    case 0:
      return u("mov", `movzx ${reg(r, r.pick([2, 4, 8]))}, ${r.int(2) ? reg(r, 1) : mem(r, 1)}`, 0, 0, 0);
    case 1:
      return u("mov", `movsx ${reg(r, r.pick([2, 4, 8]))}, ${r.int(2) ? reg(r, 1) : mem(r, 1)}`, 0, 0, 0);
    case 2:
      return u("mov", `movzx ${reg(r, r.pick([4, 8]))}, ${r.int(2) ? reg(r, 2) : mem(r, 2)}`, 0, 0, 0);
    case 3:
      return u("mov", `movsxd ${reg(r, 8)}, ${r.int(2) ? reg(r, 4) : mem(r, 4)}`, 0, 0, 0);
    case 4:
      return u("mov", r.pick(["cdqe", "cqo", "cdq", "cwde", "cbw", "cwd"]), 0, 0, 0);
    case 5:
      return u("mov", `mov ${binOps(r, sz(r))}`, 0, 0, 0);
    case 6:
      return u("mov", `movabs ${reg(r, 8)}, 0x${r.u64().toString(16)}`, 0, 0, 0);
    case 7: {
      const s = sz(r);
      return u("xchg", `xchg ${reg(r, s)}, ${r.int(2) ? reg(r, s) : mem(r, s)}`, 0, 0, 0);
    }
    case 8: {
      const s = sz(r);
      return u("xadd", `${r.int(2) ? "lock " : ""}xadd ${mem(r, s)}, ${reg(r, s)}`, 0, ARITH, 0);
    }
    case 9: {
      const s = sz(r);
      const d = r.int(2) ? mem(r, s) : reg(r, s);
      const src = reg(r, s).replace(
        /^(al|ax|eax|rax)$/,
        s === 8 ? "rcx" : s === 4 ? "ecx" : s === 2 ? "cx" : "cl",
      );
      return u("cmpxchg", `${r.int(2) && d.includes("PTR") ? "lock " : ""}cmpxchg ${d}, ${src}`, 0, ARITH, 0);
    }
    case 10:
      return u("mov", `bswap ${reg(r, r.pick([4, 8]))}`, 0, 0, 0);
    default: {
      const s = r.pick([2, 4, 8]);
      const ix = r.pick(["rcx", "rsi", "rdi", "rax"]);
      return u(
        "lea",
        `lea ${reg(r, s)}, [${r.pick(R64)}+${ix}*${r.pick([1, 2, 4, 8])}${disp(r.int(200) - 100)}]`,
        0,
        0,
        0,
      );
    }
  }
};

const CMPXCHG16: Gen = (r) => {
  const w = r.int(2) ? 16 : 8;
  const d = (r.int(0x70) - 0x38) * 16;
  const m = `${w === 16 ? "XMMWORD" : "QWORD"} PTR [rbx${d < 0 ? "-" : "+"}0x${Math.abs(d).toString(16)}]`;
  // Make the compare succeed half of the time.
  const pre = r.int(2) ? `mov rax, QWORD PTR [rbx${disp(d)}]\nmov rdx, QWORD PTR [rbx${disp(d + 8)}]\n` : "";
  return u("cmpxchg16b", `${pre}${r.int(2) ? "lock " : ""}cmpxchg${w}b ${m}`, 0, ZF, 0);
};

const FLAGUSE: Gen = (r) => {
  const [cc, f] = r.pick(CC);
  switch (r.int(5)) {
    case 0: {
      const s = r.pick([2, 4, 8]);
      return u("cmov", `cmov${cc} ${reg(r, s)}, ${r.int(2) ? reg(r, s) : mem(r, s)}`, f, 0, 0);
    }
    case 1:
      return u("setcc", `set${cc} ${r.int(3) ? reg(r, 1, r.int(2) === 0) : mem(r, 1)}`, f, 0, 0);
    case 2:
      return u("jcc", `j${cc} 1f\nadd ${reg(r, 8)}, ${hex(r.int(100) + 1)}\n1:`, f, 0, 0);
    case 3: {
      const op = r.pick(["lahf", "cmc", "stc", "clc"]);
      if (op === "lahf") return u("flags", "lahf", SF | ZF | AF | PF | CF, 0, 0);
      return u("flags", op, op === "cmc" ? CF : 0, CF, 0);
    }
    default:
      return u("flags", "sahf", 0, SF | ZF | AF | PF | CF, 0);
  }
};

const STRING: Gen = (r) => {
  const s = r.pick([1, 4, 8, 1, 2]);
  const suf = { 1: "b", 2: "w", 4: "d", 8: "q" }[s]!;
  const n = r.pick([0, 1, 2, 3, 7, 16, 33, r.int(64)]);
  const back = r.int(4) === 0;
  const src = back ? 0x300 + r.int(0x100) : -0x700 + r.int(0x100);
  const dst = back ? 0x500 + r.int(0x100) : -0x300 + r.int(0x200);
  const pre = `lea rsi, [rbx${disp(src)}]\nlea rdi, [rbx${disp(dst)}]\nmov ecx, ${n}\n${
    back ? "std" : "cld"
  }\n`;
  const post = back ? "\ncld" : "";
  const op = r.pick(["rep movs", "rep stos", "movs", "stos", "lods", "rep movs", "rep stos"]);
  return u("string", `${pre}${op}${suf}${post}`, 0, 0, 0);
};

const STACK: Gen = (r) => {
  switch (r.int(4)) {
    case 0:
      return u("stack", `push ${reg(r, 8)}\npop ${reg(r, 8)}`, 0, 0, 0);
    case 1:
      return u("stack", `pushfq\npop ${reg(r, 8)}`, ARITH, 0, 0);
    case 2:
      return u("stack", `push ${imm(r, 4)}\npop ${reg(r, 8)}`, 0, 0, 0);
    default:
      return u("stack", `call 1f\njmp 2f\n1: add ${reg(r, 8)}, 3\nret\n2:`, 0, ARITH, 0);
  }
};

function xr(r: Rng): string {
  return `xmm${r.int(16)}`;
}

const SSE_INT = [
  "pcmpeqb",
  "pcmpeqw",
  "pcmpeqd",
  "pcmpgtb",
  "pcmpgtw",
  "pcmpgtd",
  "pxor",
  "por",
  "pand",
  "pandn",
  "paddb",
  "paddw",
  "paddd",
  "paddq",
  "psubb",
  "psubw",
  "psubd",
  "psubq",
  "pminub",
  "pmaxub",
  "pminsw",
  "pmaxsw",
  "punpcklbw",
  "punpcklwd",
  "punpckldq",
  "punpcklqdq",
  "punpckhbw",
  "punpckhwd",
  "punpckhdq",
  "punpckhqdq",
  "paddusb",
  "psubusb",
  "paddsw",
  "psubsw",
  "pmullw",
  "pmulhw",
  "pmulhuw",
  "pmuludq",
  "pmaddwd",
  "psadbw",
  "packsswb",
  "packuswb",
  "packssdw",
  "pavgb",
  "pavgw",
  "psrlw",
  "psrld",
  "psrlq",
  "psllw",
  "pslld",
  "psllq",
  "psraw",
  "psrad",
];

const SSE: Gen = (r) => {
  switch (r.int(12)) {
    case 0:
    case 1:
    case 2: {
      const op = r.pick(SSE_INT);
      return u("sse", `${op} ${xr(r)}, ${r.int(4) ? xr(r) : mem(r, 16, 16)}`, 0, 0, 0);
    }
    case 3:
      return u("sse", `pmovmskb ${reg(r, r.pick([4, 8]))}, ${xr(r)}`, 0, 0, 0);
    case 4: {
      const op = r.pick([
        "psrlw",
        "psrld",
        "psrlq",
        "psllw",
        "pslld",
        "psllq",
        "psraw",
        "psrad",
        "pslldq",
        "psrldq",
      ]);
      return u(
        "sse",
        `${op} ${xr(r)}, ${r.pick([0, 1, 3, 7, 8, 15, 16, 17, 31, 32, 63, 64, r.int(256)])}`,
        0,
        0,
        0,
      );
    }
    case 5:
      return u("sse", `pshufd ${xr(r)}, ${r.int(3) ? xr(r) : mem(r, 16, 16)}, ${r.int(256)}`, 0, 0, 0);
    case 6: {
      const k = r.int(8);
      const g = reg(r, 4).replace("e", "r").replace(/^r(\d+)d$/, "r$1");
      const f = [
        `movd ${xr(r)}, ${reg(r, 4)}`,
        `movd ${reg(r, 4)}, ${xr(r)}`,
        `movq ${xr(r)}, ${g}`,
        `movq ${g}, ${xr(r)}`,
        `movq ${xr(r)}, ${xr(r)}`,
        `movq ${xr(r)}, ${mem(r, 8)}`,
        `movq ${mem(r, 8)}, ${xr(r)}`,
        `movd ${xr(r)}, ${mem(r, 4)}`,
      ][k];
      return u("sse-mov", f, 0, 0, 0);
    }
    case 7: {
      const op = r.pick(["movdqa", "movdqu", "movaps", "movups", "movapd"]);
      // Aligned forms get a misaligned operand 1 time in 8: that must #GP (cpu_bugs.md BUG 4).
      const al = (op === "movdqa" || op === "movaps" || op === "movapd") && r.int(8) ? 16 : 1;
      const f = [
        `${op} ${xr(r)}, ${xr(r)}`,
        `${op} ${xr(r)}, ${mem(r, 16, al)}`,
        `${op} ${mem(r, 16, al)}, ${xr(r)}`,
      ][
        r.int(3)
      ];
      return u("sse-mov", f, 0, 0, 0);
    }
    case 8: {
      const op = r.pick(["movlpd", "movhpd", "movlps", "movhps"]);
      return u(
        "sse-mov",
        r.int(2) ? `${op} ${xr(r)}, ${mem(r, 8)}` : `${op} ${mem(r, 8)}, ${xr(r)}`,
        0,
        0,
        0,
      );
    }
    case 9: {
      const op = r.pick(["pextrw", "pinsrw"]);
      if (op === "pextrw") return u("sse", `pextrw ${reg(r, 4)}, ${xr(r)}, ${r.int(16)}`, 0, 0, 0);
      return u("sse", `pinsrw ${xr(r)}, ${reg(r, 4)}, ${r.int(16)}`, 0, 0, 0);
    }
    case 10: {
      const op = r.pick(["xorps", "andps", "andnps", "orps", "unpcklpd", "unpckhpd", "shufps", "shufpd"]);
      const i = op.startsWith("shuf") ? `, ${r.int(256)}` : "";
      return u("sse", `${op} ${xr(r)}, ${xr(r)}${i}`, 0, 0, 0);
    }
    default:
      return u("sse", `${r.pick(["movmskpd", "movmskps"])} ${reg(r, 4)}, ${xr(r)}`, 0, 0, 0);
  }
};

const SSE_FP: Gen = (r) => {
  switch (r.int(6)) {
    case 0:
      return u("sse-fp", `${r.pick(["comisd", "ucomisd"])} ${xr(r)}, ${xr(r)}`, 0, ARITH, 0);
    case 1:
      return u("sse-fp", `cvtsi2sd ${xr(r)}, ${reg(r, r.pick([4, 8]))}`, 0, 0, 0);
    case 2:
      return u("sse-fp", `${r.pick(["cvttsd2si", "cvtsd2si"])} ${reg(r, r.pick([4, 8]))}, ${xr(r)}`, 0, 0, 0);
    case 3:
      return u("sse-fp", `movsd ${r.int(2) ? `${xr(r)}, ${xr(r)}` : `${xr(r)}, ${mem(r, 8)}`}`, 0, 0, 0);
    default: {
      const op = r.pick(["addsd", "subsd", "mulsd", "divsd", "minsd", "maxsd", "sqrtsd"]);
      return u("sse-fp", `${op} ${xr(r)}, ${xr(r)}`, 0, 0, 0);
    }
  }
};

/** fxsave64/fxrstor64 round trip (kernel context switch path); x87 pointer fields cleared before the compare. */
const FXSAVE: Gen = (r) => {
  const x = xr(r);
  const clobber = r.pick([`pxor ${x}, ${x}`, `pcmpeqb ${x}, ${x}`, `paddq ${x}, ${xr(r)}`]);
  const restore = r.int(3) ? `fxrstor64 [rbx-0x400]\n` : "";
  return u(
    "fxsave",
    "mov DWORD PTR [rbx-0x410], 0x1f80\nldmxcsr [rbx-0x410]\n" +
      `fxsave64 [rbx-0x400]\n${clobber}\n${restore}` +
      "lea rdi, [rbx-0x400]\nxor eax, eax\nmov ecx, 3\ncld\nrep stosq\n" +
      "lea rdi, [rbx-0x3e0]\nmov ecx, 16\nrep stosq\nmov DWORD PTR [rbx-0x3e4], 0", // MXCSR_MASK is host-specific
    0,
    0,
    0,
  );
};

/** BMI1/BMI2/ABM/ADX/MOVBE/POPCNT (VEX-encoded GPR instructions among them). */
const BMI: Gen = (r) => {
  const w = r.pick([4, 8]);
  const a = reg(r, w), b = reg(r, w), c = reg(r, w);
  const src = r.int(3) ? c : mem(r, w);
  switch (r.int(9)) {
    case 0:
      return u("bmi", `andn ${a}, ${b}, ${src}`, 0, CF | ZF | SF | OF, AF | PF);
    case 1:
      return u("bmi", `bextr ${a}, ${src}, ${b}`, 0, CF | ZF | OF, AF | PF | SF);
    case 2:
      return u("bmi", `${r.pick(["blsi", "blsmsk", "blsr"])} ${a}, ${src}`, 0, CF | ZF | SF | OF, AF | PF);
    case 3:
      return u("bmi", `bzhi ${a}, ${src}, ${b}`, 0, CF | ZF | SF | OF, AF | PF);
    case 4:
      return u("bmi", `${r.pick(["pdep", "pext", "mulx"])} ${a}, ${b}, ${src}`, 0, 0, 0);
    case 5:
      return u("bmi", `${r.pick(["sarx", "shlx", "shrx"])} ${a}, ${src}, ${b}`, 0, 0, 0);
    case 6:
      return u("bmi", `rorx ${a}, ${src}, ${r.int(64)}`, 0, 0, 0);
    case 7: {
      const op = r.pick(["adcx", "adox"]);
      return u("bmi", `${op} ${a}, ${src}`, op === "adcx" ? CF : OF, op === "adcx" ? CF : OF, 0);
    }
    default: {
      const s2 = r.pick([2, 4, 8]);
      const op = r.pick(["lzcnt", "tzcnt", "popcnt", "movbe"]);
      if (op === "movbe") {
        return u(
          "bmi",
          r.int(2) ? `movbe ${reg(r, s2)}, ${mem(r, s2)}` : `movbe ${mem(r, s2)}, ${reg(r, s2)}`,
          0,
          0,
          0,
        );
      }
      const d = reg(r, s2), sr = r.int(2) ? reg(r, s2) : mem(r, s2);
      if (op === "popcnt") return u("bmi", `popcnt ${d}, ${sr}`, 0, ARITH, 0);
      return u("bmi", `${op} ${d}, ${sr}`, 0, CF | ZF, OF | SF | PF | AF);
    }
  }
};

/** SSE3/SSSE3/SSE4.1/SSE4.2 register forms (aligned memory forms for the packed ones). */
const SSE4: Gen = (r) => {
  const a = xr(r), b = r.int(3) ? xr(r) : mem(r, 16, 16);
  switch (r.int(6)) {
    case 0:
      return u(
        "sse4",
        `${
          r.pick([
            "pshufb",
            "phaddw",
            "phaddd",
            "phaddsw",
            "pmaddubsw",
            "phsubw",
            "phsubd",
            "phsubsw",
            "psignb",
            "psignw",
            "psignd",
            "pmulhrsw",
            "pabsb",
            "pabsw",
            "pabsd",
          ])
        } ${a}, ${b}`,
        0,
        0,
        0,
      );
    case 1:
      return u(
        "sse4",
        `${
          r.pick([
            "pmuldq",
            "pcmpeqq",
            "packusdw",
            "pminsb",
            "pminsd",
            "pminuw",
            "pminud",
            "pmaxsb",
            "pmaxsd",
            "pmaxuw",
            "pmaxud",
            "pmulld",
            "phminposuw",
            "pcmpgtq",
          ])
        } ${a}, ${b}`,
        0,
        0,
        0,
      );
    case 2:
      return u("sse4", `${r.pick(["palignr", "pblendw", "mpsadbw"])} ${a}, ${b}, ${r.int(256)}`, 0, 0, 0);
    case 3:
      return u("sse4", `ptest ${a}, ${b}`, 0, ARITH, 0);
    case 4:
      return u("sse4", `${r.pick(["pcmpistri", "pcmpestri"])} ${a}, ${b}, ${r.int(128)}`, 0, ARITH, 0);
    default:
      return u(
        "sse4",
        `${
          r.pick(["pextrd", "pinsrd"]) === "pextrd"
            ? `pextrd ${reg(r, 4)}, ${a}`
            : `pinsrd ${a}, ${reg(r, 4)}`
        }, ${r.int(4)}`,
        0,
        0,
        0,
      );
  }
};

function yr(r: Rng): string {
  return `ymm${r.int(16)}`;
}

/** AVX/AVX2/FMA/F16C: VEX.128 and VEX.256 forms (upper halves reach the compared XMM state via lane moves). */
const AVX: Gen = (r) => {
  const y = r.int(2) === 1;
  const R = y ? yr : xr;
  const m = (
    n: number,
  ) => (r.int(3) ? R(r) : mem(r, n === 32 ? 16 : n, 1).replace("XMMWORD", n === 32 ? "YMMWORD" : "XMMWORD"));
  switch (r.int(8)) {
    case 0:
      return u(
        "avx",
        `${
          r.pick([
            "vpaddd",
            "vpsubb",
            "vpaddusw",
            "vpminub",
            "vpmaxsd",
            "vpcmpeqb",
            "vpcmpgtq",
            "vpshufb",
            "vpunpcklbw",
            "vpackssdw",
            "vpmulld",
            "vpmaddubsw",
            "vpsadbw",
            "vpavgw",
            "vpand",
            "vpxor",
            "vpsllvd",
            "vpsrlvq",
            "vphaddd",
            "vpsignw",
            "vpmulhrsw",
          ])
        } ${R(r)}, ${R(r)}, ${m(y ? 32 : 16)}`,
        0,
        0,
        0,
      );
    case 1:
      return u(
        "avx",
        `${
          r.pick([
            "vaddps",
            "vmulpd",
            "vsubps",
            "vdivpd",
            "vminps",
            "vmaxpd",
            "vaddsubps",
            "vhaddpd",
            "vandnps",
            "vxorpd",
            "vunpckhps",
          ])
        } ${R(r)}, ${R(r)}, ${R(r)}`,
        0,
        0,
        0,
      );
    case 2:
      return u(
        "avx",
        `${r.pick(["vfmadd132ps", "vfmadd213pd", "vfmadd231ps", "vfnmsub231pd", "vfmsubadd132ps"])} ${
          R(r)
        }, ${R(r)}, ${R(r)}`,
        0,
        0,
        0,
      );
    case 3:
      return u(
        "avx",
        `${r.pick(["vaddsd", "vmulss", "vsqrtsd", "vfmadd231sd", "vminss"])} ${xr(r)}, ${xr(r)}, ${xr(r)}`,
        0,
        0,
        0,
      );
    case 4:
      return u(
        "avx",
        `${r.pick(["vpshufd", "vpermilps", "vpshufhw"])} ${R(r)}, ${R(r)}, ${r.int(256)}`,
        0,
        0,
        0,
      );
    case 5:
      return u(
        "avx",
        r.pick([
          `vperm2i128 ymm${r.int(16)}, ${yr(r)}, ${yr(r)}, ${r.int(256) & 0x3b}`,
          `vextracti128 ${xr(r)}, ${yr(r)}, ${r.int(2)}`,
          `vinserti128 ${yr(r)}, ${yr(r)}, ${xr(r)}, ${r.int(2)}`,
          `vpermq ${yr(r)}, ${yr(r)}, ${r.int(256)}`,
          `vpbroadcastd ${R(r)}, ${xr(r)}`,
          "vzeroupper",
        ]),
        0,
        0,
        0,
      );
    case 6:
      return u("avx", `${r.pick(["vptest", "vtestps"])} ${R(r)}, ${R(r)}`, 0, ARITH, 0);
    default:
      return u("avx", `${r.pick(["vcvtps2ph"])} ${xr(r)}, ${R(r)}, ${r.int(8)}`, 0, 0, 0);
  }
};

/** The generator table: group name, weight, generator. */
export const GROUPS: ReadonlyArray<[string, number, Gen]> = [
  ["alu", 10, ALU],
  ["unary", 3, UNARY],
  ["shift", 6, SHIFT],
  ["shxd", 2, SHXD],
  ["muldiv", 4, MULDIV],
  ["bits", 4, BITS],
  ["mov", 6, MOVS],
  ["cmpxchg16b", 1, CMPXCHG16],
  ["flaguse", 6, FLAGUSE],
  ["string", 3, STRING],
  ["stack", 2, STACK],
  ["sse", 8, SSE],
  ["ssefp", 2, SSE_FP],
  ["fxsave", 1, FXSAVE],
  ["bmi", 4, BMI],
  ["sse4", 4, SSE4],
  ["avx", 4, AVX],
];

/** Draw one unit from the enabled groups (all when `only` is empty). */
export function drawUnit(r: Rng, only: readonly string[] = []): Unit {
  const gs = GROUPS.filter(([n]) => only.length === 0 || only.includes(n));
  let total = 0;
  for (const g of gs) total += g[1];
  let k = r.int(total);
  for (const [, w, g] of gs) {
    if (k < w) return g(r);
    k -= w;
  }
  return gs[0][2](r);
}

/** Flags still undefined after running `units` (starting from all defined). */
export function undefinedAfter(units: readonly Unit[]): number {
  let und = 0;
  for (const x of units) und = (und & ~x.writes) | x.undef;
  return und;
}

/** True when no unit reads a flag an earlier unit left undefined. */
export function validSequence(units: readonly Unit[]): boolean {
  let und = 0;
  for (const x of units) {
    if (x.reads & und) return false;
    und = (und & ~x.writes) | x.undef;
  }
  return true;
}

/** A random valid sequence of `n` units. */
export function drawSequence(r: Rng, n: number, only: readonly string[] = []): Unit[] {
  const out: Unit[] = [];
  let und = 0;
  let tries = 0;
  while (out.length < n && tries++ < n * 50) {
    const x = drawUnit(r, only);
    if (x.reads & und) continue;
    out.push(x);
    und = (und & ~x.writes) | x.undef;
  }
  return out;
}
