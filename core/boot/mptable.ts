/**
 * Intel MultiProcessor Specification 1.4 tables as qboot writes them for `-M microvm` (qboot mptable.c):
 * the floating pointer at 0x9fc00 (in the 1 KiB EBDA that the e820 map reserves), then the configuration
 * table right after it. With `ioapic: false` the IO-APIC and its interrupt-source entries are left out.
 * @module
 */
import { UserError } from "../types.ts";
import type { GuestMemory } from "../types.ts";

/** Where qboot puts the MP floating pointer structure (MPTABLE_START). */
export const MPTABLE_START = 0x9fc00;
/** Bytes available for the whole table: the EBDA ends at 0xa0000. */
export const MPTABLE_MAX_SIZE = 0x400;
/** Default local APIC base (MP spec §4.2 "Address of Local APIC"). */
export const APIC_DEFAULT_PHYS_BASE = 0xfee00000;
/** Default IO-APIC base. */
export const IO_APIC_DEFAULT_PHYS_BASE = 0xfec00000;
/** APIC version qboot reports for every local APIC and the IO-APIC. */
export const MP_APIC_VERSION = 0x14;

const MPF_SIZE = 16;
const MPC_TABLE_SIZE = 44;
const MPC_CPU_SIZE = 20;
const MPC_SMALL_SIZE = 8; // bus, ioapic, intsrc, lintsrc entries

const MP_PROCESSOR = 0;
const MP_BUS = 1;
const MP_IOAPIC = 2;
const MP_INTSRC = 3;
const MP_LINTSRC = 4;

const CPU_ENABLED = 1;
const CPU_BOOTPROCESSOR = 2;
const MPC_APIC_USABLE = 1;

const MP_INT = 0;
const MP_NMI = 1;
const MP_EXTINT = 3;
const MP_IRQDIR_DEFAULT = 0;

const MPC_OEM = "QBOOT   ";
const MPC_PRODUCT_ID = "000000000000";
const BUS_TYPE_ISA = "ISA   ";

/** What the MP table describes. */
export interface MpTableOptions {
  /** Number of vCPUs (APIC ids 0..ncpus-1; the IO-APIC gets id ncpus+1). */
  ncpus: number;
  /** CPUID.01H:EAX of the guest CPU (stepping/model/family), copied into each processor entry. */
  cpuSignature: number;
  /** CPUID.01H:EDX of the guest CPU, copied into each processor entry. */
  cpuFeatures: number;
  /** Describe the IO-APIC at 0xfec00000 and route the 16 ISA IRQs to it. Default true. */
  ioapic?: boolean;
  /** fw_cfg FW_CFG_IRQ0_OVERRIDE: ISA IRQ 0 goes to IO-APIC pin 2 and IRQ 2 has no entry. Default true. */
  irq0Override?: boolean;
}

/** Largest vCPU count whose MP table still fits in the 1 KiB EBDA. */
export const MPTABLE_MAX_CPUS = Math.floor(
  (MPTABLE_MAX_SIZE - MPF_SIZE - MPC_TABLE_SIZE - 20 * MPC_SMALL_SIZE) / MPC_CPU_SIZE,
);

function ascii(dst: Uint8Array, off: number, s: string): void {
  for (let i = 0; i < s.length; i++) dst[off + i] = s.charCodeAt(i) & 0x7f;
}

function sum8(b: Uint8Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s += b[i];
  return s & 0xff;
}

/**
 * The bytes qboot writes at MPTABLE_START (floating pointer + configuration table), laid out for a
 * table based at `base`. Like qboot, the header's entry count stays 0 (Linux walks by length).
 * @throws UserError when ncpus is out of range for the table.
 */
