/**
 * The x86-64 instruction interpreter: prefix and ModRM/SIB decoding, the one-byte opcode map and the
 * integer part of the 0F map (SDM vol. 2, appendix A). System instructions live in system.ts,
 * SSE in sse.ts, x87 in x87.ts, MMX in mmx.ts. One call to `step()` executes one instruction (or a slice of a REP string op).
 * @module
 */
import { alu, ALU_CMP, div1, imul2, incdec, mul1, neg, shift, shiftDouble } from "./alu.ts";
import {
  CC_EAGER,
  type Cpu,
  CpuFault,
  CS,
  DS,
  ES,
  EXC_BP,
  EXC_DE,
  EXC_OF,
  EXC_UD,
  F_AC,
  F_AF,
  F_CF,
  F_DF,
  F_ID,
  F_IF,
  F_IOPL,
  F_NT,
  F_OF,
  F_PF,
  F_RF,
  F_SF,
  F_TF,
  F_ZF,
  FS,
  GS,
  MASK,
  sext,
  SS,
} from "./cpu.ts";
import * as sys from "./system.ts";
import { segLimit, segRead, segWrite } from "./seglimit.ts";
import { execString, execStringIo } from "./string.ts";
import { execSse } from "./sse.ts";
import { execX87, fwait } from "./x87.ts";
import { execMmx, isMmx } from "./mmx.ts";
import { execVex, isVex } from "./vex.ts";
import { lzTzcnt, rdpid } from "./bmi.ts";
import { xsavec } from "./xsave.ts";

const TWO32 = 4294967296;
const TWO64 = 18446744073709551616;
const TWO63 = 9223372036854775808;

/** Prefix bytes: 1 legacy prefix, 2 REX (64-bit mode only). */
const PREFIX_KIND = new Uint8Array(256);
for (const p of [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]) PREFIX_KIND[p] = 1;
for (let p = 0x40; p < 0x50; p++) PREFIX_KIND[p] = 2;

/** Decoder + executor bound to one Cpu. */
export class Interp {
  readonly c: Cpu;
  /** Operand size in bytes (2, 4, 8) and address size (2, 4, 8). */
  opsz = 4;
  adsz = 4;
  /** REX byte (0 when absent); rexW/R/X/B as 8 or 0. */
  rex = 0;
  rexR = 0;
  rexX = 0;
  rexB = 0;
  rexW = false;
  /** Segment override (-1: default). */
  seg = -1;
  /** 0 none, 1 F3 (REP/REPE), 2 F2 (REPNE). */
  rep = 0;
  /** Last mandatory-prefix candidate for SSE: 0, 0x66, 0xf2, 0xf3. */
  pfx = 0;
  lock = false;
  // ModRM.
  mod = 0;
  reg = 0;
  rm = 0;
  isReg = false;
  /** Linear address of the memory operand. */
  la = 0;
  /** Effective address (offset within segment) of the memory operand. */
  ea = 0;
  /** Segment of the last memory operand (for the limit checks of seglimit.ts). */
  ms = 3;
  /** Parts of the last 64-bit effective address, for an exact LEA. */
  mBase = -1;
  mIndex = -1;
  mScale = 0;
  mDisp = 0;
  mRip = 0;
  /** Messages already logged once (unimplemented opcodes). */
  readonly #logged = new Set<string>();
  /** Instruction trace hook (in_asm-like): called with the linear rip before each instruction. */
  trace: ((c: Cpu) => void) | null = null;

  constructor(c: Cpu) {
    this.c = c;
  }

  /** Log an unimplemented opcode once and raise #UD. */
  unimpl(what: string): never {
    if (!this.#logged.has(what)) {
      this.#logged.add(what);
      this.c.log(`unimplemented ${what} at ${this.c.rip.toString(16)}`);
    }
    throw new CpuFault(EXC_UD, -1);
  }

  // ------------------------------------------------------------ decode helpers

  /** Decode a ModRM byte (and SIB/displacement); `immBytes` follow it (needed for RIP-relative). */
  modrm(immBytes: number): void {
    const c = this.c;
    const m = c.fetch8();
    this.mod = m >> 6;
    this.reg = ((m >> 3) & 7) | this.rexR;
    const rmv = m & 7;
    if (this.mod === 3) {
      this.isReg = true;
      this.rm = rmv | this.rexB;
      return;
    }
    this.isReg = false;
    let defSeg = DS;
    let ea: number;
    if (this.adsz === 2) {
      const r = c.r;
      let disp = 0;
      if (this.mod === 1) disp = (c.fetch8() << 24) >> 24;
      else if (this.mod === 2 || (this.mod === 0 && rmv === 6)) disp = c.fetch16();
      switch (rmv) {
        case 0:
          ea = r[3] + r[6];
          break;
        case 1:
          ea = r[3] + r[7];
          break;
        case 2:
          ea = r[5] + r[6];
          defSeg = SS;
          break;
        case 3:
          ea = r[5] + r[7];
          defSeg = SS;
          break;
        case 4:
          ea = r[6];
          break;
        case 5:
          ea = r[7];
          break;
        case 6:
          if (this.mod === 0) ea = 0;
          else {
            ea = r[5];
            defSeg = SS;
          }
          break;
        default:
          ea = r[3];
      }
      ea = (ea + disp) & 0xffff;
    } else {
      let base = -1, index = -1, scale = 0, ripRel = false;
      if (rmv === 4) {
        const sib = c.fetch8();
        scale = sib >> 6;
        index = ((sib >> 3) & 7) | this.rexX;
        if (index === 4) index = -1;
        base = (sib & 7) | this.rexB;
        if ((sib & 7) === 5 && this.mod === 0) base = -1;
      } else if (rmv === 5 && this.mod === 0) {
        ripRel = c.long64;
      } else base = rmv | this.rexB;
      let disp = 0;
      if (this.mod === 1) disp = (c.fetch8() << 24) >> 24;
      else if (this.mod === 2 || base === -1) disp = c.fetch32();
      if (base === 4 || base === 5) defSeg = SS;
      if (this.adsz === 8) {
        // Double sum (exact for canonical addresses); LEA recomputes exactly from these parts.
        const rp = ripRel ? c.ip + immBytes : 0;
        this.mBase = base;
        this.mIndex = index;
        this.mScale = scale;
        this.mDisp = disp;
        this.mRip = rp;
        const r = c.r;
        ea = disp + rp;
        if (base >= 0) ea += r[base + 16] * TWO32 + (r[base] >>> 0);
        if (index >= 0) ea += (r[index + 16] * TWO32 + (r[index] >>> 0)) * (1 << scale);
      } else {
        let e = disp;
        if (ripRel) e += c.ip + immBytes;
        if (base >= 0) e += c.r[base];
        if (index >= 0) e += c.r[index] << scale;
        ea = e >>> 0;
      }
    }
    this.ea = ea;
    const s = this.seg >= 0 ? this.seg : defSeg;
    this.ms = s;
    if (c.long64) this.la = s >= FS ? ea + c.segBase[s] : ea;
    else this.la = (ea + c.segBase[s]) >>> 0;
  }

  /** Linear address of offset `off` in segment `s` (or the override). */
  lin(s: number, off: number): number {
    const c = this.c;
    if (this.seg >= 0) s = this.seg;
    if (c.long64) return s >= FS ? off + c.segBase[s] : off;
    if (c.segChk) segLimit(c, s, off, 1);
    return (off + c.segBase[s]) >>> 0;
  }

  /** Linear address in ES (string destinations: no override). */
  linES(off: number): number {
    const c = this.c;
    if (c.long64) return off;
    if (c.segChk) segLimit(c, ES, off, 1);
    return (off + c.segBase[ES]) >>> 0;
  }

