/**
 * Scalar bit manipulation (SDM vol. 2): BMI1 (ANDN, BEXTR, BLSI, BLSMSK, BLSR, TZCNT), BMI2 (BZHI, MULX, PDEP,
 * PEXT, RORX, SARX, SHLX, SHRX), ABM's LZCNT, ADX (ADCX, ADOX), MOVBE, CRC32 (SSE4.2) and RDPID.
 * 64-bit values are handled as bigint: these are rare instructions, exactness matters more than speed.
 * @module
 */
import { CC_EAGER, type Cpu, F_AF, F_CF, F_OF, F_PF, F_SF, F_ZF } from "./cpu.ts";
import type { Interp } from "./interp.ts";

const ARITH = F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF;

function setArith(c: Cpu, f: number): void {
  c.ccOp = CC_EAGER;
  c.flags = (c.flags & ~ARITH) | f;
}

/** GPR n as an unsigned bigint of sz bytes. */
export function getG(c: Cpu, sz: number, n: number): bigint {
  if (sz === 8) return (BigInt(c.r[n + 16] >>> 0) << 32n) | BigInt(c.r[n] >>> 0);
  return BigInt(c.getReg(sz, n) >>> 0);
}

/** Write GPR n (sz 4 zero-extends, as every 32-bit write in 64-bit mode). */
export function setG(c: Cpu, sz: number, n: number, v: bigint): void {
  const u = BigInt.asUintN(64, v);
  c.setReg(sz, n, Number(u & 0xffffffffn) | 0, Number(u >> 32n) | 0);
}

/** The r/m operand as an unsigned bigint. */
export function rdEq(it: Interp, sz: number): bigint {
  const c = it.c;
  if (it.isReg) return getG(c, sz, it.rm);
  if (sz === 8) {
    const lo = c.rd32(it.la) >>> 0;
    return (BigInt(c.rd32(it.la + 4) >>> 0) << 32n) | BigInt(lo);
  }
  return BigInt(c.rd(sz, it.la) >>> 0);
}

function szf(v: bigint, bits: number): number {
  return (v === 0n ? F_ZF : 0) | ((v >> BigInt(bits - 1)) & 1n ? F_SF : 0);
}

/**
 * VEX-encoded GPR instructions of maps 0F38 (op) and 0F3A (RORX): ModRM decoded, `v` is VEX.vvvv, `pp` the
 * implied prefix (0, 0x66, 0xf3, 0xf2). False: not one of them.
 */
export function execBmiVex(it: Interp, map: number, op: number, pp: number, v: number, l: number): boolean {
  const c = it.c;
  const m = c.cpuidModel;
  const sz = it.rexW ? 8 : 4;
  const bits = sz * 8;
  const mask = (1n << BigInt(bits)) - 1n;
  const B = BigInt(bits);
  if (map === 3) {
    if (op !== 0xf0 || pp !== 0xf2) return false;
    if (!m.has("bmi2") || l) c.ud();
    const imm = BigInt(c.fetch8() & (bits - 1));
    const s = rdEq(it, sz);
    setG(c, sz, it.reg, ((s >> imm) | (s << (B - imm))) & mask);
    return true;
  }
  if (map !== 2) return false;
  switch (op) {
    case 0xf2: { // ANDN
      if (pp !== 0) return false;
      if (!m.has("bmi1") || l) c.ud();
      const r = ~getG(c, sz, v) & rdEq(it, sz) & mask;
      setG(c, sz, it.reg, r);
      setArith(c, szf(r, bits));
      return true;
    }
    case 0xf3: { // group 17: BLSR /1, BLSMSK /2, BLSI /3
      const g = it.reg & 7;
      if (pp !== 0 || g < 1 || g > 3) return false;
      if (!m.has("bmi1") || l) c.ud();
      const s = rdEq(it, sz);
      const r = (g === 1 ? s & (s - 1n) : g === 2 ? s ^ (s - 1n) : s & -s) & mask;
      setG(c, sz, v, r);
      const cf = g === 3 ? s !== 0n : s === 0n;
      setArith(c, szf(r, bits) | (cf ? F_CF : 0));
      return true;
    }
    case 0xf5: {
      if (pp === 0) { // BZHI
        if (!m.has("bmi2") || l) c.ud();
        const n = Number(getG(c, sz, v) & 0xffn);
        let r = rdEq(it, sz);
        if (n < bits) r &= (1n << BigInt(n)) - 1n;
        setG(c, sz, it.reg, r);
        setArith(c, szf(r, bits) | (n > bits - 1 ? F_CF : 0));
        return true;
      }
      if (pp !== 0xf2 && pp !== 0xf3) return false;
      if (!m.has("bmi2") || l) c.ud();
      const src = getG(c, sz, v), msk = rdEq(it, sz);
      let r = 0n;
      let k = 0n;
      for (let i = 0n; i < B; i++) {
        if (!((msk >> i) & 1n)) continue;
        if (pp === 0xf2) r |= ((src >> k) & 1n) << i; // PDEP
        else r |= ((src >> i) & 1n) << k; // PEXT
        k++;
      }
      setG(c, sz, it.reg, r);
      return true;
    }
    case 0xf6: { // MULX: hi → reg, lo → vvvv (hi wins when they are the same register)
      if (pp !== 0xf2) return false;
      if (!m.has("bmi2") || l) c.ud();
      const p = getG(c, sz, 2) * rdEq(it, sz);
      setG(c, sz, v, p & mask);
      setG(c, sz, it.reg, p >> B);
      return true;
    }
    case 0xf7: {
      const s = rdEq(it, sz);
      const ctl = getG(c, sz, v);
      if (pp === 0) { // BEXTR
        if (!m.has("bmi1") || l) c.ud();
        const start = Number(ctl & 0xffn), len = Number((ctl >> 8n) & 0xffn);
        let r = start >= bits ? 0n : s >> BigInt(start);
        if (len < bits) r &= (1n << BigInt(len)) - 1n;
        setG(c, sz, it.reg, r);
        setArith(c, r === 0n ? F_ZF : 0);
        return true;
      }
      if (!m.has("bmi2") || l) c.ud();
      const n = ctl & (B - 1n);
      let r: bigint;
      if (pp === 0x66) r = (s << n) & mask; // SHLX
      else if (pp === 0xf2) r = s >> n; // SHRX
      else r = BigInt.asUintN(bits, BigInt.asIntN(bits, s) >> n); // SARX
      setG(c, sz, it.reg, r);
      return true;
    }
  }
  return false;
}

