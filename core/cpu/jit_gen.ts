/**
 * JIT code generator, part 2: the opcode map. `JitGen.build()` decodes a block instruction by instruction
 * and emits each supported form through the helpers of jit_emit.ts; anything else ends the block.
 * @module
 */
import { carryOf, JitEmitter, MAX_BLOCK_INSNS, type Operand, regOperand, TWO32 } from "./jit_emit.ts";
import type { GenBlock } from "./jit_emit.ts";

export { MAX_BLOCK_INSNS } from "./jit_emit.ts";
export type { GenBlock } from "./jit_emit.ts";

/** Decoder + emitter for one block. */
export class JitGen extends JitEmitter {
  /** Decode and emit up to MAX_BLOCK_INSNS instructions. */
  build(): GenBlock | null {
    let stopped = false;
    let ended = false;
    let rip = this.startRip;
    while (this.idx < MAX_BLOCK_INSNS) {
      if (this.limit - this.pos < 16) break;
      const save = this.out.length, savePos = this.pos, savePend = this.pend, saveId = this.idSeq;
      this.rip = rip;
      this.stored = false;
      const at = this.pos;
      const r = this.insn();
      if (r === 0) {
        this.out.length = save;
        this.pos = savePos;
        this.pend = savePend;
        this.idSeq = saveId;
        this.stopPos = savePos;
        stopped = true;
        break;
      }
      this.rips.push(rip);
      this.bytes += this.traced ? this.tracedLen : this.pos - at;
      this.traced = false;
      rip = this.nextRip();
      if (this.stored && r === 1) {
        // The store may have hit code translated into this very block: leave right after it (cpu.ts smc).
        this.emit(
          `if (c.smc) { ${this.flushCode()} c.smc = false; c.rip = ${rip}; return ${this.idx + 1}; }`,
        );
      }
      this.idx++;
      if (r === 2) {
        ended = true;
        break;
      }
    }
    const n = this.idx;
    if (n === 0) return null;
    if (!ended) {
      this.flush();
      this.out.push(`c.rip = ${rip}; return ${n};`);
    }
    return { src: this.out.join("\n"), n, len: this.bytes, rips: this.rips, stopped };
  }

  // ------------------------------------------------------------ small helpers

  /** Decode and emit one instruction: 0 unsupported (nothing consumed), 1 continue, 2 block ended. */
  insn(): number {
    const b = this.prefixes();
    if (this.rep === 1) {
      // ENDBR64/ENDBR32 (CET landing pads at function entries) are NOPs here; REP RET is RET.
      const u = this.u8, p = this.pos;
      if (b === 0x0f && u[p] === 0x1e && (u[p + 1] === 0xfa || u[p + 1] === 0xfb)) {
        this.pos += 2;
        return 1;
      }
      if (b === 0xc3) {
        this.rep = 0;
        return this.insn1(b);
      }
    }
    if (this.rep && b !== 0x0f) return 0;
    if (this.lock && !lockable(b, this.u8[this.pos])) return 0;
    if (b === 0x0f) return this.insn0f(this.b8());
    return this.insn1(b);
  }

