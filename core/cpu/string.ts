/**
 * String instructions (MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS) with REP/REPE/REPNE, including bulk
 * fast paths for forward REP MOVS/STOS within RAM pages (SDM vol. 2, "REP/REPE/REPZ/REPNE/REPNZ").
 * @module
 */
import { alu, ALU_CMP } from "./alu.ts";
import { DS, F_DF } from "./cpu.ts";
import type { Interp } from "./interp.ts";
import * as sys from "./system.ts";

/** MOVS/CMPS/STOS/LODS/SCAS with REP prefixes (a REP slice of at most 4096 iterations per call). */
export function execString(it: Interp, b: number): void {
  const c = it.c;
  const sz = b & 1 ? it.opsz : 1;
  const d = c.flags & F_DF ? -sz : sz;
  const rep = it.rep;
  const kind = b & 0xfe;
  let budget = 4096;
  for (;;) {
    if (rep && it.count() === 0) return;
    switch (kind) {
      case 0xa4: {
        if (rep && d > 0 && fastMovs(it, sz)) break;
        const v = c.rd(sz, it.lin(DS, it.getA(6)));
        c.wr(sz, it.linES(it.getA(7)), v, c.hi);
        it.addA(6, d);
        it.addA(7, d);
        break;
      }
      case 0xaa: {
        if (rep && d > 0 && fastStos(it, sz)) break;
        const v = c.getReg(sz, 0);
        c.wr(sz, it.linES(it.getA(7)), v, c.hi);
        it.addA(7, d);
        break;
      }
      case 0xac: {
        const v = c.rd(sz, it.lin(DS, it.getA(6)));
        if (sz === 1) c.r[0] = (c.r[0] & ~0xff) | v;
        else c.setReg(sz, 0, v, c.hi);
        it.addA(6, d);
        break;
      }
      case 0xa6: {
        const a = c.rd(sz, it.lin(DS, it.getA(6)));
        const ah = c.hi;
        const bb = c.rd(sz, it.linES(it.getA(7)));
        alu(c, ALU_CMP, sz, a, ah, bb, c.hi);
        it.addA(6, d);
        it.addA(7, d);
        break;
      }
      default: {
        // SCAS
        const bb = c.rd(sz, it.linES(it.getA(7)));
        const bh = c.hi;
        const a = c.getReg(sz, 0);
        alu(c, ALU_CMP, sz, a, c.hi, bb, bh);
        it.addA(7, d);
        break;
      }
    }
    if (!rep) return;
    it.addA(1, -1);
    if (kind === 0xa6 || kind === 0xae) {
      const z = c.zf() !== 0;
      if (rep === 1 ? !z : z) return;
    }
    if (it.count() === 0) return;
    if (--budget === 0) {
      // Resume later at the same instruction so interrupts and timers can run; brk ends the run loop's
      // chunk so its host-time deadline is checked between slices.
      c.ip = c.startIp;
      c.brk = true;
      return;
    }
  }
}

/** REP MOVS fast path within one page pair of RAM; returns false to take the slow path. */
function fastMovs(it: Interp, sz: number): boolean {
  const c = it.c;
  const src = it.lin(DS, it.getA(6));
  const dst = it.linES(it.getA(7));
  let n = it.count();
  const srcRoom = Math.floor((4096 - (src % 4096 + 4096) % 4096) / sz);
  const dstRoom = Math.floor((4096 - (dst % 4096 + 4096) % 4096) / sz);
  n = Math.min(n, srcRoom, dstRoom);
  if (n < 2) return false;
  const so = ramOff(it, src, 0), dO = ramOff(it, dst, 1);
  if (so < 0 || dO < 0) return false;
  const bytes = n * sz;
  // Overlapping forward copies with dst > src must replicate byte by byte semantics.
  if (dO > so && dO < so + bytes) return false;
  c.codeWrite(dO, bytes);
  c.u8.copyWithin(dO, so, so + bytes);
  it.addA(6, bytes);
  it.addA(7, bytes);
  it.addA(1, -(n - 1));
  return true;
}

function fastStos(it: Interp, sz: number): boolean {
  const c = it.c;
  const dst = it.linES(it.getA(7));
  let n = it.count();
  const dstRoom = Math.floor((4096 - (dst % 4096 + 4096) % 4096) / sz);
  n = Math.min(n, dstRoom);
  if (n < 2) return false;
  const dO = ramOff(it, dst, 1);
  if (dO < 0) return false;
  const r = c.r;
  const bytes = n * sz;
  if (sz === 1) c.u8.fill(r[0] & 0xff, dO, dO + bytes);
  else if (
    (sz === 4 && r[0] === 0) || (sz === 8 && r[0] === 0 && r[16] === 0) ||
    (sz === 2 && (r[0] & 0xffff) === 0)
  ) {
    c.u8.fill(0, dO, dO + bytes);
  } else {
    for (let i = 0; i < n; i++) {
      const p = dO + i * sz;
      if (sz === 2) c.dv.setUint16(p, r[0], true);
      else {
        c.dv.setInt32(p, r[0], true);
        if (sz === 8) c.dv.setInt32(p + 4, r[16], true);
      }
    }
  }
  c.codeWrite(dO, bytes);
  it.addA(7, bytes);
  it.addA(1, -(n - 1));
  return true;
}

/** u8 offset of linear `la` for a read (0) or write (1) through the TLB (filling it), or -1. */
function ramOff(it: Interp, la: number, acc: number): number {
  const c = it.c;
  if (acc === 1) c.checkW(la);
  else c.rd8(la);
  const vpn = Math.floor(la / 4096);
  const i = vpn & 4095;
  if (c.tlbTag[i] !== vpn) return -1;
  if (!(c.tlbPerm[i] & (acc === 1 ? c.wrMask : c.rdMask))) return -1; // read-only, or watched (debug.ts)
  return c.tlbOff[i] + (la - vpn * 4096);
}

/** INS/OUTS with REP prefixes. */
export function execStringIo(it: Interp, b: number): void {
  const c = it.c;
  const sz = b & 1 ? (it.opsz === 2 ? 2 : 4) : 1;
  const d = c.flags & F_DF ? -sz : sz;
  const port = c.r[2] & 0xffff;
  sys.checkIo(c, port, sz);
  let budget = 1024;
  for (;;) {
    if (it.rep && it.count() === 0) break;
    if (b < 0x6e) {
      const v = c.board.io.read(port, sz as 1 | 2 | 4);
      c.wr(sz, it.linES(it.getA(7)), v, 0);
      it.addA(7, d);
    } else {
      const v = c.rd(sz, it.lin(DS, it.getA(6)));
      c.board.io.write(port, sz as 1 | 2 | 4, sz === 4 ? v >>> 0 : v);
      it.addA(6, d);
    }
    if (!it.rep) break;
    it.addA(1, -1);
    if (it.count() === 0) break;
    if (--budget === 0) {
      c.ip = c.startIp;
      break;
    }
  }
  c.brk = true;
}
