/**
 * The KVM userspace API for x86-64 (include/uapi/linux/kvm.h, arch/x86/include/uapi/asm/kvm.h):
 * ioctl numbers, capability ids, exit reasons and struct layouts as byte offsets.
 * tests/kvm_test.ts checks every size and offset here against the C headers with gcc.
 * @module
 */

const KVMIO = 0xae;
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;

function ioc(dir: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
}
function io(nr: number): number {
  return ioc(IOC_NONE, nr, 0);
}
function ior(nr: number, size: number): number {
  return ioc(IOC_READ, nr, size);
}
function iow(nr: number, size: number): number {
  return ioc(IOC_WRITE, nr, size);
}
function iowr(nr: number, size: number): number {
  return ioc(IOC_READ | IOC_WRITE, nr, size);
}

/** Struct sizes in bytes (x86-64). */
export const SIZE = {
  kvm_regs: 144,
  kvm_sregs: 312,
  kvm_segment: 24,
  kvm_dtable: 16,
  kvm_run: 2352,
  kvm_cpuid2: 8,
  kvm_cpuid_entry2: 40,
  kvm_msrs: 8,
  kvm_msr_entry: 16,
  kvm_userspace_memory_region: 32,
  kvm_irq_level: 8,
  kvm_msi: 32,
  kvm_irqfd: 32,
  kvm_ioeventfd: 64,
  kvm_enable_cap: 104,
  kvm_irq_routing: 8,
  kvm_irq_routing_entry: 48,
  kvm_pit_config: 64,
  kvm_interrupt: 4,
  kvm_vcpu_events: 64,
  kvm_lapic_state: 1024,
  kvm_irqchip: 520,
  kvm_pit_state2: 112,
} as const;

/** ioctl request numbers. System ioctls on /dev/kvm, VM ioctls on the VM fd, vCPU ioctls on a vCPU fd. */
export const KVM_GET_API_VERSION = io(0x00);
export const KVM_CREATE_VM = io(0x01);
export const KVM_GET_MSR_INDEX_LIST = iowr(0x02, 4);
export const KVM_CHECK_EXTENSION = io(0x03);
export const KVM_GET_VCPU_MMAP_SIZE = io(0x04);
export const KVM_GET_SUPPORTED_CPUID = iowr(0x05, SIZE.kvm_cpuid2);
export const KVM_CREATE_VCPU = io(0x41);
export const KVM_SET_USER_MEMORY_REGION = iow(0x46, SIZE.kvm_userspace_memory_region);
export const KVM_SET_TSS_ADDR = io(0x47);
export const KVM_SET_IDENTITY_MAP_ADDR = iow(0x48, 8);
export const KVM_CREATE_IRQCHIP = io(0x60);
export const KVM_IRQ_LINE = iow(0x61, SIZE.kvm_irq_level);
export const KVM_GET_IRQCHIP = iowr(0x62, SIZE.kvm_irqchip);
/** Declared _IOR in <linux/kvm.h> although it writes (a historical quirk the number keeps). */
export const KVM_SET_IRQCHIP = ior(0x63, SIZE.kvm_irqchip);
export const KVM_IRQ_LINE_STATUS = iowr(0x67, SIZE.kvm_irq_level);
export const KVM_SET_GSI_ROUTING = iow(0x6a, SIZE.kvm_irq_routing);
export const KVM_IRQFD = iow(0x76, SIZE.kvm_irqfd);
export const KVM_CREATE_PIT2 = iow(0x77, SIZE.kvm_pit_config);
export const KVM_IOEVENTFD = iow(0x79, SIZE.kvm_ioeventfd);
export const KVM_RUN = io(0x80);
/** struct kvm_guest_debug: control, pad, arch.debugreg[8]. */
export const KVM_GUEST_DEBUG_SIZE = 72;
export const KVM_SET_GUEST_DEBUG = iow(0x9b, KVM_GUEST_DEBUG_SIZE);
export const KVM_GET_REGS = ior(0x81, SIZE.kvm_regs);
export const KVM_SET_REGS = iow(0x82, SIZE.kvm_regs);
export const KVM_GET_SREGS = ior(0x83, SIZE.kvm_sregs);
export const KVM_SET_SREGS = iow(0x84, SIZE.kvm_sregs);
export const KVM_INTERRUPT = iow(0x86, SIZE.kvm_interrupt);
export const KVM_GET_MSRS = iowr(0x88, SIZE.kvm_msrs);
export const KVM_SET_MSRS = iow(0x89, SIZE.kvm_msrs);
export const KVM_SET_SIGNAL_MASK = iow(0x8b, 4);
export const KVM_GET_LAPIC = ior(0x8e, SIZE.kvm_lapic_state);
export const KVM_SET_LAPIC = iow(0x8f, SIZE.kvm_lapic_state);
export const KVM_SET_CPUID2 = iow(0x90, SIZE.kvm_cpuid2);
export const KVM_GET_CPUID2 = iowr(0x91, SIZE.kvm_cpuid2);
export const KVM_GET_MP_STATE = ior(0x98, 4);
export const KVM_SET_MP_STATE = iow(0x99, 4);
export const KVM_NMI = io(0x9a);
export const KVM_GET_VCPU_EVENTS = ior(0x9f, SIZE.kvm_vcpu_events);
export const KVM_SET_VCPU_EVENTS = iow(0xa0, SIZE.kvm_vcpu_events);
export const KVM_GET_PIT2 = ior(0x9f, SIZE.kvm_pit_state2);
export const KVM_SET_PIT2 = iow(0xa0, SIZE.kvm_pit_state2);
export const KVM_SET_TSC_KHZ = io(0xa2);
export const KVM_GET_TSC_KHZ = io(0xa3);
export const KVM_ENABLE_CAP = iow(0xa3, SIZE.kvm_enable_cap);
export const KVM_SIGNAL_MSI = iow(0xa5, SIZE.kvm_msi);