  rdE(sz: number): number {
    const c = this.c;
    if (this.isReg) {
      if (sz === 1) return c.getReg8(this.rm, this.rex);
      return c.getReg(sz, this.rm);
    }
    if (c.segChk) segRead(c, this.ms, this.ea, sz);
    return c.rd(sz, this.la);
  }

  /**
   * rdE for a read-modify-write destination: probes that the whole operand is writable first, so a write
   * fault (COW, read-only page) is raised before the flags change (the CPU reads with write intent).
   */
  rdEw(sz: number): number {
    if (!this.isReg) {
      const c = this.c;
      if (c.segChk) segWrite(c, this.ms, this.ea, sz);
      c.checkW(this.la);
      c.checkW(this.la + sz - 1);
    }
    return this.rdE(sz);
  }

  wrE(sz: number, v: number, vh: number): void {
    const c = this.c;
    if (this.isReg) {
      if (sz === 1) c.setReg8(this.rm, this.rex, v);
      else c.setReg(sz, this.rm, v, vh);
    } else {
      if (c.segChk) segWrite(c, this.ms, this.ea, sz);
      c.wr(sz, this.la, v, vh);
    }
  }

  rdG(sz: number): number {
    if (sz === 1) return this.c.getReg8(this.reg, this.rex);
    return this.c.getReg(sz, this.reg);
  }

  wrG(sz: number, v: number, vh: number): void {
    if (sz === 1) this.c.setReg8(this.reg, this.rex, v);
    else this.c.setReg(sz, this.reg, v, vh);
  }

  /** Immediate of operand size sz (8: imm32 sign-extended; hi in c.hi). */
  imm(sz: number): number {
    const c = this.c;
    switch (sz) {
      case 1:
        return c.fetch8();
      case 2:
        return c.fetch16();
      case 4:
        return c.fetch32();
      default: {
        const v = c.fetch32();
        c.hi = v >> 31;
        return v;
      }
    }
  }

  /** Sign-extended imm8 normalised to size sz (hi in c.hi). */
  imm8s(sz: number): number {
    const v = (this.c.fetch8() << 24) >> 24;
    this.c.hi = v >> 31;
    return v & MASK[sz === 8 ? 4 : sz];
  }

  /** Set rip to `target` (offset in CS) truncated to the operand size. */
  jump(target: number): void {
    const c = this.c;
    c.atBranch = true;
    if (c.long64 && this.opsz !== 2) {
      if (target >= TWO63) target -= TWO64;
      else if (target < -TWO63) target += TWO64;
      if (target < -0x800000000000 || target >= 0x800000000000) c.gp(0);
      c.ip = target;
      return;
    }
    target = this.opsz === 2 ? target & 0xffff : target >>> 0;
    c.ip = target + c.segBase[CS];
  }

  /** Offset of the next instruction within CS. */
  nextRip(): number {
    return this.c.ip - this.c.segBase[CS];
  }

  // ------------------------------------------------------------ stack

  push(sz: number, v: number, vh: number): void {
    const c = this.c;
    const r = c.r;
    if (c.long64) {
      const lo = (r[4] >>> 0) - sz;
      const nlo = lo | 0, nhi = lo < 0 ? (r[20] - 1) | 0 : r[20];
      c.wr(sz, nhi * TWO32 + (nlo >>> 0), v, vh);
      r[4] = nlo;
      r[20] = nhi;
    } else if (c.ssB) {
      const esp = (r[4] - sz) | 0;
      if (c.segChk) segLimit(c, SS, esp >>> 0, sz);
      c.wr(sz, ((esp >>> 0) + c.segBase[SS]) >>> 0, v, vh);
      r[4] = esp;
    } else {
      const sp = (r[4] - sz) & 0xffff;
      if (c.segChk) segLimit(c, SS, sp, sz);
      c.wr(sz, (sp + c.segBase[SS]) >>> 0, v, vh);
      r[4] = (r[4] & ~0xffff) | sp;
    }
  }

  /** Read the top of stack at byte offset `off` (no pop). */
  peek(sz: number, off: number): number {
    const c = this.c;
    const r = c.r;
    if (c.long64) return c.rd(sz, c.regNum(4) + off);
    if (c.segChk) segLimit(c, SS, c.ssB ? ((r[4] >>> 0) + off) % TWO32 : (r[4] + off) & 0xffff, sz);
    if (c.ssB) return c.rd(sz, (((r[4] >>> 0) + off) % TWO32 + c.segBase[SS]) >>> 0);
    return c.rd(sz, (((r[4] + off) & 0xffff) + c.segBase[SS]) >>> 0);
  }

  /** Adjust the stack pointer by `d` bytes. */
  addSp(d: number): void {
    const r = this.c.r;
    if (this.c.long64) {
      const lo = (r[4] >>> 0) + d;
      r[4] = lo | 0;
      r[20] = (r[20] + Math.floor(lo / TWO32)) | 0;
    } else if (this.c.ssB) r[4] = (r[4] + d) | 0;
    else r[4] = (r[4] & ~0xffff) | ((r[4] + d) & 0xffff);
  }

  pop(sz: number): number {
    const c = this.c;
    const v = this.peek(sz, 0);
    const h = c.hi;
    this.addSp(sz);
    c.hi = h;
    return v;
  }

  /** Stack operand size for push/pop of v-sized operands. */
  stackSz(): number {
    if (this.c.long64) return this.opsz === 2 ? 2 : 8;
    return this.opsz;
  }

  // ------------------------------------------------------------ string helpers

  /** Add delta to register n interpreted with the address size. */
  addA(n: number, d: number): void {
    const r = this.c.r;
    switch (this.adsz) {
      case 8: {
        const lo = (r[n] >>> 0) + d;
        r[n] = lo | 0;
        r[n + 16] = (r[n + 16] + Math.floor(lo / TWO32)) | 0;
        return;
      }
      case 4:
        r[n] = (r[n] + d) | 0;
        r[n + 16] = 0;
        return;
      default:
        r[n] = (r[n] & ~0xffff) | ((r[n] + d) & 0xffff);
    }
  }

  /** Register n as an address-size offset. */
  getA(n: number): number {
    const r = this.c.r;
    switch (this.adsz) {
      case 8:
        return this.c.regNum(n);
      case 4:
        return r[n] >>> 0;
      default:
        return r[n] & 0xffff;
    }
  }

  /** RCX count for REP (address size). */
  count(): number {
    return this.getA(1);
  }

  // ------------------------------------------------------------ main

  /** Execute one instruction at c.rip. Throws CpuFault on exceptions (rip then still at this instruction). */
  step(): void {
    const c = this.c;
    const start = c.rip + c.segBase[CS];
    // The previous instruction normally leaves the fetch pointer at rip (the `ip` getter, inlined).
    if (!c.fpActive || c.fpLin + (c.fp - c.fpBase) !== start) c.ip = start;
    c.startIp = start;
    if (this.trace !== null) this.trace(c);
    const long = c.long64;
    const def = long ? 4 : c.csD ? 4 : 2;
    this.opsz = def;
    this.adsz = long ? 8 : def;
    this.seg = -1;
    this.rep = 0;
    this.pfx = 0;
    let b = c.fetch8();
    const k = PREFIX_KIND[b];
    if (k === 0 || (k === 2 && !long)) {
      this.rex = 0;
      this.rexR = this.rexX = this.rexB = 0;
      this.rexW = false;
      this.lock = false;
    } else if (k === 2) {
      // A lone REX prefix (the common case in 64-bit code) without the general prefix loop.
      const nb = c.fetch8();
      if (PREFIX_KIND[nb] === 0) {
        this.rex = b;
        this.lock = false;
        this.rexW = (b & 8) !== 0;
        this.rexR = (b & 4) << 1;
        this.rexX = (b & 2) << 2;
        this.rexB = (b & 1) << 3;
        if (b & 8) this.opsz = 8;
        b = nb;
      } else b = this.prefixes(nb, def); // a REX followed by another prefix is ignored
    } else b = this.prefixes(b, def);
    if (b === 0x0f) this.exec0f(c.fetch8());
    else this.exec1(b);
    c.rip = (c.fpActive ? c.fpLin + (c.fp - c.fpBase) : c.ipSlow) - c.segBase[CS];
    c.icount++;
  }

