/**
 * SSSE3 (SDM vol. 2): PSHUFB, PHADD/PHSUB(W/D/SW), PMADDUBSW, PMULHRSW, PSIGN(B/W/D), PABS(B/W/D), PALIGNR —
 * the XMM forms, as lane functions shared with their VEX (AVX/AVX2) encodings. The MMX-register forms
 * belong with MMX.
 * @module
 */
import { type LaneFn, satS16, type VecOp } from "./xmmops.ts";

const pshufb: LaneFn = (_c, a, b, r, o) => {
  const k = o * 16;
  for (let i = 0; i < 16; i++) {
    const idx = b.u8[k + i];
    r.u8[k + i] = idx & 0x80 ? 0 : a.u8[k + (idx & 15)];
  }
};

function hop(w: boolean, sub: boolean, sat: boolean): LaneFn {
  return (_c, a, b, r, o) => {
    if (w) {
      const k = o * 8;
      const t = new Int16Array(8);
      for (let i = 0; i < 8; i++) {
        const src = i < 4 ? a : b, j = k + (i & 3) * 2;
        const v = sub ? src.i16[j] - src.i16[j + 1] : src.i16[j] + src.i16[j + 1];
        t[i] = sat ? satS16(v) : v;
      }
      r.i16.set(t, k);
    } else {
      const k = o * 4;
      const t = new Int32Array(4);
      for (let i = 0; i < 4; i++) {
        const src = i < 2 ? a : b, j = k + (i & 1) * 2;
        t[i] = sub ? src.i32[j] - src.i32[j + 1] : src.i32[j] + src.i32[j + 1];
      }
      r.i32.set(t, k);
    }
  };
}

const pmaddubsw: LaneFn = (_c, a, b, r, o) => {
  const k = o * 8;
  for (let i = 0; i < 8; i++) {
    const j = (k + i) * 2;
    r.i16[k + i] = satS16(a.u8[j] * b.i8[j] + a.u8[j + 1] * b.i8[j + 1]);
  }
};

const pmulhrsw: LaneFn = (_c, a, b, r, o) => {
  const k = o * 8;
  for (let i = 0; i < 8; i++) r.i16[k + i] = (((a.i16[k + i] * b.i16[k + i]) >> 14) + 1) >> 1;
};

function psign(esz: number): LaneFn {
  return (_c, a, b, r, o) => {
    const n = 16 / esz, k = o * n;
    const av = esz === 1 ? a.i8 : esz === 2 ? a.i16 : a.i32;
    const bv = esz === 1 ? b.i8 : esz === 2 ? b.i16 : b.i32;
    const rv = esz === 1 ? r.i8 : esz === 2 ? r.i16 : r.i32;
    for (let i = k; i < k + n; i++) rv[i] = bv[i] < 0 ? -av[i] : bv[i] === 0 ? 0 : av[i];
  };
}

function pabs(esz: number): LaneFn {
  return (_c, _a, b, r, o) => {
    const n = 16 / esz, k = o * n;
    const bv = esz === 1 ? b.i8 : esz === 2 ? b.i16 : b.i32;
    const rv = esz === 1 ? r.u8 : esz === 2 ? r.u16 : r.u32;
    for (let i = k; i < k + n; i++) rv[i] = Math.abs(bv[i]);
  };
}

const palignr: LaneFn = (_c, a, b, r, o, imm) => {
  const k = o * 16;
  const t = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const j = i + imm;
    t[i] = j < 16 ? b.u8[k + j] : j < 32 ? a.u8[k + j - 16] : 0;
  }
  r.u8.set(t, k);
};

const F = "ssse3";
/** 0F 38 xx (key op) and 0F 3A xx (key 0x100 | op). */
export const SSSE3_OPS: Record<number, VecOp> = {
  0x00: { fn: pshufb, feat: F },
  0x01: { fn: hop(true, false, false), feat: F },
  0x02: { fn: hop(false, false, false), feat: F },
  0x03: { fn: hop(true, false, true), feat: F },
  0x04: { fn: pmaddubsw, feat: F },
  0x05: { fn: hop(true, true, false), feat: F },
  0x06: { fn: hop(false, true, false), feat: F },
  0x07: { fn: hop(true, true, true), feat: F },
  0x08: { fn: psign(1), feat: F },
  0x09: { fn: psign(2), feat: F },
  0x0a: { fn: psign(4), feat: F },
  0x0b: { fn: pmulhrsw, feat: F },
  0x1c: { fn: pabs(1), feat: F },
  0x1d: { fn: pabs(2), feat: F },
  0x1e: { fn: pabs(4), feat: F },
  0x10f: { fn: palignr, feat: F, imm: true },
};