  insn1(b: number): number {
    const sz = this.opsz;
    if (b < 0x40 && (b & 7) < 6) return this.aluOp(b >> 3, b & 7);
    if (b >= 0x50 && b <= 0x57) {
      const n = (b & 7) | this.rexB;
      const ssz = this.long ? 8 : 4;
      if (sz === 2) return 0;
      this.mayFault();
      return this.push(ssz, this.reg(ssz, n), this.regHi(ssz, n)) ? 1 : 0;
    }
    if (b >= 0x58 && b <= 0x5f) {
      const n = (b & 7) | this.rexB;
      const ssz = this.long ? 8 : 4;
      if (sz === 2) return 0;
      this.mayFault();
      const v = this.pop(ssz);
      if (!v) return 0;
      this.emit(this.setReg(ssz, n, v[0], v[1]));
      return 1;
    }
    if (b >= 0x70 && b <= 0x7f) {
      if (sz === 2) return 0; // a 16-bit operand size truncates the target: the interpreter does that
      const t = this.i8();
      return this.jcc(b & 15, t);
    }
    if (b >= 0xb0 && b <= 0xb7) {
      this.emit(this.setReg(1, (b & 7) | this.rexB, String(this.b8()), "0"));
      return 1;
    }
    if (b >= 0xb8 && b <= 0xbf) {
      const n = (b & 7) | this.rexB;
      if (sz === 8) {
        const lo = this.i32(), hi = this.i32();
        this.emit(this.setReg(8, n, String(lo), String(hi)));
      } else if (sz === 4) this.emit(this.setReg(4, n, String(this.i32()), "0"));
      else this.emit(this.setReg(2, n, String(this.i16()), "0"));
      return 1;
    }
    if (b >= 0x91 && b <= 0x97) {
      const n = (b & 7) | this.rexB;
      const a = this.tmp(), ah = this.tmp();
      this.emit(`const ${a} = ${this.reg(sz, n)}, ${ah} = ${this.regHi(sz, n)};`);
      this.emit(this.setReg(sz, n, this.reg(sz, 0), this.regHi(sz, 0)));
      this.emit(this.setReg(sz, 0, a, ah));
      return 1;
    }
    switch (b) {
      case 0x63: {
        if (!this.long) return 0;
        const m = this.modrm(0);
        if (!m) return 0;
        if (!m.op.isReg) this.mayFault();
        const [v] = this.readE(m.op, 4);
        if (sz === 8) {
          const t = this.tmp();
          this.emit(`const ${t} = ${v};`);
          this.emit(this.setReg(8, m.reg, t, `${t} >> 31`));
        } else this.emit(this.setReg(sz, m.reg, v, "0"));
        return 1;
      }
      case 0x68:
      case 0x6a: {
        if (sz === 2) return 0;
        const v = b === 0x68 ? this.i32() : this.i8();
        this.mayFault();
        const ssz = this.long ? 8 : 4;
        return this.push(ssz, String(v), String(v >> 31)) ? 1 : 0;
      }
      case 0x69:
      case 0x6b: {
        const m = this.modrm(b === 0x69 ? (sz === 2 ? 2 : 4) : 1);
        if (!m) return 0;
        this.mayFault();
        const [v, vh] = this.readE(m.op, sz);
        let t: number;
        if (b === 0x69) t = sz === 2 ? this.i16() : this.i32();
        else t = this.i8() & (sz === 2 ? 0xffff : -1);
        const res = this.tmp();
        this.emit(`const ${res} = H.imul2(c, ${sz}, ${v}, ${vh}, ${t}, ${sz === 8 ? t >> 31 : 0});`);
        this.emit(this.setReg(sz, m.reg, res, "c.hi"));
        return 1;
      }
      case 0x80:
      case 0x81:
      case 0x83: {
        const osz = b === 0x80 ? 1 : sz;
        const m = this.modrm(b === 0x81 ? (osz === 2 ? 2 : 4) : 1);
        if (!m) return 0;
        let imm: number;
        if (b === 0x81) imm = osz === 2 ? this.i16() : this.i32();
        else {
          imm = this.i8();
          if (osz < 4) imm &= osz === 1 ? 0xff : 0xffff;
        }
        return this.aluGen(m.reg & 7, osz, m.op, null, String(imm), String(osz === 8 ? imm >> 31 : 0), true);
      }
      case 0x84:
      case 0x85: {
        const osz = b === 0x84 ? 1 : sz;
        const m = this.modrm(0);
        if (!m) return 0;
        return this.testGen(osz, m.op, this.reg(osz, m.reg), this.regHi(osz, m.reg));
      }
      case 0xa8:
        return this.testGen(1, regOperand(0), String(this.b8()), "0");
      case 0xa9: {
        const t = sz === 2 ? this.i16() : this.i32();
        return this.testGen(sz, regOperand(0), String(t), String(sz === 8 ? t >> 31 : 0));
      }
      case 0x86:
      case 0x87: {
        const osz = b === 0x86 ? 1 : sz;
        const m = this.modrm(0);
        if (!m) return 0;
        if (!m.op.isReg) this.mayFault();
        const [v, vh] = this.readE(m.op, osz);
        const a = this.tmp(), ah = this.tmp();
        this.emit(`const ${a} = ${v}, ${ah} = ${vh};`);
        const g = this.tmp(), gh = this.tmp();
        this.emit(`const ${g} = ${this.reg(osz, m.reg)}, ${gh} = ${this.regHi(osz, m.reg)};`);
        this.writeE(m.op, osz, g, gh);
        this.emit(this.setReg(osz, m.reg, a, ah));
        return 1;
      }
      case 0x88:
      case 0x89: {
        const osz = b === 0x88 ? 1 : sz;
        const m = this.modrm(0);
        if (!m) return 0;
        if (!m.op.isReg) this.mayFault();
        if (m.op.isReg) {
          const t = this.tmp(), th = this.tmp();
          this.emit(`const ${t} = ${this.reg(osz, m.reg)}, ${th} = ${this.regHi(osz, m.reg)};`);
          this.writeE(m.op, osz, t, th);
        } else this.writeE(m.op, osz, this.reg(osz, m.reg), this.regHi(osz, m.reg));
        return 1;
      }
      case 0x8a:
      case 0x8b: {
        const osz = b === 0x8a ? 1 : sz;
        const m = this.modrm(0);
        if (!m) return 0;
        if (!m.op.isReg) this.mayFault();
        const [v, vh] = this.readE(m.op, osz);
        const t = this.tmp(), th = this.tmp();
        this.emit(`const ${t} = ${v}, ${th} = ${vh};`);
        this.emit(this.setReg(osz, m.reg, t, th));
        return 1;
      }
      case 0x8d: {
        const m = this.modrm(0, true);
        if (!m || m.op.isReg) return 0;
        return this.lea(sz, m.op, m.reg);
      }
      case 0x90:
        if (this.rexB) return 0;
        return 1;
      case 0x98:
        if (sz === 2) this.emit(`r[0] = (r[0] & -65536) | (((r[0] << 24) >> 24) & 65535);`);
        else if (sz === 4) this.emit(`r[0] = (r[0] << 16) >> 16; r[16] = 0;`);
        else this.emit(`r[16] = r[0] >> 31;`);
        return 1;
      case 0x99:
        if (sz === 2) this.emit(`r[2] = (r[2] & -65536) | (((r[0] << 16) >> 31) & 65535);`);
        else if (sz === 4) this.emit(`r[2] = r[0] >> 31; r[18] = 0;`);
        else this.emit(`r[2] = r[18] = r[16] >> 31;`);
        return 1;
      case 0xc0:
      case 0xc1:
      case 0xd0:
      case 0xd1:
      case 0xd2:
      case 0xd3: {
        const osz = b & 1 ? sz : 1;
        const m = this.modrm(b < 0xd0 ? 1 : 0);
        if (!m) return 0;
        const cnt = b < 0xd0 ? String(this.b8()) : b < 0xd2 ? "1" : "(r[1] & 255)";
        // A count of zero leaves the flags alone: they must be stored.
        this.mayFault();
        this.probeW(m.op, osz);
        const [v, vh] = this.readE(m.op, osz);
        const res = this.tmp();
        this.emit(`const ${res} = H.shift(c, ${m.reg & 7}, ${osz}, ${v}, ${vh}, ${cnt});`);
        this.writeE(m.op, osz, res, "c.hi");
        return 1;
      }
      case 0xc2:
      case 0xc3: {
        if (sz === 2) return 0;
        const extra = b === 0xc2 ? this.i16() : 0;
        this.mayFault();
        const ssz = this.long ? 8 : 4;
        const t = this.tmp();
        if (this.long) {
          const la = this.tmp("la");
          this.emit(`const ${la} = G(r, 4);`);
          const [v, h] = this.load(8, la);
          this.emit(`const ${t} = ${h} * ${TWO32} + (${v} >>> 0);`);
          this.emit(`if (${t} < -140737488355328 || ${t} >= 140737488355328) H.gp0();`);
          const l = this.tmp();
          this.emit(`const ${l} = (r[4] >>> 0) + ${8 + extra};`);
          this.emit(`r[4] = ${l} | 0; r[20] = (r[20] + (${l} >= ${TWO32} ? 1 : 0)) | 0;`);
        } else {
          const v = this.pop(ssz, extra);
          if (!v) return 0;
          this.emit(`const ${t} = ${v[0]} >>> 0;`);
        }
        this.exitTo(t);
        return 2;
      }
      case 0xc6:
      case 0xc7: {
        const osz = b === 0xc6 ? 1 : sz;
        const m = this.modrm(osz === 1 ? 1 : osz === 2 ? 2 : 4);
        if (!m) return 0;
        const v = osz === 1 ? this.b8() : osz === 2 ? this.i16() : this.i32();
        if (!m.op.isReg) this.mayFault();
        this.writeE(m.op, osz, String(v), String(v >> 31));
        return 1;
      }
      case 0xc9: {
        if (sz === 2) return 0;
        this.mayFault();
        if (this.long) {
          const l = this.tmp(), la = this.tmp("la");
          this.emit(`const ${la} = G(r, 5);`);
          const [v, h] = this.load(8, la);
          this.emit(`const ${l} = (r[5] >>> 0) + 8;`);
          this.emit(`r[4] = ${l} | 0; r[20] = (r[21] + (${l} >= ${TWO32} ? 1 : 0)) | 0;`);
          this.emit(`r[5] = ${v}; r[21] = ${h};`);
        } else {
          if (!this.ssB) return 0;
          const la = this.tmp("la");
          this.emit(`const ${la} = ((r[5] >>> 0) + c.segBase[2]) >>> 0;`);
          const [v] = this.load(4, la);
          this.emit(`r[4] = (r[5] + 4) | 0; r[5] = ${v};`);
        }
        return 1;
      }
      case 0xe8: {
        if (sz === 2) return 0;
        const rel = this.i32();
        const ret = this.nextRip();
        const target = this.target(ret + rel);
        if (target === null) return 0;
        this.mayFault();
        if (this.long) {
          if (!this.push(8, String(ret | 0), String(Math.floor(ret / TWO32)))) return 0;
        } else if (!this.push(4, String(ret | 0), "0")) return 0;
        if (this.follow(target, true)) return 1;
        this.exitTo(String(target));
        return 2;
      }
      case 0xe9:
      case 0xeb: {
        if (sz === 2) return 0;
        const rel = b === 0xeb ? this.i8() : this.i32();
        const target = this.target(this.nextRip() + rel);
        if (target === null) return 0;
        if (this.follow(target, false)) return 1;
        this.exitTo(String(target));
        return 2;
      }
      case 0xf6:
      case 0xf7:
        return this.group3(b === 0xf6 ? 1 : sz);
      case 0xfe:
      case 0xff:
        return this.group45(b === 0xfe ? 1 : sz);
    }
    return 0;
  }