  /** Decode legacy and REX prefixes starting with `b`; returns the opcode byte. */
  prefixes(b: number, def: number): number {
    const c = this.c;
    this.rex = 0;
    this.lock = false;
    for (let n = 0;; n++) {
      if (n > 14) c.gp(0);
      switch (b) {
        case 0x66:
          this.opsz = def === 2 ? 4 : 2;
          this.pfx = 0x66;
          this.rex = 0;
          b = c.fetch8();
          continue;
        case 0x67:
          this.adsz = c.long64 ? 4 : def === 2 ? 4 : 2;
          this.rex = 0;
          b = c.fetch8();
          continue;
        case 0x26:
        case 0x2e:
        case 0x36:
        case 0x3e:
          if (!c.long64) this.seg = (b >> 3) & 3;
          this.rex = 0;
          b = c.fetch8();
          continue;
        case 0x64:
          this.seg = FS;
          this.rex = 0;
          b = c.fetch8();
          continue;
        case 0x65:
          this.seg = GS;
          this.rex = 0;
          b = c.fetch8();
          continue;
        case 0xf0:
          this.lock = true;
          this.rex = 0;
          b = c.fetch8();
          continue;
        case 0xf2:
          this.rep = 2;
          this.pfx = 0xf2;
          this.rex = 0;
          b = c.fetch8();
          continue;
        case 0xf3:
          this.rep = 1;
          this.pfx = 0xf3;
          this.rex = 0;
          b = c.fetch8();
          continue;
      }
      if (c.long64 && (b & 0xf0) === 0x40) {
        this.rex = b;
        b = c.fetch8();
        continue;
      }
      break;
    }
    const x = this.rex;
    this.rexW = (x & 8) !== 0;
    this.rexR = (x & 4) << 1;
    this.rexX = (x & 2) << 2;
    this.rexB = (x & 1) << 3;
    if (this.rexW) this.opsz = 8;
    return b;
  }

