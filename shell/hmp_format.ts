/**
 * Text formats of the human monitor that follow QEMU 7.2 byte for byte: `info registers`
 * (target/i386/cpu-dump.c x86_cpu_dump_state with CPU_DUMP_FPU), `x`/`xp` memory dumps (monitor/hmp-cmds.c
 * memory_dump), `print` (hmp_print), and `x /i` disassembly laid out like QEMU's capstone dumper
 * (disas/capstone.c cap_dump_insn: address, up to 8 code bytes, AT&T mnemonic and operands).
 * @module
 */
import { Decoder, DecoderOptions, Formatter, FormatterSyntax, type Instruction } from "iced-x86";
import type { CpuRegisters, SegmentState } from "../core/accel.ts";
import type { CpuExtraState } from "./machine_iface.ts";

// EFLAGS bits (Intel SDM vol. 1 §3.4.3)
const CC_C = 0x0001;
const CC_P = 0x0004;
const CC_A = 0x0010;
const CC_Z = 0x0040;
const CC_S = 0x0080;
const DF_MASK = 0x0400;
const CC_O = 0x0800;
// CR0 / EFER
const CR0_PE = 1n;
const EFER_LMA = 1n << 10n;
// Segment attribute bits as packed in SegmentState.attrs (descriptor bits 40..55).
const ATTR_TYPE_MASK = 0x0f;
const ATTR_S = 0x10;
const ATTR_P = 0x80;
const ATTR_L = 0x2000;
const ATTR_DB = 0x4000;
const ATTR_G = 0x8000;

function h(v: bigint | number, width: number): string {
  const b = typeof v === "bigint" ? v : BigInt(Math.trunc(v));
  return BigInt.asUintN(64, b).toString(16).padStart(width, "0");
}

const SYS_TYPE_NAME: readonly (readonly string[])[] = [
  [
    "Reserved",
    "TSS16-avl",
    "LDT",
    "TSS16-busy",
    "CallGate16",
    "TaskGate",
    "IntGate16",
    "TrapGate16",
    "Reserved",
    "TSS32-avl",
    "Reserved",
    "TSS32-busy",
    "CallGate32",
    "Reserved",
    "IntGate32",
    "TrapGate32",
  ],
  [
    "<hiword>",
    "Reserved",
    "LDT",
    "Reserved",
    "Reserved",
    "Reserved",
    "Reserved",
    "Reserved",
    "Reserved",
    "TSS64-avl",
    "Reserved",
    "TSS64-busy",
    "CallGate64",
    "Reserved",
    "IntGate64",
    "TrapGate64",
  ],
];

/** QEMU's `sc->flags & 0x00ffff00` for a segment: attributes in bits 8..23, limit bits 19:16 in 16..19. */
export function segmentFlags(s: SegmentState, withLimitBits = true): number {
  let f = (s.attrs & 0xffff) << 8;
  if (withLimitBits) {
    const raw = (s.attrs & ATTR_G) ? Math.floor((s.limit >>> 0) / 4096) : s.limit >>> 0;
    f |= ((raw >>> 16) & 0xf) << 16;
  }
  return f >>> 0;
}