  jcc(cc: number, rel: number): number {
    const next = this.nextRip();
    const t = this.target(next + rel);
    if (t === null) return 0;
    const e = this.cond(cc);
    if (this.idx + 1 >= MAX_BLOCK_INSNS || this.limit - this.pos < 16) {
      const k = this.tmp("k");
      this.emit(`const ${k} = ${e};`);
      this.flush();
      this.emit(`if (${k}) { c.rip = ${t}; return ${this.idx + 1}; }`);
      this.emit(`c.rip = ${next}; return ${this.idx + 1};`);
      return 2;
    }
    // Side exit when taken; the block goes on with the fall-through (pending flags stay in locals).
    this.emit(`if (${e}) { ${this.flushCode()} c.rip = ${t}; return ${this.idx + 1}; }`);
    return 1;
  }

  /** ALU forms 00-3D (form = opcode & 7). */
  aluOp(op: number, form: number): number {
    const sz = form & 1 ? this.opsz : 1;
    if (form < 4) {
      const m = this.modrm(0);
      if (!m) return 0;
      const g = this.reg(sz, m.reg), gh = this.regHi(sz, m.reg);
      if (form < 2) return this.aluGen(op, sz, m.op, null, g, gh, true);
      // G = G op E.
      return this.aluGen(op, sz, regOperand(m.reg), m.op, null, null, false);
    }
    const imm = sz === 1 ? this.b8() : sz === 2 ? this.i16() : this.i32();
    return this.aluGen(op, sz, regOperand(0), null, String(imm), String(sz === 8 ? imm >> 31 : 0), true);
  }