  /** One-byte opcode map. */
  exec1(b: number): void {
    const c = this.c;
    const r = c.r;
    let sz: number, v: number, vh: number, t: number;
    switch (b) {
      case 0x00:
      case 0x01:
      case 0x02:
      case 0x03:
      case 0x04:
      case 0x05:
      case 0x08:
      case 0x09:
      case 0x0a:
      case 0x0b:
      case 0x0c:
      case 0x0d:
      case 0x10:
      case 0x11:
      case 0x12:
      case 0x13:
      case 0x14:
      case 0x15:
      case 0x18:
      case 0x19:
      case 0x1a:
      case 0x1b:
      case 0x1c:
      case 0x1d:
      case 0x20:
      case 0x21:
      case 0x22:
      case 0x23:
      case 0x24:
      case 0x25:
      case 0x28:
      case 0x29:
      case 0x2a:
      case 0x2b:
      case 0x2c:
      case 0x2d:
      case 0x30:
      case 0x31:
      case 0x32:
      case 0x33:
      case 0x34:
      case 0x35:
      case 0x38:
      case 0x39:
      case 0x3a:
      case 0x3b:
      case 0x3c:
      case 0x3d: {
        const op = b >> 3;
        switch (b & 7) {
          case 0:
            this.modrm(0);
            v = alu(c, op, 1, op !== ALU_CMP ? this.rdEw(1) : this.rdE(1), 0, this.rdG(1), 0);
            if (op !== ALU_CMP) this.wrE(1, v, 0);
            return;
          case 1:
            sz = this.opsz;
            this.modrm(0);
            t = this.rdG(sz);
            vh = c.hi;
            v = op !== ALU_CMP ? this.rdEw(sz) : this.rdE(sz);
            v = alu(c, op, sz, v, c.hi, t, vh);
            if (op !== ALU_CMP) this.wrE(sz, v, c.hi);
            return;
          case 2:
            this.modrm(0);
            v = alu(c, op, 1, this.rdG(1), 0, this.rdE(1), 0);
            if (op !== ALU_CMP) this.wrG(1, v, 0);
            return;
          case 3:
            sz = this.opsz;
            this.modrm(0);
            t = this.rdE(sz);
            vh = c.hi;
            v = this.rdG(sz);
            v = alu(c, op, sz, v, c.hi, t, vh);
            if (op !== ALU_CMP) this.wrG(sz, v, c.hi);
            return;
          case 4:
            t = c.fetch8();
            v = alu(c, op, 1, r[0] & 0xff, 0, t, 0);
            if (op !== ALU_CMP) r[0] = (r[0] & ~0xff) | v;
            return;
          default:
            sz = this.opsz;
            t = this.imm(sz);
            vh = c.hi;
            v = c.getReg(sz, 0);
            v = alu(c, op, sz, v, c.hi, t, vh);
            if (op !== ALU_CMP) c.setReg(sz, 0, v, c.hi);
            return;
        }
      }
      case 0x06:
      case 0x0e:
      case 0x16:
      case 0x1e:
        if (c.long64) this.unimpl("push sreg in 64-bit mode");
        this.push(this.opsz, c.segSel[b >> 3], 0);
        return;
      case 0x07:
      case 0x17:
      case 0x1f:
        if (c.long64) this.unimpl("pop sreg in 64-bit mode");
        v = this.peek(this.opsz, 0);
        sys.loadSeg(c, b >> 3, v & 0xffff);
        this.addSp(this.opsz);
        if (b === 0x17) {
          c.intShadow = true;
          c.brk = true;
        }
        return;
      case 0x27:
      case 0x2f:
      case 0x37:
      case 0x3f:
        this.bcd(b);
        return;
      case 0x40:
      case 0x41:
      case 0x42:
      case 0x43:
      case 0x44:
      case 0x45:
      case 0x46:
      case 0x47:
      case 0x48:
      case 0x49:
      case 0x4a:
      case 0x4b:
      case 0x4c:
      case 0x4d:
      case 0x4e:
      case 0x4f: {
        // INC/DEC r (not in 64-bit mode: REX handled earlier).
        sz = this.opsz;
        const n = b & 7;
        v = c.getReg(sz, n);
        v = incdec(c, sz, v, c.hi, b < 0x48 ? 1 : -1);
        c.setReg(sz, n, v, c.hi);
        return;
      }
      case 0x50:
      case 0x51:
      case 0x52:
      case 0x53:
      case 0x54:
      case 0x55:
      case 0x56:
      case 0x57: {
        sz = this.stackSz();
        const n = (b & 7) | this.rexB;
        v = c.getReg(sz, n);
        this.push(sz, v, sz === 8 ? c.hi : 0);
        return;
      }
      case 0x58:
      case 0x59:
      case 0x5a:
      case 0x5b:
      case 0x5c:
      case 0x5d:
      case 0x5e:
      case 0x5f: {
        sz = this.stackSz();
        const n = (b & 7) | this.rexB;
        v = this.pop(sz);
        c.setReg(sz, n, v, c.hi);
        return;
      }
      case 0x70:
      case 0x71:
      case 0x72:
      case 0x73:
      case 0x74:
      case 0x75:
      case 0x76:
      case 0x77:
      case 0x78:
      case 0x79:
      case 0x7a:
      case 0x7b:
      case 0x7c:
      case 0x7d:
      case 0x7e:
      case 0x7f: {
        t = (c.fetch8() << 24) >> 24;
        if (c.cond(b & 15)) this.jump(this.nextRip() + t);
        return;
      }
      case 0x91:
      case 0x92:
      case 0x93:
      case 0x94:
      case 0x95:
      case 0x96:
      case 0x97: {
        sz = this.opsz;
        const n = (b & 7) | this.rexB;
        v = c.getReg(sz, n);
        vh = c.hi;
        t = c.getReg(sz, 0);
        c.setReg(sz, n, t, c.hi);
        c.setReg(sz, 0, v, vh);
        return;
      }
      case 0xb0:
      case 0xb1:
      case 0xb2:
      case 0xb3:
      case 0xb4:
      case 0xb5:
      case 0xb6:
      case 0xb7: {
        c.setReg8((b & 7) | this.rexB, this.rex, c.fetch8());
        return;
      }
      case 0xb8:
      case 0xb9:
      case 0xba:
      case 0xbb:
      case 0xbc:
      case 0xbd:
      case 0xbe:
      case 0xbf: {
        sz = this.opsz;
        const n = (b & 7) | this.rexB;
        if (sz === 8) {
          v = c.fetch32();
          c.setReg(8, n, v, c.fetch32());
        } else c.setReg(sz, n, this.imm(sz), 0);
        return;
      }
      case 0x60: {
        if (c.long64) this.unimpl("pusha in 64-bit mode");
        sz = this.opsz;
        const sp = c.getReg(sz, 4);
        for (let i = 0; i < 8; i++) this.push(sz, i === 4 ? sp : c.getReg(sz, i), 0);
        return;
      }
      case 0x61: {
        if (c.long64) this.unimpl("popa in 64-bit mode");
        sz = this.opsz;
        for (let i = 7; i >= 0; i--) {
          v = this.pop(sz);
          if (i !== 4) c.setReg(sz, i, v, 0);
        }
        return;
      }
      case 0x63:
        if (c.long64) {
          // MOVSXD
          this.modrm(0);
          v = this.rdE(4);
          if (this.opsz === 8) c.setReg(8, this.reg, v, v >> 31);
          else this.wrG(this.opsz, v & MASK[this.opsz], 0);
          return;
        }
        this.unimpl("arpl");
        return;
      case 0x68:
        sz = this.stackSz();
        v = this.imm(sz === 2 ? 2 : 4);
        this.push(sz, v, v >> 31);
        return;
      case 0x6a:
        sz = this.stackSz();
        v = (c.fetch8() << 24) >> 24;
        this.push(sz, v & MASK[sz === 8 ? 4 : sz], v >> 31);
        return;
      case 0x69:
      case 0x6b:
        sz = this.opsz;
        this.modrm(b === 0x69 ? (sz === 2 ? 2 : 4) : 1);
        v = this.rdE(sz);
        vh = c.hi;
        if (b === 0x69) t = this.imm(sz);
        else t = this.imm8s(sz);
        v = imul2(c, sz, v, vh, t, sz === 8 ? t >> 31 : 0);
        this.wrG(sz, v, c.hi);
        return;
      case 0x6c:
      case 0x6d:
      case 0x6e:
      case 0x6f:
        execStringIo(this, b);
        return;
      case 0x80:
      case 0x82:
        if (b === 0x82 && c.long64) this.unimpl("82");
        this.modrm(1);
        t = c.fetch8();
        v = alu(c, this.reg & 7, 1, (this.reg & 7) !== ALU_CMP ? this.rdEw(1) : this.rdE(1), 0, t, 0);
        if ((this.reg & 7) !== ALU_CMP) this.wrE(1, v, 0);
        return;
      case 0x81:
        sz = this.opsz;
        this.modrm(sz === 2 ? 2 : 4);
        {
          const la = this.la;
          v = (this.reg & 7) !== ALU_CMP ? this.rdEw(sz) : this.rdE(sz);
          vh = c.hi;
          t = this.imm(sz);
          this.la = la;
          v = alu(c, this.reg & 7, sz, v, vh, t, sz === 8 ? t >> 31 : 0);
        }
        if ((this.reg & 7) !== ALU_CMP) this.wrE(sz, v, c.hi);
        return;
      case 0x83:
        sz = this.opsz;
        this.modrm(1);
        v = (this.reg & 7) !== ALU_CMP ? this.rdEw(sz) : this.rdE(sz);
        vh = c.hi;
        t = this.imm8s(sz);
        v = alu(c, this.reg & 7, sz, v, vh, t, sz === 8 ? c.hi : 0);
        if ((this.reg & 7) !== ALU_CMP) this.wrE(sz, v, c.hi);
        return;
      case 0x84:
        this.modrm(0);
        v = this.rdE(1) & this.rdG(1);
        c.setRes(1, v, 0, 0);
        return;
      case 0x85:
        sz = this.opsz;
        this.modrm(0);
        v = this.rdE(sz);
        vh = c.hi;
        t = this.rdG(sz);
        c.setRes(sz, v & t, sz === 8 ? vh & c.hi : 0, 0);
        return;
      case 0x86:
        this.modrm(0);
        v = this.rdE(1);
        t = this.rdG(1);
        this.wrE(1, t, 0);
        this.wrG(1, v, 0);
        return;
      case 0x87:
        sz = this.opsz;
        this.modrm(0);
        v = this.rdE(sz);
        vh = c.hi;
        t = this.rdG(sz);
        this.wrE(sz, t, c.hi);
        this.wrG(sz, v, vh);
        return;
      case 0x88:
        this.modrm(0);
        this.wrE(1, this.rdG(1), 0);
        return;
      case 0x89:
        sz = this.opsz;
        this.modrm(0);
        v = this.rdG(sz);
        this.wrE(sz, v, c.hi);
        return;
      case 0x8a:
        this.modrm(0);
        this.wrG(1, this.rdE(1), 0);
        return;
      case 0x8b:
        sz = this.opsz;
        this.modrm(0);
        v = this.rdE(sz);
        this.wrG(sz, v, c.hi);
        return;
      case 0x8c:
        this.modrm(0);
        if ((this.reg & 7) > 5) c.ud();
        v = c.segSel[this.reg & 7];
        if (this.isReg) c.setReg(this.opsz, this.rm, v, 0);
        else c.wr16(this.la, v);
        return;
      case 0x8d:
        this.modrm(0);
        if (this.isReg) c.ud();
        this.lea();
        return;
      case 0x8e:
        this.modrm(0);
        v = this.rdE(2);
        if ((this.reg & 7) === CS || (this.reg & 7) > 5) c.ud();
        sys.loadSeg(c, this.reg & 7, v);
        if ((this.reg & 7) === SS) {
          c.intShadow = true;
          c.brk = true;
        }
        return;
      case 0x8f:
        sz = this.stackSz();
        v = this.peek(sz, 0);
        vh = c.hi;
        this.addSp(sz);
        try {
          this.modrm(0);
          this.wrE(sz, v, vh);
        } catch (e) {
          this.addSp(-sz);
          throw e;
        }
        return;
      case 0x90:
        if (this.rexB) {
          sz = this.opsz;
          v = c.getReg(sz, 8);
          vh = c.hi;
          t = c.getReg(sz, 0);
          c.setReg(sz, 8, t, c.hi);
          c.setReg(sz, 0, v, vh);
        } else if (this.rep === 1) {
          // PAUSE: give the run loop a chance to advance time.
          c.brk = true;
        }
        return;
      case 0x98:
        switch (this.opsz) {
          case 2:
            r[0] = (r[0] & ~0xffff) | (((r[0] << 24) >> 24) & 0xffff);
            return;
          case 4:
            r[0] = (r[0] << 16) >> 16;
            r[16] = 0;
            return;
          default:
            r[16] = r[0] >> 31;
            return;
        }
      case 0x99:
        switch (this.opsz) {
          case 2:
            r[2] = (r[2] & ~0xffff) | ((r[0] << 16) >> 31 & 0xffff);
            return;
          case 4:
            r[2] = r[0] >> 31;
            r[18] = 0;
            return;
          default:
            r[2] = r[18] = r[16] >> 31;
            return;
        }
      case 0x9a:
        if (c.long64) c.ud();
        {
          const off = this.imm(this.opsz === 2 ? 2 : 4);
          const sel = c.fetch16();
          sys.farCall(this, sel, this.opsz === 2 ? off & 0xffff : off >>> 0);
        }
        return;
      case 0x9b:
        fwait(c); // WAIT/FWAIT: deliver a pending unmasked x87 exception as #MF
        return;
      case 0x9c:
        if ((c.flags & 0x20000) && ((c.flags & F_IOPL) >> 12) < 3) c.gp(0);
        sz = this.stackSz();
        this.push(sz, c.getFlags() & 0xfcffff & (sz === 2 ? 0xffff : -1), 0);
        return;
      case 0x9d:
        sz = this.stackSz();
        v = this.peek(sz, 0);
        sys.popf(c, v, sz);
        this.addSp(sz);
        return;
      case 0x9e:
        c.eager();
        c.flags = (c.flags & ~0xd5) | ((r[0] >> 8) & 0xd5);
        return;
      case 0x9f:
        r[0] = (r[0] & ~0xff00) | ((c.getFlags() & 0xd7 | 2) << 8);
        return;
      case 0xa0:
      case 0xa1:
      case 0xa2:
      case 0xa3: {
        sz = b & 1 ? this.opsz : 1;
        let off: number;
        if (this.adsz === 8) {
          const lo = c.fetch32();
          off = c.fetch32() * TWO32 + (lo >>> 0);
        } else off = this.adsz === 4 ? c.fetch32() >>> 0 : c.fetch16();
        const la = this.lin(DS, off);
        if (b < 0xa2) {
          v = c.rd(sz, la);
          if (sz === 1) r[0] = (r[0] & ~0xff) | v;
          else c.setReg(sz, 0, v, c.hi);
        } else {
          v = c.getReg(sz, 0);
          c.wr(sz, la, v, c.hi);
        }
        return;
      }
      case 0xa4:
      case 0xa5:
      case 0xa6:
      case 0xa7:
      case 0xaa:
      case 0xab:
      case 0xac:
      case 0xad:
      case 0xae:
      case 0xaf:
        execString(this, b);
        return;
      case 0xa8:
        c.setRes(1, r[0] & c.fetch8(), 0, 0);
        return;
      case 0xa9:
        sz = this.opsz;
        t = this.imm(sz);
        vh = c.hi;
        v = c.getReg(sz, 0);
        c.setRes(sz, v & t, sz === 8 ? c.hi & vh : 0, 0);
        return;
      case 0xc0:
      case 0xc1:
      case 0xd0:
      case 0xd1:
      case 0xd2:
      case 0xd3: {
        sz = b & 1 ? this.opsz : 1;
        this.modrm(b < 0xd0 ? 1 : 0);
        v = this.rdEw(sz);
        vh = c.hi;
        const cnt = b < 0xd0 ? c.fetch8() : b < 0xd2 ? 1 : r[1] & 0xff;
        v = shift(c, this.reg & 7, sz, v, vh, cnt);
        this.wrE(sz, v, c.hi);
        return;
      }
      case 0xc2:
      case 0xc3: {
        const n = b === 0xc2 ? c.fetch16() : 0;
        sz = this.stackSz();
        v = this.peek(sz, 0);
        vh = c.hi;
        this.jump(sz === 8 ? vh * TWO32 + (v >>> 0) : v >>> 0);
        this.addSp(sz + n);
        return;
      }
      case 0xc4:
      case 0xc5:
        if (isVex(this)) return execVex(this, b);
        this.modrm(0);
        if (this.isReg) c.ud();
        this.loadFarPtr(b === 0xc4 ? ES : DS);
        return;
      case 0xc6:
        this.modrm(1);
        this.wrE(1, c.fetch8(), 0);
        return;
      case 0xc7:
        sz = this.opsz;
        this.modrm(sz === 2 ? 2 : 4);
        {
          const la = this.la;
          v = this.imm(sz);
          this.la = la;
          this.wrE(sz, v, sz === 8 ? v >> 31 : 0);
        }
        return;
      case 0xc8:
        this.enter();
        return;
      case 0xc9: {
        // LEAVE
        sz = this.stackSz();
        if (c.long64) {
          r[4] = r[5];
          r[20] = r[21];
        } else if (c.ssB) r[4] = r[5];
        else r[4] = (r[4] & ~0xffff) | (r[5] & 0xffff);
        v = this.pop(sz);
        c.setReg(sz, 5, v, c.hi);
        return;
      }
      case 0xca:
      case 0xcb:
        sys.farRet(this, b === 0xca ? c.fetch16() : 0);
        return;
      case 0xcc:
        sys.softInt(this, EXC_BP, true);
        return;
      case 0xcd:
        sys.softInt(this, c.fetch8(), false);
        return;
      case 0xce:
        if (c.long64) c.ud();
        if (c.of()) sys.softInt(this, EXC_OF, true);
        return;
      case 0xcf:
        sys.iret(this);
        return;
      case 0xd4: {
        if (c.long64) c.ud();
        const base = c.fetch8();
        if (base === 0) throw new CpuFault(EXC_DE, -1);
        const al = r[0] & 0xff;
        v = ((Math.floor(al / base) & 0xff) << 8) | (al % base);
        r[0] = (r[0] & ~0xffff) | v;
        c.setRes(1, v & 0xff, 0, 0);
        return;
      }
      case 0xd5: {
        if (c.long64) c.ud();
        const base = c.fetch8();
        v = ((r[0] & 0xff) + ((r[0] >> 8) & 0xff) * base) & 0xff;
        r[0] = (r[0] & ~0xffff) | v;
        c.setRes(1, v, 0, 0);
        return;
      }
      case 0xd7: {
        const off = this.adsz === 8
          ? c.regNum(3) + (r[0] & 0xff)
          : this.adsz === 4
          ? ((r[3] >>> 0) + (r[0] & 0xff)) >>> 0
          : (r[3] + (r[0] & 0xff)) & 0xffff;
        r[0] = (r[0] & ~0xff) | c.rd8(this.lin(DS, off));
        return;
      }
      case 0xd8:
      case 0xd9:
      case 0xda:
      case 0xdb:
      case 0xdc:
      case 0xdd:
      case 0xde:
      case 0xdf:
        execX87(this, b);
        return;
      case 0xe0:
      case 0xe1:
      case 0xe2:
      case 0xe3: {
        t = (c.fetch8() << 24) >> 24;
        let take: boolean;
        if (b === 0xe3) take = this.count() === 0;
        else {
          this.addA(1, -1);
          const nz = this.count() !== 0;
          take = b === 0xe2 ? nz : b === 0xe1 ? nz && c.zf() !== 0 : nz && c.zf() === 0;
        }
        if (take) this.jump(this.nextRip() + t);
        return;
      }
      case 0xe4:
      case 0xe5:
      case 0xec:
      case 0xed: {
        const port = b < 0xe8 ? c.fetch8() : r[2] & 0xffff;
        sz = b & 1 ? (this.opsz === 2 ? 2 : 4) : 1;
        sys.checkIo(c, port, sz);
        v = c.board.io.read(port, sz as 1 | 2 | 4);
        if (sz === 1) r[0] = (r[0] & ~0xff) | (v & 0xff);
        else c.setReg(sz, 0, sz === 2 ? v & 0xffff : v | 0, 0);
        c.brk = true;
        return;
      }
      case 0xe6:
      case 0xe7:
      case 0xee:
      case 0xef: {
        const port = b < 0xe8 ? c.fetch8() : r[2] & 0xffff;
        sz = b & 1 ? (this.opsz === 2 ? 2 : 4) : 1;
        sys.checkIo(c, port, sz);
        v = sz === 1 ? r[0] & 0xff : sz === 2 ? r[0] & 0xffff : r[0] >>> 0;
        c.rip = c.ip - c.segBase[CS];
        c.board.io.write(port, sz as 1 | 2 | 4, v);
        c.brk = true;
        return;
      }
      case 0xe8: {
        t = this.opsz === 2 ? (c.fetch16() << 16) >> 16 : c.fetch32();
        const ret = this.nextRip();
        sz = this.stackSz();
        const target = ret + t;
        if (sz === 8) this.push(8, ret | 0, Math.floor(ret / TWO32));
        else this.push(sz, ret, 0);
        this.jump(target);
        return;
      }
      case 0xe9:
        t = this.opsz === 2 ? (c.fetch16() << 16) >> 16 : c.fetch32();
        this.jump(this.nextRip() + t);
        return;
      case 0xea: {
        if (c.long64) c.ud();
        const off = this.imm(this.opsz === 2 ? 2 : 4);
        const sel = c.fetch16();
        sys.farJump(this, sel, this.opsz === 2 ? off & 0xffff : off >>> 0);
        return;
      }
      case 0xeb:
        t = (c.fetch8() << 24) >> 24;
        this.jump(this.nextRip() + t);
        return;
      case 0xf1:
        sys.softInt(this, 1, true);
        return;
      case 0xf4:
        if (c.cpl !== 0) c.gp(0);
        c.halted = true;
        c.brk = true;
        return;
      case 0xf5:
        c.eager();
        c.flags ^= F_CF;
        return;
      case 0xf6:
      case 0xf7:
        this.group3(b);
        return;
      case 0xf8:
      case 0xf9:
        c.eager();
        c.flags = b === 0xf8 ? c.flags & ~F_CF : c.flags | F_CF;
        return;
      case 0xfa:
        if (!sys.iopOk(c)) c.gp(0);
        c.flags &= ~F_IF;
        return;
      case 0xfb:
        if (!sys.iopOk(c)) c.gp(0);
        if (!(c.flags & F_IF)) {
          c.flags |= F_IF;
          c.intShadow = true;
        }
        c.brk = true;
        return;
      case 0xfc:
        c.flags &= ~F_DF;
        return;
      case 0xfd:
        c.flags |= F_DF;
        return;
      case 0xfe:
        this.modrm(0);
        if ((this.reg & 7) > 1) c.ud();
        v = incdec(c, 1, this.rdEw(1), 0, this.reg & 1 ? -1 : 1);
        this.wrE(1, v, 0);
        return;
      case 0xff:
        this.group5();
        return;
    }
    this.unimpl(`opcode ${b.toString(16)}`);
  }

