/**
 * The CPUID of the software CPU. Models follow QEMU 7.2's builtin_x86_defs (target/i386/cpu.c): `qemu64`
 * (AuthenticAMD, family 15 model 107), `kvm64` (GenuineIntel, family 15 model 6, "Common KVM processor"),
 * `base` (no features), and `max`/`host` (qemu64's identity, "QEMU TCG CPU version 2.5+", every feature this
 * CPU implements). Every model is intersected with IMPLEMENTED: a bit is only ever advertised when the
 * instructions behind it run (QEMU's TCG drops unsupported bits the same way; qemu64's SVM is dropped here
 * because this CPU has no SVM). On top of the model: x2APIC, TSC-deadline, the hypervisor bit and KVM
 * paravirt leaves (signature "KVMKVMKVM", kvmclock features, TSC frequency in 0x40000010) so Linux uses
 * kvmclock and skips PIT/LAPIC calibration. `+flag`/`-flag` from `-cpu` adjust single bits.
 * @module
 */
import type { Cpu } from "./cpu.ts";

/** Pseudo-leaf key for CPUID.(EAX=0DH,ECX=1):EAX (XSAVEOPT/XSAVEC/XGETBV1). */
export const LEAF_D1 = 0x1000000d;

/** Where a named feature bit lives: [leaf, register (0 eax, 1 ebx, 2 ecx, 3 edx), bit]. Leaf 7 is subleaf 0. */
export const FEATURE_BITS: Record<string, [number, number, number]> = {
  fpu: [1, 3, 0],
  vme: [1, 3, 1],
  de: [1, 3, 2],
  pse: [1, 3, 3],
  tsc: [1, 3, 4],
  msr: [1, 3, 5],
  pae: [1, 3, 6],
  mce: [1, 3, 7],
  cx8: [1, 3, 8],
  apic: [1, 3, 9],
  sep: [1, 3, 11],
  mtrr: [1, 3, 12],
  pge: [1, 3, 13],
  mca: [1, 3, 14],
  cmov: [1, 3, 15],
  pat: [1, 3, 16],
  pse36: [1, 3, 17],
  clflush: [1, 3, 19],
  mmx: [1, 3, 23],
  fxsr: [1, 3, 24],
  sse: [1, 3, 25],
  sse2: [1, 3, 26],
  pni: [1, 2, 0],
  pclmulqdq: [1, 2, 1],
  monitor: [1, 2, 3],
  ssse3: [1, 2, 9],
  fma: [1, 2, 12],
  cx16: [1, 2, 13],
  "sse4.1": [1, 2, 19],
  "sse4.2": [1, 2, 20],
  x2apic: [1, 2, 21],
  movbe: [1, 2, 22],
  popcnt: [1, 2, 23],
  "tsc-deadline": [1, 2, 24],
  aes: [1, 2, 25],
  xsave: [1, 2, 26],
  avx: [1, 2, 28],
  f16c: [1, 2, 29],
  rdrand: [1, 2, 30],
  hypervisor: [1, 2, 31],
  fsgsbase: [7, 1, 0],
  bmi1: [7, 1, 3],
  avx2: [7, 1, 5],
  smep: [7, 1, 7],
  bmi2: [7, 1, 8],
  erms: [7, 1, 9],
  rdseed: [7, 1, 18],
  adx: [7, 1, 19],
  smap: [7, 1, 20],
  rdpid: [7, 2, 22],
  xsaveopt: [LEAF_D1, 0, 0],
  xsavec: [LEAF_D1, 0, 1],
  xgetbv1: [LEAF_D1, 0, 2],
  "lahf-lm": [0x80000001, 2, 0],
  svm: [0x80000001, 2, 2],
  abm: [0x80000001, 2, 5],
  syscall: [0x80000001, 3, 11],
  nx: [0x80000001, 3, 20],
  pdpe1gb: [0x80000001, 3, 26],
  rdtscp: [0x80000001, 3, 27],
  lm: [0x80000001, 3, 29],
  invtsc: [0x80000007, 3, 8],
  kvmclock: [0x40000001, 0, 3],
  "kvmclock-stable-bit": [0x40000001, 0, 24],
};