  /**
   * dst = dst op src, where src is either the operand `srcOp` or the expression (b, bh). Inline for
   * ADD/SUB/CMP/AND/OR/XOR; ADC/SBB and 8/16-bit ops go through alu().
   */
  aluGen(
    op: number,
    sz: number,
    dst: Operand,
    srcOp: Operand | null,
    b: string | null,
    bh: string | null,
    _destFirst: boolean,
  ): number {
    if (this.lock && dst.isReg) return 0;
    const mem = !dst.isReg || (srcOp !== null && !srcOp.isReg);
    // XOR/SUB r,r: zero idiom.
    if (mem || op === 2 || op === 3) this.mayFault();
    let sv: string, svh: string;
    if (srcOp) {
      [sv, svh] = this.readE(srcOp, sz);
    } else {
      sv = b as string;
      svh = bh as string;
    }
    const [dv, dvh] = this.readE(dst, sz);
    const a = this.tmp("a"), ah = this.tmp("ah"), bb = this.tmp("b"), bbh = this.tmp("bh");
    this.emit(
      `const ${a} = ${dv}, ${ah} = ${sz === 8 ? dvh : "0"}, ${bb} = ${sv}, ${bbh} = ${sz === 8 ? svh : "0"};`,
    );
    const res = this.tmp("r"), rh = this.tmp("rh");
    const inline = (sz === 4 || sz === 8) && op !== 2 && op !== 3;
    if (!inline) {
      if (op !== 7) this.probeW(dst, sz);
      this.emit(`const ${res} = H.alu(c, ${op}, ${sz}, ${a}, ${ah}, ${bb}, ${bbh}), ${rh} = c.hi;`);
      if (op !== 7) this.writeE(dst, sz, res, rh);
      this.pend = null;
      return 1;
    }
    let kind: string;
    if (sz === 4) {
      switch (op) {
        case 0:
          this.emit(`const ${res} = (${a} + ${bb}) | 0, ${rh} = 0;`);
          kind = "add";
          break;
        case 1:
          this.emit(`const ${res} = ${a} | ${bb}, ${rh} = 0;`);
          kind = "logic";
          break;
        case 4:
          this.emit(`const ${res} = ${a} & ${bb}, ${rh} = 0;`);
          kind = "logic";
          break;
        case 6:
          this.emit(`const ${res} = ${a} ^ ${bb}, ${rh} = 0;`);
          kind = "logic";
          break;
        default:
          this.emit(`const ${res} = (${a} - ${bb}) | 0, ${rh} = 0;`);
          kind = "sub";
      }
    } else {
      switch (op) {
        case 0: {
          const l = this.tmp("l");
          this.emit(`const ${l} = (${a} >>> 0) + (${bb} >>> 0);`);
          this.emit(`const ${res} = ${l} | 0, ${rh} = (${ah} + ${bbh} + (${l} >= ${TWO32} ? 1 : 0)) | 0;`);
          kind = "add";
          break;
        }
        case 1:
          this.emit(`const ${res} = ${a} | ${bb}, ${rh} = ${ah} | ${bbh};`);
          kind = "logic";
          break;
        case 4:
          this.emit(`const ${res} = ${a} & ${bb}, ${rh} = ${ah} & ${bbh};`);
          kind = "logic";
          break;
        case 6:
          this.emit(`const ${res} = ${a} ^ ${bb}, ${rh} = ${ah} ^ ${bbh};`);
          kind = "logic";
          break;
        default: {
          const l = this.tmp("l");
          this.emit(`const ${l} = (${a} >>> 0) - (${bb} >>> 0);`);
          this.emit(`const ${res} = ${l} | 0, ${rh} = (${ah} - ${bbh} - (${l} < 0 ? 1 : 0)) | 0;`);
          kind = "sub";
        }
      }
    }
    if (op !== 7) this.writeE(dst, sz, res, rh);
    // The previous pending flags are dead: this instruction overwrites them all.
    this.pend = { kind, sz, a, ah, b: bb, bh: bbh, r: res, rh };
    return 1;
  }

