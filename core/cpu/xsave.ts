/**
 * XSAVE feature set (SDM vol. 1 ch. 13, vol. 2): XCR0 through XGETBV/XSETBV, XSAVE/XSAVEOPT (standard
 * format), XSAVEC (compacted format) and XRSTOR (both formats) for the x87, SSE and AVX components, and the
 * CPUID leaf 0DH that describes them. The legacy region is FXSAVE's layout; the x87 part mirrors
 * sse.ts fxsave/fxrstor (keep the two in step when the x87 state changes).
 * @module
 */
import { type Cpu, CR0_TS, EXC_NM } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import { CR4_OSXSAVE, supportedXcr0, XSAVE_AVX_OFFSET, xsaveSize } from "./cpuid.ts";

function checkXsave(c: Cpu): void {
  if (!c.cpuidModel.has("xsave") || !(c.cr4 & CR4_OSXSAVE)) c.ud();
}

/** XGETBV (0F 01 D0). */
export function xgetbv(c: Cpu): void {
  checkXsave(c);
  const r = c.r;
  if (r[1] !== 0) c.gp(0);
  c.setReg(8, 0, c.xcr0, 0);
  c.setReg(8, 2, 0, 0);
}

/** XSETBV (0F 01 D1): CPL 0, ECX 0, x87 always on, AVX needs SSE, nothing unsupported. */
export function xsetbv(c: Cpu): void {
  checkXsave(c);
  const r = c.r;
  if (c.cpl !== 0 || r[1] !== 0 || r[2] !== 0) c.gp(0);
  const v = r[0] >>> 0;
  if (!(v & 1) || (v & 4 && !(v & 2)) || (v & ~supportedXcr0(c))) c.gp(0);
  c.xcr0 = v;
}

function saveX87(c: Cpu, la: number): void {
  c.wr16(la, c.fpuCw);
  c.wr16(la + 2, c.fpuSw);
  c.wr8(la + 4, c.fpuTw & 0xff);
  c.wr8(la + 5, 0);
  c.wr16(la + 6, 0);
  c.wr64(la + 8, 0, 0);
  c.wr64(la + 16, 0, 0);
  for (let i = 0; i < 128; i += 4) {
    c.wr32(la + 32 + i, c.fpr[i] | (c.fpr[i + 1] << 8) | (c.fpr[i + 2] << 16) | (c.fpr[i + 3] << 24));
  }
}

function loadX87(c: Cpu, la: number): void {
  c.fpuCw = c.rd16(la);
  c.fpuSw = c.rd16(la + 2);
  c.fpuTw = c.rd8(la + 4);
  for (let i = 0; i < 128; i += 4) {
    const v = c.rd32(la + 32 + i);
    c.fpr[i] = v;
    c.fpr[i + 1] = v >> 8;
    c.fpr[i + 2] = v >> 16;
    c.fpr[i + 3] = v >> 24;
  }
}

function initX87(c: Cpu): void {
  c.fpuCw = 0x37f;
  c.fpuSw = 0;
  c.fpuTw = 0;
  c.fpr.fill(0);
}

function nXmm(c: Cpu): number {
  return c.long64 ? 16 : 8;
}

/** The requested-feature bitmap of XSAVE/XRSTOR: XCR0 AND EDX:EAX (only bits 0-2 exist). */
function rfbm(c: Cpu): number {
  return c.xcr0 & c.r[0];
}

function prologue(it: Interp): number {
  const c = it.c;
  checkXsave(c);
  if (c.cr0 & CR0_TS) c.fault(EXC_NM);
  if (it.isReg) c.ud();
  const la = it.la;
  if (la % 64 !== 0) c.gp(0);
  return la;
}