  lea(): void {
    const sz = this.opsz;
    const c = this.c;
    if (this.adsz === 8) {
      // Exact 64-bit sum in (lo, hi) halves: LEA is used for integer arithmetic.
      const rp = this.mRip;
      let lo = this.mDisp >>> 0, hi = this.mDisp >> 31;
      if (rp !== 0) {
        const rl = rp >= 0 ? rp % TWO32 : ((rp % TWO32) + TWO32) % TWO32;
        lo += rl;
        hi += Math.floor((rp - rl) / TWO32);
      }
      const base = this.mBase, index = this.mIndex, scale = this.mScale;
      if (base >= 0) {
        lo += c.r[base] >>> 0;
        hi += c.r[base + 16];
      }
      if (index >= 0) {
        let il = c.r[index] >>> 0, ih = c.r[index + 16];
        if (scale) {
          ih = (ih << scale) | (il >>> (32 - scale));
          il = (il << scale) >>> 0;
        }
        lo += il;
        hi += ih;
      }
      const carry = Math.floor(lo / TWO32);
      lo -= carry * TWO32;
      hi = (hi + carry) | 0;
      if (sz === 8) c.setReg(8, this.reg, lo | 0, hi);
      else c.setReg(sz, this.reg, sz === 2 ? lo & 0xffff : lo | 0, 0);
      return;
    }
    const ea = this.ea;
    if (sz === 8) c.setReg(8, this.reg, ea | 0, 0);
    else c.setReg(sz, this.reg, sz === 2 ? ea & 0xffff : ea | 0, 0);
  }