  testGen(sz: number, dst: Operand, b: string, bh: string): number {
    if (!dst.isReg) this.mayFault();
    const [dv, dvh] = this.readE(dst, sz);
    const res = this.tmp("r"), rh = this.tmp("rh");
    this.emit(`const ${res} = ${dv} & ${b}, ${rh} = ${sz === 8 ? `${dvh} & ${bh}` : "0"};`);
    this.pend = { kind: "logic", sz, a: "0", ah: "0", b: "0", bh: "0", r: res, rh };
    return 1;
  }

  lea(sz: number, op: Operand, reg: number): number {
    if (this.adsz === 8) {
      if (op.ripAbs !== null) {
        const v = op.ripAbs;
        const hi = Math.floor(v / TWO32);
        this.emit(this.setReg(sz, reg, String((v - hi * TWO32) | 0), String(hi | 0)));
        return 1;
      }
      if (sz === 8) {
        const t = this.tmp();
        this.emit(`const ${t} = H.lea64(c, ${op.base}, ${op.index}, ${op.scale}, ${op.disp});`);
        this.emit(this.setReg(8, reg, t, "c.hi"));
        return 1;
      }
      const parts: string[] = [String(op.disp)];
      if (op.base >= 0) parts.push(`r[${op.base}]`);
      if (op.index >= 0) parts.push(op.scale ? `(r[${op.index}] << ${op.scale})` : `r[${op.index}]`);
      const t = this.tmp();
      this.emit(`const ${t} = (${parts.join(" + ")}) | 0;`);
      this.emit(this.setReg(sz, reg, t, "0"));
      return 1;
    }
    const t = this.tmp();
    this.emit(`const ${t} = ${op.ea32} | 0;`);
    this.emit(this.setReg(sz === 8 ? 8 : sz, reg, t, "0"));
    return 1;
  }