function dumpSeg(
  name: string,
  s: SegmentState,
  cs64: boolean,
  pe: boolean,
  lma: boolean,
  limitBits: boolean,
): string {
  const flags = segmentFlags(s, limitBits);
  let out = cs64
    ? `${name.padEnd(3)}=${h(s.selector, 4)} ${h(BigInt(s.base), 16)} ${h(s.limit >>> 0, 8)} ${h(flags, 8)}`
    : `${name.padEnd(3)}=${h(s.selector, 4)} ${h(s.base >>> 0, 8)} ${h(s.limit >>> 0, 8)} ${h(flags, 8)}`;
  if (pe && (s.attrs & ATTR_P)) {
    out += ` DPL=${(s.attrs >> 5) & 3} `;
    if (s.attrs & ATTR_S) {
      if (s.attrs & 0x08) {
        out += (s.attrs & ATTR_L) ? "CS64" : (s.attrs & ATTR_DB) ? "CS32" : "CS16";
        out += ` [${s.attrs & 0x04 ? "C" : "-"}${s.attrs & 0x02 ? "R" : "-"}`;
      } else {
        out += (s.attrs & ATTR_DB) || lma ? "DS  " : "DS16";
        out += ` [${s.attrs & 0x04 ? "E" : "-"}${s.attrs & 0x02 ? "W" : "-"}`;
      }
      out += `${s.attrs & 0x01 ? "A" : "-"}]`;
    } else {
      out += SYS_TYPE_NAME[lma ? 1 : 0][s.attrs & ATTR_TYPE_MASK];
    }
  }
  return out + "\n";
}

/** Options of formatRegisters. */
export interface RegisterDumpOptions {
  /** Rebuild the descriptor's limit bits 19:16 in the flags column (TCG keeps them; KVM reports 0). */
  limitBits?: boolean;
}