  loadFarPtr(s: number): void {
    const c = this.c;
    const sz = this.opsz;
    const off = c.rd(sz, this.la);
    const offh = c.hi;
    const sel = c.rd16(this.la + sz);
    sys.loadSeg(c, s, sel);
    c.setReg(sz, this.reg, off, offh);
  }

  enter(): void {
    const c = this.c;
    const size = c.fetch16();
    const level = c.fetch8() & 31;
    const sz = this.stackSz();
    const bp = c.getReg(sz, 5);
    const bph = c.hi;
    this.push(sz, bp, bph);
    const frame = c.getReg(sz, 4);
    const frameh = c.hi;
    if (level > 0) {
      for (let i = 1; i < level; i++) {
        // Copy enclosing frame pointers (rare).
        const la = c.long64
          ? c.regNum(5) - i * sz
          : this.lin(SS, ((c.r[5] - i * sz) >>> 0) & (c.ssB ? -1 : 0xffff));
        const v = c.rd(sz, la);
        this.push(sz, v, c.hi);
      }
      this.push(sz, frame, frameh);
    }
    c.setReg(sz, 5, frame, frameh);
    this.addSp(-size);
  }

  group3(b: number): void {
    const c = this.c;
    const sz = b === 0xf6 ? 1 : this.opsz;
    // Peek the reg field: TEST (0, 1) has an immediate.
    const m = this.peekModrmReg();
    this.modrm(m < 2 ? (sz === 1 ? 1 : sz === 2 ? 2 : 4) : 0);
    let v = m === 2 || m === 3 ? this.rdEw(sz) : this.rdE(sz);
    const vh = c.hi;
    switch (this.reg & 7) {
      case 0:
      case 1: {
        const la = this.la;
        const t = this.imm(sz);
        this.la = la;
        c.setRes(sz, v & t, sz === 8 ? vh & (t >> 31) : 0, 0);
        return;
      }
      case 2:
        this.wrE(sz, ~v & MASK[sz === 8 ? 4 : sz], sz === 8 ? ~vh : 0);
        return;
      case 3:
        v = neg(c, sz, v, vh);
        this.wrE(sz, v, c.hi);
        return;
      case 4:
        mul1(c, false, sz, v, vh);
        return;
      case 5:
        mul1(c, true, sz, v, vh);
        return;
      case 6:
        div1(c, false, sz, v, vh);
        return;
      default:
        div1(c, true, sz, v, vh);
        return;
    }
  }

  /** Reg field of the ModRM byte at the fetch pointer, without consuming it. */
  peekModrmReg(): number {
    const c = this.c;
    const save = c.fp;
    const m = c.fetch8();
    if (c.fpActive && c.fp === save + 1) c.fp = save;
    else c.ip = c.ip - 1;
    return (m >> 3) & 7;
  }

