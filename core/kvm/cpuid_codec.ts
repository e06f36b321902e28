/**
 * struct kvm_cpuid2 / kvm_cpuid_entry2 encoding (KVM_GET_SUPPORTED_CPUID, KVM_SET_CPUID2), shared by the VM
 * and vCPU wrappers (its own file so vm.ts and vcpu.ts do not import each other).
 * @module
 */
import * as K from "./kvm_api.ts";

/** One CPUID leaf as KVM exchanges it (struct kvm_cpuid_entry2). */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** Decode a kvm_cpuid2 buffer. */
export function decodeCpuid(buf: Uint8Array): CpuidEntry[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = dv.getUint32(K.CPUID2.nent, true);
  const out: CpuidEntry[] = [];
  for (let i = 0; i < n; i++) {
    const o = K.CPUID2.entries + i * K.SIZE.kvm_cpuid_entry2;
    out.push({
      function: dv.getUint32(o + K.CPUID_ENTRY.function, true),
      index: dv.getUint32(o + K.CPUID_ENTRY.index, true),
      flags: dv.getUint32(o + K.CPUID_ENTRY.flags, true),
      eax: dv.getUint32(o + K.CPUID_ENTRY.eax, true),
      ebx: dv.getUint32(o + K.CPUID_ENTRY.ebx, true),
      ecx: dv.getUint32(o + K.CPUID_ENTRY.ecx, true),
      edx: dv.getUint32(o + K.CPUID_ENTRY.edx, true),
    });
  }
  return out;
}

/** Encode entries as a kvm_cpuid2 buffer. */
export function encodeCpuid(entries: readonly CpuidEntry[]): Uint8Array {
  const buf = new Uint8Array(K.SIZE.kvm_cpuid2 + entries.length * K.SIZE.kvm_cpuid_entry2);
  const dv = new DataView(buf.buffer);
  dv.setUint32(K.CPUID2.nent, entries.length, true);
  entries.forEach((e, i) => {
    const o = K.CPUID2.entries + i * K.SIZE.kvm_cpuid_entry2;
    dv.setUint32(o + K.CPUID_ENTRY.function, e.function >>> 0, true);
    dv.setUint32(o + K.CPUID_ENTRY.index, e.index >>> 0, true);
    dv.setUint32(o + K.CPUID_ENTRY.flags, e.flags >>> 0, true);
    dv.setUint32(o + K.CPUID_ENTRY.eax, e.eax >>> 0, true);
    dv.setUint32(o + K.CPUID_ENTRY.ebx, e.ebx >>> 0, true);
    dv.setUint32(o + K.CPUID_ENTRY.ecx, e.ecx >>> 0, true);
    dv.setUint32(o + K.CPUID_ENTRY.edx, e.edx >>> 0, true);
  });
  return buf;
}
