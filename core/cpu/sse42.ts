/**
 * SSE4.2 string compares (SDM vol. 2 §4.1, PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM): explicit (EAX/EDX) or
 * implicit (first zero element) lengths, the four aggregations (equal any, ranges, equal each, equal
 * ordered), polarity, index or mask output, and CF/ZF/SF/OF. No alignment requirement.
 * @module
 */
import { CC_EAGER, type Cpu, F_AF, F_CF, F_OF, F_PF, F_SF, F_ZF } from "./cpu.ts";
import type { Lanes } from "./xmmops.ts";

function elem(v: Lanes, i: number, fmt: number): number {
  switch (fmt) {
    case 0:
      return v.u8[i];
    case 1:
      return v.u16[i];
    case 2:
      return v.i8[i];
    default:
      return v.i16[i];
  }
}

function implicitLen(v: Lanes, n: number, fmt: number): number {
  for (let i = 0; i < n; i++) if (elem(v, i, fmt) === 0) return i;
  return n;
}

function explicitLen(c: Cpu, reg: number, w: boolean, n: number): number {
  let v: number;
  if (w) {
    const hi = c.r[reg + 16], lo = c.r[reg] >>> 0;
    // |rax| saturated to n: only the magnitude relative to n matters.
    if (hi < 0) v = hi === -1 && lo !== 0 ? 4294967296 - lo : n;
    else v = hi !== 0 ? n : lo;
  } else {
    const x = c.r[reg];
    v = x < 0 ? (x === -2147483648 ? n : -x) : x;
  }
  return v > n ? n : v;
}

/**
 * Compute IntRes2 of a PCMPxSTRx with `a` (XMM register operand) and `b` (r/m operand); sets the flags
 * and returns [IntRes2, n].
 */
export function pcmpstr(
  c: Cpu,
  a: Lanes,
  b: Lanes,
  imm: number,
  explicit: boolean,
  w: boolean,
): [number, number] {
  const fmt = imm & 3;
  const n = fmt & 1 ? 8 : 16;
  const la = explicit ? explicitLen(c, 0, w, n) : implicitLen(a, n, fmt);
  const lb = explicit ? explicitLen(c, 2, w, n) : implicitLen(b, n, fmt);
  const agg = (imm >> 2) & 3;
  let res = 0;
  for (let j = 0; j < n; j++) {
    let bit = 0;
    switch (agg) {
      case 0: // equal any
        if (j < lb) { for (let i = 0; i < la; i++) if (elem(a, i, fmt) === elem(b, j, fmt)) bit = 1; }
        break;
      case 1: // ranges
        if (j < lb) {
          const v = elem(b, j, fmt);
          for (let i = 0; i + 1 < la; i += 2) if (elem(a, i, fmt) <= v && v <= elem(a, i + 1, fmt)) bit = 1;
        }
        break;
      case 2: { // equal each
        const va = j < la, vb = j < lb;
        bit = !va && !vb ? 1 : va && vb ? (elem(a, j, fmt) === elem(b, j, fmt) ? 1 : 0) : 0;
        break;
      }
      default: { // equal ordered
        bit = 1;
        for (let i = 0, k = j; i < n - j; i++, k++) {
          if (i >= la) break; // a invalid: true
          if (k >= lb || elem(a, i, fmt) !== elem(b, k, fmt)) {
            bit = 0;
            break;
          }
        }
      }
    }
    res |= bit << j;
  }
  const all = (1 << n) - 1;
  switch ((imm >> 4) & 3) {
    case 1:
      res ^= all;
      break;
    case 3:
      res ^= (1 << lb) - 1;
      break;
  }
  c.ccOp = CC_EAGER;
  c.flags = (c.flags & ~(F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)) | (res !== 0 ? F_CF : 0) |
    (lb < n ? F_ZF : 0) | (la < n ? F_SF : 0) | (res & 1 ? F_OF : 0);
  return [res, n];
}

/** Index result (ECX) of PCMPxSTRI. */
export function strIndex(res: number, n: number, imm: number): number {
  if (res === 0) return n;
  if (imm & 0x40) return 31 - Math.clz32(res);
  return 31 - Math.clz32(res & -res);
}

/** Mask result (XMM0) of PCMPxSTRM into r (16 bytes). */
export function strMask(res: number, n: number, imm: number, r: Lanes): void {
  r.i32.fill(0);
  if (!(imm & 0x40)) {
    r.u16[0] = res;
    return;
  }
  for (let i = 0; i < n; i++) {
    const on = (res >> i) & 1;
    if (n === 16) r.u8[i] = on ? 0xff : 0;
    else r.u16[i] = on ? 0xffff : 0;
  }
}