  group3(sz: number): number {
    const regField = (this.u8[this.pos] >> 3) & 7;
    const m = this.modrm(regField < 2 ? (sz === 1 ? 1 : sz === 2 ? 2 : 4) : 0);
    if (!m) return 0;
    const op = m.reg & 7;
    if (op < 2) {
      const t = sz === 1 ? this.b8() : sz === 2 ? this.i16() : this.i32();
      return this.testGen(sz, m.op, String(t), String(t >> 31));
    }
    if (op === 2) {
      if (!m.op.isReg) this.mayFault();
      const [v, vh] = this.readE(m.op, sz);
      const mask = sz === 1 ? 0xff : sz === 2 ? 0xffff : -1;
      this.writeE(m.op, sz, `(~${v} & ${mask})`, `~${vh}`);
      return 1;
    }
    this.mayFault();
    if (op === 3) this.probeW(m.op, sz);
    const [v, vh] = this.readE(m.op, sz);
    if (op === 3) {
      const t = this.tmp();
      this.emit(`const ${t} = H.alu(c, 5, ${sz}, 0, 0, ${v}, ${vh});`);
      this.writeE(m.op, sz, t, "c.hi");
      return 1;
    }
    this.emit(`H.${op < 6 ? "mul1" : "div1"}(c, ${op & 1 ? "true" : "false"}, ${sz}, ${v}, ${vh});`);
    return 1;
  }