/** XSAVE / XSAVEOPT (0F AE /4, /6): standard format. Every requested component is written (XINUSE = 1). */
export function xsave(it: Interp): void {
  const c = it.c;
  const la = prologue(it);
  const m = rfbm(c);
  c.checkW(la);
  c.checkW(la + xsaveSize(m) - 1);
  c.checkW(la + 512 + 63);
  if (m & 1) saveX87(c, la);
  if (m & 6) {
    c.wr32(la + 24, c.mxcsr);
    c.wr32(la + 28, 0xffff);
  }
  if (m & 2) { for (let i = 0; i < nXmm(c) * 4; i++) c.wr32(la + 160 + i * 4, c.xmm[i]); }
  if (m & 4) { for (let i = 0; i < nXmm(c) * 4; i++) c.wr32(la + XSAVE_AVX_OFFSET + i * 4, c.ymmh[i]); }
  const bv = c.rd32(la + 512);
  c.wr32(la + 512, (bv & ~7) | m);
}

/** XSAVEC (0F C7 /4): compacted format (AVX, the only extended component here, at 576). */
export function xsavec(it: Interp): void {
  const c = it.c;
  if (!c.cpuidModel.has("xsavec")) c.ud();
  const la = prologue(it);
  const m = rfbm(c);
  c.checkW(la);
  c.checkW(la + xsaveSize(m) - 1);
  c.checkW(la + 512 + 63);
  if (m & 1) saveX87(c, la);
  if (m & 6) {
    c.wr32(la + 24, c.mxcsr);
    c.wr32(la + 28, 0xffff);
  }
  if (m & 2) { for (let i = 0; i < nXmm(c) * 4; i++) c.wr32(la + 160 + i * 4, c.xmm[i]); }
  if (m & 4) { for (let i = 0; i < nXmm(c) * 4; i++) c.wr32(la + XSAVE_AVX_OFFSET + i * 4, c.ymmh[i]); }
  c.wr64(la + 512, m, 0);
  c.wr64(la + 520, m, 0x80000000 | 0);
  for (let o = 528; o < 576; o += 8) c.wr64(la + o, 0, 0);
}

/** XRSTOR (0F AE /5): standard or compacted (XCOMP_BV[63]) format; components absent from XSTATE_BV are initialised. */
export function xrstor(it: Interp): void {
  const c = it.c;
  const la = prologue(it);
  const m = rfbm(c);
  const bv = c.rd32(la + 512), bvHi = c.rd32(la + 516);
  const cv = c.rd32(la + 520), cvHi = c.rd32(la + 524);
  const compact = cvHi < 0;
  if (compact) {
    if (!c.cpuidModel.has("xsavec")) c.gp(0);
    // XCOMP_BV must cover XSTATE_BV and name only supported components; bytes 16-63 are zero.
    if ((cvHi & 0x7fffffff) !== 0 || cv & ~supportedXcr0(c) || bvHi !== 0 || bv & ~cv) c.gp(0);
    for (let o = 528; o < 576; o += 4) if (c.rd32(la + o) !== 0) c.gp(0);
  } else {
    if (cv !== 0 || cvHi !== 0 || bvHi !== 0) c.gp(0);
    for (let o = 528; o < 576; o += 4) if (c.rd32(la + o) !== 0) c.gp(0);
  }
  if (bv & ~c.xcr0) c.gp(0);
  if (m & 6) {
    const mx = c.rd32(la + 24);
    if (mx & ~0xffff) c.gp(0);
    if (!compact || bv & m & 6) c.mxcsr = mx;
  }
  if (m & 1) {
    if (bv & 1) loadX87(c, la);
    else initX87(c);
  }
  if (m & 2) {
    if (bv & 2) { for (let i = 0; i < nXmm(c) * 4; i++) c.xmm[i] = c.rd32(la + 160 + i * 4); }
    else c.xmm.fill(0, 0, nXmm(c) * 4);
  }
  if (m & 4) {
    if (bv & 4) { for (let i = 0; i < nXmm(c) * 4; i++) c.ymmh[i] = c.rd32(la + XSAVE_AVX_OFFSET + i * 4); }
    else c.ymmh.fill(0, 0, nXmm(c) * 4);
  }
  if (compact && m & 6 && !(bv & m & 6)) c.mxcsr = 0x1f80;
}
