/**
 * SSE/SSE2 (the subset Linux and busybox/glibc execute: moves, integer compares/shuffles/unpacks,
 * logic, add/sub, scalar double arithmetic and conversions) and FXSAVE/FXRSTOR (SDM vol. 1 ch. 10-11, vol. 2).
 * @module
 */
import { type Cpu, CR0_EM, CR0_TS, EXC_NM } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import { segRead } from "./seglimit.ts";
import { fxrstorPointers, fxsavePointers } from "./x87_stack.ts";
import { execMap3 } from "./map0f38.ts";
import { execSseFp } from "./ssefp.ts";

const TWO32 = 4294967296;

/** Scratch views for one source operand (16 bytes). */
class Scratch {
  readonly i32 = new Int32Array(4);
  readonly u8 = new Uint8Array(this.i32.buffer);
  readonly u16 = new Uint16Array(this.i32.buffer);
  readonly i16 = new Int16Array(this.i32.buffer);
  readonly i8 = new Int8Array(this.i32.buffer);
  readonly f64 = new Float64Array(this.i32.buffer);
  readonly f32 = new Float32Array(this.i32.buffer);
}

interface SseViews {
  x: XmmViews;
  s: Scratch;
  t: Scratch;
  /** The current instruction is an unaligned form (MOVUPS/MOVUPD/MOVDQU): no #GP for 16-byte operands. */
  unal: boolean;
}

function xv(c: Cpu): SseViews {
  let v = c.sseViews as SseViews | null;
  if (!v) {
    v = { x: new XmmViews(c.xmm), s: new Scratch(), t: new Scratch(), unal: false };
    c.sseViews = v;
  }
  return v;
}

class XmmViews {
  readonly i32: Int32Array;
  readonly u8: Uint8Array;
  readonly i8: Int8Array;
  readonly u16: Uint16Array;
  readonly i16: Int16Array;
  readonly f64: Float64Array;
  readonly f32: Float32Array;
  constructor(x: Int32Array) {
    this.i32 = x;
    this.u8 = new Uint8Array(x.buffer);
    this.i8 = new Int8Array(x.buffer);
    this.u16 = new Uint16Array(x.buffer);
    this.i16 = new Int16Array(x.buffer);
    this.f64 = new Float64Array(x.buffer);
    this.f32 = new Float32Array(x.buffer);
  }
}

function checkSse(c: Cpu): void {
  if (c.cr0 & CR0_EM) c.ud();
  if (c.cr0 & CR0_TS) c.fault(EXC_NM);
}

/** Load the r/m source operand (`bytes` long) into scratch s (rest zeroed). */
function loadSrc(it: Interp, s: Scratch, bytes: number): void {
  const c = it.c;
  if (it.isReg) {
    const b = it.rm * 4;
    for (let i = 0; i < 4; i++) s.i32[i] = c.xmm[b + i];
    return;
  }
  const la = it.la;
  if (c.segChk) segRead(c, it.ms, it.ea, bytes);
  // Legacy SSE 16-byte operands must be 16-byte aligned except in the unaligned forms (SDM vol. 1 §11.6.7).
  if (bytes === 16 && la % 16 !== 0 && !xv(c).unal) c.gp(0);
  s.i32.fill(0);
  if (bytes === 4) s.i32[0] = c.rd32(la);
  else {
    s.i32[0] = c.rd32(la);
    s.i32[1] = c.rd32(la + 4);
    if (bytes === 16) {
      s.i32[2] = c.rd32(la + 8);
      s.i32[3] = c.rd32(la + 12);
    }
  }
}

function storeMem(c: Cpu, la: number, x: Int32Array, base: number, bytes: number): void {
  if (bytes === 16) {
    if (la % 16 !== 0 && !xv(c).unal) c.gp(0);
    // All or nothing, faulting on the first unwritable byte (CR2 = la when la's page faults).
    c.checkW(la);
    c.checkW(la + 15);
  }
  if (bytes === 4) {
    c.wr32(la, x[base]);
    return;
  }
  c.wr64(la, x[base], x[base + 1]);
  if (bytes === 16) c.wr64(la + 8, x[base + 2], x[base + 3]);
}

