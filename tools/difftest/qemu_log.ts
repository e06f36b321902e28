/**
 * Parser for QEMU 7.2 x86 logs written with `-singlestep -d cpu,exec,nochain,int`: one record per executed
 * instruction (a `Trace` line from `-d exec` followed by the `-d cpu` register dump of the state *before* it),
 * plus `Servicing hardware INT=0xNN` lines (from `-d int`) attached to the record that follows them.
 * Interrupt/exception dumps (`  12: v=0e e=0002 ...` and their register block) are skipped.
 * @module
 */
import { GPR_NAMES as CORE_GPR_NAMES } from "../../core/accel.ts";

/** One executed instruction: the state before it. */
export interface TraceRecord {
  /** Instruction pointer (linear, from the Trace line). */
  pc: bigint;
  /** rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15 (32-bit dumps fill the low eight). */
  regs: bigint[];
  rflags: number;
  /** True for a 64-bit dump (RAX=), false for a 32-bit one (EAX=). */
  wide: boolean;
  /** Hardware interrupt vector serviced just before this instruction, or -1. */
  hwInt: number;
  /** Segment lines: name -> [selector, base, limit, flags] (only kept when `full` parsing is on). */
  seg: Record<string, [number, bigint, number, number]>;
  /** Control registers and tables (only with `full`). */
  cr: Record<string, bigint>;
  /** 1-based line number of the Trace line. */
  line: number;
}

const REG_INDEX: Record<string, number> = {
  AX: 0,
  CX: 1,
  DX: 2,
  BX: 3,
  SP: 4,
  BP: 5,
  SI: 6,
  DI: 7,
};

const TRACE_RE = /^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+\/([0-9a-f]+)\//;
const REG_RE = /\b(R|E)(AX|BX|CX|DX|SI|DI|BP|SP)=([0-9a-f]+)|\bR(8|9|1[0-5]) ?=([0-9a-f]+)/g;
const FLAGS_RE = /^[RE]IP=[0-9a-f]+ [RE]FL=([0-9a-f]+)/;
const HWINT_RE = /^Servicing hardware INT=0x([0-9a-f]+)/;
const INTDUMP_RE = /^\s*\d+: v=[0-9a-f]+ /;
const SEG_RE = /^(ES|CS|SS|DS|FS|GS|LDT|TR) ?=([0-9a-f]{4}) ([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)/;
const TBL_RE = /^(GDT|IDT)= +([0-9a-f]+) ([0-9a-f]+)/;
const CR_RE = /\b(CR0|CR2|CR3|CR4|EFER)=([0-9a-f]+)/g;

/** Incremental line parser: push lines, receive completed records. */
export class QemuLogParser {
  #cur: TraceRecord | null = null;
  #inDump = false;
  #pendingInt = -1;
  #line = 0;
  /** Also parse segments and control registers (needed for the first record only). */
  full: boolean;

  constructor(full = false) {
    this.full = full;
  }

  /** Feed one line (without newline); returns the record completed by it, if any. */
  push(l: string): TraceRecord | null {
    this.#line++;
    const t = TRACE_RE.exec(l);
    if (t) {
      const done = this.#cur;
      this.#cur = {
        pc: BigInt("0x" + t[1]),
        regs: new Array(16).fill(0n),
        rflags: 0,
        wide: false,
        hwInt: this.#pendingInt,
        seg: {},
        cr: {},
        line: this.#line,
      };
      this.#pendingInt = -1;
      this.#inDump = false;
      return done;
    }
    const h = HWINT_RE.exec(l);
    if (h) {
      this.#pendingInt = parseInt(h[1], 16);
      this.#inDump = true;
      return null;
    }
    if (INTDUMP_RE.test(l) || l.startsWith("check_exception")) {
      this.#inDump = true;
      return null;
    }
    const r = this.#cur;
    if (r === null || this.#inDump) return null;
    if (l[0] === "R" || l[0] === "E") {
      // Register lines: RAX=.. / EAX=.. / R8 =..
      for (const m of l.matchAll(REG_RE)) {
        if (m[2] !== undefined) {
          r.regs[REG_INDEX[m[2]]] = BigInt("0x" + m[3]);
          if (m[1] === "R") r.wide = true;
        } else r.regs[Number(m[4])] = BigInt("0x" + m[5]);
      }
      const f = FLAGS_RE.exec(l);
      if (f) r.rflags = parseInt(f[1], 16);
    }
    if (this.full) {
      const s = SEG_RE.exec(l);
      if (s) {
        r.seg[s[1]] = [parseInt(s[2], 16), BigInt("0x" + s[3]), parseInt(s[4], 16), parseInt(s[5], 16)];
      }
      const tb = TBL_RE.exec(l);
      if (tb) {
        r.cr[tb[1] + "_BASE"] = BigInt("0x" + tb[2]);
        r.cr[tb[1] + "_LIMIT"] = BigInt("0x" + tb[3]);
      }
      for (const m of l.matchAll(CR_RE)) r.cr[m[1]] = BigInt("0x" + m[2]);
    }
    return null;
  }

  /** The last (possibly incomplete) record at end of input. */
  flush(): TraceRecord | null {
    const r = this.#cur;
    this.#cur = null;
    return r;
  }
}

/** Parse a whole log text into records (tests, small logs). */
export function parseQemuLog(text: string, full = false): TraceRecord[] {
  const p = new QemuLogParser(full);
  const out: TraceRecord[] = [];
  for (const l of text.split("\n")) {
    const r = p.push(l);
    if (r) out.push(r);
  }
  const last = p.flush();
  if (last) out.push(last);
  return out;
}

/** GPR names in encoding order. */
export const GPR_NAMES: readonly string[] = CORE_GPR_NAMES;

/** Flags compared by default: arithmetic, DF, IF, TF (RF and reserved bits are ignored). */
export const FLAGS_COMPARED = 0x8d5 | 0x400 | 0x200 | 0x100;

/** A register state to compare against a record. */
export interface CpuSnapshot {
  pc: bigint;
  regs: bigint[];
  rflags: number;
}

/** Differences between QEMU's record and our state (32-bit records compare the low halves of 8 GPRs). */
export function diffState(q: TraceRecord, ours: CpuSnapshot, flagMask = FLAGS_COMPARED): string[] {
  const d: string[] = [];
  const w = q.wide;
  const m = w ? 0xffffffffffffffffn : 0xffffffffn;
  if ((q.pc & m) !== (ours.pc & m)) d.push(`rip: qemu 0x${q.pc.toString(16)} ours 0x${ours.pc.toString(16)}`);
  const n = w ? 16 : 8;
  for (let i = 0; i < n; i++) {
    if ((q.regs[i] & m) !== (ours.regs[i] & m)) {
      d.push(`${GPR_NAMES[i]}: qemu 0x${q.regs[i].toString(16)} ours 0x${(ours.regs[i] & m).toString(16)}`);
    }
  }
  if ((q.rflags & flagMask) !== (ours.rflags & flagMask)) {
    d.push(`rflags: qemu 0x${q.rflags.toString(16)} ours 0x${ours.rflags.toString(16)}`);
  }
  return d;
}