/** LZCNT (F3 0F BD) and TZCNT (F3 0F BC): ModRM not yet decoded. */
export function lzTzcnt(it: Interp, b: number): void {
  const c = it.c;
  const sz = it.opsz;
  it.modrm(0);
  const bits = sz * 8;
  const s = rdEq(it, sz);
  let n = 0;
  if (b === 0xbd) { while (n < bits && !((s >> BigInt(bits - 1 - n)) & 1n)) n++; }
  else while (n < bits && !((s >> BigInt(n)) & 1n)) n++;
  setG(c, sz, it.reg, BigInt(n));
  setArith(c, (n === bits ? F_CF : 0) | (n === 0 ? F_ZF : 0));
}

/** ADCX (66 0F 38 F6) / ADOX (F3 0F 38 F6): ModRM not yet decoded. */
function adx(it: Interp, ox: boolean): void {
  const c = it.c;
  if (!c.cpuidModel.has("adx")) c.ud();
  const sz = it.rexW ? 8 : 4;
  it.modrm(0);
  const f = c.getFlags();
  const cin = ox ? (f & F_OF ? 1n : 0n) : (f & F_CF ? 1n : 0n);
  const r = getG(c, sz, it.reg) + rdEq(it, sz) + cin;
  const out = r >> BigInt(sz * 8) ? true : false;
  setG(c, sz, it.reg, r & ((1n << BigInt(sz * 8)) - 1n));
  const bit = ox ? F_OF : F_CF;
  c.ccOp = CC_EAGER;
  c.flags = (f & ~bit) | (out ? bit : 0);
}

function crc32c(crc: number, v: bigint, bytes: number): number {
  for (let i = 0; i < bytes; i++) {
    crc ^= Number((v >> BigInt(8 * i)) & 0xffn);
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return crc >>> 0;
}

/** 0F 38 F0/F1 (MOVBE, or CRC32 with F2) and F6 (ADCX/ADOX); opcode consumed. False: not one of these. */
export function execMovbeCrcAdx(it: Interp, op: number): boolean {
  const c = it.c;
  if (op === 0xf6) {
    if (it.pfx === 0x66) adx(it, false);
    else if (it.pfx === 0xf3) adx(it, true);
    else return false;
    return true;
  }
  if (op !== 0xf0 && op !== 0xf1) return false;
  if (it.rep === 2) { // CRC32 Gd/q, Eb/Ev
    if (!c.cpuidModel.has("sse4.2")) c.ud();
    it.modrm(0);
    const ssz = op === 0xf0 ? 1 : it.opsz;
    const s = ssz === 1 ? BigInt(it.isReg ? c.getReg8(it.rm, it.rex) : c.rd8(it.la)) : rdEq(it, ssz);
    const r = crc32c(c.r[it.reg] >>> 0, s, ssz);
    setG(c, it.rexW ? 8 : 4, it.reg, BigInt(r));
    return true;
  }
  if (it.rep === 1) return false;
  if (!c.cpuidModel.has("movbe")) c.ud();
  it.modrm(0);
  if (it.isReg) c.ud();
  const sz = it.opsz;
  const swap = (x: bigint) => {
    let r = 0n;
    for (let i = 0; i < sz; i++) r = (r << 8n) | ((x >> BigInt(8 * i)) & 0xffn);
    return r;
  };
  if (op === 0xf0) {
    const v = swap(rdEq(it, sz));
    if (sz === 2) c.setReg(2, it.reg, Number(v), 0);
    else setG(c, sz, it.reg, v);
  } else {
    const v = swap(getG(c, sz, it.reg));
    c.wr(sz, it.la, Number(v & 0xffffffffn) | 0, Number(v >> 32n) | 0);
  }
  return true;
}

/** RDPID (F3 0F C7 /7, register form): IA32_TSC_AUX into r32/r64. */
export function rdpid(it: Interp): void {
  const c = it.c;
  if (!c.cpuidModel.has("rdpid")) c.ud();
  c.setReg(c.long64 ? 8 : 4, it.rm, c.tscAux, 0);
}