/** QEMU's alternative spellings. */
const ALIASES: Record<string, string> = {
  sse3: "pni",
  "sse4-1": "sse4.1",
  "sse4-2": "sse4.2",
  "lahf-lm": "lahf-lm",
  "tsc-deadline": "tsc-deadline",
  "pclmuldq": "pclmulqdq",
};

/**
 * Feature names this CPU implements (instructions and all): the only bits any model may advertise.
 * cpuid_test.ts executes an instruction of every one of them. Not here (yet): vme (no VME in virtual-8086
 * mode), pse36 (32-bit PSE pages ignore PDE bits 13-20).
 */
export const IMPLEMENTED: ReadonlySet<string> = new Set([
  "fpu",
  "de",
  "pse",
  "tsc",
  "msr",
  "pae",
  "mce",
  "cx8",
  "apic",
  "sep",
  "mtrr",
  "pge",
  "mca",
  "cmov",
  "pat",
  "clflush",
  "fxsr",
  "mmx",
  "sse",
  "sse2",
  "cx16",
  "x2apic",
  "popcnt",
  "tsc-deadline",
  "rdrand",
  "hypervisor",
  "xsave",
  "avx",
  "avx2",
  "fma",
  "f16c",
  "xsaveopt",
  "xsavec",
  "pni",
  "ssse3",
  "sse4.1",
  "sse4.2",
  "abm",
  "bmi1",
  "bmi2",
  "adx",
  "movbe",
  "rdseed",
  "rdpid",
  "lahf-lm",
  "syscall",
  "nx",
  "pdpe1gb",
  "rdtscp",
  "lm",
  "invtsc",
  "kvmclock",
  "kvmclock-stable-bit",
]); // deno-fmt-ignore

/**
 * Feature and property names QEMU 7.2 accepts in `-cpu` that this CPU does not model: accepted and kept off
 * (QEMU's TCG warns and drops most of them too). Anything else is an error, as in QEMU.
 */
const QEMU_OTHER = new Set(
  ("ds acpi ss ht tm ia64 pbe dtes64 ds-cpl vmx smx est tm2 cid sdbg xtpr pdcm pcid dca osxsave tsc-adjust " +
    "hle invpcid rtm mpx avx512f avx512dq avx512ifma clflushopt clwb intel-pt avx512pf avx512er avx512cd sha-ni " +
    "avx512bw avx512vl avx512vbmi umip pku ospke waitpkg avx512vbmi2 gfni vaes vpclmulqdq avx512vnni " +
    "avx512bitalg avx512-vpopcntdq la57 cldemote movdiri movdir64b sgxlc pks avx512-4vnniw avx512-4fmaps " +
    "fsrm avx512-vp2intersect md-clear serialize tsx-ldtrk avx512-fp16 amx-bf16 amx-tile amx-int8 spec-ctrl " +
    "stibp arch-capabilities core-capability ssbd avx-vnni avx512-bf16 xsaves xfd cmp-legacy cr8legacy sse4a " +
    "misalignsse 3dnowprefetch osvw ibs xop skinit wdt lwp fma4 tce nodeid-msr tbm topoext perfctr-core " +
    "perfctr-nb mmxext fxsr-opt page1gb 3dnowext 3dnow clzero xstore xstore-en xcrypt xcrypt-en ace2 ace2-en " +
    "phe phe-en pmm pmm-en kvm-nopiodelay kvm-mmu kvm-asyncpf kvm-steal-time kvm-pv-eoi kvm-pv-unhalt " +
    "kvm-pv-tlb-flush kvm-asyncpf-vmexit kvm-pv-ipi kvm-poll-control kvm-pv-sched-yield kvm-asyncpf-int " +
    "kvm-msi-ext-dest-id kvmclock-stable-bit npt lbrv svm-lock nrip-save tsc-scale vmcb-clean flushbyasid " +
    "decodeassists pause-filter pfthreshold avic v-vmsave-vmload vgif xsaveerptr wbnoinvd ibpb ibrs amd-ssbd " +
    "virt-ssbd amd-no-ssb amd-stibp rdctl-no ibrs-all skip-l1dfl-vmentry ssb-no mds-no pschange-mc-no " +
    "tsx-ctrl taa-no full-width-write pmu migratable enforce check host-cache-info host-phys-bits l3-cache " +
    "kvm lmce vmware-cpuid-freq cpuid-0xb x-force-features tcg-cpuid fill-mtrr-mask legacy-cache " +
    "kvm-no-smi-migration full-cpuid-auto-level ucode-rev phys-bits vendor family model stepping model-id " +
    "level xlevel xlevel2 min-level min-xlevel tsc-frequency apic-id hv-spinlocks hv-vendor-id")
    .split(" "),
);