export function buildMpTable(opts: MpTableOptions, base: number = MPTABLE_START): Uint8Array {
  const n = opts.ncpus;
  if (!Number.isInteger(n) || n < 1 || n > MPTABLE_MAX_CPUS) {
    throw new UserError(`Cannot build an MP table for ${n} CPUs: the limit is ${MPTABLE_MAX_CPUS}`);
  }
  const ioapic = opts.ioapic ?? true;
  const irq0Override = opts.irq0Override ?? true;
  const ioapicId = n + 1;
  const buf = new Uint8Array(MPTABLE_MAX_SIZE);
  const dv = new DataView(buf.buffer);

  // Floating pointer (MP spec §4.1).
  ascii(buf, 0, "_MP_");
  dv.setUint32(4, (base + MPF_SIZE) >>> 0, true);
  buf[8] = 1; // length in 16-byte paragraphs
  buf[9] = 4; // spec revision 1.4
  buf[10] = (0x100 - sum8(buf, 0, MPF_SIZE)) & 0xff;

  // Configuration table header (MP spec §4.2); length and checksum filled in last.
  const t = MPF_SIZE;
  ascii(buf, t, "PCMP");
  buf[t + 6] = 4;
  ascii(buf, t + 8, MPC_OEM);
  ascii(buf, t + 16, MPC_PRODUCT_ID);
  dv.setUint32(t + 36, APIC_DEFAULT_PHYS_BASE, true);

  let o = t + MPC_TABLE_SIZE;
  for (let i = 0; i < n; i++) {
    buf[o] = MP_PROCESSOR;
    buf[o + 1] = i;
    buf[o + 2] = MP_APIC_VERSION;
    buf[o + 3] = CPU_ENABLED | (i === 0 ? CPU_BOOTPROCESSOR : 0);
    dv.setUint32(o + 4, opts.cpuSignature >>> 0, true);
    dv.setUint32(o + 8, opts.cpuFeatures >>> 0, true);
    o += MPC_CPU_SIZE;
  }

  buf[o] = MP_BUS;
  buf[o + 1] = 0;
  ascii(buf, o + 2, BUS_TYPE_ISA);
  o += MPC_SMALL_SIZE;

  if (ioapic) {
    buf[o] = MP_IOAPIC;
    buf[o + 1] = ioapicId;
    buf[o + 2] = MP_APIC_VERSION;
    buf[o + 3] = MPC_APIC_USABLE;
    dv.setUint32(o + 4, IO_APIC_DEFAULT_PHYS_BASE, true);
    o += MPC_SMALL_SIZE;

    for (let irq = 0; irq < 16; irq++) {
      // With the override the PIT's IRQ 0 is wired to pin 2 and the cascade IRQ 2 has no entry.
      if (irq0Override && irq === 2) continue;
      buf[o] = MP_INTSRC;
      buf[o + 1] = MP_INT;
      dv.setUint16(o + 2, MP_IRQDIR_DEFAULT, true);
      buf[o + 4] = 0; // source bus: ISA
      buf[o + 5] = irq;
      buf[o + 6] = ioapicId;
      buf[o + 7] = irq0Override && irq === 0 ? 2 : irq;
      o += MPC_SMALL_SIZE;
    }
  }

  // LINT0 of every CPU: ExtINT (the 8259); LINT1 of all CPUs (0xff): NMI.
  buf[o] = MP_LINTSRC;
  buf[o + 1] = MP_EXTINT;
  buf[o + 6] = 0;
  buf[o + 7] = 0;
  o += MPC_SMALL_SIZE;
  buf[o] = MP_LINTSRC;
  buf[o + 1] = MP_NMI;
  buf[o + 6] = 0xff;
  buf[o + 7] = 1;
  o += MPC_SMALL_SIZE;

  dv.setUint16(t + 4, o - t, true);
  buf[t + 7] = (0x100 - sum8(buf, t, o)) & 0xff;
  return buf.slice(0, o);
}

/**
 * Build the MP table and write it at MPTABLE_START.
 * @returns the bytes written
 * @throws UserError when RAM does not reach the EBDA or ncpus is out of range
 */
export function writeMpTable(ram: GuestMemory, opts: MpTableOptions): Uint8Array {
  const bytes = buildMpTable(opts);
  if (!ram.write(MPTABLE_START, bytes)) {
    throw new UserError(
      `Cannot write the MP table at 0x${MPTABLE_START.toString(16)}: guest RAM is too small`,
    );
  }
  return bytes;
}
