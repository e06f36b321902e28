/**
 * Operand plumbing shared by the VEX vector instructions (avx.ts, avx2.ts): sources vvvv and r/m, the
 * destination write that zeroes the YMM upper half for VEX.128, lane-function application, feature checks.
 * @module
 */
import type { Cpu } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import type { VexFields } from "./vex.ts";
import { commitFlags, type LaneFn, type Lanes, loadMem, type XCtx } from "./xmmops.ts";

/** Per-instruction operand plumbing for a VEX instruction. */
export class VexOps {
  readonly it: Interp;
  readonly c: Cpu;
  readonly X: XCtx;
  readonly f: VexFields;
  /** First source (vvvv), second source (r/m), result. */
  readonly a: Lanes;
  readonly b: Lanes;
  readonly r: Lanes;
  constructor(it: Interp, f: VexFields, X: XCtx) {
    this.it = it;
    this.c = it.c;
    this.X = X;
    this.f = f;
    this.a = X.t;
    this.b = X.s;
    this.r = X.r;
  }
  get bytes(): number {
    return this.f.l ? 32 : 16;
  }
  /** Copy register n (xmm + upper half) into dst. */
  reg(n: number, dst: Lanes): void {
    const c = this.c, b = n * 4;
    for (let i = 0; i < 4; i++) {
      dst.i32[i] = c.xmm[b + i];
      dst.i32[4 + i] = c.ymmh[b + i];
    }
  }
  /** Load the r/m operand (`bytes`, default the vector length) into b. */
  rm(bytes = this.bytes, aligned = false): void {
    const it = this.it;
    if (it.isReg) this.reg(it.rm, this.b);
    else loadMem(this.c, this.b, it.la, bytes, aligned);
  }
  /** Write src to register n: 128-bit writes zero the upper half (VEX.128), 256-bit ones set it. */
  write(n: number, src: Lanes, l = this.f.l): void {
    const c = this.c, b = n * 4;
    for (let i = 0; i < 4; i++) {
      c.xmm[b + i] = src.i32[i];
      c.ymmh[b + i] = l ? src.i32[4 + i] : 0;
    }
  }
}

export const F = { avx: "avx", avx2: "avx2" };

export function need(c: Cpu, feat: string): void {
  if (!c.cpuidModel.has(feat)) c.ud();
}

/** #UD unless AVX state is enabled (CR4.OSXSAVE, XCR0 SSE|AVX); #NM with CR0.TS. */
export function checkAvx(c: Cpu): void {
  if (!(c.cr4 & 0x40000) || (c.xcr0 & 6) !== 6 || !c.cpuidModel.has("avx")) c.ud();
  if (c.cr0 & 8) c.fault(7);
}

/** Run a lane function over the vector length: r = fn(a = vvvv, b = r/m), written to reg. */
export function laneOp(o: VexOps, fn: LaneFn, imm: number, mem = 0, aligned = false, src1 = true): void {
  const { c, it, f, X } = o;
  if (src1) o.reg(f.v, o.a);
  o.rm(mem || o.bytes, aligned);
  const k = X.env.load(c.mxcsr);
  o.reg(it.reg, o.r);
  fn(c, o.a, o.b, o.r, 0, imm, X.x);
  if (f.l) fn(c, o.a, o.b, o.r, 1, imm, X.x);
  commitFlags(c, k);
  o.write(it.reg, o.r);
}
