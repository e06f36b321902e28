/**
 * The CPUID a KVM vCPU gets: KVM_GET_SUPPORTED_CPUID shaped by `-cpu host|max|qemu64[,+feat,-feat]`,
 * per-vCPU topology (APIC id in leaves 1 and 0xb), the KVM paravirt leaves (kvmclock) and the
 * TSC-frequency leaf 0x40000010. Follows QEMU target/i386/kvm/kvm.c (kvm_arch_init_vcpu) in spirit.
 * @module
 */
import type { CpuidEntry } from "./cpuid_codec.ts";

type Reg = "eax" | "ebx" | "ecx" | "edx";

/** Where a named CPUID feature bit lives (QEMU's feature names). */
export interface FeatureBit {
  leaf: number;
  index: number;
  reg: Reg;
  bit: number;
}

function fb(leaf: number, reg: Reg, bit: number, index = 0): FeatureBit {
  return { leaf, index, reg, bit };
}

/** QEMU feature names → CPUID bits (the subset a microvm user is likely to toggle). */
export const FEATURE_BITS: Readonly<Record<string, FeatureBit>> = {
  fpu: fb(1, "edx", 0),
  vme: fb(1, "edx", 1),
  de: fb(1, "edx", 2),
  pse: fb(1, "edx", 3),
  tsc: fb(1, "edx", 4),
  msr: fb(1, "edx", 5),
  pae: fb(1, "edx", 6),
  mce: fb(1, "edx", 7),
  cx8: fb(1, "edx", 8),
  apic: fb(1, "edx", 9),
  sep: fb(1, "edx", 11),
  mtrr: fb(1, "edx", 12),
  pge: fb(1, "edx", 13),
  mca: fb(1, "edx", 14),
  cmov: fb(1, "edx", 15),
  pat: fb(1, "edx", 16),
  pse36: fb(1, "edx", 17),
  clflush: fb(1, "edx", 19),
  mmx: fb(1, "edx", 23),
  fxsr: fb(1, "edx", 24),
  sse: fb(1, "edx", 25),
  sse2: fb(1, "edx", 26),
  ht: fb(1, "edx", 28),
  pni: fb(1, "ecx", 0),
  sse3: fb(1, "ecx", 0),
  pclmulqdq: fb(1, "ecx", 1),
  ssse3: fb(1, "ecx", 9),
  fma: fb(1, "ecx", 12),
  cx16: fb(1, "ecx", 13),
  pcid: fb(1, "ecx", 17),
  "sse4.1": fb(1, "ecx", 19),
  "sse4_1": fb(1, "ecx", 19),
  "sse4.2": fb(1, "ecx", 20),
  "sse4_2": fb(1, "ecx", 20),
  x2apic: fb(1, "ecx", 21),
  movbe: fb(1, "ecx", 22),
  popcnt: fb(1, "ecx", 23),
  "tsc-deadline": fb(1, "ecx", 24),
  aes: fb(1, "ecx", 25),
  xsave: fb(1, "ecx", 26),
  avx: fb(1, "ecx", 28),
  f16c: fb(1, "ecx", 29),
  rdrand: fb(1, "ecx", 30),
  hypervisor: fb(1, "ecx", 31),
  fsgsbase: fb(7, "ebx", 0),
  "tsc-adjust": fb(7, "ebx", 1),
  bmi1: fb(7, "ebx", 3),
  avx2: fb(7, "ebx", 5),
  smep: fb(7, "ebx", 7),
  bmi2: fb(7, "ebx", 8),
  erms: fb(7, "ebx", 9),
  invpcid: fb(7, "ebx", 10),
  avx512f: fb(7, "ebx", 16),
  rdseed: fb(7, "ebx", 18),
  adx: fb(7, "ebx", 19),
  smap: fb(7, "ebx", 20),
  clflushopt: fb(7, "ebx", 23),
  clwb: fb(7, "ebx", 24),
  "sha-ni": fb(7, "ebx", 29),
  umip: fb(7, "ecx", 2),
  pku: fb(7, "ecx", 3),
  la57: fb(7, "ecx", 16),
  rdpid: fb(7, "ecx", 22),
  "arch-capabilities": fb(7, "edx", 29),
  "lahf-lm": fb(0x80000001, "ecx", 0),
  "lahf_lm": fb(0x80000001, "ecx", 0),
  abm: fb(0x80000001, "ecx", 5),
  sse4a: fb(0x80000001, "ecx", 6),
  syscall: fb(0x80000001, "edx", 11),
  nx: fb(0x80000001, "edx", 20),
  pdpe1gb: fb(0x80000001, "edx", 26),
  rdtscp: fb(0x80000001, "edx", 27),
  lm: fb(0x80000001, "edx", 29),
  kvmclock: fb(0x40000001, "eax", 3),
  "kvm-nopiodelay": fb(0x40000001, "eax", 1),
  "kvm-asyncpf": fb(0x40000001, "eax", 4),
  "kvm-steal-time": fb(0x40000001, "eax", 5),
  "kvm-pv-eoi": fb(0x40000001, "eax", 6),
  "kvm-pv-unhalt": fb(0x40000001, "eax", 7),
  "kvm-pv-tlb-flush": fb(0x40000001, "eax", 9),
  "kvm-pv-ipi": fb(0x40000001, "eax", 11),
  "kvm-poll-control": fb(0x40000001, "eax", 12),
  "kvm-pv-sched-yield": fb(0x40000001, "eax", 13),
  "kvm-msi-ext-dest-id": fb(0x40000001, "eax", 15),
  "kvmclock-stable-bit": fb(0x40000001, "eax", 24),
};

