/**
 * Local APIC architecture constants (register offsets, MSRs, bits, delivery modes; Intel SDM vol. 3
 * ch. 11, QEMU 7.2 hw/intc/apic.c), the saved-state shape and the 256-bit vector bitmap helpers, shared by
 * devices/lapic.ts and devices/apic_bus.ts.
 * @module
 */
import type { DeviceState } from "../core/types.ts";
import { StateError } from "../core/types.ts";

/** xAPIC register offsets (MMIO page; x2APIC MSR = 0x800 + offset / 16). */
export const APIC_ID = 0x020;
export const APIC_LVR = 0x030;
export const APIC_TASKPRI = 0x080;
export const APIC_ARBPRI = 0x090;
export const APIC_PROCPRI = 0x0a0;
export const APIC_EOI = 0x0b0;
export const APIC_RRR = 0x0c0;
export const APIC_LDR = 0x0d0;
export const APIC_DFR = 0x0e0;
export const APIC_SPIV = 0x0f0;
export const APIC_ISR = 0x100;
export const APIC_TMR = 0x180;
export const APIC_IRR = 0x200;
export const APIC_ESR = 0x280;
export const APIC_ICR = 0x300;
export const APIC_ICR2 = 0x310;
export const APIC_LVTT = 0x320;
export const APIC_LVTTHMR = 0x330;
export const APIC_LVTPC = 0x340;
export const APIC_LVT0 = 0x350;
export const APIC_LVT1 = 0x360;
export const APIC_LVTERR = 0x370;
export const APIC_TMICT = 0x380;
export const APIC_TMCCT = 0x390;
export const APIC_TDCR = 0x3e0;
export const APIC_SELF_IPI = 0x3f0;

/** MSRs. */
export const MSR_IA32_APICBASE = 0x1b;
export const MSR_IA32_TSC_DEADLINE = 0x6e0;
export const MSR_X2APIC_BASE = 0x800;

/** IA32_APIC_BASE bits. */
export const APICBASE_BSP = 0x100;
export const APICBASE_EXTD = 0x400;
export const APICBASE_ENABLE = 0x800;
export const APIC_DEFAULT_BASE = 0xfee00000;

/** Version register: version 0x14, max LVT entry 5. */
export const APIC_VERSION = 0x50014;

export const APIC_SPIV_ENABLE = 0x100;
export const APIC_LVT_MASKED = 1 << 16;
export const APIC_LVT_LEVEL_TRIGGER = 1 << 15;
export const APIC_LVT_REMOTE_IRR = 1 << 14;
export const APIC_ICR_LEVEL_ASSERT = 1 << 14;
export const APIC_ICR_DEST_LOGICAL = 1 << 11;

/** Delivery modes (ICR, LVT, MSI data bits 10:8). */
export const APIC_DM_FIXED = 0;
export const APIC_DM_LOWEST = 1;
export const APIC_DM_SMI = 2;
export const APIC_DM_NMI = 4;
export const APIC_DM_INIT = 5;
export const APIC_DM_STARTUP = 6;
export const APIC_DM_EXTINT = 7;

/** LVT timer modes (bits 18:17). */
export const APIC_TIMER_ONESHOT = 0;
export const APIC_TIMER_PERIODIC = 1;
export const APIC_TIMER_TSC_DEADLINE = 2;

/** ESR bits. */
export const APIC_ESR_SEND_ILLEGAL_VECTOR = 0x20;
export const APIC_ESR_RECV_ILLEGAL_VECTOR = 0x40;
export const APIC_ESR_ILLEGAL_REGISTER = 0x80;

export const LVT_TIMER = 0;
export const LVT_LINT0 = 3;
export const LVT_LINT1 = 4;
export const LVT_ERROR = 5;
export const LVT_NB = 6;
/** Shortest periodic timer period honoured (KVM's min_timer_period_us = 200). */
export const MIN_PERIODIC_NS = 200_000;
/** Writable bits per LVT entry (SDM fig. 11-8); delivery status and remote IRR are read-only. */
export const LVT_WRITABLE = [0x700ff, 0x107ff, 0x107ff, 0x1a7ff, 0x1a7ff, 0x100ff];

