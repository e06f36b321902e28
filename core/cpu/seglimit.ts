/**
 * Segment limit and type checks for memory operands in 16/32-bit protected mode (and compatibility mode).
 *
 * Cost model: Cpu.segChk (recomputed by Cpu.updateSegChk on every segment load and mode change) is false
 * unless some usable segment is not flat (limit < 4 GiB - 1, or expand-down). Every check below is behind
 * `if (c.segChk)`, so 64-bit code and flat 32-bit code (Linux) pay one boolean test. mod.ts does not run
 * translated blocks while segChk is set: the JIT computes linear addresses without limits.
 *
 * Not modelled: accesses through a null selector (base 0 is used instead of #GP(0): 32-bit Linux runs with a
 * null FS, and checking it would keep the JIT off). Covered: rdE/wrE/rdEw (every generic integer operand),
 * push/pop/peek, string operands (start offset), SSE/AVX loads (sse.ts, xmmops.ts), x87 arithmetic loads and
 * the start offset of the other x87 memory forms. Not covered: SSE/MMX stores, FXSAVE/XSAVE areas, descriptor
 * table instructions, and the pushes of interrupt delivery and far transfers.
 */
import { type Cpu, CpuFault, SS } from "./cpu.ts";

const EXC_SS = 12, EXC_GP = 13;

function fault(s: number): never {
  throw new CpuFault(s === SS ? EXC_SS : EXC_GP, 0);
}

/** #GP(0) / #SS(0) unless bytes [off, off+sz) lie inside segment `s`. */
export function segLimit(c: Cpu, s: number, off: number, sz: number): void {
  const a = c.segAttr[s];
  if (!(a & 0x80)) return; // null / unusable: not modelled (see above)
  const lim = c.segLimit[s];
  const last = off + sz - 1;
  if ((a & 0x1c) === 0x14) {
    // Expand-down data: valid offsets are limit+1 .. 0xffff (B=0) or 0xffffffff (B=1).
    if (off <= lim || last > (a & 0x4000 ? 0xffffffff : 0xffff)) fault(s);
  } else if (last > lim) fault(s);
}

/** Read check: limit, and execute-only code segments are not readable. */
export function segRead(c: Cpu, s: number, off: number, sz: number): void {
  if ((c.segAttr[s] & 0x9a) === 0x98) fault(s);
  segLimit(c, s, off, sz);
}

/** Write check: limit, and only writable data segments are writable. */
export function segWrite(c: Cpu, s: number, off: number, sz: number): void {
  const a = c.segAttr[s];
  if ((a & 0x80) && (a & 0xa) !== 0x2) fault(s);
  segLimit(c, s, off, sz);
}