/** `info registers` text for one vCPU, as x86_cpu_dump_state(CPU_DUMP_FPU) prints it. */
export function formatRegisters(
  r: CpuRegisters,
  extra: CpuExtraState = {},
  opts: RegisterDumpOptions = {},
): string {
  const g = (k: string) => r.gpr[k] ?? 0n;
  const limitBits = opts.limitBits ?? true;
  const efer = r.efer;
  const lma = (efer & EFER_LMA) !== 0n;
  const cs64 = lma && (r.seg.cs.attrs & ATTR_L) !== 0;
  const pe = (r.cr.cr0 & CR0_PE) !== 0n;
  const eflags = Number(BigInt.asUintN(32, g("rflags")));
  const fl = (eflags & DF_MASK ? "D" : "-") + (eflags & CC_O ? "O" : "-") + (eflags & CC_S ? "S" : "-") +
    (eflags & CC_Z ? "Z" : "-") + (eflags & CC_A ? "A" : "-") + (eflags & CC_P ? "P" : "-") +
    (eflags & CC_C ? "C" : "-");
  const cpl = pe ? (r.seg.ss.attrs >> 5) & 3 : 0;
  const tail = `CPL=${cpl} II=${extra.interruptShadow ? 1 : 0} A20=${extra.a20 === false ? 0 : 1} ` +
    `SMM=${extra.smm ? 1 : 0} HLT=${r.halted ? 1 : 0}\n`;
  let o = "";
  if (cs64) {
    const q = (k: string) => h(g(k), 16);
    o += `RAX=${q("rax")} RBX=${q("rbx")} RCX=${q("rcx")} RDX=${q("rdx")}\n`;
    o += `RSI=${q("rsi")} RDI=${q("rdi")} RBP=${q("rbp")} RSP=${q("rsp")}\n`;
    o += `R8 =${q("r8")} R9 =${q("r9")} R10=${q("r10")} R11=${q("r11")}\n`;
    o += `R12=${q("r12")} R13=${q("r13")} R14=${q("r14")} R15=${q("r15")}\n`;
    o += `RIP=${q("rip")} RFL=${h(eflags, 8)} [${fl}] ${tail}`;
  } else {
    const d = (k: string) => h(BigInt.asUintN(32, g(k)), 8);
    o += `EAX=${d("rax")} EBX=${d("rbx")} ECX=${d("rcx")} EDX=${d("rdx")}\n`;
    o += `ESI=${d("rsi")} EDI=${d("rdi")} EBP=${d("rbp")} ESP=${d("rsp")}\n`;
    o += `EIP=${d("rip")} EFL=${h(eflags, 8)} [${fl}] ${tail}`;
  }
  for (
    const [n, k] of [["ES", "es"], ["CS", "cs"], ["SS", "ss"], ["DS", "ds"], ["FS", "fs"], ["GS", "gs"], [
      "LDT",
      "ldt",
    ], ["TR", "tr"]] as const
  ) {
    o += dumpSeg(n, r.seg[k], cs64, pe, lma, limitBits);
  }
  const dr = extra.dr ?? { dr0: 0n, dr1: 0n, dr2: 0n, dr3: 0n, dr6: 0xffff0ff0n, dr7: 0x400n };
  if (lma) {
    o += `GDT=     ${h(BigInt(r.gdt.base), 16)} ${h(r.gdt.limit, 8)}\n`;
    o += `IDT=     ${h(BigInt(r.idt.base), 16)} ${h(r.idt.limit, 8)}\n`;
    o += `CR0=${h(BigInt.asUintN(32, r.cr.cr0), 8)} CR2=${h(r.cr.cr2, 16)} CR3=${h(r.cr.cr3, 16)} ` +
      `CR4=${h(BigInt.asUintN(32, r.cr.cr4), 8)}\n`;
    o += `DR0=${h(dr.dr0, 16)} DR1=${h(dr.dr1, 16)} DR2=${h(dr.dr2, 16)} DR3=${h(dr.dr3, 16)} \n`;
    o += `DR6=${h(dr.dr6, 16)} DR7=${h(dr.dr7, 16)}\n`;
  } else {
    const w = (v: bigint | number) => h(BigInt.asUintN(32, BigInt(v)), 8);
    o += `GDT=     ${w(r.gdt.base)} ${h(r.gdt.limit, 8)}\n`;
    o += `IDT=     ${w(r.idt.base)} ${h(r.idt.limit, 8)}\n`;
    o += `CR0=${w(r.cr.cr0)} CR2=${w(r.cr.cr2)} CR3=${w(r.cr.cr3)} CR4=${w(r.cr.cr4)}\n`;
    // TARGET_FMT_lx is 16 digits on the x86_64 target even outside long mode.
    o += `DR0=${h(dr.dr0, 16)} DR1=${h(dr.dr1, 16)} DR2=${h(dr.dr2, 16)} DR3=${h(dr.dr3, 16)} \n`;
    o += `DR6=${h(dr.dr6, 16)} DR7=${h(dr.dr7, 16)}\n`;
  }
  o += `EFER=${h(efer, 16)}\n`;
  const fpu = extra.fpu ?? { fcw: 0x37f, fsw: 0, top: 0, ftw: 0, st: [] };
  const fsw = ((fpu.fsw & ~0x3800) | ((fpu.top & 7) << 11)) & 0xffff;
  o += `FCW=${h(fpu.fcw, 4)} FSW=${h(fsw, 4)} [ST=${fpu.top & 7}] FTW=${h(fpu.ftw, 2)} ` +
    `MXCSR=${h(extra.mxcsr ?? 0x1f80, 8)}\n`;
  for (let i = 0; i < 8; i++) {
    const st = fpu.st[i] ?? { mant: 0n, exp: 0 };
    o += `FPR${i}=${h(st.mant, 16)} ${h(st.exp & 0xffff, 4)}` + ((i & 1) ? "\n" : " ");
  }
  const nb = cs64 ? 16 : 8;
  const lane = (i: number, j: number) => h(extra.vec?.[i]?.[j] ?? 0n, 16);
  for (let i = 0; i < nb; i++) {
    const n = String(i).padStart(2, "0");
    if (extra.ymm) o += `YMM${n}=${lane(i, 3)} ${lane(i, 2)} ${lane(i, 1)} ${lane(i, 0)}\n`;
    else o += `XMM${n}=${lane(i, 1)} ${lane(i, 0)}` + ((i & 1) ? "\n" : " ");
  }
  return o;
}

