/**
 * One KVM vCPU: the mmap'ed kvm_run page, register state in and out (CpuEntryState ↔ kvm_regs/sregs/msrs),
 * CPUID, and the synchronous dispatch of PIO/MMIO exits to the board's buses.
 * @module
 */
import type { CpuEntryState, CpuRegisters, IoBus, MmioBus, SegmentState } from "../accel.ts";
import { type Libc, MAP_SHARED, PROT_READ, PROT_WRITE, SysError } from "./ffi.ts";
import * as K from "./kvm_api.ts";
import { type CpuidEntry, encodeCpuid } from "./cpuid_codec.ts";

const GPR_NAMES = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rsp",
  "rbp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
  "rip",
  "rflags",
] as const;
const SEG_NAMES = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;

/** MSR numbers set at entry (values as QEMU's x86_cpu_reset / kvm_put_msrs). */
export const MSR_IA32_TSC = 0x10;
export const MSR_IA32_APICBASE = 0x1b;
export const MSR_IA32_MISC_ENABLE = 0x1a0;
export const MSR_IA32_CR_PAT = 0x277;
export const MSR_STAR = 0xc0000081;
export const MSR_LSTAR = 0xc0000082;
export const MSR_CSTAR = 0xc0000083;
export const MSR_SYSCALL_MASK = 0xc0000084;
export const MSR_KERNEL_GS_BASE = 0xc0000102;
/** QEMU: MSR_IA32_MISC_ENABLE_DEFAULT = fast strings. */
const MISC_ENABLE_DEFAULT = 1n;
/** Power-on PAT (SDM Vol. 3 §11.12.4). */
const PAT_DEFAULT = 0x0007040600070406n;

/**
 * Convert a SegmentState into a kvm_segment at `o`. `attrs` is the VMX access-rights layout (descriptor
 * bits 40..55): type 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15 — as core/boot and core/cpu use it.
 */
export function putSegment(dv: DataView, o: number, s: SegmentState): void {
  const a = s.attrs;
  dv.setBigUint64(o + K.SEG.base, BigInt.asUintN(64, BigInt(s.base)), true);
  dv.setUint32(o + K.SEG.limit, s.limit >>> 0, true);
  dv.setUint16(o + K.SEG.selector, s.selector & 0xffff, true);
  dv.setUint8(o + K.SEG.type, a & 0xf);
  dv.setUint8(o + K.SEG.s, (a >> 4) & 1);
  dv.setUint8(o + K.SEG.dpl, (a >> 5) & 3);
  dv.setUint8(o + K.SEG.present, (a >> 7) & 1);
  dv.setUint8(o + K.SEG.avl, (a >> 12) & 1);
  dv.setUint8(o + K.SEG.l, (a >> 13) & 1);
  dv.setUint8(o + K.SEG.db, (a >> 14) & 1);
  dv.setUint8(o + K.SEG.g, (a >> 15) & 1);
  dv.setUint8(o + K.SEG.unusable, (a >> 7) & 1 ? 0 : 1);
}

/** Read a kvm_segment at `o` back into a SegmentState. */
export function getSegment(dv: DataView, o: number): SegmentState {
  const attrs = (dv.getUint8(o + K.SEG.type) & 0xf) |
    (dv.getUint8(o + K.SEG.s) & 1) << 4 |
    (dv.getUint8(o + K.SEG.dpl) & 3) << 5 |
    (dv.getUint8(o + K.SEG.present) & 1) << 7 |
    (dv.getUint8(o + K.SEG.avl) & 1) << 12 |
    (dv.getUint8(o + K.SEG.l) & 1) << 13 |
    (dv.getUint8(o + K.SEG.db) & 1) << 14 |
    (dv.getUint8(o + K.SEG.g) & 1) << 15;
  return {
    selector: dv.getUint16(o + K.SEG.selector, true),
    base: Number(dv.getBigUint64(o + K.SEG.base, true)),
    limit: dv.getUint32(o + K.SEG.limit, true),
    attrs,
  };
}