/** Canonical feature name for a `-cpu` flag, "" when QEMU does not know it at all. */
export function featureName(flag: string): string {
  const k = flag.replace(/_/g, "-");
  const a = ALIASES[k] ?? k;
  if (a in FEATURE_BITS) return a;
  if (QEMU_OTHER.has(a) || a.startsWith("vmx-") || a.startsWith("hv-") || a.startsWith("kvm-")) return a;
  return "";
}

/**
 * QEMU's error for a `-cpu` flag it does not know (`-cpu max,+foo`), or null when every flag is known.
 * Matches QEMU 7.2's "can't apply global" line for the unknown property.
 */
export function cpuFlagError(
  model: string,
  features: ReadonlyArray<{ name: string; on: boolean }>,
): string | null {
  for (const f of features) {
    if (featureName(f.name) === "") {
      return `can't apply global ${model}-x86_64-cpu.${f.name}=${
        f.on ? "on" : "off"
      }: Property '${model}-x86_64-cpu.${f.name}' not found`;
    }
  }
  return null;
}

interface ModelDef {
  vendor: string;
  /** CPUID.01H:EAX. */
  signature: number;
  brand: string;
  xlevel: number;
  features: string[];
}

const PPRO = "fpu de pse tsc msr mce cx8 pge cmov pat fxsr mmx sse sse2 pae sep apic".split(" ");
/** 1:EDX bits an AMD CPU mirrors in 80000001:EDX (QEMU's CPUID_EXT2_AMD_ALIASES). */
const AMD_ALIASES = 0x0183f3ff;
/** Our additions to every model (see the module comment). */
const BOARD = "x2apic tsc-deadline hypervisor pdpe1gb invtsc kvmclock kvmclock-stable-bit".split(" ");

const QEMU64: ModelDef = {
  vendor: "AuthenticAMD",
  signature: 0x00060fb1,
  brand: "QEMU Virtual CPU version 2.5+",
  xlevel: 0x8000000a,
  features: [
    ...PPRO,
    "mtrr",
    "clflush",
    "mca",
    "pse36",
    "pni",
    "cx16",
    "lm",
    "syscall",
    "nx",
    "lahf-lm",
    "svm",
  ],
};

const MODELS: Record<string, ModelDef> = {
  qemu64: QEMU64,
  base: { ...QEMU64, features: [] },
  kvm64: {
    vendor: "GenuineIntel",
    signature: 0x00000f61,
    brand: "Common KVM processor",
    xlevel: 0x80000008,
    features: [...PPRO, "vme", "mtrr", "clflush", "mca", "pse36", "pni", "cx16", "lm", "syscall", "nx"],
  },
  max: { ...QEMU64, brand: "QEMU TCG CPU version 2.5+", features: [...IMPLEMENTED] },
};
MODELS.host = MODELS.max;

/** Resolved feature words for a `-cpu` model and flag list. */
export class CpuidModel {
  readonly words = new Map<number, number[]>();
  readonly tscKhz: number;
  readonly vendor: string;
  readonly signature: number;
  readonly brand: string;
  readonly xlevel: number;
  /** QEMU-style warnings for `+flag`s this CPU does not implement (the bit stays off, as under QEMU's TCG). */
  readonly warnings: string[] = [];
  /** `-cpu` flags given that QEMU does not know (rejected by the command line before this is built). */
  readonly ignored: string[] = [];

