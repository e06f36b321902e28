import assert from "node:assert/strict";
import { CODE, getReg, longModeCpu, runUntil, setReg } from "./_testcpu.ts";
import { cpuFlagError, cpuid, CpuidModel, IMPLEMENTED } from "./cpuid.ts";
import type { Cpu } from "./cpu.ts";
import type { LocalApicPort } from "../accel.ts";
import { FEATURE_TESTS_EXT, type FeatureTest } from "./_feature_tests.ts";

const DATA = 0x30000;

/** A stub local APIC that answers the MSRs the CPU routes to it. */
function stubLapic(): LocalApicPort & { msrs: Map<number, bigint> } {
  const msrs = new Map<number, bigint>([[0x1b, 0xfee00900n], [0x802, 0n]]);
  return {
    apicId: 0,
    msrs,
    hasInterrupt: () => false,
    acknowledge: () => -1,
    takeNmi: () => false,
    takeStartup: () => -1,
    mmioRead: () => 0,
    mmioWrite: () => {},
    readMsr: (m) => msrs.get(m),
    writeMsr: (m, v) => (msrs.set(m, v), true),
    baseAddress: 0xfee00000,
    reset: () => {},
  };
}

const r = (c: Cpu, n: number) => getReg(c, n);

/** Features of the base ISA and the board, each with an instruction that uses it. */
const FEATURE_TESTS: Record<string, FeatureTest> = {
  fpu: { code: "dbe3d93b", check: (_c, ram) => assert.equal(ram.readU16(DATA), 0x37f) }, // fninit; fnstcw [rbx]
  // mov rax, cr4; or rax, BIT; mov cr4, rax; mov rcx, cr4
  de: { code: "0f20e04883c8080f22e00f20e1", check: (c) => assert.ok(c.r[1] & 8) },
  pse: { code: "0f20e04883c8100f22e00f20e1", check: (c) => assert.ok(c.r[1] & 0x10) },
  mce: { code: "0f20e04883c8400f22e00f20e1", check: (c) => assert.ok(c.r[1] & 0x40) },
  pge: { code: "0f20e0480d800000000f22e00f20e1", check: (c) => assert.ok(c.r[1] & 0x80) },
  pae: { code: "0f20e1", check: (c) => assert.ok(c.r[1] & 0x20) }, // mov rcx, cr4 (paging runs on PAE tables)
  tsc: { code: "0f31", check: (c) => assert.ok(r(c, 0) + r(c, 2) > 0n) }, // rdtsc
  invtsc: { code: "0f31", check: (c) => assert.ok(r(c, 0) + r(c, 2) > 0n) },
  // wrmsr/rdmsr IA32_PAT
  msr: {
    code: "b977020000b806060606ba060407000f3031c031d20f32",
    check: (c) => assert.equal(r(c, 2), 0x70406n),
  },
  pat: {
    code: "b977020000b806060606ba060407000f3031c031d20f32",
    check: (c) => assert.equal(r(c, 0), 0x6060606n),
  },
  cx8: { // cmpxchg8b [rdi] with edx:eax equal to memory
    code: "0fc70f",
    setup: (c, ram) => {
      ram.writeU64(DATA, 0x1111111122222222n);
      setReg(c, 0, 0x22222222n);
      setReg(c, 2, 0x11111111n);
      setReg(c, 3, 0x33333333n);
      setReg(c, 1, 0x44444444n);
      setReg(c, 7, BigInt(DATA));
    },
    check: (_c, ram) =>
      assert.deepEqual([ram.readU32(DATA), ram.readU32(DATA + 4)], [0x33333333, 0x44444444]),
  },
  apic: { code: "b91b0000000f32", check: (c) => assert.equal(r(c, 0), 0xfee00900n) }, // rdmsr APIC_BASE
  x2apic: {
    code: "b9020800000f32", // rdmsr 0x802 (x2APIC id)
    setup: (c) => setReg(c, 0, 0xdeadn),
    check: (c) => assert.equal(r(c, 0), 0n),
  },
  "tsc-deadline": { code: "b9e0060000b80010000031d20f300f32", check: (c) => assert.equal(r(c, 0), 0x1000n) },
  // wrmsr/rdmsr SYSENTER_ESP
  sep: { code: "b975010000b87856341231d20f3031c00f32", check: (c) => assert.equal(r(c, 0), 0x12345678n) },
  mtrr: { code: "b9fe0000000f32", check: (c) => assert.equal(c.rip, CODE + 7) }, // rdmsr MTRRcap
  mca: { code: "b9790100000f32", check: (c) => assert.equal(c.rip, CODE + 7) }, // rdmsr MCG_CAP
  cmov: { code: "b801000000b90200000039c00f44c1", check: (c) => assert.equal(r(c, 0), 2n) },
  clflush: { code: "0fae3b", check: (c) => assert.equal(c.rip, CODE + 3) },
  fxsr: { // fxsave [rbx]; mov dword [rbx+160], 0x1234; fxrstor [rbx]
    code: "0fae03c783a0000000341200000fae0b",
    check: (c) => assert.equal(c.xmm[0], 0x1234),
  },
  sse: { // movaps xmm1, xmm0; addps xmm1, xmm0
    code: "0f28c80f58c8",
    setup: (c) => new Float32Array(c.xmm.buffer).set([1.5, 2, 3, 4]),
    check: (c) => assert.deepEqual(Array.from(new Float32Array(c.xmm.buffer, 16, 4)), [3, 4, 6, 8]),
  },
  sse2: { // paddd xmm0, xmm0; addsd xmm0, xmm0
    code: "660ffec0f20f58c0",
    setup: (c) => c.xmm.set([0, 0x1ff80000, 5, 6]),
    check: (c) => assert.deepEqual(Array.from(c.xmm.subarray(0, 4)), [0, 0x40000000, 10, 12]),
  },
  cx16: {
    code: "480fc70b", // cmpxchg16b [rbx]: memory differs, so rdx:rax is loaded
    setup: (_c, ram) => {
      ram.writeU64(DATA, 5n);
      ram.writeU64(DATA + 8, 7n);
    },
    check: (c) => assert.deepEqual([r(c, 0), r(c, 2), c.getFlags() & 0x40], [5n, 7n, 0]),
  },
  popcnt: { code: "f3480fb8c1", setup: (c) => setReg(c, 1, -1n), check: (c) => assert.equal(r(c, 0), 64n) },
  rdrand: { code: "480fc7f0", check: (c) => assert.equal(c.getFlags() & 1, 1) },
  hypervisor: { code: "b8000000400fa2", check: (c) => assert.equal(c.r[3], 0x4b4d564b) }, // "KVMK"
  "lahf-lm": { code: "b800d500009eb8000000009f", check: (c) => assert.equal(c.r[0] >> 8, 0xd7) },
  syscall: {
    code: "0f05cc", // syscall; int3 (skipped: LSTAR is the end)
    setup: (c) => {
      c.efer |= 1;
      c.lstar = CODE + 3;
      c.star = 0x0010_0008_0000_0000n;
    },
    check: (c) => assert.deepEqual([c.rip, Number(r(c, 1))], [CODE + 3, CODE + 2]),
  },
  nx: { code: "b9800000c00f32", check: (c) => assert.ok(c.r[0] & 0x800) }, // rdmsr EFER: NXE
  // mov rax, [0x10000] through the harness's 1 GiB page
  pdpe1gb: { code: "488b042500000100", check: (c) => assert.equal(r(c, 0), 0x0001000025048b48n) },
  lm: { code: "48b8f0debc9a78563412", check: (c) => assert.equal(r(c, 0), 0x123456789abcdef0n) },
  rdtscp: { code: "b9030100c0b84d00000031d20f300f01f9", check: (c) => assert.equal(r(c, 1), 77n) },
  kvmclock: { // wrmsr MSR_KVM_SYSTEM_TIME_NEW = 0x5001
    code: "b9014d564bb80150000031d20f30",
    check: (_c, ram) => assert.equal(ram.readU32(0x5000), 2),
  },
  "kvmclock-stable-bit": { code: "b8010000400fa2", check: (c) => assert.ok(c.r[0] & (1 << 24)) },
  ...FEATURE_TESTS_EXT,
};