/** A created vCPU with its kvm_run mapping. */
export class KvmVcpu {
  readonly fd: number;
  readonly index: number;
  /** The kvm_run page (plus the PIO data page KVM maps behind it). */
  readonly run: DataView;
  readonly runU8: Uint8Array;
  readonly #libc: Libc;
  readonly #runPtr: Deno.PointerObject;
  readonly #runSize: number;
  readonly #regs = new Uint8Array(K.SIZE.kvm_regs);
  readonly #sregs = new Uint8Array(K.SIZE.kvm_sregs);
  #closed = false;

  constructor(libc: Libc, fd: number, index: number, runSize: number) {
    this.#libc = libc;
    this.fd = fd;
    this.index = index;
    this.#runSize = runSize;
    this.#runPtr = libc.mmap(runSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const ab = Deno.UnsafePointerView.getArrayBuffer(this.#runPtr, runSize);
    this.run = new DataView(ab);
    this.runU8 = new Uint8Array(ab);
  }

  #check(call: string, r: number): number {
    if (r < 0) throw new SysError(call, -r, this.#libc.strerror(-r));
    return r;
  }

  /** KVM_SET_CPUID2. */
  setCpuid(entries: readonly CpuidEntry[]): void {
    this.#check("KVM_SET_CPUID2", this.#libc.ioctlBuf(this.fd, K.KVM_SET_CPUID2, encodeCpuid(entries)));
  }

  /** KVM_SET_MSRS; returns how many were accepted (KVM stops at the first it rejects). */
  setMsrs(msrs: ReadonlyArray<{ index: number; value: bigint }>): number {
    const b = new Uint8Array(K.SIZE.kvm_msrs + msrs.length * K.SIZE.kvm_msr_entry);
    const dv = new DataView(b.buffer);
    dv.setUint32(K.MSRS.nmsrs, msrs.length, true);
    msrs.forEach((m, i) => {
      const o = K.MSRS.entries + i * K.SIZE.kvm_msr_entry;
      dv.setUint32(o + K.MSR_ENTRY.index, m.index >>> 0, true);
      dv.setBigUint64(o + K.MSR_ENTRY.data, BigInt.asUintN(64, m.value), true);
    });
    return this.#check("KVM_SET_MSRS", this.#libc.ioctlBuf(this.fd, K.KVM_SET_MSRS, b));
  }

  /** KVM_GET_MSRS for the given indices; missing ones are absent from the result. */
  getMsrs(indices: readonly number[]): Map<number, bigint> {
    const b = new Uint8Array(K.SIZE.kvm_msrs + indices.length * K.SIZE.kvm_msr_entry);
    const dv = new DataView(b.buffer);
    dv.setUint32(K.MSRS.nmsrs, indices.length, true);
    indices.forEach((idx, i) => dv.setUint32(K.MSRS.entries + i * K.SIZE.kvm_msr_entry, idx >>> 0, true));
    const n = this.#check("KVM_GET_MSRS", this.#libc.ioctlBuf(this.fd, K.KVM_GET_MSRS, b));
    const out = new Map<number, bigint>();
    for (let i = 0; i < n; i++) {
      const o = K.MSRS.entries + i * K.SIZE.kvm_msr_entry;
      out.set(dv.getUint32(o, true), dv.getBigUint64(o + K.MSR_ENTRY.data, true));
    }
    return out;
  }