/** QEMU monitor_printc: a character in single quotes with C escapes. */
export function printc(c: number): string {
  c &= 0xff;
  let s: string;
  if (c === 0x27) s = "\\'";
  else if (c === 0x5c) s = "\\\\";
  else if (c === 0x0a) s = "\\n";
  else if (c === 0x0d) s = "\\r";
  else if (c >= 32 && c <= 126) s = String.fromCharCode(c);
  else s = "\\x" + c.toString(16).padStart(2, "0");
  return `'${s}'`;
}

/** Format letters of x/xp/print: QEMU's o x u d c i, plus gdb's t (binary), a (address) and s (string). */
export type DumpFormat = "x" | "d" | "u" | "o" | "t" | "c" | "a" | "i" | "s";

/** One value as memory_dump prints it (with its leading space); `v` is already masked to `size` bytes. */
function dumpValue(v: bigint, size: number, format: DumpFormat): string {
  const bits = size * 8;
  switch (format) {
    case "o": {
      const digits = Math.ceil(bits / 3);
      const s = v === 0n ? "0" : "0" + v.toString(8);
      return " " + s.padStart(digits);
    }
    case "u":
      return " " + v.toString().padStart(Math.ceil((bits * 10) / 33));
    case "d": {
      const sv = size === 8 ? BigInt.asIntN(64, v) : v;
      return " " + sv.toString().padStart(Math.ceil((bits * 10) / 33));
    }
    case "c":
      return " " + printc(Number(v & 0xffn));
    case "t":
      return " " + v.toString(2).padStart(bits, "0");
    case "a":
    case "x":
    default:
      return " 0x" + v.toString(16).padStart(bits / 4, "0");
  }
}

/**
 * `x`/`xp` output (memory_dump). `read(addr, len)` returns the bytes or null when they cannot be accessed
 * ("Cannot access memory"). Addresses are printed as 16 hex digits, lines hold 16 bytes (8 for byte units).
 */
export function memoryDump(
  read: (addr: bigint, len: number) => Uint8Array | null,
  opts: {
    addr: bigint;
    count: number;
    format: DumpFormat;
    size: 1 | 2 | 4 | 8;
    /** Stream the text in chunks as it is produced (what is returned is only the unstreamed tail). */
    emit?: (text: string) => void;
  },
): string {
  let { addr } = opts;
  let wsize: number = opts.size;
  const format = opts.format;
  if (format === "s") return dumpStrings(read, addr, opts.count);
  let len = (wsize * opts.count) | 0; // a C int in QEMU's memory_dump
  const lineSize = wsize === 1 ? 8 : 16;
  if (format === "c") wsize = 1;
  let out = "";
  while (len > 0) {
    out += h(addr, 16) + ":";
    const l = Math.min(len, lineSize);
    const buf = read(addr, l);
    if (!buf) {
      out += " Cannot access memory\n";
      break;
    }
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (let i = 0; i < l; i += wsize) {
      let v: bigint;
      if (i + wsize > l) {
        // QEMU reads past the line end from its stack buffer; we read what is there, zero-extended.
        v = 0n;
        for (let k = Math.min(l, i + wsize) - 1; k >= i; k--) v = (v << 8n) | BigInt(buf[k]);
      } else if (wsize === 1) v = BigInt(dv.getUint8(i));
      else if (wsize === 2) v = BigInt(dv.getUint16(i, true));
      else if (wsize === 4) v = BigInt(dv.getUint32(i, true));
      else v = dv.getBigUint64(i, true);
      out += dumpValue(v, wsize, format);
    }
    out += "\n";
    if (opts.emit && out.length >= 1 << 16) {
      opts.emit(out);
      out = "";
    }
    addr = BigInt.asUintN(64, addr + BigInt(l));
    len -= l;
  }
  return out;
}