function runFeature(name: string, t: FeatureTest): void {
  const lapic = stubLapic();
  const { c, it, ram } = longModeCpu(4 << 20, { cpuModel: "max", lapics: [lapic], kvmclock: true });
  setReg(c, 3, BigInt(DATA));
  setReg(c, 4, 0x3f000n);
  const code = new Uint8Array(t.code.match(/../g)!.map((h) => parseInt(h, 16)));
  ram.write(CODE, code);
  t.setup?.(c, ram);
  try {
    runUntil(c, it, CODE, CODE + code.length, 100);
  } catch (e) {
    throw new Error(`${name}: ${e}`);
  }
  try {
    t.check(c, ram);
  } catch (e) {
    throw new Error(`${name}: ${(e as Error).message}`);
  }
}

Deno.test("every CPUID bit -cpu max advertises has an instruction test that passes", () => {
  const m = new CpuidModel("max", [], 1000000);
  const adv = m.advertised();
  const missing = adv.filter((n) => !(n in FEATURE_TESTS));
  assert.deepEqual(missing, []);
  for (const n of adv) runFeature(n, FEATURE_TESTS[n]);
  // And nothing outside IMPLEMENTED.
  assert.deepEqual(adv.filter((n) => !IMPLEMENTED.has(n)), []);
});

