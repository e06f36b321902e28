/**
 * The CPUID model: QEMU's qemu64 (AuthenticAMD, family 15 model 107) as a base, plus x2APIC,
 * TSC-deadline, the hypervisor bit and KVM paravirt leaves (signature "KVMKVMKVM", kvmclock features,
 * TSC frequency in 0x40000010) so Linux uses kvmclock and skips PIT/LAPIC calibration.
 * `-cpu max`/`host` add POPCNT, RDRAND, RDTSCP. `+flag`/`-flag` from `-cpu` adjust single bits.
 * @module
 */
import type { Cpu } from "./cpu.ts";

/** Where a named feature bit lives: [leaf, register (0 eax, 1 ebx, 2 ecx, 3 edx), bit]. */
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
  sse3: [1, 2, 0],
  cx16: [1, 2, 13],
  x2apic: [1, 2, 21],
  popcnt: [1, 2, 23],
  "tsc-deadline": [1, 2, 24],
  rdrand: [1, 2, 30],
  hypervisor: [1, 2, 31],
  "lahf-lm": [0x80000001, 2, 0],
  syscall: [0x80000001, 3, 11],
  nx: [0x80000001, 3, 20],
  pdpe1gb: [0x80000001, 3, 26],
  rdtscp: [0x80000001, 3, 27],
  lm: [0x80000001, 3, 29],
  invtsc: [0x80000007, 3, 8],
  kvmclock: [0x40000001, 0, 3],
  "kvmclock-stable-bit": [0x40000001, 0, 24],
};

const BASE: Record<number, number[]> = {
  0x1: [
    0x00060fb1,
    0,
    (1 << 0) | (1 << 13) | (1 << 21) | (1 << 24) | (1 << 31),
    (1 << 0) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 9) | (1 << 11) |
    (1 << 12) |
    (1 << 13) | (1 << 15) | (1 << 16) | (1 << 17) | (1 << 19) | (1 << 23) | (1 << 24) | (1 << 25) | (1 << 26),
  ],
  0x80000001: [0x00060fb1, 0, 1 << 0, (1 << 11) | (1 << 20) | (1 << 26) | (1 << 29)],
  0x80000007: [0, 0, 0, 1 << 8],
  0x40000001: [(1 << 3) | (1 << 24), 0, 0, 0],
};

/** Resolved feature words for a `-cpu` model and flag list. */
export class CpuidModel {
  readonly words = new Map<number, number[]>();
  readonly tscKhz: number;
  /** `-cpu` flags given that this model does not implement (ignored). */
  readonly ignored: string[] = [];

  constructor(model: string, features: ReadonlyArray<{ name: string; on: boolean }>, tscKhz: number) {
    this.tscKhz = tscKhz;
    for (const [k, v] of Object.entries(BASE)) this.words.set(Number(k), v.slice());
    if (model === "max" || model === "host") {
      this.set("popcnt", true);
      this.set("rdrand", true);
      this.set("rdtscp", true);
    } else if (model !== "qemu64" && model !== "" && model !== "base") {
      // Other QEMU model names behave like qemu64 here.
    }
    for (const f of features) {
      const key = f.name.replace(/_/g, "-");
      // QEMU knows many more flags (arch-capabilities, vmx, ...); those that do not apply here are ignored.
      if (key in FEATURE_BITS) this.set(key, f.on);
      else this.ignored.push(f.name);
    }
  }

  set(name: string, on: boolean): void {
    const [leaf, reg, bit] = FEATURE_BITS[name];
    let w = this.words.get(leaf);
    if (!w) {
      w = [0, 0, 0, 0];
      this.words.set(leaf, w);
    }
    if (on) w[reg] |= 1 << bit;
    else w[reg] &= ~(1 << bit);
  }

  has(name: string): boolean {
    const [leaf, reg, bit] = FEATURE_BITS[name];
    return ((this.words.get(leaf)?.[reg] ?? 0) & (1 << bit)) !== 0;
  }
}

function str4(s: string, i: number): number {
  return (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 8) | (s.charCodeAt(i + 2) << 16) |
    (s.charCodeAt(i + 3) << 24)) | 0;
}

const VENDOR = "AuthenticAMD";
const BRAND = "QEMU Virtual CPU version 2.5+\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
const KVM_SIG = "KVMKVMKVM\0\0\0";

/** CPUID leaf/subleaf for vCPU `c`: [eax, ebx, ecx, edx] as int32. */
export function cpuid(c: Cpu, leaf: number, sub: number): number[] {
  const m = c.cpuidModel;
  const w = (l: number) => m.words.get(l) ?? [0, 0, 0, 0];
  switch (leaf) {
    case 0:
      return [0x16, str4(VENDOR, 0), str4(VENDOR, 8), str4(VENDOR, 4)];
    case 1: {
      const [a, , cx, dx] = w(1);
      let ecx = cx;
      // x2APIC and TSC-deadline need an APIC.
      if (!(dx & (1 << 9))) ecx &= ~((1 << 21) | (1 << 24));
      const ebx = (c.index << 24) | (Math.max(1, c.board.ncpus) << 16) | (8 << 8);
      return [a, ebx, ecx, dx | (c.board.ncpus > 1 ? 1 << 28 : 0)];
    }
    case 7:
      return [0, 0, 0, 0];
    case 0xb:
      return [0, 0, sub & 0xff, c.index];
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
    case 0x80000000:
      return [0x80000008, str4(VENDOR, 0), str4(VENDOR, 8), str4(VENDOR, 4)];
    case 0x80000001:
      return w(0x80000001).slice();
    case 0x80000002:
    case 0x80000003:
    case 0x80000004: {
      const o = (leaf - 0x80000002) * 16;
      return [str4(BRAND, o), str4(BRAND, o + 4), str4(BRAND, o + 8), str4(BRAND, o + 12)];
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