/** Saved LAPIC state (version 1). */
export interface LapicState extends DeviceState {
  version: 1;
  apicBase: number;
  id: number;
  tpr: number;
  ldr: number;
  dfr: number;
  svr: number;
  isr: number[];
  tmr: number[];
  irr: number[];
  esr: number;
  esrPending: number;
  icrLo: number;
  icrHi: number;
  lvt: number[];
  initialCount: number;
  divideConf: number;
  timerStartNs: number;
  tscDeadline: string;
  nmiPending: boolean;
  initPending: boolean;
  sipiVector: number;
  lint0Level: boolean;
  lint1Level: boolean;
}

/** 256-bit vector bitmaps (ISR/TMR/IRR) as eight 32-bit words. */
export function highestBit(a: Uint32Array): number {
  for (let i = 7; i >= 0; i--) {
    const w = a[i];
    if (w !== 0) return i * 32 + 31 - Math.clz32(w);
  }
  return -1;
}

export function setBit(a: Uint32Array, v: number): void {
  a[v >>> 5] |= 1 << (v & 31);
}

export function clearBit(a: Uint32Array, v: number): void {
  a[v >>> 5] &= ~(1 << (v & 31));
}

export function testBit(a: Uint32Array, v: number): boolean {
  return (a[v >>> 5] & (1 << (v & 31))) !== 0;
}

/** Check a saved LAPIC state field by field (StateError naming the bad field); values masked as loaded. */
export function validateLapicState(state: DeviceState) {
  const s = state as Partial<LapicState>;
  if (s.version !== 1) {
    throw new StateError(`Invalid apic state: unsupported version "${String(s.version)}"`);
  }
  const u32 = (v: unknown, name: string): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new StateError(`Invalid apic state: field "${name}" is not a 32-bit unsigned integer`);
    }
    return v;
  };
  const arr = (v: unknown, n: number, name: string): number[] => {
    if (!Array.isArray(v) || v.length !== n) {
      throw new StateError(`Invalid apic state: "${name}" must have ${n} entries`);
    }
    return v.map((x) => u32(x, name));
  };
  const bool = (v: unknown, name: string): boolean => {
    if (typeof v !== "boolean") {
      throw new StateError(`Invalid apic state: field "${name}" is not a boolean`);
    }
    return v;
  };
  if (typeof s.tscDeadline !== "string" || !/^\d+$/.test(s.tscDeadline)) {
    throw new StateError(`Invalid apic state: field "tscDeadline" is not a decimal string`);
  }
  if (typeof s.timerStartNs !== "number" || !Number.isFinite(s.timerStartNs)) {
    throw new StateError(`Invalid apic state: field "timerStartNs" is not a number`);
  }
  const sipi = s.sipiVector;
  if (typeof sipi !== "number" || !Number.isInteger(sipi) || sipi < -1 || sipi > 0xff) {
    throw new StateError(`Invalid apic state: field "sipiVector" out of range`);
  }
  return {
    apicBase: u32(s.apicBase, "apicBase"),
    id: u32(s.id, "id"),
    tpr: u32(s.tpr, "tpr") & 0xff,
    ldr: u32(s.ldr, "ldr"),
    dfr: u32(s.dfr, "dfr"),
    svr: u32(s.svr, "svr") & 0x1ff,
    isr: arr(s.isr, 8, "isr"),
    tmr: arr(s.tmr, 8, "tmr"),
    irr: arr(s.irr, 8, "irr"),
    esr: u32(s.esr, "esr"),
    esrPending: u32(s.esrPending, "esrPending"),
    icrLo: u32(s.icrLo, "icrLo"),
    icrHi: u32(s.icrHi, "icrHi"),
    lvt: arr(s.lvt, LVT_NB, "lvt"),
    initialCount: u32(s.initialCount, "initialCount"),
    divideConf: u32(s.divideConf, "divideConf") & 0xb,
    nmiPending: bool(s.nmiPending, "nmiPending"),
    initPending: bool(s.initPending, "initPending"),
    lint0Level: bool(s.lint0Level, "lint0Level"),
    lint1Level: bool(s.lint1Level, "lint1Level"),
    timerStartNs: s.timerStartNs,
    tscDeadline: s.tscDeadline,
    sipiVector: sipi,
  };
}