/**
 * Bits kvm_pvm advertises but cannot honour: ARCH_CAPABILITIES (7.0:EDX[29], its MSR is refused) and
 * CMPXCHG16B (1:ECX[13]): guest CPL0 code runs in KVM's instruction emulator, which fails on
 * `lock cmpxchg16b` (Linux SLUB uses it when CPUID offers it; measured: KVM internal error in mm init).
 */
const PVM_REJECTED: readonly FeatureBit[] = [FEATURE_BITS["arch-capabilities"], FEATURE_BITS.cx16];

/** QEMU's qemu64 model (PPRO_FEATURES + sse3/cx16, lm/syscall/nx, lahf_lm) as an allow-list per register. */
const QEMU64_ALLOW: ReadonlyArray<{ leaf: number; reg: Reg; mask: number }> = [
  { leaf: 1, reg: "edx", mask: 0x0783fbff },
  { leaf: 1, reg: "ecx", mask: (1 << 0) | (1 << 13) | (1 << 21) | (1 << 24) | (1 << 31) },
  { leaf: 7, reg: "ebx", mask: 0 },
  { leaf: 7, reg: "ecx", mask: 0 },
  { leaf: 7, reg: "edx", mask: 0 },
  { leaf: 0x80000001, reg: "edx", mask: (1 << 11) | (1 << 20) | (1 << 29) },
  { leaf: 0x80000001, reg: "ecx", mask: 1 << 0 },
];

/** Options shaping one vCPU's CPUID. */
export interface CpuidOptions {
  /** `-cpu` model: "host", "max" (same under KVM) or "qemu64". */
  model: string;
  features: ReadonlyArray<{ name: string; on: boolean }>;
  apicId: number;
  ncpus: number;
  /** TSC frequency for leaf 0x40000010 (0: omit the leaf). */
  tscKhz: number;
  /** Host is kvm_pvm: drop what it rejects. */
  pvm: boolean;
  /** Called once per unknown feature name. */
  warn?: (line: string) => void;
}

function find(entries: CpuidEntry[], leaf: number, index = 0): CpuidEntry | undefined {
  return entries.find((e) => e.function === leaf && e.index === index);
}

