/**
 * SSE2-era integer and shuffle operations as lane functions (see xmmops.ts LaneFn), used by the VEX.128/256
 * encodings in avx.ts: element-wise arithmetic, compares, logic, unpacks, packs, shuffles and shifts.
 * @module
 */
import { type LaneFn, type Lanes, satS16, satS8, satU16, satU8 } from "./xmmops.ts";

type K = "u8" | "i8" | "u16" | "i16" | "i32" | "u32";

/** Element-wise r = f(a, b) on lane o. */
function ew(k: K, f: (x: number, y: number) => number): LaneFn {
  return (_c, a, b, r, o) => {
    const av = a[k], bv = b[k], rv = r[k];
    const n = av.length / 2;
    for (let i = o * n; i < o * n + n; i++) rv[i] = f(av[i], bv[i]);
  };
}

function ew64(f: (x: bigint, y: bigint) => bigint): LaneFn {
  return (_c, a, b, r, o) => {
    for (let i = o * 2; i < o * 2 + 2; i++) r.u64[i] = BigInt.asUintN(64, f(a.u64[i], b.u64[i]));
  };
}

const logic = (f: (x: number, y: number) => number): LaneFn => ew("i32", f);

/** PUNPCKL/H: element size esz bytes, high half when `hi`. */
function unpck(esz: number, hi: boolean): LaneFn {
  return (_c, a, b, r, o) => {
    const t = new Uint8Array(16);
    const base = o * 16 + (hi ? 8 : 0);
    for (let i = 0; i < 8 / esz; i++) {
      for (let k = 0; k < esz; k++) {
        t[2 * i * esz + k] = a.u8[base + i * esz + k];
        t[(2 * i + 1) * esz + k] = b.u8[base + i * esz + k];
      }
    }
    r.u8.set(t, o * 16);
  };
}

function pack(kind: "sswb" | "uswb" | "ssdw" | "usdw"): LaneFn {
  return (_c, a, b, r, o) => {
    if (kind === "sswb" || kind === "uswb") {
      const t = new Uint8Array(16);
      for (let i = 0; i < 16; i++) {
        const v = i < 8 ? a.i16[o * 8 + i] : b.i16[o * 8 + i - 8];
        t[i] = kind === "sswb" ? satS8(v) & 0xff : satU8(v);
      }
      r.u8.set(t, o * 16);
    } else {
      const t = new Uint16Array(8);
      for (let i = 0; i < 8; i++) {
        const v = i < 4 ? a.i32[o * 4 + i] : b.i32[o * 4 + i - 4];
        t[i] = kind === "ssdw" ? satS16(v) & 0xffff : satU16(v);
      }
      r.u16.set(t, o * 8);
    }
  };
}

const pmuludq: LaneFn = (_c, a, b, r, o) => {
  for (let i = o * 2; i < o * 2 + 2; i++) r.u64[i] = BigInt(a.u32[2 * i]) * BigInt(b.u32[2 * i]);
};
const pmaddwd: LaneFn = (_c, a, b, r, o) => {
  for (let i = o * 4; i < o * 4 + 4; i++) {
    r.i32[i] = (a.i16[2 * i] * b.i16[2 * i] + a.i16[2 * i + 1] * b.i16[2 * i + 1]) | 0;
  }
};
const psadbw: LaneFn = (_c, a, b, r, o) => {
  for (let h = 0; h < 2; h++) {
    let s = 0;
    for (let i = 0; i < 8; i++) s += Math.abs(a.u8[o * 16 + 8 * h + i] - b.u8[o * 16 + 8 * h + i]);
    r.u64[o * 2 + h] = BigInt(s);
  }
};

/** PSHUFD (66), PSHUFHW (F3), PSHUFLW (F2) of b by imm. */
export function pshuf(pp: number): LaneFn {
  return (_c, _a, b, r, o, imm) => {
    if (pp === 0x66) {
      const t = [0, 1, 2, 3].map((i) => b.i32[o * 4 + ((imm >> (2 * i)) & 3)]);
      r.i32.set(t, o * 4);
      return;
    }
    const w = o * 8 + (pp === 0xf3 ? 4 : 0);
    const t = [0, 1, 2, 3].map((i) => b.u16[w + ((imm >> (2 * i)) & 3)]);
    for (let i = 0; i < 8; i++) r.u16[o * 8 + i] = b.u16[o * 8 + i];
    r.u16.set(t, w);
  };
}

/** SHUFPS / SHUFPD. */
export function shufp(dbl: boolean): LaneFn {
  return (_c, a, b, r, o, imm) => {
    if (dbl) {
      const sel = o === 0 ? imm : imm >> 2;
      const x = a.u64[o * 2 + (sel & 1)], y = b.u64[o * 2 + ((sel >> 1) & 1)];
      r.u64[o * 2] = x;
      r.u64[o * 2 + 1] = y;
      return;
    }
    const k = o * 4;
    const t = [
      a.i32[k + (imm & 3)],
      a.i32[k + ((imm >> 2) & 3)],
      b.i32[k + ((imm >> 4) & 3)],
      b.i32[k + (imm >> 6)],
    ];
    r.i32.set(t, k);
  };
}

/** UNPCKLPS/HPS/LPD/HPD. */
export function unpckp(dbl: boolean, hi: boolean): LaneFn {
  return unpck(dbl ? 8 : 4, hi);
}

