/**
 * SSE4.1 and PCMPGTQ (SDM vol. 2) as lane functions shared with their VEX encodings: blends, PMOVSX/PMOVZX,
 * PMULDQ, PMULLD, PCMPEQQ, PACKUSDW, PMIN/PMAX (SB/SD/UW/UD), PHMINPOSUW, ROUNDPS/PD/SS/SD, DPPS/DPPD,
 * MPSADBW. The instructions with GPR or flag results (PTEST, PEXTR*, PINSR*, EXTRACTPS, INSERTPS, MOVNTDQA)
 * are in sse4x.ts.
 * @module
 */
import * as sf from "./softfp.ts";
import { ADD, MUL, packedOp } from "./ssefp.ts";
import { type LaneFn, Lanes, satU16, type VecOp, xctx } from "./xmmops.ts";

function blendv(esz: number): LaneFn {
  return (_c, a, b, r, o, _imm, m) => {
    const n = 16 / esz, k = o * n;
    for (let i = k; i < k + n; i++) {
      const sel = esz === 1 ? m.u8[i] & 0x80 : esz === 4 ? m.i32[i] < 0 : m.i32[2 * i + 1] < 0;
      if (esz === 1) r.u8[i] = sel ? b.u8[i] : a.u8[i];
      else if (esz === 4) r.i32[i] = sel ? b.i32[i] : a.i32[i];
      else r.u64[i] = sel ? b.u64[i] : a.u64[i];
    }
  };
}

function blendImm(esz: number): LaneFn {
  return (_c, a, b, r, o, imm) => {
    const n = 16 / esz, k = o * n;
    for (let i = 0; i < n; i++) {
      const sel = (imm >> (esz === 2 ? i : i + o * n)) & 1;
      if (esz === 2) r.u16[k + i] = sel ? b.u16[k + i] : a.u16[k + i];
      else if (esz === 4) r.i32[k + i] = sel ? b.i32[k + i] : a.i32[k + i];
      else r.u64[k + i] = sel ? b.u64[k + i] : a.u64[k + i];
    }
  };
}

/** PMOVSX/PMOVZX: from elements of size `from` to size `to` (bytes), source = low part of lane o's share. */
function pmov(from: number, to: number, signed: boolean): LaneFn {
  return (_c, _a, b, r, o) => {
    const n = 16 / to;
    for (let i = 0; i < n; i++) {
      const j = o * n + i;
      let v: bigint;
      if (from === 1) v = BigInt(signed ? b.i8[j] : b.u8[j]);
      else if (from === 2) v = BigInt(signed ? b.i16[j] : b.u16[j]);
      else v = BigInt(signed ? b.i32[j] : b.u32[j]);
      const k = o * n + i;
      if (to === 2) r.i16[k] = Number(v);
      else if (to === 4) r.i32[k] = Number(v);
      else r.i64[k] = v;
    }
  };
}

const pmuldq: LaneFn = (_c, a, b, r, o) => {
  for (let i = o * 2; i < o * 2 + 2; i++) r.i64[i] = BigInt(a.i32[2 * i]) * BigInt(b.i32[2 * i]);
};

const pmulld: LaneFn = (_c, a, b, r, o) => {
  for (let i = o * 4; i < o * 4 + 4; i++) r.i32[i] = Math.imul(a.i32[i], b.i32[i]);
};

function cmpq(gt: boolean): LaneFn {
  return (_c, a, b, r, o) => {
    for (let i = o * 2; i < o * 2 + 2; i++) {
      r.i64[i] = (gt ? a.i64[i] > b.i64[i] : a.i64[i] === b.i64[i]) ? -1n : 0n;
    }
  };
}

const packusdw: LaneFn = (_c, a, b, r, o) => {
  const t = new Uint16Array(8);
  for (let i = 0; i < 4; i++) {
    t[i] = satU16(a.i32[o * 4 + i]);
    t[4 + i] = satU16(b.i32[o * 4 + i]);
  }
  r.u16.set(t, o * 8);
};

function minmax(kind: "i8" | "i32" | "u16" | "u32", max: boolean): LaneFn {
  return (_c, a, b, r, o) => {
    const av = a[kind], bv = b[kind], rv = r[kind];
    const n = av.length / 2;
    for (let i = o * n; i < o * n + n; i++) {
      rv[i] = max ? (av[i] > bv[i] ? av[i] : bv[i]) : (av[i] < bv[i] ? av[i] : bv[i]);
    }
  };
}

const phminposuw: LaneFn = (_c, _a, b, r, o) => {
  let mi = 0;
  for (let i = 1; i < 8; i++) if (b.u16[o * 8 + i] < b.u16[o * 8 + mi]) mi = i;
  const v = b.u16[o * 8 + mi];
  for (let i = 0; i < 8; i++) r.u16[o * 8 + i] = 0;
  r.u16[o * 8] = v;
  r.u16[o * 8 + 1] = mi;
};

