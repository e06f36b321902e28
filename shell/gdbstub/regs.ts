/**
 * The x86-64 register file as QEMU's gdbstub presents it (target/i386/gdbstub.c, gdb-xml/i386-64bit.xml):
 * 66 registers — rax rbx rcx rdx rsi rdi rbp rsp r8..r15, rip, eflags, cs ss ds es fs gs, fs_base gs_base
 * k_gs_base, cr0 cr2 cr3 cr4 cr8 efer, st0..st7, fctrl fstat ftag fiseg fioff foseg fooff fop, xmm0..xmm15,
 * mxcsr — their target description, and conversion between `DebugRegisters` and gdb's little-endian bytes.
 * @module
 */
import type { DebugRegisters } from "../../core/accel.ts";

/** One register of the layout. */
export interface RegDef {
  name: string;
  /** Size in bytes. */
  size: number;
  /** gdb type for the target description. */
  type: string;
  group?: string;
}

const GPR_GDB = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"];
/** Index of each gdb GPR in GPR_NAMES (x86 encoding) order. */
const GPR_INDEX = [0, 3, 1, 2, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15];
const SEGS = ["cs", "ss", "ds", "es", "fs", "gs"];
/** DebugRegisters.sel is es cs ss ds fs gs. */
const SEG_INDEX = [1, 2, 3, 0, 4, 5];

/** The 66 registers, in gdb's numbering. */
export const REGS: readonly RegDef[] = [
  ...GPR_GDB.map((n, i) => ({ name: n, size: 8, type: i >= 6 ? "data_ptr" : "int64" })),
  ...[8, 9, 10, 11, 12, 13, 14, 15].map((n) => ({ name: `r${n}`, size: 8, type: "int64" })),
  { name: "rip", size: 8, type: "code_ptr" },
  { name: "eflags", size: 4, type: "i386_eflags" },
  ...SEGS.map((n) => ({ name: n, size: 4, type: "int32" })),
  { name: "fs_base", size: 8, type: "int64" },
  { name: "gs_base", size: 8, type: "int64" },
  { name: "k_gs_base", size: 8, type: "int64" },
  { name: "cr0", size: 8, type: "i386_cr0" },
  { name: "cr2", size: 8, type: "int64" },
  { name: "cr3", size: 8, type: "i386_cr3" },
  { name: "cr4", size: 8, type: "i386_cr4" },
  { name: "cr8", size: 8, type: "int64" },
  { name: "efer", size: 8, type: "i386_efer" },
  ...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({ name: `st${i}`, size: 10, type: "i387_ext" })),
  ...["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"].map((n) => ({
    name: n,
    size: 4,
    type: "int",
    group: "float",
  })),
  ...Array.from({ length: 16 }, (_, i) => ({ name: `xmm${i}`, size: 16, type: "vec128" })),
  { name: "mxcsr", size: 4, type: "i386_mxcsr", group: "vector" },
];

/** Register numbers of interest. */
export const REG_RIP = 16, REG_ST0 = 33, REG_FCTRL = 41, REG_XMM0 = 49, REG_MXCSR = 65;

const flags = (id: string, size: number, fields: Array<[string, number, number?]>) =>
  `  <flags id="${id}" size="${size}">\n` +
  fields.map(([n, s, e]) => `    <field name="${n}" start="${s}" end="${e ?? s}"/>\n`).join("") +
  `  </flags>\n`;

/** gdb-xml/i386-64bit.xml: one core feature holding all 66 registers in the order above. */
export const I386_64BIT_XML = `<?xml version="1.0"?>
<!DOCTYPE feature SYSTEM "gdb-target.dtd">
<feature name="org.gnu.gdb.i386.core">
` +
  flags("i386_eflags", 4, [
    ["CF", 0],
    ["", 1],
    ["PF", 2],
    ["AF", 4],
    ["ZF", 6],
    ["SF", 7],
    ["TF", 8],
    ["IF", 9],
    ["DF", 10],
    ["OF", 11],
    ["NT", 14],
    ["RF", 16],
    ["VM", 17],
    ["AC", 18],
    ["VIF", 19],
    ["VIP", 20],
    ["ID", 21],
  ]) +
  flags("i386_cr0", 8, [
    ["PG", 31],
    ["CD", 30],
    ["NW", 29],
    ["AM", 18],
    ["WP", 16],
    ["NE", 5],
    ["ET", 4],
    ["TS", 3],
    ["EM", 2],
    ["MP", 1],
    ["PE", 0],
  ]) +
  flags("i386_cr3", 8, [["PDBR", 12, 63], ["PCID", 0, 11]]) +
  flags("i386_cr4", 8, [
    ["VME", 0],
    ["PVI", 1],
    ["TSD", 2],
    ["DE", 3],
    ["PSE", 4],
    ["PAE", 5],
    ["MCE", 6],
    ["PGE", 7],
    ["PCE", 8],
    ["OSFXSR", 9],
    ["OSXMMEXCPT", 10],
    ["UMIP", 11],
    ["LA57", 12],
    ["VMXE", 13],
    ["SMXE", 14],
    ["FSGSBASE", 16],
    ["PCIDE", 17],
    ["OSXSAVE", 18],
    ["SMEP", 20],
    ["SMAP", 21],
    ["PKE", 22],
  ]) +
  flags("i386_efer", 8, [["TCE", 15], ["FFXSR", 14], ["LMSLE", 13], ["SVME", 12], ["NXE", 11], ["LMA", 10], [
    "LME",
    8,
  ], ["SCE", 0]]) +
  `  <vector id="v4f" type="ieee_single" count="4"/>
  <vector id="v2d" type="ieee_double" count="2"/>
  <vector id="v16i8" type="int8" count="16"/>
  <vector id="v8i16" type="int16" count="8"/>
  <vector id="v4i32" type="int32" count="4"/>
  <vector id="v2i64" type="int64" count="2"/>
  <union id="vec128">
    <field name="v4_float" type="v4f"/>
    <field name="v2_double" type="v2d"/>
    <field name="v16_int8" type="v16i8"/>
    <field name="v8_int16" type="v8i16"/>
    <field name="v4_int32" type="v4i32"/>
    <field name="v2_int64" type="v2i64"/>
    <field name="uint128" type="uint128"/>
  </union>
` +
  flags("i386_mxcsr", 4, [
    ["IE", 0],
    ["DE", 1],
    ["ZE", 2],
    ["OE", 3],
    ["UE", 4],
    ["PE", 5],
    ["DAZ", 6],
    ["IM", 7],
    ["DM", 8],
    ["ZM", 9],
    ["OM", 10],
    ["UM", 11],
    ["PM", 12],
    ["FZ", 15],
  ]) +
  REGS.map((r) =>
    `  <reg name="${r.name}" bitsize="${r.size * 8}" type="${r.type}"${
      r.group ? ` group="${r.group}"` : ""
    }/>\n`
  ).join("") +
  `</feature>
`;