  group45(sz: number): number {
    const regField = (this.u8[this.pos] >> 3) & 7;
    const m = this.modrm(0);
    if (!m) return 0;
    if (regField < 2) {
      if (this.lock && m.op.isReg) return 0;
      if (sz >= 4) return this.incDec(sz, m.op, regField === 0);
      this.mayFault();
      this.probeW(m.op, sz);
      const [v, vh] = this.readE(m.op, sz);
      const t = this.tmp();
      this.emit(`const ${t} = H.incdec(c, ${sz}, ${v}, ${vh}, ${regField === 0 ? 1 : -1});`);
      this.writeE(m.op, sz, t, "c.hi");
      return 1;
    }
    if (sz === 1 || this.lock) return 0;
    if (regField === 2 || regField === 4) {
      if (sz === 2) return 0;
      const tsz = this.long ? 8 : 4;
      this.mayFault();
      const [v, vh] = this.readE(m.op, tsz);
      const t = this.tmp();
      if (this.long) {
        this.emit(`const ${t} = ${vh} * ${TWO32} + (${v} >>> 0);`);
        this.emit(`if (${t} < -140737488355328 || ${t} >= 140737488355328) H.gp0();`);
      } else this.emit(`const ${t} = ${v} >>> 0;`);
      if (regField === 2) {
        const ret = this.nextRip();
        if (!this.push(tsz, String(ret | 0), String(Math.floor(ret / TWO32)))) return 0;
      }
      this.exitTo(t);
      return 2;
    }
    if (regField === 6) {
      if (sz === 2) return 0;
      const ssz = this.long ? 8 : 4;
      this.mayFault();
      const [v, vh] = this.readE(m.op, ssz);
      const t = this.tmp(), th = this.tmp();
      this.emit(`const ${t} = ${v}, ${th} = ${vh};`);
      return this.push(ssz, t, th) ? 1 : 0;
    }
    return 0;
  }

  /** Inline INC/DEC (32/64-bit): flags pending, CF carried over from the flags before. */
  incDec(sz: number, op: Operand, inc: boolean): number {
    if (!op.isReg) this.mayFault();
    const prev = this.pend;
    const cf = prev ? carryOf(prev) : "c.cf()";
    const [v, vh] = this.readE(op, sz);
    const a = this.tmp("a"), ah = this.tmp("ah"), res = this.tmp("r"), rh = this.tmp("rh");
    this.emit(`const ${a} = ${v}, ${ah} = ${sz === 8 ? vh : "0"};`);
    if (sz === 4) this.emit(`const ${res} = (${a} ${inc ? "+" : "-"} 1) | 0, ${rh} = 0;`);
    else {
      const l = this.tmp("l");
      this.emit(`const ${l} = (${a} >>> 0) ${inc ? "+" : "-"} 1;`);
      this.emit(
        `const ${res} = ${l} | 0, ${rh} = (${ah} + (${l} >= ${TWO32} ? 1 : ${l} < 0 ? -1 : 0)) | 0;`,
      );
    }
    this.writeE(op, sz, res, rh);
    if (prev === null && !op.isReg) {
      // The flags are in the Cpu already (mayFault stored them): read CF now, before any later store.
      const k = this.tmp("cf");
      this.emit(`const ${k} = c.cf();`);
      this.pend = { kind: inc ? "inc" : "dec", sz, a, ah, b: "1", bh: "0", r: res, rh, cf: k };
    } else this.pend = { kind: inc ? "inc" : "dec", sz, a, ah, b: "1", bh: "0", r: res, rh, cf };
    return 1;
  }