/** The only API version there has ever been. */
export const KVM_API_VERSION = 12;

/** Capabilities (KVM_CHECK_EXTENSION / KVM_ENABLE_CAP). */
export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_HLT = 1;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_NR_MEMSLOTS = 10;
export const KVM_CAP_PIT = 11;
export const KVM_CAP_IRQ_ROUTING = 25;
export const KVM_CAP_SET_IDENTITY_MAP_ADDR = 37;
export const KVM_CAP_PIT2 = 33;
export const KVM_CAP_IRQFD = 32;
export const KVM_CAP_IOEVENTFD = 36;
export const KVM_CAP_TSC_CONTROL = 60;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_SIGNAL_MSI = 77;
export const KVM_CAP_READONLY_MEM = 81;
export const KVM_CAP_SPLIT_IRQCHIP = 121;
export const KVM_CAP_X2APIC_API = 129;
export const KVM_CAP_IMMEDIATE_EXIT = 136;

/** KVM_CAP_X2APIC_API flags (QEMU enables both with split irqchip). */
export const KVM_X2APIC_API_USE_32BIT_IDS = 1 << 0;
export const KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK = 1 << 1;

/** kvm_userspace_memory_region.flags */
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;

/** kvm_ioeventfd.flags */
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0;
export const KVM_IOEVENTFD_FLAG_PIO = 1 << 1;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;
/** kvm_irqfd.flags */
export const KVM_IRQFD_FLAG_DEASSIGN = 1 << 0;

/** kvm_irqchip.chip_id */
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;

/** kvm_vcpu_events.flags */
export const KVM_VCPUEVENT_VALID_NMI_PENDING = 1 << 0;
export const KVM_VCPUEVENT_VALID_SHADOW = 1 << 2;

/** kvm_irq_routing_entry.type */
export const KVM_IRQ_ROUTING_IRQCHIP = 1;
export const KVM_IRQ_ROUTING_MSI = 2;

/** Exit reasons (kvm_run.exit_reason). */
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_SET_TPR = 11;
export const KVM_EXIT_TPR_ACCESS = 12;
export const KVM_EXIT_NMI = 16;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;
export const KVM_EXIT_IOAPIC_EOI = 26;
export const KVM_EXIT_X86_RDMSR = 29;
export const KVM_EXIT_X86_WRMSR = 30;

/** kvm_run.io.direction */
export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

/** kvm_run.system_event.type */
export const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
export const KVM_SYSTEM_EVENT_RESET = 2;
export const KVM_SYSTEM_EVENT_CRASH = 3;

/** Internal-error suberrors. */
export const KVM_INTERNAL_ERROR_EMULATION = 1;
export const KVM_INTERNAL_ERROR_SIMUL_EX = 2;
export const KVM_INTERNAL_ERROR_DELIVERY_EV = 3;

/** Byte offsets inside struct kvm_run (the mmap'ed per-vCPU page). */
export const RUN = {
  request_interrupt_window: 0,
  immediate_exit: 1,
  exit_reason: 8,
  ready_for_interrupt_injection: 12,
  if_flag: 13,
  flags: 14,
  cr8: 16,
  apic_base: 24,
  io_direction: 32,
  io_size: 33,
  io_port: 34,
  io_count: 36,
  io_data_offset: 40,
  mmio_phys_addr: 32,
  mmio_data: 40,
  mmio_len: 48,
  mmio_is_write: 52,
  fail_entry_reason: 32,
  internal_suberror: 32,
  internal_ndata: 36,
  internal_data: 40,
  eoi_vector: 32,
  system_event_type: 32,
  system_event_ndata: 36,
  kvm_valid_regs: 288,
  s: 304,
} as const;

