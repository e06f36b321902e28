/**
 * SYSENTER / SYSEXIT (SDM vol. 2B) with IA32_SYSENTER_CS/ESP/EIP (MSRs 0x174-0x176, system.ts rdmsr/wrmsr),
 * and the TSS I/O permission bitmap consulted by IN/OUT/INS/OUTS when CPL > IOPL (SDM vol. 1, 19.5.2).
 *
 * SYSENTER with EFER.LMA set raises #UD on an AuthenticAMD model (as on AMD hardware and QEMU's TCG); with
 * GenuineIntel it enters 64-bit mode.
 */
import { type Cpu, CR0_PE, CS, EFER_LMA, F_IF, F_IOPL, F_RF, F_VM, SS, TR } from "./cpu.ts";

const TWO32 = 4294967296;

function flatCs(c: Cpu, sel: number, dpl: number, long: boolean): void {
  c.segSel[CS] = sel;
  c.segBase[CS] = 0;
  c.segLimit[CS] = 0xffffffff;
  c.segAttr[CS] = 0x9b | (dpl << 5) | (long ? 0xa000 : 0xc000);
  c.cpl = dpl;
}

function flatSs(c: Cpu, sel: number, dpl: number): void {
  c.segSel[SS] = sel;
  c.segBase[SS] = 0;
  c.segLimit[SS] = 0xffffffff;
  c.segAttr[SS] = 0x93 | (dpl << 5) | 0xc000;
}

/** SYSENTER (0F 34). Sets c.ip (linear; CS base 0). */
export function sysenter(c: Cpu): void {
  const lma = (c.efer & EFER_LMA) !== 0;
  if (lma && c.cpuidModel.vendor === "AuthenticAMD") c.ud();
  if (!(c.cr0 & CR0_PE) || (c.sysenterCs & 0xfffc) === 0) c.gp(0);
  const sel = c.sysenterCs & 0xfffc;
  c.setFlags(c.getFlags() & ~(F_VM | F_IF | F_RF));
  flatCs(c, sel, 0, lma);
  flatSs(c, (sel + 8) & 0xfffc, 0);
  c.updateMode();
  const esp = c.sysenterEsp, eip = c.sysenterEip;
  if (lma) {
    c.setReg(8, 4, Number(esp & 0xffffffffn) | 0, Number((esp >> 32n) & 0xffffffffn) | 0);
    c.ip = Number(BigInt.asIntN(64, eip));
  } else {
    c.setReg(8, 4, Number(esp & 0xffffffffn) | 0, 0);
    c.ip = Number(eip & 0xffffffffn);
  }
}

/** SYSEXIT (0F 34, REX.W for the 64-bit form). */
export function sysexit(c: Cpu, opsz: number): void {
  if (!(c.cr0 & CR0_PE) || (c.flags & F_VM) || c.cpl !== 0 || (c.sysenterCs & 0xfffc) === 0) c.gp(0);
  const r = c.r;
  const cs = c.sysenterCs & 0xfffc;
  if (opsz === 8) {
    const rip = c.regNum(2), rsp = c.regNum(1);
    const canon = (v: number) => v >= -0x800000000000 && v < 0x800000000000;
    if (!canon(rip) || !canon(rsp)) c.gp(0);
    flatCs(c, ((cs + 32) & 0xfffc) | 3, 3, true);
    flatSs(c, ((cs + 40) & 0xfffc) | 3, 3);
    c.updateMode();
    c.setReg(8, 4, r[1], r[17]);
    c.ip = rip;
  } else {
    flatCs(c, ((cs + 16) & 0xfffc) | 3, 3, false);
    flatSs(c, ((cs + 24) & 0xfffc) | 3, 3);
    c.updateMode();
    c.setReg(8, 4, r[1], 0);
    c.ip = r[2] >>> 0;
  }
}

/**
 * #GP(0) unless I/O at `port` (sz bytes) is allowed: protected mode with CPL > IOPL (or virtual-8086 mode)
 * consults the I/O permission bitmap of a 32/64-bit TSS (16-bit TSS: always denied).
 */
export function checkIoBitmap(c: Cpu, port: number, sz: number): void {
  if (!(c.cr0 & CR0_PE)) return;
  if (c.cpl <= ((c.flags & F_IOPL) >> 12) && !(c.flags & F_VM)) return;
  const type = c.segAttr[TR] & 0x1f;
  if ((type !== 0x9 && type !== 0xb) || !(c.segAttr[TR] & 0x80)) c.gp(0);
  const base = c.segBase[TR], limit = c.segLimit[TR];
  if (limit < 0x67) c.gp(0);
  const wrap = (v: number) => (c.efer & EFER_LMA ? v : v % TWO32);
  const mapOff = (c.sysRd32(wrap(base + 0x64)) >>> 16) & 0xffff;
  const byte = mapOff + (port >>> 3);
  if (byte + 1 > limit) c.gp(0);
  // Two bitmap bytes, read as aligned dwords (the second byte may sit in the next dword).
  const la = wrap(base + byte), al = la - (la % 4), sh = (la % 4) * 8;
  let w = c.sysRd32(al) >>> sh;
  if (sh > 16) w |= c.sysRd32(wrap(al + 4)) << (32 - sh);
  w &= 0xffff;
  const mask = ((1 << sz) - 1) << (port & 7);
  if (w & mask) c.gp(0);
}