function dumpStrings(
  read: (addr: bigint, len: number) => Uint8Array | null,
  addr: bigint,
  count: number,
): string {
  let out = "";
  for (let n = 0; n < count; n++) {
    out += h(addr, 16) + ": ";
    let s = "";
    let len = 0;
    for (; len < 4096; len++) {
      const b = read(addr + BigInt(len), 1);
      if (!b) {
        out += "Cannot access memory\n";
        return out;
      }
      if (b[0] === 0) break;
      s += b[0] >= 32 && b[0] <= 126 && b[0] !== 0x22 && b[0] !== 0x5c
        ? String.fromCharCode(b[0])
        : "\\" + b[0].toString(8).padStart(3, "0");
    }
    out += `"${s}"\n`;
    addr += BigInt(len + 1);
  }
  return out;
}

/** `print` output (hmp_print): %#x (bare "0" for zero), %#o, %u, %d or a quoted character. */
export function formatPrint(v: bigint, format: DumpFormat): string {
  const u = BigInt.asUintN(64, v);
  switch (format) {
    case "o":
      return u === 0n ? "0" : "0" + u.toString(8);
    case "x":
    case "a":
      return u === 0n ? "0" : "0x" + u.toString(16);
    case "u":
      return u.toString();
    case "c":
      return printc(Number(u & 0xffn));
    case "t":
      return u.toString(2);
    case "d":
    default:
      return BigInt.asIntN(64, u).toString();
  }
}

/**
 * `x /Ni` disassembly in QEMU's capstone layout: "0x%08x: " then up to 8 code bytes " %02x", padding, two
 * spaces, mnemonic padded to 8, operands; longer instructions continue on extra lines. AT&T syntax.
 * `bitness` is 64, 32 or 16 (from CS.L / CS.D of the CPU).
 */
export function disassemble(
  read: (addr: bigint, len: number) => Uint8Array | null,
  addr: bigint,
  count: number,
  bitness: 16 | 32 | 64,
): string {
  const split = 8;
  const fmt = new Formatter(FormatterSyntax.Gas);
  fmt.gasShowMnemonicSizeSuffix = true;
  fmt.uppercaseHex = false;
  fmt.hexPrefix = "0x";
  fmt.hexSuffix = "";
  fmt.branchLeadingZeros = false;
  fmt.leadingZeros = false;
  fmt.spaceAfterOperandSeparator = true;
  fmt.ripRelativeAddresses = true; // capstone prints 0xa03f51(%rip)
  let out = "";
  try {
    for (let n = 0; n < count; n++) {
      let bytes: Uint8Array | null = null;
      let got = 15;
      for (; got > 0; got--) {
        bytes = read(addr, got);
        if (bytes) break;
      }
      if (!bytes || got === 0) {
        out += `0x${h(addr, 8).replace(/^0+(?=.{8})/, "")}: Cannot access memory\n`;
        break;
      }
      const dec = new Decoder(bitness, bytes, DecoderOptions.None);
      dec.ip = BigInt.asUintN(64, addr);
      const ins: Instruction = dec.decode();
      const size = ins.length;
      const mnemonic = fmt.formatMnemonic(ins);
      const ops = fmt.formatAllOperands(ins);
      ins.free();
      dec.free();
      const a = BigInt.asUintN(64, addr).toString(16).padStart(8, "0");
      out += `0x${a}: `;
      for (let i = 0; i < Math.min(size, split); i++) out += " " + bytes[i].toString(16).padStart(2, "0");
      if (size < split) out += " ".repeat((split - size) * 3);
      out += `  ${mnemonic.padEnd(8)} ${ops}\n`;
      for (let i = split; i < size; i += split) {
        out += `0x${(BigInt.asUintN(64, addr + BigInt(i))).toString(16).padStart(8, "0")}: `;
        for (let j = 0; j < split && i + j < size; j++) {
          out += " " + bytes[i + j].toString(16).padStart(2, "0");
        }
        out += "\n";
      }
      addr = BigInt.asUintN(64, addr + BigInt(size || 1));
    }
  } finally {
    fmt.free();
  }
  return out;
}