  group5(): void {
    const c = this.c;
    this.modrm(0);
    const op = this.reg & 7;
    let sz = this.opsz;
    let v: number, vh: number;
    switch (op) {
      case 0:
      case 1:
        v = this.rdEw(sz);
        v = incdec(c, sz, v, c.hi, op === 0 ? 1 : -1);
        this.wrE(sz, v, c.hi);
        return;
      case 2: {
        // CALL near indirect
        sz = c.long64 ? 8 : sz;
        v = this.rdE(sz);
        vh = sz === 8 ? c.hi : 0;
        const ret = this.nextRip();
        if (sz === 8) this.push(8, ret | 0, Math.floor(ret / TWO32));
        else this.push(sz, ret, 0);
        this.jumpAbs(sz, v, vh);
        return;
      }
      case 4:
        sz = c.long64 ? 8 : sz;
        v = this.rdE(sz);
        this.jumpAbs(sz, v, sz === 8 ? c.hi : 0);
        return;
      case 3:
      case 5: {
        if (this.isReg) c.ud();
        const osz = this.opsz;
        const off = c.rd(osz, this.la);
        const offh = c.hi;
        const sel = c.rd16(this.la + osz);
        const target = osz === 8 ? offh * TWO32 + (off >>> 0) : osz === 4 ? off >>> 0 : off & 0xffff;
        if (op === 3) sys.farCall(this, sel, target);
        else sys.farJump(this, sel, target);
        return;
      }
      case 6:
        sz = this.stackSz();
        v = this.rdE(sz);
        this.push(sz, v, sz === 8 ? c.hi : 0);
        return;
      default:
        c.ud();
    }
  }

  jumpAbs(sz: number, v: number, vh: number): void {
    if (sz === 8) this.jump(vh * TWO32 + (v >>> 0));
    else this.jump(sz === 2 ? v & 0xffff : v >>> 0);
  }

  bcd(b: number): void {
    const c = this.c;
    if (c.long64) c.ud();
    const r = c.r;
    let al = r[0] & 0xff;
    const cf = c.cf(), af = c.af();
    c.eager();
    let f = c.flags & ~(F_CF | F_AF);
    switch (b) {
      case 0x27: {
        const old = al;
        if ((al & 15) > 9 || af) {
          al = (al + 6) & 0xff;
          f |= F_AF;
        }
        if (old > 0x99 || cf) {
          al = (al + 0x60) & 0xff;
          f |= F_CF;
        }
        break;
      }
      case 0x2f: {
        const old = al;
        if ((al & 15) > 9 || af) {
          al = (al - 6) & 0xff;
          f |= F_AF;
        }
        if (old > 0x99 || cf) {
          al = (al - 0x60) & 0xff;
          f |= F_CF;
        }
        break;
      }
      default: {
        let ax = r[0] & 0xffff;
        if ((al & 15) > 9 || af) {
          ax = b === 0x37 ? ax + 0x106 : ax - 0x106;
          f |= F_AF | F_CF;
        }
        ax = ax & 0xff0f;
        r[0] = (r[0] & ~0xffff) | (ax & 0xffff);
        c.flags = f;
        return;
      }
    }
    r[0] = (r[0] & ~0xff) | al;
    f &= ~(F_ZF | F_SF | F_PF);
    c.setRes(1, al, 0, 0);
    const zsp = c.zf() | c.sf() | c.pf();
    c.ccOp = CC_EAGER;
    c.flags = f | zsp;
  }

  // ------------------------------------------------------------ 0F map

  exec0f(b: number): void {
    const c = this.c;
    const r = c.r;
    let sz: number, v: number, vh: number, t: number;
    if (b >= 0x80 && b < 0x90) {
      t = this.opsz === 2 ? (c.fetch16() << 16) >> 16 : c.fetch32();
      if (c.cond(b & 15)) this.jump(this.nextRip() + t);
      return;
    }
    if (b >= 0x40 && b < 0x50) {
      sz = this.opsz;
      this.modrm(0);
      v = this.rdE(sz);
      vh = c.hi;
      if (c.cond(b & 15)) c.setReg(sz, this.reg, v, vh);
      else if (sz === 4) r[this.reg + 16] = 0;
      return;
    }
    if (b >= 0x90 && b < 0xa0) {
      this.modrm(0);
      this.wrE(1, c.cond(b & 15) ? 1 : 0, 0);
      return;
    }
    if (b >= 0xc8 && b < 0xd0) {
      const n = (b & 7) | this.rexB;
      if (this.opsz === 8) {
        const lo = bswap32(r[n]), hi = bswap32(r[n + 16]);
        r[n] = hi;
        r[n + 16] = lo;
      } else if (this.opsz === 4) {
        r[n] = bswap32(r[n]);
        r[n + 16] = 0;
      } else r[n] &= ~0xffff;
      return;
    }
    switch (b) {
      case 0x00:
      case 0x01:
      case 0x02:
      case 0x03:
      case 0x05:
      case 0x06:
      case 0x07:
      case 0x08:
      case 0x09:
      case 0x20:
      case 0x21:
      case 0x22:
      case 0x23:
      case 0x30:
      case 0x31:
      case 0x32:
      case 0x33:
      case 0x34:
      case 0x35:
      case 0xa2:
        sys.exec0fSystem(this, b);
        return;
      case 0x0b:
      case 0xb9:
      case 0xff:
        c.ud();
        return;
      case 0x0d:
      case 0x18:
      case 0x19:
      case 0x1a:
      case 0x1b:
      case 0x1c:
      case 0x1d:
      case 0x1e:
      case 0x1f:
        // prefetch / hint NOPs (F3 0F 1E FA = endbr64)
        this.modrm(0);
        return;
      case 0xa0:
      case 0xa8:
        sz = this.stackSz();
        this.push(sz, c.segSel[b === 0xa0 ? FS : GS], 0);
        return;
      case 0xa1:
      case 0xa9:
        sz = this.stackSz();
        v = this.peek(sz, 0);
        sys.loadSeg(c, b === 0xa1 ? FS : GS, v & 0xffff);
        this.addSp(sz);
        return;
      case 0xa3:
      case 0xab:
      case 0xb3:
      case 0xbb:
        this.bitOp((b >> 3) & 3, false);
        return;
      case 0xba:
        this.bitOp(-1, true);
        return;
      case 0xa4:
      case 0xa5:
      case 0xac:
      case 0xad: {
        sz = this.opsz;
        this.modrm(b & 1 ? 0 : 1);
        v = this.rdEw(sz);
        vh = c.hi;
        t = this.rdG(sz);
        const th = c.hi;
        const cnt = b & 1 ? r[1] & 0xff : c.fetch8();
        v = shiftDouble(c, b < 0xa8, sz, v, vh, t, th, cnt);
        this.wrE(sz, v, c.hi);
        return;
      }
      case 0xaf:
        sz = this.opsz;
        this.modrm(0);
        t = this.rdE(sz);
        vh = c.hi;
        v = this.rdG(sz);
        v = imul2(c, sz, v, c.hi, t, vh);
        this.wrG(sz, v, c.hi);
        return;
      case 0xb0:
      case 0xb1: {
        sz = b & 1 ? this.opsz : 1;
        this.modrm(0);
        v = this.rdEw(sz);
        vh = c.hi;
        const a = sz === 1 ? r[0] & 0xff : c.getReg(sz, 0);
        const ah = c.hi;
        alu(c, ALU_CMP, sz, a, sz === 8 ? ah : 0, v, vh);
        if (c.zf()) {
          t = this.rdG(sz);
          this.wrE(sz, t, c.hi);
        } else {
          // The destination is written back unchanged (locked cycle), then the accumulator loaded.
          if (!this.isReg) this.wrE(sz, v, vh);
          if (sz === 1) r[0] = (r[0] & ~0xff) | v;
          else c.setReg(sz, 0, v, vh);
        }
        return;
      }
      case 0xb2:
      case 0xb4:
      case 0xb5:
        this.modrm(0);
        if (this.isReg) c.ud();
        this.loadFarPtr(b === 0xb2 ? SS : b === 0xb4 ? FS : GS);
        return;
      case 0xb6:
      case 0xb7:
      case 0xbe:
      case 0xbf: {
        const ssz = b & 1 ? 2 : 1;
        this.modrm(0);
        v = this.rdE(ssz);
        sz = this.opsz;
        if (b >= 0xbe) {
          v = sext(v, ssz);
          c.setReg(sz, this.reg, v & MASK[sz === 8 ? 4 : sz], v >> 31);
        } else c.setReg(sz, this.reg, v, 0);
        return;
      }
      case 0xb8:
        if (this.rep !== 1) this.unimpl("jmpe");
        sz = this.opsz;
        this.modrm(0);
        v = this.rdE(sz);
        vh = sz === 8 ? c.hi : 0;
        t = popcnt(v & MASK[sz === 8 ? 4 : sz]) + (sz === 8 ? popcnt(vh) : 0);
        c.setReg(sz, this.reg, t, 0);
        c.ccOp = CC_EAGER;
        c.flags = (c.flags & ~(F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)) | (t === 0 ? F_ZF : 0);
        return;
      case 0xbc:
      case 0xbd: {
        if (this.rep === 1 && c.cpuidModel.has(b === 0xbd ? "abm" : "bmi1")) return lzTzcnt(this, b);
        sz = this.opsz;
        this.modrm(0);
        v = this.rdE(sz);
        vh = sz === 8 ? c.hi : 0;
        if (sz !== 8) v &= MASK[sz];
        const width = sz * 8;
        const zero = v === 0 && vh === 0;
        let idx: number;
        if (b === 0xbc) {
          idx = zero ? width : v !== 0 ? 31 - Math.clz32(v & -v) : 32 + 31 - Math.clz32(vh & -vh);
        } else if (this.rep === 1 && c.cpuidModel.has("abm")) {
          idx = zero
            ? width
            : sz === 8
            ? (vh !== 0 ? Math.clz32(vh) : 32 + Math.clz32(v))
            : Math.clz32(v) - (32 - width);
        } else {
          idx = zero
            ? 0
            : sz === 8
            ? (vh !== 0 ? 63 - Math.clz32(vh) : 31 - Math.clz32(v))
            : 31 - Math.clz32(v);
        }
        c.eager();
        if (this.rep === 1 && b === 0xbc) {
          // TZCNT (BMI1 advertised) writes width for zero and sets CF; with BMI1 hidden it runs as BSF.
          if (c.cpuidModel.has("bmi1")) {
            c.setReg(sz, this.reg, idx, 0);
            c.flags = (c.flags & ~(F_CF | F_ZF)) | (zero ? F_CF : 0) | (idx === 0 ? F_ZF : 0);
            return;
          }
        }
        if (zero) {
          c.flags |= F_ZF;
          return; // destination unchanged (AMD/Intel behaviour)
        }
        c.flags &= ~F_ZF;
        c.setReg(sz, this.reg, idx, 0);
        return;
      }
      case 0xc0:
      case 0xc1: {
        sz = b & 1 ? this.opsz : 1;
        this.modrm(0);
        v = this.rdEw(sz);
        vh = c.hi;
        t = this.rdG(sz);
        const s = alu(c, 0, sz, v, vh, t, c.hi);
        const sh = c.hi;
        // SRC ← DEST, then DEST ← sum: with one register as both, the sum wins (rdEw probed the write).
        this.wrG(sz, v, vh);
        this.wrE(sz, s, sh);
        return;
      }
      case 0xc7:
        this.group9();
        return;
      case 0xae:
        sys.group15(this);
        return;
      case 0xa7:
        this.unimpl("0f a7");
    }
    if (this.pfx === 0 && isMmx(b)) execMmx(this, b);
    else execSse(this, b);
  }