  constructor(model: string, features: ReadonlyArray<{ name: string; on: boolean }>, tscKhz: number) {
    this.tscKhz = tscKhz;
    const def = MODELS[model] ?? QEMU64;
    this.vendor = def.vendor;
    this.signature = def.signature;
    this.brand = def.brand;
    this.xlevel = def.xlevel;
    for (const f of def.features) if (IMPLEMENTED.has(f)) this.set(f, true);
    if (def.features.length) { for (const f of BOARD) this.set(f, true); }
    for (const f of features) {
      const key = featureName(f.name);
      if (!(key in FEATURE_BITS)) {
        // QEMU knows many more flags (vmx-*, arch-capabilities, ...) that have no meaning here.
        this.ignored.push(f.name);
        continue;
      }
      if (f.on && !IMPLEMENTED.has(key)) {
        const [leaf, reg, bit] = FEATURE_BITS[key];
        this.warnings.push(
          `warning: TCG doesn't support requested feature: CPUID.${leafName(leaf)}:${
            "EAX EBX ECX EDX".split(" ")[reg]
          }.${key} [bit ${bit}]`,
        );
        continue;
      }
      this.set(key, f.on);
    }
    // AMD CPUs mirror these 1:EDX bits in 80000001:EDX (QEMU's x86_cpu_realizefn does the same).
    if (this.vendor === "AuthenticAMD") {
      const e = this.word(0x80000001);
      e[3] = (e[3] & ~AMD_ALIASES) | (this.word(1)[3] & AMD_ALIASES);
    }
  }

  word(leaf: number): number[] {
    let w = this.words.get(leaf);
    if (!w) {
      w = [0, 0, 0, 0];
      this.words.set(leaf, w);
    }
    return w;
  }

  set(name: string, on: boolean): void {
    const [leaf, reg, bit] = FEATURE_BITS[name];
    const w = this.word(leaf);
    if (on) w[reg] |= 1 << bit;
    else w[reg] &= ~(1 << bit);
  }

  has(name: string): boolean {
    const [leaf, reg, bit] = FEATURE_BITS[name];
    return ((this.words.get(leaf)?.[reg] ?? 0) & (1 << bit)) !== 0;
  }

  /** Names of every feature bit this model advertises. */
  advertised(): string[] {
    return Object.keys(FEATURE_BITS).filter((n) => this.has(n));
  }
}

function leafName(leaf: number): string {
  if (leaf === LEAF_D1) return "0DH.01H";
  if (leaf === 7) return "07H";
  return leaf.toString(16).toUpperCase().padStart(2, "0") + "H";
}

function str4(s: string, i: number): number {
  return (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 8) | (s.charCodeAt(i + 2) << 16) |
    (s.charCodeAt(i + 3) << 24)) | 0;
}

const KVM_SIG = "KVMKVMKVM\0\0\0";