  /** Load a boot loader's entry state: kvm_regs, kvm_sregs (keeping KVM's apic_base) and the reset MSRs. */
  setEntryState(e: CpuEntryState): void {
    const rdv = new DataView(this.#regs.buffer);
    this.#regs.fill(0);
    for (const name of GPR_NAMES) {
      const v = e.regs[name] ?? (name === "rflags" ? 2n : 0n);
      rdv.setBigUint64(K.REGS[name], BigInt.asUintN(64, name === "rflags" ? v | 2n : v), true);
    }
    const sdv = new DataView(this.#sregs.buffer);
    this.#check("KVM_GET_SREGS", this.#libc.ioctlBuf(this.fd, K.KVM_GET_SREGS, this.#sregs));
    const segs: Record<(typeof SEG_NAMES)[number], SegmentState> = {
      cs: e.cs,
      ds: e.ds,
      es: e.es,
      fs: e.fs,
      gs: e.gs,
      ss: e.ss,
      tr: e.tr,
      ldt: e.ldtr,
    };
    for (const n of SEG_NAMES) putSegment(sdv, K.SREGS[n], segs[n]);
    sdv.setBigUint64(K.SREGS.gdt + K.DTABLE.base, BigInt(e.gdt.base), true);
    sdv.setUint16(K.SREGS.gdt + K.DTABLE.limit, e.gdt.limit & 0xffff, true);
    sdv.setBigUint64(K.SREGS.idt + K.DTABLE.base, BigInt(e.idt.base), true);
    sdv.setUint16(K.SREGS.idt + K.DTABLE.limit, e.idt.limit & 0xffff, true);
    sdv.setBigUint64(K.SREGS.cr0, BigInt.asUintN(64, e.cr0), true);
    sdv.setBigUint64(K.SREGS.cr2, 0n, true);
    sdv.setBigUint64(K.SREGS.cr3, BigInt.asUintN(64, e.cr3), true);
    sdv.setBigUint64(K.SREGS.cr4, BigInt.asUintN(64, e.cr4), true);
    sdv.setBigUint64(K.SREGS.cr8, 0n, true);
    sdv.setBigUint64(K.SREGS.efer, BigInt.asUintN(64, e.efer), true);
    // No pending external interrupt.
    for (let i = 0; i < 32; i++) sdv.setUint8(K.SREGS.interrupt_bitmap + i, 0);
    this.#check("KVM_SET_SREGS", this.#libc.ioctlBuf(this.fd, K.KVM_SET_SREGS, this.#sregs));
    this.#check("KVM_SET_REGS", this.#libc.ioctlBuf(this.fd, K.KVM_SET_REGS, this.#regs));
    this.setMsrsLenient([
      { index: MSR_IA32_MISC_ENABLE, value: MISC_ENABLE_DEFAULT },
      { index: MSR_IA32_CR_PAT, value: PAT_DEFAULT },
      { index: MSR_STAR, value: 0n },
      { index: MSR_LSTAR, value: 0n },
      { index: MSR_CSTAR, value: 0n },
      { index: MSR_SYSCALL_MASK, value: 0n },
      { index: MSR_KERNEL_GS_BASE, value: 0n },
    ]);
  }

  /** Set MSRs one batch at a time, skipping any the host rejects (kvm_pvm refuses some). Returns the rejected ones. */
  setMsrsLenient(msrs: ReadonlyArray<{ index: number; value: bigint }>): number[] {
    const rejected: number[] = [];
    let rest = msrs.slice();
    while (rest.length > 0) {
      const n = this.setMsrs(rest);
      if (n < rest.length) rejected.push(rest[n].index);
      rest = rest.slice(n + 1);
    }
    return rejected;
  }

  /** KVM_GET_MP_STATE (KVM_MP_STATE_*), or -1 when unsupported. */
  mpState(): number {
    const b = new Uint8Array(4);
    const r = this.#libc.ioctlBuf(this.fd, K.KVM_GET_MP_STATE, b);
    return r < 0 ? -1 : new DataView(b.buffer).getUint32(0, true);
  }

  /** KVM_SET_MP_STATE. */
  setMpState(state: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, state, true);
    this.#check("KVM_SET_MP_STATE", this.#libc.ioctlBuf(this.fd, K.KVM_SET_MP_STATE, b));
  }

  /** Registers via KVM_GET_REGS/KVM_GET_SREGS. */
  registers(): CpuRegisters {
    this.#check("KVM_GET_REGS", this.#libc.ioctlBuf(this.fd, K.KVM_GET_REGS, this.#regs));
    this.#check("KVM_GET_SREGS", this.#libc.ioctlBuf(this.fd, K.KVM_GET_SREGS, this.#sregs));
    const rdv = new DataView(this.#regs.buffer);
    const sdv = new DataView(this.#sregs.buffer);
    const gpr: Record<string, bigint> = {};
    for (const n of GPR_NAMES) gpr[n] = rdv.getBigUint64(K.REGS[n], true);
    const seg = {
      es: getSegment(sdv, K.SREGS.es),
      cs: getSegment(sdv, K.SREGS.cs),
      ss: getSegment(sdv, K.SREGS.ss),
      ds: getSegment(sdv, K.SREGS.ds),
      fs: getSegment(sdv, K.SREGS.fs),
      gs: getSegment(sdv, K.SREGS.gs),
      ldt: getSegment(sdv, K.SREGS.ldt),
      tr: getSegment(sdv, K.SREGS.tr),
    };
    const dt = (o: number) => ({
      base: Number(sdv.getBigUint64(o + K.DTABLE.base, true)),
      limit: sdv.getUint16(o + K.DTABLE.limit, true),
    });
    const mp = this.mpState();
    return {
      gpr,
      seg,
      gdt: dt(K.SREGS.gdt),
      idt: dt(K.SREGS.idt),
      cr: {
        cr0: sdv.getBigUint64(K.SREGS.cr0, true),
        cr2: sdv.getBigUint64(K.SREGS.cr2, true),
        cr3: sdv.getBigUint64(K.SREGS.cr3, true),
        cr4: sdv.getBigUint64(K.SREGS.cr4, true),
        cr8: sdv.getBigUint64(K.SREGS.cr8, true),
      },
      efer: sdv.getBigUint64(K.SREGS.efer, true),
      halted: mp === K.KVM_MP_STATE_HALTED,
    };
  }

  /**
   * Complete a KVM_EXIT_IO: each of `count` items of `size` bytes goes through `io` (string I/O repeats).
   * IN results are written into the PIO data page, where KVM picks them up on the next KVM_RUN.
   */
  dispatchIo(io: IoBus): void {
    const run = this.run;
    const dir = run.getUint8(K.RUN.io_direction);
    const size = run.getUint8(K.RUN.io_size);
    const port = run.getUint16(K.RUN.io_port, true);
    const count = run.getUint32(K.RUN.io_count, true);
    let off = Number(run.getBigUint64(K.RUN.io_data_offset, true));
    for (let i = 0; i < count; i++, off += size) {
      if (size === 1) {
        if (dir === K.KVM_EXIT_IO_OUT) io.write(port, 1, run.getUint8(off));
        else run.setUint8(off, io.read(port, 1) & 0xff);
      } else if (size === 2) {
        if (dir === K.KVM_EXIT_IO_OUT) io.write(port, 2, run.getUint16(off, true));
        else run.setUint16(off, io.read(port, 2) & 0xffff, true);
      } else {
        if (dir === K.KVM_EXIT_IO_OUT) io.write(port, 4, run.getUint32(off, true));
        else run.setUint32(off, io.read(port, 4) >>> 0, true);
      }
    }
  }

  /** Complete a KVM_EXIT_MMIO through `mmio`; 8-byte accesses become two 4-byte ones (low half first). */
  dispatchMmio(mmio: MmioBus): void {
    const run = this.run;
    const addrBig = run.getBigUint64(K.RUN.mmio_phys_addr, true);
    const addr = Number(addrBig);
    const len = run.getUint32(K.RUN.mmio_len, true);
    const isWrite = run.getUint8(K.RUN.mmio_is_write) !== 0;
    const d = K.RUN.mmio_data;
    if (isWrite) {
      switch (len) {
        case 1:
          mmio.write(addr, 1, run.getUint8(d));
          break;
        case 2:
          mmio.write(addr, 2, run.getUint16(d, true));
          break;
        case 4:
          mmio.write(addr, 4, run.getUint32(d, true));
          break;
        case 8:
          mmio.write(addr, 4, run.getUint32(d, true));
          mmio.write(addr + 4, 4, run.getUint32(d + 4, true));
          break;
        default:
          for (let i = 0; i < len && i < 8; i++) mmio.write(addr + i, 1, run.getUint8(d + i));
      }
    } else {
      switch (len) {
        case 1:
          run.setUint8(d, mmio.read(addr, 1) & 0xff);
          break;
        case 2:
          run.setUint16(d, mmio.read(addr, 2) & 0xffff, true);
          break;
        case 4:
          run.setUint32(d, mmio.read(addr, 4) >>> 0, true);
          break;
        case 8:
          run.setUint32(d, mmio.read(addr, 4) >>> 0, true);
          run.setUint32(d + 4, mmio.read(addr + 4, 4) >>> 0, true);
          break;
        default:
          for (let i = 0; i < len && i < 8; i++) run.setUint8(d + i, mmio.read(addr + i, 1) & 0xff);
      }
    }
  }

  /** KVM_GET_LAPIC: the in-kernel LAPIC's 1 KiB register page (struct kvm_lapic_state). */
  getLapic(): Uint8Array {
    const b = new Uint8Array(K.SIZE.kvm_lapic_state);
    this.#check("KVM_GET_LAPIC", this.#libc.ioctlBuf(this.fd, K.KVM_GET_LAPIC, b));
    return b;
  }

  /** KVM_SET_LAPIC with a register page as getLapic returned it. */
  setLapic(page: Uint8Array): void {
    this.#check("KVM_SET_LAPIC", this.#libc.ioctlBuf(this.fd, K.KVM_SET_LAPIC, page.slice()));
  }

  /**
   * KVM_SET_VCPU_EVENTS with nothing pending (no exception, interrupt, NMI or interrupt shadow), as after
   * RESET. Returns 0 or -errno (kvm_pvm may refuse parts of it; the caller decides).
   */
  clearEvents(): number {
    const b = new Uint8Array(K.SIZE.kvm_vcpu_events);
    // All-zero events; the flags make nmi.pending and the interrupt shadow count too.
    new DataView(b.buffer).setUint32(
      K.VCPU_EVENTS.flags,
      K.KVM_VCPUEVENT_VALID_NMI_PENDING | K.KVM_VCPUEVENT_VALID_SHADOW,
      true,
    );
    return this.#libc.ioctlBuf(this.fd, K.KVM_SET_VCPU_EVENTS, b);
  }

  /** KVM_INTERRUPT: queue external interrupt `vector` (userspace PIC ExtINT under split irqchip). */
  interrupt(vector: number): number {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, vector & 0xff, true);
    return this.#libc.ioctlBuf(this.fd, K.KVM_INTERRUPT, b);
  }

  /** KVM_SET_SIGNAL_MASK: the signal mask in force while inside KVM_RUN (8-byte kernel sigset). */
  setSignalMask(set: Uint8Array): void {
    const b = new Uint8Array(4 + 8);
    new DataView(b.buffer).setUint32(0, 8, true);
    b.set(set.subarray(0, 8), 4);
    this.#check("KVM_SET_SIGNAL_MASK", this.#libc.ioctlBuf(this.fd, K.KVM_SET_SIGNAL_MASK, b));
  }

  /** KVM_GET_TSC_KHZ, or 0 when unsupported. */
  tscKhz(): number {
    const r = this.#libc.ioctl(this.fd, K.KVM_GET_TSC_KHZ, 0);
    return r < 0 ? 0 : r;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#libc.munmap(this.#runPtr, this.#runSize);
    this.#libc.close(this.fd);
  }
}