/** 0F xx SSE/MMX opcodes not handled by the integer map. */
export function execSse(it: Interp, b: number): void {
  const c = it.c;
  const { x, s } = xv(c);
  const p = it.pfx;
  if (b === 0x38 || b === 0x3a) return execMap3(it, b);
  if (b === 0x77) return; // EMMS
  if (b === 0xc3) {
    // MOVNTI
    it.modrm(0);
    if (it.isReg) c.ud();
    const v = it.rdG(it.opsz);
    c.wr(it.opsz, it.la, v, c.hi);
    return;
  }
  checkSse(c);
  xv(c).unal = b === 0x10 || b === 0x11 || (p === 0xf3 && (b === 0x6f || b === 0x7f));
  // Opcodes with an imm8 after ModRM.
  const immOps = b === 0x70 || b === 0x71 || b === 0x72 || b === 0x73 || b === 0xc2 || b === 0xc6 ||
    b === 0xc4 ||
    b === 0xc5 || b === 0x3a;
  const mmx = p !== 0x66 && p !== 0xf2 && p !== 0xf3 && b >= 0x60 && b !== 0x7e && b !== 0x7f && b !== 0x70 &&
    b !== 0xd6 && b !== 0xc2 && b !== 0xc6 && b < 0xff;
  if (mmx && !(b === 0xe7 || b === 0xc4 || b === 0xc5)) it.unimpl(`MMX 0f ${b.toString(16)}`);
  it.modrm(immOps ? 1 : 0);
  if (execSseFp(it, b)) return;
  const d = it.reg * 4;
  const di = it.reg;
  switch (b) {
    case 0x10:
    case 0x11: {
      const bytes = p === 0xf3 ? 4 : p === 0xf2 ? 8 : 16;
      if (b === 0x10) {
        if (it.isReg) {
          const sr = it.rm * 4;
          for (let i = 0; i < bytes / 4; i++) x.i32[d + i] = x.i32[sr + i];
        } else {
          loadSrc(it, s, bytes);
          for (let i = 0; i < 4; i++) x.i32[d + i] = s.i32[i];
        }
      } else {
        if (it.isReg) {
          const dr = it.rm * 4;
          for (let i = 0; i < bytes / 4; i++) x.i32[dr + i] = x.i32[d + i];
        } else storeMem(c, it.la, x.i32, d, bytes);
      }
      return;
    }
    case 0x12:
    case 0x13:
    case 0x16:
    case 0x17: {
      const high = b >= 0x16 ? 2 : 0;
      if (b === 0x12 || b === 0x16) {
        if (it.isReg) {
          const sr = it.rm * 4;
          if (b === 0x12) {
            // MOVHLPS
            x.i32[d] = x.i32[sr + 2];
            x.i32[d + 1] = x.i32[sr + 3];
          } else {
            // MOVLHPS
            x.i32[d + 2] = x.i32[sr];
            x.i32[d + 3] = x.i32[sr + 1];
          }
        } else {
          x.i32[d + high] = c.rd32(it.la);
          x.i32[d + high + 1] = c.rd32(it.la + 4);
        }
      } else {
        if (it.isReg) c.ud();
        c.wr64(it.la, x.i32[d + high], x.i32[d + high + 1]);
      }
      return;
    }
    case 0x14:
    case 0x15: {
      loadSrc(it, s, 16);
      if (p === 0x66) {
        const lo = b === 0x14 ? 0 : 2;
        x.i32[d] = x.i32[d + lo];
        x.i32[d + 1] = x.i32[d + lo + 1];
        x.i32[d + 2] = s.i32[lo];
        x.i32[d + 3] = s.i32[lo + 1];
      } else {
        const o = b === 0x14 ? 0 : 2;
        const a0 = x.i32[d + o], a1 = x.i32[d + o + 1];
        x.i32[d] = a0;
        x.i32[d + 1] = s.i32[o];
        x.i32[d + 2] = a1;
        x.i32[d + 3] = s.i32[o + 1];
      }
      return;
    }
    case 0x28:
    case 0x29:
    case 0x6f:
    case 0x7f:
    case 0x2b:
    case 0xe7: {
      if (b === 0x28 || b === 0x6f) {
        loadSrc(it, s, 16);
        for (let i = 0; i < 4; i++) x.i32[d + i] = s.i32[i];
      } else if (it.isReg) {
        const dr = it.rm * 4;
        for (let i = 0; i < 4; i++) x.i32[dr + i] = x.i32[d + i];
      } else storeMem(c, it.la, x.i32, d, 16);
      return;
    }
    case 0x50: {
      if (!it.isReg) c.ud();
      const sr = it.rm * 4;
      let m = 0;
      if (p === 0x66) m = (x.i32[sr + 1] >>> 31) | ((x.i32[sr + 3] >>> 31) << 1);
      else for (let i = 0; i < 4; i++) m |= (x.i32[sr + i] >>> 31) << i;
      c.setReg(4, it.reg, m, 0);
      return;
    }
    case 0x54:
    case 0x55:
    case 0x56:
    case 0x57:
    case 0xdb:
    case 0xdf:
    case 0xeb:
    case 0xef:
      loadSrc(it, s, 16);
      for (let i = 0; i < 4; i++) {
        const a = x.i32[d + i], bb = s.i32[i];
        x.i32[d + i] = b === 0x54 || b === 0xdb
          ? a & bb
          : b === 0x55 || b === 0xdf
          ? ~a & bb
          : b === 0x56 || b === 0xeb
          ? a | bb
          : a ^ bb;
      }
      return;
    case 0x60:
    case 0x61:
    case 0x62:
    case 0x6c:
    case 0x68:
    case 0x69:
    case 0x6a:
    case 0x6d: {
      loadSrc(it, s, 16);
      const t = xv(c).t;
      const high = b >= 0x68 && b !== 0x6c;
      const esz = b === 0x60 || b === 0x68
        ? 1
        : b === 0x61 || b === 0x69
        ? 2
        : b === 0x62 || b === 0x6a
        ? 4
        : 8;
      const half = 8 / esz;
      const off = high ? 8 : 0;
      const du8 = x.u8, base = di * 16;
      for (let i = 0; i < half; i++) {
        for (let k = 0; k < esz; k++) {
          t.u8[2 * i * esz + k] = du8[base + off + i * esz + k];
          t.u8[(2 * i + 1) * esz + k] = s.u8[off + i * esz + k];
        }
      }
      for (let i = 0; i < 4; i++) x.i32[d + i] = t.i32[i];
      return;
    }
    case 0x64:
    case 0x65:
    case 0x66:
    case 0x74:
    case 0x75:
    case 0x76: {
      loadSrc(it, s, 16);
      const base = di * 16;
      if (b === 0x74 || b === 0x64) {
        for (let i = 0; i < 16; i++) {
          const t = b === 0x74 ? x.u8[base + i] === s.u8[i] : x.i8[base + i] > s.i8[i];
          x.u8[base + i] = t ? 0xff : 0;
        }
      } else if (b === 0x75 || b === 0x65) {
        for (let i = 0; i < 8; i++) {
          const t = b === 0x75 ? x.u16[base / 2 + i] === s.u16[i] : x.i16[base / 2 + i] > s.i16[i];
          x.u16[base / 2 + i] = t ? 0xffff : 0;
        }
      } else {
        for (let i = 0; i < 4; i++) {
          const t = b === 0x76 ? x.i32[d + i] === s.i32[i] : x.i32[d + i] > s.i32[i];
          x.i32[d + i] = t ? -1 : 0;
        }
      }
      return;
    }
    case 0x6e: {
      if (p !== 0x66) it.unimpl("movd mm");
      const v = it.rdE(it.opsz === 8 ? 8 : 4);
      x.i32[d] = v;
      x.i32[d + 1] = it.opsz === 8 ? c.hi : 0;
      x.i32[d + 2] = 0;
      x.i32[d + 3] = 0;
      return;
    }
    case 0x7e: {
      if (p === 0xf3) {
        // MOVQ xmm, xmm/m64
        loadSrc(it, s, 8);
        x.i32[d] = s.i32[0];
        x.i32[d + 1] = s.i32[1];
        x.i32[d + 2] = 0;
        x.i32[d + 3] = 0;
        return;
      }
      if (p !== 0x66) it.unimpl("movd mm");
      if (it.opsz === 8) it.wrE(8, x.i32[d], x.i32[d + 1]);
      else it.wrE(4, x.i32[d], 0);
      return;
    }
    case 0xd6: {
      if (it.isReg) {
        const dr = it.rm * 4;
        x.i32[dr] = x.i32[d];
        x.i32[dr + 1] = x.i32[d + 1];
        x.i32[dr + 2] = 0;
        x.i32[dr + 3] = 0;
      } else c.wr64(it.la, x.i32[d], x.i32[d + 1]);
      return;
    }
    case 0x70: {
      loadSrc(it, s, 16);
      const imm = c.fetch8();
      if (p === 0x66) {
        for (let i = 0; i < 4; i++) x.i32[d + i] = s.i32[(imm >> (2 * i)) & 3];
      } else if (p === 0xf2) {
        const w = [s.u16[0], s.u16[1], s.u16[2], s.u16[3]];
        for (let i = 0; i < 4; i++) x.u16[di * 8 + i] = w[(imm >> (2 * i)) & 3];
        x.i32[d + 2] = s.i32[2];
        x.i32[d + 3] = s.i32[3];
      } else if (p === 0xf3) {
        const w = [s.u16[4], s.u16[5], s.u16[6], s.u16[7]];
        x.i32[d] = s.i32[0];
        x.i32[d + 1] = s.i32[1];
        for (let i = 0; i < 4; i++) x.u16[di * 8 + 4 + i] = w[(imm >> (2 * i)) & 3];
      } else it.unimpl("pshufw");
      return;
    }
    case 0x71:
    case 0x72:
    case 0x73: {
      if (!it.isReg) c.ud();
      const imm = c.fetch8();
      const r = it.rm;
      const op = it.reg & 7;
      shiftXmm(x, r, b === 0x71 ? 2 : b === 0x72 ? 4 : 8, op, imm, b === 0x73);
      return;
    }
    case 0xd1:
    case 0xd2:
    case 0xd3:
    case 0xe1:
    case 0xe2:
    case 0xf1:
    case 0xf2:
    case 0xf3: {
      loadSrc(it, s, 16);
      const cnt = s.i32[1] !== 0 ? 255 : s.i32[0] >>> 0 > 255 ? 255 : s.i32[0];
      const esz = (b & 3) === 1 ? 2 : (b & 3) === 2 ? 4 : 8;
      const op = b < 0xe0 ? 2 : b < 0xf0 ? 4 : 6;
      shiftXmm(x, di, esz, op, cnt, false);
      return;
    }
    case 0xd7: {
      if (!it.isReg) c.ud();
      let m = 0;
      const base = it.rm * 16;
      for (let i = 0; i < 16; i++) m |= (x.u8[base + i] >> 7) << i;
      c.setReg(4, it.reg, m, 0);
      return;
    }
    case 0xda:
    case 0xde:
    case 0xea:
    case 0xee: {
      loadSrc(it, s, 16);
      const base = di * 16;
      if (b === 0xda || b === 0xde) {
        for (let i = 0; i < 16; i++) {
          const a = x.u8[base + i], bb = s.u8[i];
          x.u8[base + i] = b === 0xda ? Math.min(a, bb) : Math.max(a, bb);
        }
      } else {
        for (let i = 0; i < 8; i++) {
          const a = x.i16[base / 2 + i], bb = s.i16[i];
          x.i16[base / 2 + i] = b === 0xea ? Math.min(a, bb) : Math.max(a, bb);
        }
      }
      return;
    }
    case 0xd4:
    case 0xfb:
    case 0xf8:
    case 0xf9:
    case 0xfa:
    case 0xfc:
    case 0xfd:
    case 0xfe: {
      loadSrc(it, s, 16);
      const base = di * 16;
      const sub = b >= 0xf8 && b <= 0xfb;
      if (b === 0xf8 || b === 0xfc) {
        for (let i = 0; i < 16; i++) {
          x.u8[base + i] = sub ? x.u8[base + i] - s.u8[i] : x.u8[base + i] + s.u8[i];
        }
      } else if (b === 0xf9 || b === 0xfd) {
        for (let i = 0; i < 8; i++) {
          x.u16[base / 2 + i] = sub ? x.u16[base / 2 + i] - s.u16[i] : x.u16[base / 2 + i] + s.u16[i];
        }
      } else if (b === 0xfa || b === 0xfe) {
        for (let i = 0; i < 4; i++) {
          x.i32[d + i] = sub ? (x.i32[d + i] - s.i32[i]) | 0 : (x.i32[d + i] + s.i32[i]) | 0;
        }
      } else {
        for (let i = 0; i < 4; i += 2) {
          const alo = x.i32[d + i] >>> 0, blo = s.i32[i] >>> 0;
          const lo = sub ? alo - blo : alo + blo;
          const carry = sub ? (lo < 0 ? -1 : 0) : lo >= TWO32 ? 1 : 0;
          x.i32[d + i] = lo | 0;
          x.i32[d + i + 1] = sub
            ? (x.i32[d + i + 1] - s.i32[i + 1] + carry) | 0
            : (x.i32[d + i + 1] + s.i32[i + 1] + carry) | 0;
        }
      }
      return;
    }
    case 0xc6: {
      loadSrc(it, s, 16);
      const imm = c.fetch8();
      if (p === 0x66) {
        const lo0 = x.i32[d + (imm & 1) * 2], lo1 = x.i32[d + (imm & 1) * 2 + 1];
        const hi0 = s.i32[((imm >> 1) & 1) * 2], hi1 = s.i32[((imm >> 1) & 1) * 2 + 1];
        x.i32[d] = lo0;
        x.i32[d + 1] = lo1;
        x.i32[d + 2] = hi0;
        x.i32[d + 3] = hi1;
      } else {
        const a0 = x.i32[d + (imm & 3)], a1 = x.i32[d + ((imm >> 2) & 3)];
        const b0 = s.i32[(imm >> 4) & 3], b1 = s.i32[(imm >> 6) & 3];
        x.i32[d] = a0;
        x.i32[d + 1] = a1;
        x.i32[d + 2] = b0;
        x.i32[d + 3] = b1;
      }
      return;
    }
  }
  if (p === 0x66 && sse2IntExtra(it, b)) return;
  it.unimpl(`0f ${b.toString(16)}${p ? " pfx " + p.toString(16) : ""}`);
}

