/**
 * MMX (SDM vol. 1 ch. 9, vol. 2): the eight 64-bit MMn registers alias the significands of the x87
 * physical registers (`Cpu.fpr` bytes 16n..16n+7). Every MMX instruction sets TOP to 0 and all tags valid;
 * a write also sets the register's exponent/sign bytes to all ones; EMMS empties the tags. The integer
 * SIMD forms of 0F 6x/7x/Dx/Ex/Fx without a mandatory prefix, plus the SSE additions PSHUFW, PINSRW,
 * PEXTRW, PMOVMSKB, MOVNTQ, MASKMOVQ, PAVGx, PMINx/PMAXx, PMULHUW, PSADBW and PMULUDQ.
 * @module
 */
import { type Cpu, CR0_EM, CR0_TS, DS, EXC_NM } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import { checkPending } from "./x87_stack.ts";

/** Per-vCPU scratch: destination and source operands as 8 bytes each, with typed views. */
class MmxScratch {
  readonly buf = new ArrayBuffer(24);
  readonly u8 = new Uint8Array(this.buf);
  readonly i8 = new Int8Array(this.buf);
  readonly u16 = new Uint16Array(this.buf);
  readonly i16 = new Int16Array(this.buf);
  readonly u32 = new Uint32Array(this.buf);
  readonly i32 = new Int32Array(this.buf);
  readonly r = new Uint8Array(8);
  readonly fpr: DataView;
  constructor(c: Cpu) {
    this.fpr = new DataView(c.fpr.buffer, c.fpr.byteOffset, 128);
  }
}

const scratch = new WeakMap<Cpu, MmxScratch>();

function sc(c: Cpu): MmxScratch {
  let s = scratch.get(c);
  if (!s) {
    s = new MmxScratch(c);
    scratch.set(c, s);
  }
  return s;
}

/** 0F opcodes that are MMX forms when no 66/F2/F3 prefix is present. */
export function isMmx(b: number): boolean {
  if (b >= 0x60 && b <= 0x7f) return b < 0x78 || b >= 0x7e; // 78-7D are VMX/SSE3 or reserved
  if (b === 0xc4 || b === 0xc5) return true;
  return b >= 0xd1 && b <= 0xfe && b !== 0xd6 && b !== 0xe6 && b !== 0xf0 && b !== 0xff;
}

/** Enter MMX mode: TOP = 0, all registers valid (SDM vol. 1 9.5.1). */
function mmxEnter(c: Cpu): void {
  c.fpuSw &= ~0x3800;
  c.fpuTw = 0xff;
}

function rdMm(s: MmxScratch, n: number, off: number): void {
  s.u32[off >> 2] = s.fpr.getUint32(n * 16, true);
  s.u32[(off >> 2) + 1] = s.fpr.getUint32(n * 16 + 4, true);
}

function wrMm(c: Cpu, n: number, lo: number, hi: number): void {
  const dv = sc(c).fpr;
  dv.setUint32(n * 16, lo >>> 0, true);
  dv.setUint32(n * 16 + 4, hi >>> 0, true);
  dv.setUint16(n * 16 + 8, 0xffff, true);
}

function satS(v: number, bits: number): number {
  const max = (1 << (bits - 1)) - 1, min = -(1 << (bits - 1));
  return v > max ? max : v < min ? min : v;
}

function satU(v: number, bits: number): number {
  const max = (1 << bits) - 1;
  return v > max ? max : v < 0 ? 0 : v;
}

