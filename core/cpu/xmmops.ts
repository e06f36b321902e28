/**
 * Shared plumbing of the SIMD extensions (ssefp.ts, ssse3.ts, sse41.ts, sse42.ts, avx.ts): typed views of
 * the XMM/YMM register file, operand loads with the #GP alignment rule of the aligned forms, and the
 * MXCSR commit that raises #XM (or #UD without CR4.OSXMMEXCPT) for unmasked exceptions.
 * @module
 */
import { type Cpu, CR0_EM, CR0_TS, CR4_OSXMMEXCPT, EXC_NM, EXC_XM } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import { segRead } from "./seglimit.ts";
import { FpEnv } from "./softfp.ts";

/** Views of one 32-byte buffer. */
export class Lanes {
  readonly i32: Int32Array;
  readonly u32: Uint32Array;
  readonly u8: Uint8Array;
  readonly i8: Int8Array;
  readonly u16: Uint16Array;
  readonly i16: Int16Array;
  readonly f32: Float32Array;
  readonly f64: Float64Array;
  readonly u64: BigUint64Array;
  readonly i64: BigInt64Array;
  constructor(i32: Int32Array) {
    const b = i32.buffer, o = i32.byteOffset, n = i32.byteLength;
    this.i32 = i32;
    this.u32 = new Uint32Array(b, o, n / 4);
    this.u8 = new Uint8Array(b, o, n);
    this.i8 = new Int8Array(b, o, n);
    this.u16 = new Uint16Array(b, o, n / 2);
    this.i16 = new Int16Array(b, o, n / 2);
    this.f32 = new Float32Array(b, o, n / 4);
    this.f64 = new Float64Array(b, o, n / 8);
    this.u64 = new BigUint64Array(b, o, n / 8);
    this.i64 = new BigInt64Array(b, o, n / 8);
  }
}

/** Per-CPU views and scratch (a cache: all state lives in Cpu.xmm / Cpu.ymmh / Cpu.mxcsr). */
export class XCtx {
  readonly x: Lanes;
  readonly h: Lanes;
  /** Source operand scratch (32 bytes), a second source, and a result buffer. */
  readonly s = new Lanes(new Int32Array(8));
  readonly t = new Lanes(new Int32Array(8));
  readonly r = new Lanes(new Int32Array(8));
  readonly t2 = new Lanes(new Int32Array(8));
  readonly env = new FpEnv();
  constructor(c: Cpu) {
    this.x = new Lanes(c.xmm);
    this.h = new Lanes(c.ymmh);
  }
}

export function xctx(c: Cpu): XCtx {
  const v = c.simdCtx as XCtx | null;
  if (v !== null) return v;
  const n = new XCtx(c);
  c.simdCtx = n;
  return n;
}

/** #UD with CR0.EM, #NM with CR0.TS (SSE instructions). */
export function checkSse(c: Cpu): void {
  if (c.cr0 & CR0_EM) c.ud();
  if (c.cr0 & CR0_TS) c.fault(EXC_NM);
}

/** Read `bytes` (4, 8, 16, 32) of memory at `la` into dst.i32 (rest zeroed); 16/32 must be aligned if `aligned`. */
export function loadMem(c: Cpu, dst: Lanes, la: number, bytes: number, aligned: boolean): void {
  if (aligned && bytes >= 16 && la % bytes !== 0) c.gp(0);
  dst.i32.fill(0);
  if (bytes === 1) dst.u8[0] = c.rd8(la);
  else if (bytes === 2) dst.u16[0] = c.rd16(la);
  else for (let i = 0; i < bytes / 4; i++) dst.i32[i] = c.rd32(la + 4 * i);
}

/**
 * The r/m operand of the current instruction into dst (register: XMM rm, plus the YMM upper half when
 * bytes = 32; memory: `bytes` bytes, alignment-checked when `aligned`).
 */
export function loadRm(it: Interp, dst: Lanes, bytes: number, aligned: boolean): void {
  const c = it.c;
  if (it.isReg) {
    const b = it.rm * 4;
    for (let i = 0; i < 4; i++) dst.i32[i] = c.xmm[b + i];
    for (let i = 0; i < 4; i++) dst.i32[4 + i] = bytes === 32 ? c.ymmh[b + i] : 0;
    return;
  }
  if (c.segChk) segRead(c, it.ms, it.ea, bytes);
  loadMem(c, dst, it.la, bytes, aligned && bytes >= 16);
}

/** Write `bytes` of src.i32 to memory at la (all-or-nothing probe first); aligned forms check alignment. */
export function storeMem(c: Cpu, la: number, src: Int32Array, bytes: number, aligned: boolean): void {
  if (aligned && bytes >= 16 && la % bytes !== 0) c.gp(0);
  if (bytes >= 16) {
    c.checkW(la);
    c.checkW(la + bytes - 1);
  }
  if (bytes === 1) c.wr8(la, src[0] & 0xff);
  else if (bytes === 2) c.wr16(la, src[0] & 0xffff);
  else for (let i = 0; i < bytes / 4; i++) c.wr32(la + 4 * i, src[i]);
}

/**
 * Commit the exception flags an instruction collected in env to MXCSR; if any is unmasked, raise #XM
 * (CR4.OSXMMEXCPT) or #UD, before the destination is written (the caller writes after this returns).
 */
export function commitFlags(c: Cpu, env: FpEnv): void {
  const f = env.flags & 0x3f;
  if (f === 0) return;
  c.mxcsr |= f;
  if (f & ~(c.mxcsr >> 7) & 0x3f) {
    if (c.cr4 & CR4_OSXMMEXCPT) c.fault(EXC_XM);
    c.ud();
  }
}

/**
 * One 128-bit lane of a vector operation: r = f(a, b) on lane `o` (0, or 1 for the upper half of a YMM
 * operation); `imm` the imm8, `m` the implicit mask operand (XMM0 for PBLENDVB/BLENDVPS/BLENDVPD).
 * a is the first source (the destination for legacy SSE), b the r/m source.
 */
export type LaneFn = (c: Cpu, a: Lanes, b: Lanes, r: Lanes, o: number, imm: number, m: Lanes) => void;

/** A table entry of the 0F 38 / 0F 3A vector instructions (66-prefixed forms). */
export interface VecOp {
  fn: LaneFn;
  /** CPUID feature that enables it. */
  feat: string;
  /** Memory operand size for the legacy form (default 16, alignment required when 16). */
  mem?: number;
  /** Takes an imm8. */
  imm?: boolean;
}

export function satS8(v: number): number {
  return v > 127 ? 127 : v < -128 ? -128 : v;
}
export function satS16(v: number): number {
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}
export function satU8(v: number): number {
  return v > 255 ? 255 : v < 0 ? 0 : v;
}
export function satU16(v: number): number {
  return v > 65535 ? 65535 : v < 0 ? 0 : v;
}