  insn0f(b: number): number {
    const sz = this.opsz;
    if (this.rep) return 0;
    if (b >= 0x80 && b <= 0x8f) {
      if (sz === 2) return 0;
      return this.jcc(b & 15, this.i32());
    }
    if (b >= 0x90 && b <= 0x9f) {
      const m = this.modrm(0);
      if (!m) return 0;
      const e = this.cond(b & 15);
      if (!m.op.isReg) this.mayFault();
      this.writeE(m.op, 1, `(${e} ? 1 : 0)`, "0");
      return 1;
    }
    if (b >= 0x40 && b <= 0x4f) {
      const m = this.modrm(0);
      if (!m) return 0;
      const e = this.cond(b & 15);
      const k = this.tmp("k");
      this.emit(`const ${k} = ${e};`);
      if (!m.op.isReg) this.mayFault();
      const [v, vh] = this.readE(m.op, sz);
      // CMOV with a 32-bit operand zero-extends the destination even when the condition is false.
      const t = this.tmp(), th = this.tmp();
      this.emit(
        `const ${t} = ${k} ? ${v} : ${this.reg(sz, m.reg)}, ${th} = ${k} ? ${vh} : ${this.regHi(sz, m.reg)};`,
      );
      this.emit(this.setReg(sz, m.reg, t, th));
      return 1;
    }
    switch (b) {
      case 0x1f: {
        const m = this.modrm(0);
        return m ? 1 : 0;
      }
      case 0xb6:
      case 0xb7:
      case 0xbe:
      case 0xbf: {
        const ssz = b & 1 ? 2 : 1;
        const m = this.modrm(0);
        if (!m) return 0;
        if (!m.op.isReg) this.mayFault();
        const [v] = this.readE(m.op, ssz);
        const t = this.tmp();
        if (b < 0xbe) this.emit(`const ${t} = ${v};`);
        else this.emit(`const ${t} = (${v} << ${32 - ssz * 8}) >> ${32 - ssz * 8};`);
        if (sz === 8) this.emit(this.setReg(8, m.reg, t, b < 0xbe ? "0" : `${t} >> 31`));
        else this.emit(this.setReg(sz, m.reg, sz === 2 ? `${t} & 65535` : t, "0"));
        return 1;
      }
      case 0xaf: {
        const m = this.modrm(0);
        if (!m) return 0;
        this.mayFault();
        const [v, vh] = this.readE(m.op, sz);
        const t = this.tmp();
        this.emit(
          `const ${t} = H.imul2(c, ${sz}, ${this.reg(sz, m.reg)}, ${this.regHi(sz, m.reg)}, ${v}, ${vh});`,
        );
        this.emit(this.setReg(sz, m.reg, t, "c.hi"));
        return 1;
      }
    }
    return 0;
  }
}

/** LOCK is valid (and, with vCPUs interleaved at block boundaries, trivially atomic) on these memory forms. */
function lockable(b: number, modrm: number): boolean {
  if ((modrm >> 6) === 3) return false;
  if (b < 0x40 && (b & 7) < 2) return (b >> 3) !== 7;
  if (b === 0x80 || b === 0x81 || b === 0x83) return ((modrm >> 3) & 7) !== 7;
  if (b === 0xfe || b === 0xff) return ((modrm >> 3) & 7) < 2;
  if (b === 0xf6 || b === 0xf7) return ((modrm >> 3) & 7) === 2 || ((modrm >> 3) & 7) === 3;
  return b === 0x86 || b === 0x87;
}