/** Execute an MMX form of 0F `b` (no mandatory prefix). */
export function execMmx(it: Interp, b: number): void {
  const c = it.c;
  if (c.cr0 & CR0_EM) c.ud();
  if (c.cr0 & CR0_TS) c.fault(EXC_NM);
  checkPending(c);
  const s = sc(c);
  if (b === 0x77) {
    c.fpuTw = 0; // EMMS
    return;
  }
  const imm = b === 0x70 || b === 0x71 || b === 0x72 || b === 0x73 || b === 0xc4 || b === 0xc5;
  it.modrm(imm ? 1 : 0);
  const mmReg = it.reg & 7;
  switch (b) {
    case 0x6e: { // MOVD/MOVQ mm, r/m
      const lo = it.rdE(it.rexW ? 8 : 4);
      const hi = it.rexW ? c.hi : 0;
      mmxEnter(c);
      return wrMm(c, mmReg, lo, hi);
    }
    case 0x7e: { // MOVD/MOVQ r/m, mm
      mmxEnter(c);
      rdMm(s, mmReg, 0);
      it.wrE(it.rexW ? 8 : 4, s.i32[0], s.i32[1]);
      return;
    }
    case 0x6f: // MOVQ mm, mm/m64
      loadSrc(it, s, 8);
      mmxEnter(c);
      return wrMm(c, mmReg, s.i32[2], s.i32[3]);
    case 0x7f: // MOVQ mm/m64, mm
    case 0xe7: { // MOVNTQ
      if (b === 0xe7 && it.isReg) c.ud();
      mmxEnter(c);
      rdMm(s, mmReg, 0);
      if (it.isReg) return wrMm(c, it.rm & 7, s.i32[0], s.i32[1]);
      c.wr64(it.la, s.i32[0], s.i32[1]);
      return;
    }
    case 0xc5: { // PEXTRW r32, mm, imm8
      if (!it.isReg) c.ud();
      const sel = c.fetch8() & 3;
      mmxEnter(c);
      rdMm(s, it.rm & 7, 0);
      c.setReg(it.opsz === 8 ? 8 : 4, it.reg, s.u16[sel], 0);
      return;
    }
    case 0xc4: { // PINSRW mm, r32/m16, imm8
      const v = it.isReg ? c.getReg(4, it.rm) : c.rd16(it.la);
      const sel = c.fetch8() & 3;
      mmxEnter(c);
      rdMm(s, mmReg, 0);
      s.u16[sel] = v;
      return wrMm(c, mmReg, s.i32[0], s.i32[1]);
    }
    case 0xd7: { // PMOVMSKB r32, mm
      if (!it.isReg) c.ud();
      mmxEnter(c);
      rdMm(s, it.rm & 7, 0);
      let m = 0;
      for (let i = 0; i < 8; i++) m |= (s.u8[i] >> 7) << i;
      c.setReg(it.opsz === 8 ? 8 : 4, it.reg, m, 0);
      return;
    }
    case 0xf7: { // MASKMOVQ mm, mm: store selected bytes at DS:rDI
      if (!it.isReg) c.ud();
      mmxEnter(c);
      rdMm(s, mmReg, 0);
      rdMm(s, it.rm & 7, 8);
      const base = it.lin(DS, it.getA(7));
      for (let i = 0; i < 8; i++) if (s.u8[8 + i] & 0x80) c.wr8(base + i, s.u8[i]);
      return;
    }
    case 0x71:
    case 0x72:
    case 0x73: {
      if (!it.isReg) c.ud();
      const n = c.fetch8();
      const op = it.reg & 7;
      const size = b === 0x71 ? 2 : b === 0x72 ? 4 : 8;
      if (op !== 2 && op !== 6 && !(op === 4 && size !== 8)) c.ud();
      mmxEnter(c);
      rdMm(s, it.rm & 7, 0);
      shift(s, size, op === 2 ? 0 : op === 4 ? 1 : 2, n);
      return wrMm(c, it.rm & 7, s.i32[0], s.i32[1]);
    }
  }
  // Two-operand forms: destination in bytes 0-7, source in 8-15.
  const low = b >= 0x60 && b <= 0x62;
  loadSrc(it, s, low ? 4 : 8);
  mmxEnter(c);
  rdMm(s, mmReg, 0);
  binary(s, b, it);
  wrMm(c, mmReg, s.i32[0], s.i32[1]);
}

/** Source operand (mm register or `bytes` of memory, zero-extended) into bytes 8-15. */
function loadSrc(it: Interp, s: MmxScratch, bytes: number): void {
  const c = it.c;
  if (it.isReg) return rdMm(s, it.rm & 7, 8);
  if (bytes === 4) {
    s.i32[2] = c.rd32(it.la);
    s.i32[3] = 0;
    return;
  }
  s.i32[2] = c.rd64(it.la);
  s.i32[3] = c.hi;
}

