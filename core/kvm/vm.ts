/**
 * /dev/kvm and a KVM VM: capabilities, supported CPUID, memory slots from the board's PhysMap,
 * interrupt plumbing (split irqchip MSI, in-kernel irqchip lines, irqfd/ioeventfd).
 * @module
 */
import type { PhysMap } from "../accel.ts";
import { UserError } from "../types.ts";
import { EINTR, ENOENT, Libc, O_CLOEXEC, O_RDWR, SysError } from "./ffi.ts";
import * as K from "./kvm_api.ts";
import { KvmVcpu } from "./vcpu.ts";
import { type CpuidEntry, decodeCpuid } from "./cpuid_codec.ts";

export { type CpuidEntry, decodeCpuid, encodeCpuid } from "./cpuid_codec.ts";

/** One KVM memory slot as registered. */
export interface MemSlot {
  slot: number;
  gpa: number;
  size: number;
  /** Host virtual address of the first byte. */
  hva: bigint;
  readOnly: boolean;
}

const E2BIG = 7;
const PAGE = 4096;
/** QEMU's identity-map and TSS placement below the 4 GiB BIOS area (target/i386/kvm/kvm.c). */
export const IDENTITY_MAP_ADDR = 0xfeffc000;
export const TSS_ADDR = IDENTITY_MAP_ADDR + 0x1000;

/** The opened /dev/kvm device. */
export class KvmSystem {
  readonly libc: Libc;
  readonly fd: number;
  readonly runSize: number;

  private constructor(libc: Libc, fd: number) {
    this.libc = libc;
    this.fd = fd;
    const api = libc.ioctl(fd, K.KVM_GET_API_VERSION);
    if (api !== K.KVM_API_VERSION) {
      libc.close(fd);
      throw new UserError(`KVM API version ${api} is not supported (expected ${K.KVM_API_VERSION})`);
    }
    this.runSize = libc.ioctl(fd, K.KVM_GET_VCPU_MMAP_SIZE);
    if (this.runSize < K.SIZE.kvm_run) {
      libc.close(fd);
      throw new Error(`KVM_GET_VCPU_MMAP_SIZE returned ${this.runSize}`);
    }
  }

  /**
   * Open the KVM device. A missing or inaccessible device is a UserError with QEMU's wording
   * ("Could not access KVM kernel module: No such file or directory").
   */
  static open(path = "/dev/kvm", libc: Libc = new Libc()): KvmSystem {
    const fd = libc.open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      const text = -fd === ENOENT ? "No such file or directory" : libc.strerror(-fd);
      throw new UserError(`Could not access KVM kernel module: ${text}`);
    }
    return new KvmSystem(libc, fd);
  }

  /** KVM_CHECK_EXTENSION: 0 when absent, else a capability-specific value. */
  checkExtension(cap: number): number {
    const r = this.libc.ioctl(this.fd, K.KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
  }

  /** KVM_GET_SUPPORTED_CPUID, growing the buffer until it fits. */
  supportedCpuid(): CpuidEntry[] {
    for (let n = 64; n <= 4096; n *= 2) {
      const buf = new Uint8Array(K.SIZE.kvm_cpuid2 + n * K.SIZE.kvm_cpuid_entry2);
      const dv = new DataView(buf.buffer);
      dv.setUint32(K.CPUID2.nent, n, true);
      const r = this.libc.ioctlBuf(this.fd, K.KVM_GET_SUPPORTED_CPUID, buf);
      if (r === -E2BIG) continue;
      if (r < 0) throw new SysError("KVM_GET_SUPPORTED_CPUID", -r, this.libc.strerror(-r));
      return decodeCpuid(buf);
    }
    throw new Error("KVM_GET_SUPPORTED_CPUID: too many entries");
  }

  /** KVM_CREATE_VM. */
  createVm(): KvmVm {
    let fd = -EINTR;
    // KVM_CREATE_VM may fail with EINTR while the kernel tears down an old VM.
    for (let i = 0; i < 10 && fd === -EINTR; i++) fd = this.libc.ioctl(this.fd, K.KVM_CREATE_VM, 0);
    if (fd < 0) throw new SysError("KVM_CREATE_VM", -fd, this.libc.strerror(-fd));
    return new KvmVm(this, fd);
  }

  close(): void {
    this.libc.close(this.fd);
  }
}