function satS8(v: number): number {
  return v > 127 ? 127 : v < -128 ? -128 : v;
}

function satS16(v: number): number {
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}

/**
 * 66-prefixed SSE2 integer ops outside the main switch (SDM vol. 2): saturating add/sub (D8/D9/DC/DD,
 * E8/E9/EC/ED), multiplies (D5/E4/E5/F4/F5), PSADBW (F6), averages (E0/E3), packs (63/67/6B),
 * PINSRW/PEXTRW (C4/C5). ModRM (and for C4/C5 the imm8 slot) is already decoded. False: not one of them.
 */
function sse2IntExtra(it: Interp, b: number): boolean {
  const c = it.c;
  const { x, s } = xv(c);
  const d = it.reg * 4;
  const w = it.reg * 8;
  const by = it.reg * 16;
  switch (b) {
    case 0xc4: {
      const v = it.isReg ? c.r[it.rm] & 0xffff : c.rd16(it.la);
      x.u16[w + (c.fetch8() & 7)] = v;
      return true;
    }
    case 0xc5: {
      if (!it.isReg) c.ud();
      const v = x.u16[it.rm * 8 + (c.fetch8() & 7)];
      c.setReg(4, it.reg, v, 0);
      return true;
    }
    case 0xd8:
    case 0xdc:
    case 0xe0: {
      loadSrc(it, s, 16);
      for (let i = 0; i < 16; i++) {
        const a = x.u8[by + i], v = s.u8[i];
        x.u8[by + i] = b === 0xd8 ? Math.max(a - v, 0) : b === 0xdc ? Math.min(a + v, 255) : (a + v + 1) >> 1;
      }
      return true;
    }
    case 0xd9:
    case 0xdd:
    case 0xe3: {
      loadSrc(it, s, 16);
      for (let i = 0; i < 8; i++) {
        const a = x.u16[w + i], v = s.u16[i];
        x.u16[w + i] = b === 0xd9
          ? Math.max(a - v, 0)
          : b === 0xdd
          ? Math.min(a + v, 65535)
          : (a + v + 1) >> 1;
      }
      return true;
    }
    case 0xe8:
    case 0xec: {
      loadSrc(it, s, 16);
      for (let i = 0; i < 16; i++) {
        const a = x.i8[by + i], v = s.i8[i];
        x.i8[by + i] = satS8(b === 0xe8 ? a - v : a + v);
      }
      return true;
    }
    case 0xe9:
    case 0xed:
    case 0xd5:
    case 0xe4:
    case 0xe5: {
      loadSrc(it, s, 16);
      for (let i = 0; i < 8; i++) {
        const a = x.i16[w + i], v = s.i16[i];
        if (b === 0xe9) x.i16[w + i] = satS16(a - v);
        else if (b === 0xed) x.i16[w + i] = satS16(a + v);
        else if (b === 0xd5) x.i16[w + i] = Math.imul(a, v);
        else if (b === 0xe5) x.i16[w + i] = (a * v) >> 16;
        else x.u16[w + i] = (x.u16[w + i] * s.u16[i]) >>> 16;
      }
      return true;
    }
    case 0xf4: {
      loadSrc(it, s, 16);
      for (let i = 0; i < 4; i += 2) {
        const p = BigInt(x.i32[d + i] >>> 0) * BigInt(s.i32[i] >>> 0);
        x.i32[d + i] = Number(p & 0xffffffffn) | 0;
        x.i32[d + i + 1] = Number(p >> 32n) | 0;
      }
      return true;
    }
    case 0xf5: {
      loadSrc(it, s, 16);
      for (let i = 0; i < 4; i++) {
        x.i32[d + i] = (x.i16[w + 2 * i] * s.i16[2 * i] + x.i16[w + 2 * i + 1] * s.i16[2 * i + 1]) | 0;
      }
      return true;
    }
    case 0xf6: {
      loadSrc(it, s, 16);
      for (let h = 0; h < 2; h++) {
        let sum = 0;
        for (let i = 0; i < 8; i++) sum += Math.abs(x.u8[by + 8 * h + i] - s.u8[8 * h + i]);
        x.i32[d + 2 * h] = sum;
        x.i32[d + 2 * h + 1] = 0;
      }
      return true;
    }
    case 0x63:
    case 0x67:
    case 0x6b: {
      loadSrc(it, s, 16);
      const t = new Int32Array(4);
      const tb = new Int8Array(t.buffer), tu = new Uint8Array(t.buffer), tw = new Int16Array(t.buffer);
      if (b === 0x6b) {
        for (let i = 0; i < 4; i++) tw[i] = satS16(x.i32[d + i]);
        for (let i = 0; i < 4; i++) tw[4 + i] = satS16(s.i32[i]);
      } else {
        for (let i = 0; i < 16; i++) {
          const v = i < 8 ? x.i16[w + i] : s.i16[i - 8];
          if (b === 0x63) tb[i] = satS8(v);
          else tu[i] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
      }
      for (let i = 0; i < 4; i++) x.i32[d + i] = t[i];
      return true;
    }
  }
  return false;
}

/** Packed shifts: op 2 logical right, 4 arithmetic right, 6 left; 3/7 byte shifts (whole register) when bytewise. */
function shiftXmm(x: XmmViews, r: number, esz: number, op: number, cnt: number, bytewise: boolean): void {
  const base = r * 16;
  if (bytewise && (op === 3 || op === 7)) {
    const n = cnt > 16 ? 16 : cnt;
    const tmp = x.u8.slice(base, base + 16);
    for (let i = 0; i < 16; i++) {
      const src = op === 3 ? i + n : i - n;
      x.u8[base + i] = src >= 0 && src < 16 ? tmp[src] : 0;
    }
    return;
  }
  const bits = esz * 8;
  if (esz === 2) {
    for (let i = 0; i < 8; i++) {
      const v = x.u16[base / 2 + i];
      x.u16[base / 2 + i] = op === 2
        ? (cnt >= bits ? 0 : v >>> cnt)
        : op === 4
        ? ((v << 16) >> 16) >> (cnt >= bits ? 15 : cnt)
        : op === 6
        ? (cnt >= bits ? 0 : v << cnt)
        : v;
    }
  } else if (esz === 4) {
    for (let i = 0; i < 4; i++) {
      const v = x.i32[base / 4 + i];
      x.i32[base / 4 + i] = op === 2
        ? (cnt >= bits ? 0 : v >>> cnt)
        : op === 4
        ? v >> (cnt >= bits ? 31 : cnt)
        : op === 6
        ? (cnt >= bits ? 0 : v << cnt)
        : v;
    }
  } else {
    for (let i = 0; i < 2; i++) {
      const o = base / 4 + 2 * i;
      const lo = x.i32[o], hi = x.i32[o + 1];
      let nlo = lo, nhi = hi;
      if (cnt >= 64) nlo = nhi = 0;
      else if (cnt === 0) { /* unchanged */ }
      else if (op === 2) {
        if (cnt < 32) {
          nlo = (lo >>> cnt) | (hi << (32 - cnt));
          nhi = hi >>> cnt;
        } else {
          nlo = hi >>> (cnt - 32);
          nhi = 0;
        }
      } else if (op === 6) {
        if (cnt < 32) {
          nhi = (hi << cnt) | (lo >>> (32 - cnt));
          nlo = lo << cnt;
        } else {
          nhi = lo << (cnt - 32);
          nlo = 0;
        }
      }
      x.i32[o] = nlo;
      x.i32[o + 1] = nhi;
    }
  }
}

/** FXSAVE to linear `la` (512 bytes). */
export function fxsave(it: Interp, la: number): void {
  const c = it.c;
  if (c.cr0 & (CR0_EM | CR0_TS)) c.fault(EXC_NM);
  if (la % 16 !== 0) c.gp(0);
  c.checkW(la);
  c.checkW(la + 511);
  c.wr16(la, c.fpuCw);
  c.wr16(la + 2, c.fpuSw);
  c.wr8(la + 4, c.fpuTw & 0xff);
  c.wr8(la + 5, 0);
  fxsavePointers(it, la); // FOP, FIP/FCS, FDP/FDS (x87_stack.ts)
  c.wr32(la + 24, c.mxcsr);
  c.wr32(la + 28, 0xffff);
  for (let i = 0; i < 128; i += 4) {
    c.wr32(la + 32 + i, c.fpr[i] | (c.fpr[i + 1] << 8) | (c.fpr[i + 2] << 16) | (c.fpr[i + 3] << 24));
  }
  const n = c.long64 ? 16 : 8;
  for (let i = 0; i < n * 4; i++) c.wr32(la + 160 + i * 4, c.xmm[i]);
}

/** FXRSTOR from linear `la`. */
export function fxrstor(it: Interp, la: number): void {
  const c = it.c;
  if (c.cr0 & (CR0_EM | CR0_TS)) c.fault(EXC_NM);
  if (la % 16 !== 0) c.gp(0);
  const mx = c.rd32(la + 24);
  if (mx & ~0xffff) c.gp(0);
  c.fpuCw = c.rd16(la);
  c.fpuSw = c.rd16(la + 2);
  c.fpuTw = c.rd8(la + 4);
  fxrstorPointers(it, la);
  c.mxcsr = mx;
  for (let i = 0; i < 128; i += 4) {
    const v = c.rd32(la + 32 + i);
    c.fpr[i] = v;
    c.fpr[i + 1] = v >> 8;
    c.fpr[i + 2] = v >> 16;
    c.fpr[i + 3] = v >> 24;
  }
  const n = c.long64 ? 16 : 8;
  for (let i = 0; i < n * 4; i++) c.xmm[i] = c.rd32(la + 160 + i * 4);
}