/** Shift lanes of `size` bytes of the destination: kind 0 logical right, 1 arithmetic right, 2 left. */
function shift(s: MmxScratch, size: number, kind: number, n: number): void {
  const bits = size * 8;
  if (size === 8) {
    let v = (BigInt(s.u32[1]) << 32n) | BigInt(s.u32[0]);
    v = n > 63 ? 0n : kind === 2 ? BigInt.asUintN(64, v << BigInt(n)) : v >> BigInt(n);
    s.u32[0] = Number(v & 0xffffffffn);
    s.u32[1] = Number(v >> 32n);
    return;
  }
  const lanes = 8 / size;
  for (let i = 0; i < lanes; i++) {
    if (size === 2) {
      const v = s.i16[i];
      s.i16[i] = kind === 1 ? v >> Math.min(n, 15) : n >= bits ? 0 : kind === 0 ? (v & 0xffff) >>> n : v << n;
    } else {
      const v = s.i32[i];
      s.i32[i] = kind === 1 ? v >> Math.min(n, 31) : n >= bits ? 0 : kind === 0 ? v >>> n : v << n;
    }
  }
}

/** Shift count from the 64-bit source (saturated above 255). */
function count(s: MmxScratch): number {
  return s.u32[3] !== 0 || s.u32[2] > 255 ? 255 : s.u32[2];
}