/** CPUID leaf/subleaf for vCPU `c`: [eax, ebx, ecx, edx] as int32. */
export function cpuid(c: Cpu, leaf: number, sub: number): number[] {
  const m = c.cpuidModel;
  const w = (l: number) => m.words.get(l) ?? [0, 0, 0, 0];
  const vendor = m.vendor;
  switch (leaf) {
    case 0:
      return [0x16, str4(vendor, 0), str4(vendor, 8), str4(vendor, 4)];
    case 1: {
      const [, , cx, dx] = w(1);
      let ecx = cx;
      // x2APIC and TSC-deadline need an APIC.
      if (!(dx & (1 << 9))) ecx &= ~((1 << 21) | (1 << 24));
      // OSXSAVE mirrors CR4.OSXSAVE.
      if (ecx & (1 << 26) && c.cr4 & CR4_OSXSAVE) ecx |= 1 << 27;
      const ebx = (c.index << 24) | (Math.max(1, c.board.ncpus) << 16) | (8 << 8);
      return [m.signature, ebx, ecx, dx | (c.board.ncpus > 1 ? 1 << 28 : 0)];
    }
    case 7:
      return sub === 0 ? [0, w(7)[1], w(7)[2], w(7)[3]] : [0, 0, 0, 0];
    case 0xb:
      return [0, 0, sub & 0xff, c.index];
    case 0xd:
      return cpuidXsave(c, sub);
    case 0x15: {
      // TSC = crystal (1 MHz) × ebx / eax.
      const mhz = Math.floor(m.tscKhz / 1000);
      return [1, mhz, 1000000, 0];
    }
    case 0x16: {
      const mhz = Math.floor(m.tscKhz / 1000);
      return [mhz, mhz, 100, 0];
    }
    case 0x40000000:
      if (!m.has("hypervisor")) return [0, 0, 0, 0];
      return [0x40000010, str4(KVM_SIG, 0), str4(KVM_SIG, 4), str4(KVM_SIG, 8)];
    case 0x40000001:
      if (!m.has("hypervisor")) return [0, 0, 0, 0];
      return [w(0x40000001)[0], 0, 0, 0];
    case 0x40000010:
      if (!m.has("hypervisor")) return [0, 0, 0, 0];
      // TSC kHz, APIC bus kHz (1 GHz as in QEMU).
      return [m.tscKhz | 0, 1000000, 0, 0];
  }
  if (leaf >= 0x80000000 && (leaf >>> 0) > m.xlevel) return [0, 0, 0, 0];
  switch (leaf) {
    case 0x80000000:
      return [m.xlevel, str4(vendor, 0), str4(vendor, 8), str4(vendor, 4)];
    case 0x80000001:
      return [m.signature, 0, w(0x80000001)[2], w(0x80000001)[3]];
    case 0x80000002:
    case 0x80000003:
    case 0x80000004: {
      const o = (leaf - 0x80000002) * 16;
      const b = m.brand.padEnd(48, "\0");
      return [str4(b, o), str4(b, o + 4), str4(b, o + 8), str4(b, o + 12)];
    }
    case 0x80000005:
      return [0x01ff01ff, 0x01ff01ff, 0x40020140, 0x40020140];
    case 0x80000006:
      return [0, 0x42004200, 0x02008140, 0];
    case 0x80000007:
      return w(0x80000007).slice();
    case 0x80000008:
      return [0x3028, 0, 0, 0];
  }
  return [0, 0, 0, 0];
}

/** CR4.OSXSAVE. */
export const CR4_OSXSAVE = 0x40000;

/** XSAVE area geometry: AVX (YMM_Hi128) at 576, 256 bytes. */
export const XSAVE_AVX_OFFSET = 576, XSAVE_AVX_SIZE = 256;

/** XCR0 bits this CPU supports (AVX only when it is advertised). */
export function supportedXcr0(c: Cpu): number {
  return c.cpuidModel.has("avx") ? 7 : 3;
}

/** Size of the standard-format area for the components in `mask`. */
export function xsaveSize(mask: number): number {
  return mask & 4 ? XSAVE_AVX_OFFSET + XSAVE_AVX_SIZE : 576;
}

/** CPUID leaf 0DH subleaf `sub`. */
export function cpuidXsave(c: Cpu, sub: number): number[] {
  if (!c.cpuidModel.has("xsave")) return [0, 0, 0, 0];
  const sup = supportedXcr0(c);
  switch (sub) {
    case 0:
      return [sup, xsaveSize(c.xcr0), xsaveSize(sup), 0];
    case 1: {
      const w = c.cpuidModel.words.get(0x1000000d)?.[0] ?? 0;
      // EBX: size of the XSAVES area (no XSAVES here: the XSAVEC size of XCR0).
      return [w, xsaveSize(c.xcr0), 0, 0];
    }
    case 2:
      return sup & 4 ? [XSAVE_AVX_SIZE, XSAVE_AVX_OFFSET, 0, 0] : [0, 0, 0, 0];
  }
  return [0, 0, 0, 0];
}