/** ROUNDPS/PD (scalar: SS/SD, the other lanes from a). imm[2] selects MXCSR.RC, imm[3] suppresses PE. */
function roundOp(dbl: boolean, scalar: boolean): LaneFn {
  return (c, a, b, r, o, imm) => {
    const env = xctx(c).env;
    const rc = imm & 4 ? (c.mxcsr >> 13) & 3 : imm & 3;
    const n = scalar ? 1 : dbl ? 2 : 4;
    const k = o * (dbl ? 2 : 4);
    if (scalar) { for (let i = 0; i < 4; i++) r.i32[o * 4 + i] = a.i32[o * 4 + i]; }
    for (let i = k; i < k + n; i++) {
      if (dbl) r.u64[i] = sf.roundInt(sf.F64, env, b.u64[i], rc, (imm & 8) !== 0);
      else r.u32[i] = Number(sf.roundInt(sf.F32, env, BigInt(b.u32[i]), rc, (imm & 8) !== 0));
    }
  };
}

/** DPPS/DPPD: products of the lanes selected by imm[7:4], summed pairwise, broadcast to imm[3:0]. */
function dp(dbl: boolean): LaneFn {
  return (c, a, b, r, o, imm) => {
    const n = dbl ? 2 : 4, k = o * n;
    const p = new Lanes(new Int32Array(8));
    for (let i = 0; i < n; i++) {
      if ((imm >> (4 + i)) & 1) packedOp(c, dbl, MUL, 1, a, k + i, b, k + i, p, i);
      else if (dbl) p.u64[i] = 0n;
      else p.u32[i] = 0;
    }
    const s = new Lanes(new Int32Array(8));
    if (dbl) packedOp(c, true, ADD, 1, p, 0, p, 1, s, 0);
    else {
      packedOp(c, false, ADD, 1, p, 0, p, 1, s, 1);
      packedOp(c, false, ADD, 1, p, 2, p, 3, s, 2);
      packedOp(c, false, ADD, 1, s, 1, s, 2, s, 0);
    }
    for (let i = 0; i < n; i++) {
      const on = (imm >> i) & 1;
      if (dbl) r.u64[k + i] = on ? s.u64[0] : 0n;
      else r.u32[k + i] = on ? s.u32[0] : 0;
    }
  };
}

const mpsadbw: LaneFn = (_c, a, b, r, o, imm) => {
  const sel = o === 0 ? imm : imm >> 3;
  const b2 = o * 16 + (sel & 3) * 4, b1 = o * 16 + ((sel >> 2) & 1) * 4;
  const t = new Uint16Array(8);
  for (let i = 0; i < 8; i++) {
    let sum = 0;
    for (let k = 0; k < 4; k++) sum += Math.abs(a.u8[b1 + i + k] - b.u8[b2 + k]);
    t[i] = sum;
  }
  r.u16.set(t, o * 8);
};

const F = "sse4.1";
/** 0F 38 xx (key op) and 0F 3A xx (key 0x100 | op). */
export const SSE41_OPS: Record<number, VecOp> = {
  0x10: { fn: blendv(1), feat: F },
  0x14: { fn: blendv(4), feat: F },
  0x15: { fn: blendv(8), feat: F },
  0x20: { fn: pmov(1, 2, true), feat: F, mem: 8 },
  0x21: { fn: pmov(1, 4, true), feat: F, mem: 4 },
  0x22: { fn: pmov(1, 8, true), feat: F, mem: 2 },
  0x23: { fn: pmov(2, 4, true), feat: F, mem: 8 },
  0x24: { fn: pmov(2, 8, true), feat: F, mem: 4 },
  0x25: { fn: pmov(4, 8, true), feat: F, mem: 8 },
  0x28: { fn: pmuldq, feat: F },
  0x29: { fn: cmpq(false), feat: F },
  0x2b: { fn: packusdw, feat: F },
  0x30: { fn: pmov(1, 2, false), feat: F, mem: 8 },
  0x31: { fn: pmov(1, 4, false), feat: F, mem: 4 },
  0x32: { fn: pmov(1, 8, false), feat: F, mem: 2 },
  0x33: { fn: pmov(2, 4, false), feat: F, mem: 8 },
  0x34: { fn: pmov(2, 8, false), feat: F, mem: 4 },
  0x35: { fn: pmov(4, 8, false), feat: F, mem: 8 },
  0x37: { fn: cmpq(true), feat: "sse4.2" },
  0x38: { fn: minmax("i8", false), feat: F },
  0x39: { fn: minmax("i32", false), feat: F },
  0x3a: { fn: minmax("u16", false), feat: F },
  0x3b: { fn: minmax("u32", false), feat: F },
  0x3c: { fn: minmax("i8", true), feat: F },
  0x3d: { fn: minmax("i32", true), feat: F },
  0x3e: { fn: minmax("u16", true), feat: F },
  0x3f: { fn: minmax("u32", true), feat: F },
  0x40: { fn: pmulld, feat: F },
  0x41: { fn: phminposuw, feat: F },
  0x108: { fn: roundOp(false, false), feat: F, imm: true },
  0x109: { fn: roundOp(true, false), feat: F, imm: true },
  0x10a: { fn: roundOp(false, true), feat: F, imm: true, mem: 4 },
  0x10b: { fn: roundOp(true, true), feat: F, imm: true, mem: 8 },
  0x10c: { fn: blendImm(4), feat: F, imm: true },
  0x10d: { fn: blendImm(8), feat: F, imm: true },
  0x10e: { fn: blendImm(2), feat: F, imm: true },
  0x140: { fn: dp(false), feat: F, imm: true },
  0x141: { fn: dp(true), feat: F, imm: true },
  0x142: { fn: mpsadbw, feat: F, imm: true },
};