/** Shift all elements (esz 2/4/8) of lane o of a by `cnt`; op 2 logical right, 4 arithmetic right, 6 left. */
export function shiftLane(a: Lanes, r: Lanes, o: number, esz: number, op: number, cnt: number): void {
  const bits = esz * 8;
  if (esz === 8) {
    for (let i = o * 2; i < o * 2 + 2; i++) {
      const v = a.u64[i];
      r.u64[i] = cnt >= 64 ? 0n : op === 2 ? v >> BigInt(cnt) : BigInt.asUintN(64, v << BigInt(cnt));
    }
    return;
  }
  const n = 16 / esz;
  for (let i = o * n; i < o * n + n; i++) {
    if (esz === 2) {
      const v = a.i16[i];
      r.i16[i] = op === 4
        ? v >> (cnt > 15 ? 15 : cnt)
        : cnt >= bits
        ? 0
        : op === 2
        ? (v & 0xffff) >>> cnt
        : v << cnt;
    } else {
      const v = a.i32[i];
      r.i32[i] = op === 4 ? v >> (cnt > 31 ? 31 : cnt) : cnt >= bits ? 0 : op === 2 ? v >>> cnt : v << cnt;
    }
  }
}

/** Shifts by the count in b's low 64 bits (PSRLW ... PSLLQ by xmm). */
function shiftBy(esz: number, op: number): LaneFn {
  return (_c, a, b, r, o) => {
    const cnt = b.u32[1] !== 0 || b.u32[0] > 255 ? 255 : b.u32[0];
    shiftLane(a, r, o, esz, op, cnt);
  };
}

/** PSRLDQ / PSLLDQ by imm bytes. */
export function byteShift(left: boolean): LaneFn {
  return (_c, a, _b, r, o, imm) => {
    const n = imm > 16 ? 16 : imm;
    const t = new Uint8Array(16);
    for (let i = 0; i < 16; i++) {
      const j = left ? i - n : i + n;
      t[i] = j >= 0 && j < 16 ? a.u8[o * 16 + j] : 0;
    }
    r.u8.set(t, o * 16);
  };
}

/** Map-1 66-prefixed integer ops (key: opcode). */
export const INT_OPS: Record<number, LaneFn> = {
  0x60: unpck(1, false),
  0x61: unpck(2, false),
  0x62: unpck(4, false),
  0x63: pack("sswb"),
  0x64: ew("i8", (x, y) => (x > y ? -1 : 0)),
  0x65: ew("i16", (x, y) => (x > y ? -1 : 0)),
  0x66: ew("i32", (x, y) => (x > y ? -1 : 0)),
  0x67: pack("uswb"),
  0x68: unpck(1, true),
  0x69: unpck(2, true),
  0x6a: unpck(4, true),
  0x6b: pack("ssdw"),
  0x6c: unpck(8, false),
  0x6d: unpck(8, true),
  0x74: ew("u8", (x, y) => (x === y ? 255 : 0)),
  0x75: ew("u16", (x, y) => (x === y ? 65535 : 0)),
  0x76: ew("i32", (x, y) => (x === y ? -1 : 0)),
  0xd1: shiftBy(2, 2),
  0xd2: shiftBy(4, 2),
  0xd3: shiftBy(8, 2),
  0xd4: ew64((x, y) => x + y),
  0xd5: ew("i16", (x, y) => Math.imul(x, y)),
  0xd8: ew("u8", (x, y) => Math.max(x - y, 0)),
  0xd9: ew("u16", (x, y) => Math.max(x - y, 0)),
  0xda: ew("u8", Math.min),
  0xdb: logic((x, y) => x & y),
  0xdc: ew("u8", (x, y) => Math.min(x + y, 255)),
  0xdd: ew("u16", (x, y) => Math.min(x + y, 65535)),
  0xde: ew("u8", Math.max),
  0xdf: logic((x, y) => ~x & y),
  0xe0: ew("u8", (x, y) => (x + y + 1) >> 1),
  0xe1: shiftBy(2, 4),
  0xe2: shiftBy(4, 4),
  0xe3: ew("u16", (x, y) => (x + y + 1) >> 1),
  0xe4: ew("u16", (x, y) => (x * y) >>> 16),
  0xe5: ew("i16", (x, y) => (x * y) >> 16),
  0xe8: ew("i8", (x, y) => satS8(x - y)),
  0xe9: ew("i16", (x, y) => satS16(x - y)),
  0xea: ew("i16", Math.min),
  0xeb: logic((x, y) => x | y),
  0xec: ew("i8", (x, y) => satS8(x + y)),
  0xed: ew("i16", (x, y) => satS16(x + y)),
  0xee: ew("i16", Math.max),
  0xef: logic((x, y) => x ^ y),
  0xf1: shiftBy(2, 6),
  0xf2: shiftBy(4, 6),
  0xf3: shiftBy(8, 6),
  0xf4: pmuludq,
  0xf5: pmaddwd,
  0xf6: psadbw,
  0xf8: ew("u8", (x, y) => x - y),
  0xf9: ew("u16", (x, y) => x - y),
  0xfa: ew("i32", (x, y) => x - y),
  0xfb: ew64((x, y) => x - y),
  0xfc: ew("u8", (x, y) => x + y),
  0xfd: ew("u16", (x, y) => x + y),
  0xfe: ew("i32", (x, y) => x + y),
};

/** Bitwise ops shared by the FP encodings (ANDPS 54, ANDNPS 55, ORPS 56, XORPS 57). */
export const LOGIC_OPS: Record<number, LaneFn> = {
  0x54: INT_OPS[0xdb],
  0x55: INT_OPS[0xdf],
  0x56: INT_OPS[0xeb],
  0x57: INT_OPS[0xef],
};
