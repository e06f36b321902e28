/**
 * The x86 power-on register state (Intel SDM Vol. 3 §9.1.1, table 9-1) as a CpuEntryState: what a vCPU
 * is given when no boot loader ran, e.g. a destination under `-incoming` whose vCPU state the migration
 * stream replaces before the guest runs.
 * @module
 */
import type { CpuEntryState, SegmentState } from "../accel.ts";
import { RESET_LDTR, zeroRegs } from "./_gdt.ts";

/** Real mode at F000:FFF0 (CS base 0xFFFF0000), data segments base 0 limit 0xFFFF, CR0 = 0x60000010. */
export function resetEntryState(): CpuEntryState {
  const data = (): SegmentState => ({ selector: 0, base: 0, limit: 0xffff, attrs: 0x93 });
  const regs = zeroRegs();
  regs.rip = 0xfff0n;
  regs.rflags = 0x2n;
  return {
    regs,
    cs: { selector: 0xf000, base: 0xffff0000, limit: 0xffff, attrs: 0x9b },
    ds: data(),
    es: data(),
    ss: data(),
    fs: data(),
    gs: data(),
    tr: { selector: 0, base: 0, limit: 0xffff, attrs: 0x8b },
    ldtr: { ...RESET_LDTR },
    gdt: { base: 0, limit: 0xffff },
    idt: { base: 0, limit: 0xffff },
    cr0: 0x60000010n,
    cr3: 0n,
    cr4: 0n,
    efer: 0n,
  };
}