/** target.xml as QEMU builds it: the architecture and an include of the core file. */
export const TARGET_XML = `<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target>` +
  `<architecture>i386:x86-64</architecture><xi:include href="i386-64bit.xml"/></target>`;

/** qXfer:features:read annexes. */
export const FEATURE_FILES: ReadonlyMap<string, string> = new Map([
  ["target.xml", TARGET_XML],
  ["i386-64bit.xml", I386_64BIT_XML],
]);

function putLE(out: Uint8Array, off: number, size: number, v: bigint): void {
  let x = BigInt.asUintN(size * 8, v);
  for (let i = 0; i < size; i++) {
    out[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
}

function getLE(b: Uint8Array, off: number, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[off + i] ?? 0);
  return v;
}

/** Bytes of register `n` (empty for a number outside the layout). */
export function readReg(r: DebugRegisters, n: number): Uint8Array {
  const def = REGS[n];
  if (!def) return new Uint8Array(0);
  const out = new Uint8Array(def.size);
  if (n < 16) putLE(out, 0, 8, r.gpr[GPR_INDEX[n]]);
  else if (n === 16) putLE(out, 0, 8, r.rip);
  else if (n === 17) putLE(out, 0, 4, r.rflags);
  else if (n < 24) putLE(out, 0, 4, BigInt(r.sel[SEG_INDEX[n - 18]]));
  else if (n < 33) {
    const v = [r.fsBase, r.gsBase, r.kernelGsBase, r.cr0, r.cr2, r.cr3, r.cr4, r.cr8, r.efer][n - 24];
    putLE(out, 0, 8, v);
  } else if (n < REG_FCTRL) out.set(r.st.subarray((n - REG_ST0) * 10, (n - REG_ST0) * 10 + 10));
  else if (n < REG_XMM0) {
    // QEMU reports ftag, fiseg, fioff, foseg, fooff and fop as 0.
    putLE(out, 0, 4, BigInt(n === REG_FCTRL ? r.fcw : n === REG_FCTRL + 1 ? r.fsw : 0));
  } else if (n < REG_MXCSR) out.set(r.xmm.subarray((n - REG_XMM0) * 16, (n - REG_XMM0) * 16 + 16));
  else putLE(out, 0, 4, BigInt(r.mxcsr));
  return out;
}

/** Store register `n` from `b` into `r`; returns the bytes consumed (0: no such register or too short). */
export function writeReg(r: DebugRegisters, n: number, b: Uint8Array): number {
  const def = REGS[n];
  if (!def || b.length < def.size) return 0;
  const v = def.size <= 8 ? getLE(b, 0, def.size) : 0n;
  if (n < 16) r.gpr[GPR_INDEX[n]] = v;
  else if (n === 16) r.rip = v;
  else if (n === 17) r.rflags = v;
  else if (n < 24) r.sel[SEG_INDEX[n - 18]] = Number(v & 0xffffn);
  else if (n < 33) {
    const k =
      (["fsBase", "gsBase", "kernelGsBase", "cr0", "cr2", "cr3", "cr4", "cr8", "efer"] as const)[n - 24];
    r[k] = v;
  } else if (n < REG_FCTRL) r.st.set(b.subarray(0, 10), (n - REG_ST0) * 10);
  else if (n === REG_FCTRL) r.fcw = Number(v & 0xffffn);
  else if (n === REG_FCTRL + 1) r.fsw = Number(v & 0xffffn);
  else if (n < REG_XMM0) { /* ftag, fiseg, fioff, foseg, fooff, fop: ignored, as QEMU */ }
  else if (n < REG_MXCSR) r.xmm.set(b.subarray(0, 16), (n - REG_XMM0) * 16);
  else r.mxcsr = Number(v);
  return def.size;
}

/** The `g` packet body: every register, concatenated. */
export function readAll(r: DebugRegisters): Uint8Array {
  const parts = REGS.map((_, n) => readReg(r, n));
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Apply a `G` packet body (registers up to the end of the data, as QEMU). */
export function writeAll(r: DebugRegisters, b: Uint8Array): void {
  let off = 0;
  for (let n = 0; n < REGS.length && off < b.length; n++) {
    const used = writeReg(r, n, b.subarray(off));
    if (used === 0) break;
    off += used;
  }
}