/** Host address of a typed array's first byte (works for SharedArrayBuffer-backed arrays). */
export function hostAddress(u8: Uint8Array): bigint {
  return u8.length === 0 ? 0n : Deno.UnsafePointer.value(Deno.UnsafePointer.of(u8));
}

/**
 * Contiguous runs of the PhysMap: guest pages whose backing offsets are consecutive and share RO-ness.
 * Scans below 4 GiB page by page and above 4 GiB until the first hole.
 */
export function physRuns(
  phys: PhysMap,
): Array<{ gpa: number; offset: number; size: number; readOnly: boolean }> {
  const runs: Array<{ gpa: number; offset: number; size: number; readOnly: boolean }> = [];
  let cur: { gpa: number; offset: number; size: number; readOnly: boolean } | null = null;
  const visit = (gpn: number): boolean => {
    const off = phys.pageBase(gpn);
    if (off < 0) {
      cur = null;
      return false;
    }
    const ro = phys.isReadOnly(gpn);
    if (
      cur !== null && cur.offset + cur.size === off && cur.readOnly === ro &&
      cur.gpa + cur.size === gpn * PAGE
    ) {
      cur.size += PAGE;
    } else {
      cur = { gpa: gpn * PAGE, offset: off, size: PAGE, readOnly: ro };
      runs.push(cur);
    }
    return true;
  };
  const below = 0x100000; // 4 GiB in pages
  for (let gpn = 0; gpn < below; gpn++) visit(gpn);
  cur = null;
  const maxPages = Math.floor(phys.u8.length / PAGE);
  for (let gpn = below; gpn < below + maxPages; gpn++) if (!visit(gpn)) break;
  return runs;
}

/** A KVM virtual machine (VM fd). */
export class KvmVm {
  readonly sys: KvmSystem;
  readonly fd: number;
  readonly #libc: Libc;
  #slots: MemSlot[] = [];
  readonly #msi = new Uint8Array(K.SIZE.kvm_msi);
  readonly #msiDv = new DataView(this.#msi.buffer);
  readonly #irq = new Uint8Array(K.SIZE.kvm_irq_level);
  readonly #irqDv = new DataView(this.#irq.buffer);
  #closed = false;

  constructor(sys: KvmSystem, fd: number) {
    this.sys = sys;
    this.fd = fd;
    this.#libc = sys.libc;
  }

  #check(call: string, r: number): number {
    if (r < 0) throw new SysError(call, -r, this.#libc.strerror(-r));
    return r;
  }