/** Byte offsets inside struct kvm_regs (u64 each). */
export const REGS = {
  rax: 0,
  rbx: 8,
  rcx: 16,
  rdx: 24,
  rsi: 32,
  rdi: 40,
  rsp: 48,
  rbp: 56,
  r8: 64,
  r9: 72,
  r10: 80,
  r11: 88,
  r12: 96,
  r13: 104,
  r14: 112,
  r15: 120,
  rip: 128,
  rflags: 136,
} as const;

/** Byte offsets inside struct kvm_sregs. */
export const SREGS = {
  cs: 0,
  ds: 24,
  es: 48,
  fs: 72,
  gs: 96,
  ss: 120,
  tr: 144,
  ldt: 168,
  gdt: 192,
  idt: 208,
  cr0: 224,
  cr2: 232,
  cr3: 240,
  cr4: 248,
  cr8: 256,
  efer: 264,
  apic_base: 272,
  interrupt_bitmap: 280,
} as const;

/** Byte offsets inside struct kvm_segment. */
export const SEG = {
  base: 0,
  limit: 8,
  selector: 12,
  type: 14,
  present: 15,
  dpl: 16,
  db: 17,
  s: 18,
  l: 19,
  g: 20,
  avl: 21,
  unusable: 22,
} as const;

/** Byte offsets inside struct kvm_dtable. */
export const DTABLE = { base: 0, limit: 8 } as const;

/** kvm_cpuid2 header and kvm_cpuid_entry2 fields. */
export const CPUID2 = { nent: 0, entries: 8 } as const;
export const CPUID_ENTRY = { function: 0, index: 4, flags: 8, eax: 12, ebx: 16, ecx: 20, edx: 24 } as const;
/** kvm_cpuid_entry2.flags */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1 << 0;

/** kvm_msrs header and kvm_msr_entry fields. */
export const MSRS = { nmsrs: 0, entries: 8 } as const;
export const MSR_ENTRY = { index: 0, data: 8 } as const;

/** kvm_userspace_memory_region fields. */
export const MEMREG = { slot: 0, flags: 4, guest_phys_addr: 8, memory_size: 16, userspace_addr: 24 } as const;
/** kvm_irq_level fields. */
export const IRQ_LEVEL = { irq: 0, level: 4 } as const;
/** kvm_msi fields. */
export const MSI = { address_lo: 0, address_hi: 4, data: 8, flags: 12, devid: 16 } as const;
/** kvm_irqfd fields. */
export const IRQFD = { fd: 0, gsi: 4, flags: 8, resamplefd: 12 } as const;
/** kvm_ioeventfd fields. */
export const IOEVENTFD = { datamatch: 0, addr: 8, len: 16, fd: 20, flags: 24 } as const;
/** kvm_enable_cap fields. */
export const ENABLE_CAP = { cap: 0, flags: 4, args: 8 } as const;
/** kvm_irq_routing header and entry fields (u.msi: address_lo, address_hi, data at u+0/4/8; u.irqchip: irqchip, pin). */
export const IRQ_ROUTING = { nr: 0, entries: 8 } as const;
export const IRQ_ROUTING_ENTRY = { gsi: 0, type: 4, flags: 8, u: 16 } as const;

/** kvm_vcpu_events fields. */
export const VCPU_EVENTS = { sipi_vector: 16, flags: 20 } as const;

/** kvm_mp_state values (KVM_GET_MP_STATE). */
export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;
export const KVM_MP_STATE_INIT_RECEIVED = 2;
export const KVM_MP_STATE_HALTED = 3;
export const KVM_MP_STATE_SIPI_RECEIVED = 4;

/** Human name of an exit reason, for error messages. */
export function exitReasonName(reason: number): string {
  const names: Record<number, string> = {
    0: "UNKNOWN",
    1: "EXCEPTION",
    2: "IO",
    3: "HYPERCALL",
    4: "DEBUG",
    5: "HLT",
    6: "MMIO",
    7: "IRQ_WINDOW_OPEN",
    8: "SHUTDOWN",
    9: "FAIL_ENTRY",
    10: "INTR",
    11: "SET_TPR",
    12: "TPR_ACCESS",
    16: "NMI",
    17: "INTERNAL_ERROR",
    24: "SYSTEM_EVENT",
    26: "IOAPIC_EOI",
    29: "X86_RDMSR",
    30: "X86_WRMSR",
  };
  return names[reason] ?? `${reason}`;
}