function binary(s: MmxScratch, b: number, it: Interp): void {
  const { u8, i8, u16, i16, u32, i32, r } = s;
  switch (b) {
    case 0x60: // PUNPCKLBW
    case 0x68: { // PUNPCKHBW
      const o = b === 0x68 ? 4 : 0;
      for (let i = 0; i < 4; i++) {
        r[2 * i] = u8[o + i];
        r[2 * i + 1] = u8[8 + o + i];
      }
      return u8.set(r, 0);
    }
    case 0x61:
    case 0x69: {
      const o = b === 0x69 ? 2 : 0;
      const a0 = u16[o], a1 = u16[o + 1], b0 = u16[4 + o], b1 = u16[5 + o];
      u16[0] = a0;
      u16[1] = b0;
      u16[2] = a1;
      u16[3] = b1;
      return;
    }
    case 0x62:
    case 0x6a: {
      const o = b === 0x6a ? 1 : 0;
      const a = u32[o], bb = u32[2 + o];
      u32[0] = a;
      u32[1] = bb;
      return;
    }
    case 0x63: // PACKSSWB
    case 0x67: // PACKUSWB
      for (let i = 0; i < 8; i++) {
        const v = i16[i]; // destination words 0-3, then source words 4-7
        r[i] = b === 0x63 ? satS(v, 8) & 0xff : satU(v, 8);
      }
      return u8.set(r, 0);
    case 0x6b: { // PACKSSDW
      const w = [satS(i32[0], 16), satS(i32[1], 16), satS(i32[2], 16), satS(i32[3], 16)];
      for (let i = 0; i < 4; i++) i16[i] = w[i];
      return;
    }
    case 0x64:
    case 0x74:
      for (let i = 0; i < 8; i++) u8[i] = (b === 0x64 ? i8[i] > i8[8 + i] : u8[i] === u8[8 + i]) ? 0xff : 0;
      return;
    case 0x65:
    case 0x75:
      for (let i = 0; i < 4; i++) {
        u16[i] = (b === 0x65 ? i16[i] > i16[4 + i] : u16[i] === u16[4 + i]) ? 0xffff : 0;
      }
      return;
    case 0x66:
    case 0x76:
      for (let i = 0; i < 2; i++) {
        i32[i] = (b === 0x66 ? i32[i] > i32[2 + i] : i32[i] === i32[2 + i]) ? -1 : 0;
      }
      return;
    case 0x70: { // PSHUFW
      const n = it.c.fetch8();
      for (let i = 0; i < 4; i++) r[i] = (n >> (2 * i)) & 3;
      const w = [u16[4], u16[5], u16[6], u16[7]];
      for (let i = 0; i < 4; i++) u16[i] = w[r[i]];
      return;
    }
    case 0xd1:
    case 0xe1:
    case 0xf1:
      return shift(s, 2, b === 0xd1 ? 0 : b === 0xe1 ? 1 : 2, count(s));
    case 0xd2:
    case 0xe2:
    case 0xf2:
      return shift(s, 4, b === 0xd2 ? 0 : b === 0xe2 ? 1 : 2, count(s));
    case 0xd3:
    case 0xf3:
      return shift(s, 8, b === 0xd3 ? 0 : 2, count(s));
    case 0xd4: // PADDQ
    case 0xfb: { // PSUBQ
      const a = (BigInt(u32[1]) << 32n) | BigInt(u32[0]), bb = (BigInt(u32[3]) << 32n) | BigInt(u32[2]);
      const v = BigInt.asUintN(64, b === 0xd4 ? a + bb : a - bb);
      u32[0] = Number(v & 0xffffffffn);
      u32[1] = Number(v >> 32n);
      return;
    }
    case 0xf4: { // PMULUDQ
      const v = BigInt(u32[0]) * BigInt(u32[2]);
      u32[0] = Number(v & 0xffffffffn);
      u32[1] = Number(v >> 32n);
      return;
    }
    case 0xd5:
    case 0xe5:
    case 0xe4:
      for (let i = 0; i < 4; i++) {
        const p = b === 0xe4 ? u16[i] * u16[4 + i] : i16[i] * i16[4 + i];
        u16[i] = b === 0xd5 ? p & 0xffff : Math.floor(p / 65536) & 0xffff;
      }
      return;
    case 0xf5: { // PMADDWD
      const d0 = i16[0] * i16[4] + i16[1] * i16[5], d1 = i16[2] * i16[6] + i16[3] * i16[7];
      i32[0] = d0 | 0;
      i32[1] = d1 | 0;
      return;
    }
    case 0xf6: { // PSADBW
      let sum = 0;
      for (let i = 0; i < 8; i++) sum += Math.abs(u8[i] - u8[8 + i]);
      u32[0] = sum;
      u32[1] = 0;
      return;
    }
    case 0xdb:
    case 0xdf:
    case 0xeb:
    case 0xef:
      for (let i = 0; i < 2; i++) {
        const a = i32[i], bb = i32[2 + i];
        i32[i] = b === 0xdb ? a & bb : b === 0xdf ? ~a & bb : b === 0xeb ? a | bb : a ^ bb;
      }
      return;
  }
  // Byte/word lane arithmetic.
  const bytes = b === 0xd8 || b === 0xdc || b === 0xda || b === 0xde || b === 0xe0 || b === 0xe8 ||
    b === 0xec ||
    b === 0xf8 || b === 0xfc;
  const dwords = b === 0xfa || b === 0xfe;
  if (dwords) {
    for (let i = 0; i < 2; i++) i32[i] = b === 0xfe ? (i32[i] + i32[2 + i]) | 0 : (i32[i] - i32[2 + i]) | 0;
    return;
  }
  const n = bytes ? 8 : 4;
  for (let i = 0; i < n; i++) {
    const ua = bytes ? u8[i] : u16[i], ub = bytes ? u8[n + i] : u16[n + i];
    const sa = bytes ? i8[i] : i16[i], sb = bytes ? i8[n + i] : i16[n + i];
    const bits = bytes ? 8 : 16;
    let v: number;
    switch (b) {
      case 0xd8: // PSUBUSB
      case 0xd9:
        v = satU(ua - ub, bits);
        break;
      case 0xdc: // PADDUSB
      case 0xdd:
        v = satU(ua + ub, bits);
        break;
      case 0xda: // PMINUB
        v = Math.min(ua, ub);
        break;
      case 0xde: // PMAXUB
        v = Math.max(ua, ub);
        break;
      case 0xe0: // PAVGB
      case 0xe3:
        v = (ua + ub + 1) >> 1;
        break;
      case 0xe8: // PSUBSB
      case 0xe9:
        v = satS(sa - sb, bits);
        break;
      case 0xec: // PADDSB
      case 0xed:
        v = satS(sa + sb, bits);
        break;
      case 0xea: // PMINSW
        v = Math.min(sa, sb);
        break;
      case 0xee: // PMAXSW
        v = Math.max(sa, sb);
        break;
      case 0xf8: // PSUBB/W
      case 0xf9:
        v = ua - ub;
        break;
      case 0xfc: // PADDB/W
      case 0xfd:
        v = ua + ub;
        break;
      default:
        return it.unimpl(`MMX 0f ${b.toString(16)}`);
    }
    if (bytes) u8[i] = v;
    else u16[i] = v;
  }
}