  /** KVM_SET_IDENTITY_MAP_ADDR + KVM_SET_TSS_ADDR at QEMU's addresses (needed for real mode on VMX). */
  setSystemAddresses(): void {
    if (this.sys.checkExtension(K.KVM_CAP_SET_IDENTITY_MAP_ADDR)) {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, BigInt(IDENTITY_MAP_ADDR), true);
      this.#check("KVM_SET_IDENTITY_MAP_ADDR", this.#libc.ioctlBuf(this.fd, K.KVM_SET_IDENTITY_MAP_ADDR, b));
    }
    this.#check("KVM_SET_TSS_ADDR", this.#libc.ioctl(this.fd, K.KVM_SET_TSS_ADDR, TSS_ADDR));
  }

  /** KVM_ENABLE_CAP on the VM. */
  enableCap(cap: number, args: readonly (number | bigint)[] = []): void {
    const b = new Uint8Array(K.SIZE.kvm_enable_cap);
    const dv = new DataView(b.buffer);
    dv.setUint32(K.ENABLE_CAP.cap, cap, true);
    args.forEach((a, i) => dv.setBigUint64(K.ENABLE_CAP.args + 8 * i, BigInt(a), true));
    this.#check(`KVM_ENABLE_CAP(${cap})`, this.#libc.ioctlBuf(this.fd, K.KVM_ENABLE_CAP, b));
  }

  /** kernel-irqchip=split: in-kernel LAPICs, IOAPIC/PIC/PIT in userspace (QEMU uses 24 routes). */
  enableSplitIrqchip(ioapicPins = 24): void {
    this.enableCap(K.KVM_CAP_SPLIT_IRQCHIP, [ioapicPins]);
  }

  /** kernel-irqchip=on: in-kernel PIC, IOAPIC and LAPICs, plus the in-kernel PIT. */
  createIrqchip(withPit: boolean): void {
    this.#check("KVM_CREATE_IRQCHIP", this.#libc.ioctl(this.fd, K.KVM_CREATE_IRQCHIP, 0));
    if (withPit) {
      // kvm_pit_config.flags = KVM_PIT_SPEAKER_DUMMY (QEMU sets it).
      const b = new Uint8Array(K.SIZE.kvm_pit_config);
      new DataView(b.buffer).setUint32(0, 1, true);
      this.#check("KVM_CREATE_PIT2", this.#libc.ioctlBuf(this.fd, K.KVM_CREATE_PIT2, b));
    }
  }

  /** Register (or re-register) every RAM/ROM run of `phys` as memory slots; returns them. */
  mapMemory(phys: PhysMap): MemSlot[] {
    for (const s of this.#slots) this.#setSlot(s.slot, 0, 0, 0n, false);
    this.#slots = [];
    const base = hostAddress(phys.u8);
    let slot = 0;
    for (const r of physRuns(phys)) {
      const hva = base + BigInt(r.offset);
      if ((hva & 0xfffn) !== 0n) {
        throw new Error(
          `Cannot register guest RAM with KVM: host address 0x${hva.toString(16)} is not page-aligned ` +
            "(allocate the backing SharedArrayBuffer with 4 KiB slack and use an aligned view)",
        );
      }
      this.#setSlot(slot, r.gpa, r.size, hva, r.readOnly);
      this.#slots.push({ slot, gpa: r.gpa, size: r.size, hva, readOnly: r.readOnly });
      slot++;
    }
    return [...this.#slots];
  }

  #setSlot(slot: number, gpa: number, size: number, hva: bigint, readOnly: boolean): void {
    const b = new Uint8Array(K.SIZE.kvm_userspace_memory_region);
    const dv = new DataView(b.buffer);
    dv.setUint32(K.MEMREG.slot, slot, true);
    dv.setUint32(K.MEMREG.flags, readOnly ? K.KVM_MEM_READONLY : 0, true);
    dv.setBigUint64(K.MEMREG.guest_phys_addr, BigInt(gpa), true);
    dv.setBigUint64(K.MEMREG.memory_size, BigInt(size), true);
    dv.setBigUint64(K.MEMREG.userspace_addr, hva, true);
    this.#check("KVM_SET_USER_MEMORY_REGION", this.#libc.ioctlBuf(this.fd, K.KVM_SET_USER_MEMORY_REGION, b));
  }

  /** KVM_SIGNAL_MSI: deliver an MSI to the in-kernel LAPICs. Returns >0 delivered, 0 blocked, <0 -errno. */
  signalMsi(address: number, data: number, addressHi = 0): number {
    const dv = this.#msiDv;
    dv.setUint32(K.MSI.address_lo, address >>> 0, true);
    dv.setUint32(K.MSI.address_hi, addressHi >>> 0, true);
    dv.setUint32(K.MSI.data, data >>> 0, true);
    return this.#libc.ioctlBuf(this.fd, K.KVM_SIGNAL_MSI, this.#msi);
  }

  /** KVM_IRQ_LINE (kernel-irqchip=on): set GSI `gsi` to `level`. */
  irqLine(gsi: number, level: boolean): number {
    this.#irqDv.setUint32(K.IRQ_LEVEL.irq, gsi >>> 0, true);
    this.#irqDv.setUint32(K.IRQ_LEVEL.level, level ? 1 : 0, true);
    return this.#libc.ioctlBuf(this.fd, K.KVM_IRQ_LINE, this.#irq);
  }

  /** KVM_SET_GSI_ROUTING with MSI routes only ({gsi, address, data}). */
  setMsiRoutes(routes: ReadonlyArray<{ gsi: number; address: number; data: number }>): void {
    const b = new Uint8Array(K.SIZE.kvm_irq_routing + routes.length * K.SIZE.kvm_irq_routing_entry);
    const dv = new DataView(b.buffer);
    dv.setUint32(K.IRQ_ROUTING.nr, routes.length, true);
    routes.forEach((r, i) => {
      const o = K.IRQ_ROUTING.entries + i * K.SIZE.kvm_irq_routing_entry;
      dv.setUint32(o + K.IRQ_ROUTING_ENTRY.gsi, r.gsi, true);
      dv.setUint32(o + K.IRQ_ROUTING_ENTRY.type, K.KVM_IRQ_ROUTING_MSI, true);
      dv.setUint32(o + K.IRQ_ROUTING_ENTRY.u, r.address >>> 0, true);
      dv.setUint32(o + K.IRQ_ROUTING_ENTRY.u + 4, 0, true);
      dv.setUint32(o + K.IRQ_ROUTING_ENTRY.u + 8, r.data >>> 0, true);
    });
    this.#check("KVM_SET_GSI_ROUTING", this.#libc.ioctlBuf(this.fd, K.KVM_SET_GSI_ROUTING, b));
  }

  /** KVM_IRQFD: raise GSI `gsi` whenever eventfd `fd` is signalled (assign or deassign). */
  irqfd(fd: number, gsi: number, assign = true): void {
    const b = new Uint8Array(K.SIZE.kvm_irqfd);
    const dv = new DataView(b.buffer);
    dv.setUint32(K.IRQFD.fd, fd, true);
    dv.setUint32(K.IRQFD.gsi, gsi, true);
    dv.setUint32(K.IRQFD.flags, assign ? 0 : K.KVM_IRQFD_FLAG_DEASSIGN, true);
    this.#check("KVM_IRQFD", this.#libc.ioctlBuf(this.fd, K.KVM_IRQFD, b));
  }

  /** KVM_IOEVENTFD: a guest write of `len` bytes at `addr` (PIO or MMIO) signals eventfd `fd` instead of exiting. */
  ioeventfd(
    fd: number,
    addr: number,
    len: number,
    opts: { pio?: boolean; datamatch?: number; deassign?: boolean } = {},
  ): void {
    const b = new Uint8Array(K.SIZE.kvm_ioeventfd);
    const dv = new DataView(b.buffer);
    let flags = 0;
    if (opts.pio) flags |= K.KVM_IOEVENTFD_FLAG_PIO;
    if (opts.deassign) flags |= K.KVM_IOEVENTFD_FLAG_DEASSIGN;
    if (opts.datamatch !== undefined) {
      flags |= K.KVM_IOEVENTFD_FLAG_DATAMATCH;
      dv.setBigUint64(K.IOEVENTFD.datamatch, BigInt(opts.datamatch), true);
    }
    dv.setBigUint64(K.IOEVENTFD.addr, BigInt(addr), true);
    dv.setUint32(K.IOEVENTFD.len, len, true);
    dv.setInt32(K.IOEVENTFD.fd, fd, true);
    dv.setUint32(K.IOEVENTFD.flags, flags, true);
    this.#check("KVM_IOEVENTFD", this.#libc.ioctlBuf(this.fd, K.KVM_IOEVENTFD, b));
  }

  /** KVM_GET_IRQCHIP (kernel-irqchip=on): the raw struct kvm_irqchip of chip `chipId` (KVM_IRQCHIP_*). */
  getIrqchip(chipId: number): Uint8Array {
    const b = new Uint8Array(K.SIZE.kvm_irqchip);
    new DataView(b.buffer).setUint32(0, chipId, true);
    this.#check("KVM_GET_IRQCHIP", this.#libc.ioctlBuf(this.fd, K.KVM_GET_IRQCHIP, b));
    return b;
  }

  /** KVM_SET_IRQCHIP with a struct kvm_irqchip as getIrqchip returned it. */
  setIrqchip(state: Uint8Array): void {
    this.#check("KVM_SET_IRQCHIP", this.#libc.ioctlBuf(this.fd, K.KVM_SET_IRQCHIP, state.slice()));
  }

  /** KVM_GET_PIT2: the in-kernel PIT's struct kvm_pit_state2. */
  getPit2(): Uint8Array {
    const b = new Uint8Array(K.SIZE.kvm_pit_state2);
    this.#check("KVM_GET_PIT2", this.#libc.ioctlBuf(this.fd, K.KVM_GET_PIT2, b));
    return b;
  }

  /** KVM_SET_PIT2. */
  setPit2(state: Uint8Array): void {
    this.#check("KVM_SET_PIT2", this.#libc.ioctlBuf(this.fd, K.KVM_SET_PIT2, state.slice()));
  }

  /** KVM_CREATE_VCPU with id `index` (= APIC id) and mmap its kvm_run page. */
  createVcpu(index: number): KvmVcpu {
    const fd = this.#check("KVM_CREATE_VCPU", this.#libc.ioctl(this.fd, K.KVM_CREATE_VCPU, index));
    return new KvmVcpu(this.#libc, fd, index, this.sys.runSize);
  }

  get slots(): readonly MemSlot[] {
    return this.#slots;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#libc.close(this.fd);
  }
}
