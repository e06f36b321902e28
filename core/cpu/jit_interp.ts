/**
 * JIT code generator, part 3: instructions the translator does not emit inline but that need not end a
 * block. The block calls the interpreter for that one instruction (`it.step()`, exact semantics, precise
 * faults, REP slices) and carries on with the next one, instead of leaving to the run loop and re-entering
 * a second block behind it (REP string ops, BT/BTS/BTR/BTC, CMPXCHG/XADD, SHLD/SHRD, BSF/BSR/TZCNT/LZCNT/
 * POPCNT, PUSHF/CLI, SSE/x87, port I/O, ...).
 *
 * `interpForm` only measures the instruction (the prefixes are already decoded) and classifies it:
 * 1: data instruction, the block continues after it when the interpreter left rip at the next instruction
 * (a REP op not finished, a fault or a store to translated code leaves the block);
 * 2: the block ends after it (port I/O, POPF, STI, segment loads, WRMSR: the run loop re-checks
 * interrupts, the trap flag and the mode).
 * Control transfers, mode changes and anything unrecognised return 0 (the block stops before them).
 * @module
 */
import type { JitEmitter } from "./jit_emit.ts";

/** Skip a ModRM operand (32/64-bit addressing) whose ModRM byte is next; false for 16-bit addressing. */
function skipModrm(g: JitEmitter): number {
  if (g.adsz === 2) return -1;
  const m = g.u8[g.pos++];
  const mod = m >> 6, rm = m & 7;
  if (mod !== 3) {
    let base = -1;
    if (rm === 4) base = g.u8[g.pos++] & 7;
    if (mod === 1) g.pos += 1;
    else if (mod === 2 || (mod === 0 && (rm === 5 || base === 5))) g.pos += 4;
  }
  return m;
}

/** Instructions of the 0F map (second opcode byte `b`). */
function form0f(g: JitEmitter, b: number): number {
  if (g.rep && !(b === 0xb8 || b === 0xbc || b === 0xbd || b === 0xae || b >= 0x10)) return 0;
  switch (b) {
    case 0xa2: // CPUID
    case 0x31: // RDTSC
    case 0x32: // RDMSR
      return 1;
    case 0x30: // WRMSR (EFER, FS/GS base, ...)
      return 2;
    case 0xa0: // PUSH FS/GS
    case 0xa8:
      return 1;
    case 0xa1: // POP FS/GS: a segment load
    case 0xa9:
      return 2;
    case 0x01: // only RDTSCP of the system group
      if (g.u8[g.pos] !== 0xf9) return 0;
      g.pos++;
      return 1;
    case 0xa4: // SHLD/SHRD imm8
    case 0xac:
    case 0xba: // BT/BTS/BTR/BTC imm8
      if (skipModrm(g) < 0) return 0;
      g.pos++;
      return 1;
    case 0xc7: { // CMPXCHG8B/16B, RDRAND, RDSEED
      const m = skipModrm(g);
      if (m < 0) return 0;
      const r = (m >> 3) & 7;
      return r === 1 || r >= 6 ? 1 : 0;
    }
  }
  if (b >= 0xc8 && b <= 0xcf) return 1; // BSWAP
  if (b === 0x0d || (b >= 0x18 && b <= 0x1f)) return skipModrm(g) < 0 ? 0 : 1; // prefetch, hint NOPs
  if (
    b === 0xa3 || b === 0xab || b === 0xb3 || b === 0xbb || b === 0xa5 || b === 0xad || b === 0xb0 ||
    b === 0xb1 || b === 0xc0 || b === 0xc1 || b === 0xbc || b === 0xbd || b === 0xb8 || b === 0xae
  ) {
    if (b === 0xb8 && g.rep !== 1) return 0; // JMPE otherwise
    return skipModrm(g) < 0 ? 0 : 1;
  }
  // SSE/MMX (no control flow).
  if (b === 0x77) return 1; // EMMS
  const sse = (b >= 0x10 && b <= 0x17) || (b >= 0x28 && b <= 0x2f) || (b >= 0x50 && b <= 0x7f) ||
    (b >= 0xc2 && b <= 0xc6) || b >= 0xd0;
  if (sse) {
    if (skipModrm(g) < 0) return 0;
    if ((b >= 0x70 && b <= 0x73) || (b >= 0xc2 && b <= 0xc6)) g.pos++;
    return 1;
  }
  if (b === 0x38 || b === 0x3a) {
    g.pos++;
    if (skipModrm(g) < 0) return 0;
    if (b === 0x3a) g.pos++;
    return 1;
  }
  return 0;
}

/** VEX-encoded instructions (64-bit mode only: elsewhere C4/C5 may be LES/LDS). */
function formVex(g: JitEmitter, b: number): number {
  if (!g.long || g.rep || g.lock || g.opsz === 2 || g.rex) return 0;
  let map = 1;
  if (b === 0xc4) {
    map = g.u8[g.pos] & 0x1f;
    g.pos += 2;
  } else g.pos += 1;
  if (map < 1 || map > 3) return 0;
  const op = g.u8[g.pos++];
  if (map === 1 && op === 0x77) return 1; // VZEROUPPER/VZEROALL
  if (skipModrm(g) < 0) return 0;
  if (map === 3 || (map === 1 && ((op >= 0x70 && op <= 0x73) || (op >= 0xc2 && op <= 0xc6)))) g.pos++;
  return 1;
}

/**
 * Measure the instruction whose opcode byte `b` was just read (after prefixes) and say how a block treats
 * it: 0 stop before it, 1 interpret and continue, 2 interpret and end the block.
 */
export function interpForm(g: JitEmitter, b: number): number {
  if (b === 0x0f) return form0f(g, g.u8[g.pos++]);
  if (b === 0xc4 || b === 0xc5) return formVex(g, b);
  if (g.lock) return 0; // LOCK forms the translator does not take: 0F map only (CMPXCHG, XADD, BTS...)
  if ((b >= 0xa4 && b <= 0xa7) || (b >= 0xaa && b <= 0xaf)) return 1; // MOVS CMPS STOS LODS SCAS
  if (g.rep && b !== 0x90 && !(b >= 0x6c && b <= 0x6f)) return 0;
  if (b >= 0xd8 && b <= 0xdf) return skipModrm(g) < 0 ? 0 : 1; // x87
  switch (b) {
    case 0x90: // PAUSE (F3 90) or XCHG r8, rAX
    case 0x9b: // FWAIT
    case 0x9c: // PUSHF
    case 0x9e: // SAHF
    case 0x9f: // LAHF
    case 0xd7: // XLAT
    case 0xf5: // CMC
    case 0xf8: // CLC
    case 0xf9: // STC
    case 0xfa: // CLI
    case 0xfc: // CLD
    case 0xfd: // STD
    case 0xc9: // LEAVE
      return 1;
    case 0xc8: // ENTER imm16, imm8
      g.pos += 3;
      return 1;
    case 0x8c: // MOV r/m, Sreg
      return skipModrm(g) < 0 ? 0 : 1;
    case 0x8e: // MOV Sreg, r/m
      return skipModrm(g) < 0 ? 0 : 2;
    case 0x9d: // POPF (TF, IF)
    case 0xfb: // STI (interrupt shadow)
    case 0xec: // IN/OUT DX
    case 0xed:
    case 0xee:
    case 0xef:
    case 0x6c: // INS/OUTS
    case 0x6d:
    case 0x6e:
    case 0x6f:
      return 2;
    case 0xe4: // IN/OUT imm8
    case 0xe5:
    case 0xe6:
    case 0xe7:
      g.pos++;
      return 2;
  }
  return 0;
}