function setBit(entries: CpuidEntry[], f: FeatureBit, on: boolean): void {
  const e = find(entries, f.leaf, f.index);
  if (e === undefined) return;
  e[f.reg] = on ? (e[f.reg] | (1 << f.bit)) >>> 0 : (e[f.reg] & ~(1 << f.bit)) >>> 0;
}

/** Build the CPUID table for one vCPU from KVM's supported table. Does not modify `supported`. */
export function shapeCpuid(supported: readonly CpuidEntry[], o: CpuidOptions): CpuidEntry[] {
  const t = supported.map((e) => ({ ...e }));
  if (o.model === "qemu64") {
    for (const a of QEMU64_ALLOW) {
      const e = find(t, a.leaf);
      if (e !== undefined) e[a.reg] = (e[a.reg] & a.mask) >>> 0;
    }
  }
  if (o.pvm) { for (const f of PVM_REJECTED) setBit(t, f, false); }
  // Always a hypervisor; KVM_GET_SUPPORTED_CPUID already includes x2apic/tsc-deadline when emulated.
  setBit(t, FEATURE_BITS.hypervisor, true);
  for (const f of o.features) {
    const bit = FEATURE_BITS[f.name];
    if (bit === undefined) {
      o.warn?.(`warning: CPU feature "${f.name}" is not known to the KVM accelerator; ignored`);
      continue;
    }
    setBit(t, bit, f.on);
    if (f.name === "kvmclock") setBit(t, { ...bit, bit: 0 }, f.on);
  }
  // Leaf 1: initial APIC id, logical processor count, HTT.
  const l1 = find(t, 1);
  if (l1 !== undefined) {
    l1.ebx = ((l1.ebx & 0x0000ffff) | ((o.ncpus & 0xff) << 16) | ((o.apicId & 0xff) << 24)) >>> 0;
    l1.edx = o.ncpus > 1 ? (l1.edx | (1 << 28)) >>> 0 : (l1.edx & ~(1 << 28)) >>> 0;
  }
  // Leaf 0xb: x2APIC topology, one thread per core, ncpus cores per package.
  const coreShift = Math.ceil(Math.log2(Math.max(1, o.ncpus)));
  const l0b = t.filter((e) => e.function === 0xb);
  if (l0b.length > 0) {
    const rest = t.filter((e) => e.function !== 0xb);
    const flags = l0b[0].flags;
    rest.push(
      { function: 0xb, index: 0, flags, eax: 0, ebx: 1, ecx: (1 << 8) | 0, edx: o.apicId },
      { function: 0xb, index: 1, flags, eax: coreShift, ebx: o.ncpus, ecx: (2 << 8) | 1, edx: o.apicId },
      { function: 0xb, index: 2, flags, eax: 0, ebx: 0, ecx: 2, edx: o.apicId },
    );
    t.length = 0;
    t.push(...rest);
  }
  // KVM leaves: make room for 0x40000010 (TSC kHz, APIC bus kHz = 1 GHz as KVM's LAPIC uses).
  const hv = find(t, 0x40000000);
  if (hv !== undefined && o.tscKhz > 0) {
    hv.eax = Math.max(hv.eax, 0x40000010);
    if (find(t, 0x40000010) === undefined) {
      t.push({ function: 0x40000010, index: 0, flags: 0, eax: o.tscKhz >>> 0, ebx: 1000000, ecx: 0, edx: 0 });
    }
  }
  return t;
}

/** True if CPUID table `t` has feature `name` set. */
export function hasFeature(t: readonly CpuidEntry[], name: string): boolean {
  const f = FEATURE_BITS[name];
  if (f === undefined) return false;
  const e = t.find((x) => x.function === f.leaf && x.index === f.index);
  return e !== undefined && ((e[f.reg] >>> f.bit) & 1) === 1;
}