Deno.test("-cpu qemu64 and kvm64 carry QEMU 7.2's identity and feature words (minus what is not implemented)", () => {
  const { c } = longModeCpu(4 << 20, { cpuModel: "qemu64" });
  const hex = (v: number[]) => v.map((x) => (x >>> 0).toString(16));
  assert.deepEqual(hex(cpuid(c, 0, 0)).slice(1), hex([0x68747541, 0x444d4163, 0x69746e65]));
  const l1 = cpuid(c, 1, 0);
  assert.equal(l1[0], 0x60fb1);
  // PPRO_FEATURES | MTRR | CLFLUSH | MCA | PSE36 (not implemented: PSE-36 paging) ... MMX included.
  const bits = [0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 19, 23, 24, 25, 26]; // QEMU's minus pse36
  assert.equal(l1[3] >>> 0, bits.reduce((a, b) => a | (1 << b), 0) >>> 0);
  const k = new CpuidModel("kvm64", [], 1000000);
  assert.equal(k.vendor, "GenuineIntel");
  assert.equal(k.signature, 0xf61);
  assert.equal(k.brand, "Common KVM processor");
  assert.ok(!k.has("lahf-lm"));
  const q = new CpuidModel("qemu64", [], 1000000);
  assert.ok(q.has("lahf-lm") && !q.has("svm") && !q.has("popcnt"));
  // AMD mirrors 1:EDX into 80000001:EDX.
  assert.equal(q.words.get(0x80000001)![3] & 0x0183f3ff, q.words.get(1)![3] & 0x0183f3ff);
});

Deno.test("-cpu max,-flag,+flag applies; unknown flags are QEMU's one-line error; unimplemented ones warn", () => {
  const m = new CpuidModel("max", [{ name: "popcnt", on: false }, { name: "rdrand", on: false }], 1000000);
  assert.ok(!m.has("popcnt") && !m.has("rdrand") && m.has("cx16"));
  const q = new CpuidModel("qemu64", [{ name: "popcnt", on: true }, { name: "vmx", on: true }], 1000000);
  assert.ok(q.has("popcnt"));
  assert.equal(
    cpuFlagError("max", [{ name: "bogus", on: true }]),
    "can't apply global max-x86_64-cpu.bogus=on: Property 'max-x86_64-cpu.bogus' not found",
  );
  assert.equal(cpuFlagError("max", [{ name: "vmx", on: false }, { name: "sse4_2", on: true }]), null);
  const w = new CpuidModel("qemu64", [{ name: "aes", on: true }], 1000000);
  assert.ok(!w.has("aes"));
  assert.deepEqual(w.warnings, [
    "warning: TCG doesn't support requested feature: CPUID.01H:ECX.aes [bit 25]",
  ]);
});

Deno.test("LZCNT/TZCNT run as BSR/BSF unless the model advertises ABM/BMI1", () => {
  const code = new Uint8Array([0xf3, 0x48, 0x0f, 0xbd, 0xc1]); // lzcnt rax, rcx
  for (const [model, want] of [["qemu64", 4n], ["max", IMPLEMENTED.has("abm") ? 59n : 4n]] as const) {
    const { c, it, ram } = longModeCpu(4 << 20, { cpuModel: model });
    ram.write(CODE, code);
    setReg(c, 1, 0x10n);
    runUntil(c, it, CODE, CODE + code.length);
    assert.equal(r(c, 0), want, model);
  }
});