  /** BT/BTS/BTR/BTC: op 0 BT, 1 BTS, 2 BTR, 3 BTC; imm form decodes op from reg field. */
  bitOp(op: number, immForm: boolean): void {
    const c = this.c;
    const sz = this.opsz;
    this.modrm(immForm ? 1 : 0);
    let bit: number;
    let la = this.la;
    if (immForm) {
      op = (this.reg & 7) - 4;
      if (op < 0) c.ud();
      bit = c.fetch8() & (sz * 8 - 1);
    } else {
      bit = this.rdG(sz);
      const bh = c.hi;
      if (this.isReg) bit &= sz * 8 - 1;
      else {
        // Bit offset is signed and may address outside the operand.
        let off: number;
        if (sz === 8) off = bh * TWO32 + (bit >>> 0);
        else off = sext(bit, sz);
        const bytes = Math.floor(off / (sz * 8)) * sz;
        la = la + bytes;
        bit = off - Math.floor(off / (sz * 8)) * sz * 8;
      }
    }
    this.la = la;
    let v = op !== 0 ? this.rdEw(sz) : this.rdE(sz);
    let vh = sz === 8 ? c.hi : 0;
    let cf: number;
    if (bit < 32) cf = (v >>> bit) & 1;
    else cf = (vh >>> (bit - 32)) & 1;
    c.eager();
    c.flags = (c.flags & ~F_CF) | cf;
    if (op === 0) return;
    const m = bit < 32 ? 1 << bit : 0, mh = bit >= 32 ? 1 << (bit - 32) : 0;
    if (op === 1) {
      v |= m;
      vh |= mh;
    } else if (op === 2) {
      v &= ~m;
      vh &= ~mh;
    } else {
      v ^= m;
      vh ^= mh;
    }
    if (sz < 4) v &= MASK[sz];
    this.wrE(sz, v, vh);
  }

  group9(): void {
    const c = this.c;
    const r = c.r;
    this.modrm(0);
    const op = this.reg & 7;
    if (this.isReg) {
      if (op === 7 && this.rep === 1) return rdpid(this);
      if (op === 6 || op === 7) {
        // RDRAND / RDSEED
        const sz = this.opsz;
        const buf = new Int32Array(2);
        crypto.getRandomValues(buf);
        c.setReg(sz, this.rm, buf[0] & MASK[sz === 8 ? 4 : sz], buf[1]);
        c.ccOp = CC_EAGER;
        c.flags = (c.flags & ~(F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)) | F_CF;
        return;
      }
      this.unimpl("0f c7 reg");
    }
    if (op === 4 && this.pfx === 0) return xsavec(this);
    if (op !== 1) this.unimpl(`0f c7 /${op}`);
    if (this.opsz === 8) {
      // CMPXCHG16B
      const la = this.la;
      if (la % 16 !== 0) c.gp(0);
      const m0 = c.rd32(la), m1 = c.rd32(la + 4), m2 = c.rd32(la + 8), m3 = c.rd32(la + 12);
      c.eager();
      if (m0 === r[0] && m1 === r[16] && m2 === r[2] && m3 === r[18]) {
        c.wr64(la, r[3], r[19]);
        c.wr64(la + 8, r[1], r[17]);
        c.flags |= F_ZF;
      } else {
        c.wr64(la, m0, m1);
        c.wr64(la + 8, m2, m3);
        r[0] = m0;
        r[16] = m1;
        r[2] = m2;
        r[18] = m3;
        c.flags &= ~F_ZF;
      }
      return;
    }
    const la = this.la;
    const m0 = c.rd32(la), m1 = c.rd32(la + 4);
    c.eager();
    if (m0 === r[0] && m1 === r[2]) {
      c.wr64(la, r[3], r[1]);
      c.flags |= F_ZF;
    } else {
      c.wr64(la, m0, m1);
      r[0] = m0;
      r[2] = m1;
      if (c.long64) r[16] = r[18] = 0;
      c.flags &= ~F_ZF;
    }
  }
}

function bswap32(v: number): number {
  return ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);
}

function popcnt(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

export { F_AC, F_ID, F_NT, F_RF, F_TF };
