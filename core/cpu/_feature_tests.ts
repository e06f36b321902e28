/**
 * Instruction tests for the CPUID features of the ISA extensions (internal to cpuid_test.ts): one entry per
 * feature name, keyed like cpuid.ts FEATURE_BITS.
 * @module
 */
import type { Cpu } from "./cpu.ts";
import type { FlatRam } from "./harness.ts";

/** One feature's check: machine code (asm in the comment) and what must hold afterwards. rbx points at data. */
export interface FeatureTest {
  code: string;
  setup?: (c: Cpu, ram: FlatRam) => void;
  check: (c: Cpu, ram: FlatRam) => void;
}

const r64 = (c: Cpu, n: number) => (BigInt(c.r[n + 16] >>> 0) << 32n) | BigInt(c.r[n] >>> 0);
const eq = (a: unknown, b: unknown, what: string) => {
  if (a !== b) throw new Error(`${what}: got ${a}, want ${b}`);
};

/** AVX state enabled as Linux leaves it: CR4.OSXSAVE and XCR0 = x87|SSE|AVX. */
function avxOn(c: Cpu): void {
  c.cr4 |= 0x40000;
  c.xcr0 = 7;
}

export const FEATURE_TESTS_EXT: Record<string, FeatureTest> = {
  mmx: { // paddd mm0, mm1 (MM registers alias the x87 significands, Cpu.fpr bytes 16n..16n+7)
    code: "0ffec1",
    setup: (c) => {
      const v = new DataView(c.fpr.buffer, c.fpr.byteOffset, 128);
      v.setUint32(0, 1, true);
      v.setUint32(4, 0xffffffff, true);
      v.setUint32(16, 2, true);
      v.setUint32(20, 1, true);
    },
    check: (c) => {
      const v = new DataView(c.fpr.buffer, c.fpr.byteOffset, 128);
      eq(`${v.getUint32(0, true)},${v.getUint32(4, true)}`, "3,0", "paddd mm0, mm1");
    },
  },
  avx: { // vaddpd ymm0, ymm1, ymm2
    code: "c5f558c2",
    setup: (c) => {
      avxOn(c);
      new Float64Array(c.xmm.buffer).set([1, 2], 2);
      new Float64Array(c.ymmh.buffer).set([3, 4], 2);
      new Float64Array(c.xmm.buffer).set([10, 20], 4);
      new Float64Array(c.ymmh.buffer).set([30, 40], 4);
    },
    check: (c) =>
      eq(
        [...new Float64Array(c.xmm.buffer, 0, 2), ...new Float64Array(c.ymmh.buffer, 0, 2)].join(),
        "11,22,33,44",
        "vaddpd",
      ),
  },
  avx2: { // vpaddd ymm0, ymm1, ymm2
    code: "c5f5fec2",
    setup: (c) => {
      avxOn(c);
      c.ymmh.set([1, 2, 3, 4, 10, 20, 30, 40], 4);
    },
    check: (c) => eq(Array.from(c.ymmh.subarray(0, 4)).join(), "11,22,33,44", "vpaddd"),
  },
  fma: { // vfmadd231sd xmm0, xmm1, xmm2: xmm0 += xmm1 * xmm2, one rounding
    code: "c4e2f1b9c2",
    setup: (c) => {
      avxOn(c);
      const d = new Float64Array(c.xmm.buffer);
      d[0] = -1;
      d[2] = 1 + 2 ** -30;
      d[4] = 1 - 2 ** -30;
    },
    check: (c) => eq(new Float64Array(c.xmm.buffer)[0], -(2 ** -60), "vfmadd231sd"),
  },
  f16c: { // vcvtps2ph xmm0, xmm1, 0
    code: "c4e3791dc800",
    setup: (c) => {
      avxOn(c);
      new Float32Array(c.xmm.buffer).set([1.5, -2, 65504, 1e-8], 4);
    },
    check: (c) =>
      eq(Array.from(new Uint16Array(c.xmm.buffer, 0, 4)).join(), "15872,49152,31743,0", "vcvtps2ph"),
  },
  // CR4.OSXSAVE; xsetbv 3; xsave [rbx]; pxor xmm1, xmm1; xrstor [rbx]; xgetbv
  xsave: {
    code: "0f20e181c9000004000f22e131c9b80300000031d20f01d1b8070000000fae23660fefc90fae2b0f01d0",
    setup: (c) => (c.xmm[4] = 77),
    check: (c, ram) => eq([c.r[0], c.xmm[4], ram.readU32(0x30000 + 512)].join(), "3,77,3", "xsave"),
  },
  // CR4.OSXSAVE; eax = edx = -1; xsaveopt [rbx]
  xsaveopt: {
    code: "0f20e181c9000004000f22e1b8ffffffff89c20fae33",
    setup: (c) => (c.xcr0 = 3),
    check: (_c, ram) => eq(ram.readU32(0x30000 + 512), 3, "XSTATE_BV"),
  },
  // CR4.OSXSAVE; eax = edx = -1; xsavec [rbx]; xrstor [rbx]
  xsavec: {
    code: "0f20e181c9000004000f22e1b8ffffffff89c20fc7230fae2b",
    setup: (c) => (c.xcr0 = 3),
    check: (_c, ram) => eq(ram.readU32(0x30000 + 524) >>> 0, 0x80000000, "XCOMP_BV[63]"),
  },
  ssse3: { // pabsd xmm0, xmm1
    code: "660f381ec1",
    setup: (c) => c.xmm.set([-5, 7, -2147483648, 0], 4),
    check: (c) => eq(Array.from(c.xmm.subarray(0, 4)).join(), "5,7,-2147483648,0", "pabsd"),
  },
  "sse4.1": { // pmulld xmm0, xmm1
    code: "660f3840c1",
    setup: (c) => c.xmm.set([3, -4, 65536, 7, 5, 6, 65536, -1]),
    check: (c) => eq(Array.from(c.xmm.subarray(0, 4)).join(), "15,-24,0,-7", "pmulld"),
  },
  // xor eax, eax; mov ebx, 'a'; crc32 eax, bl (CRC-32C)
  "sse4.2": { code: "31c0bb61000000f20f38f0c3", check: (c) => eq(c.r[0] >>> 0, 0x93ad1061, "crc32") },
  pni: { // haddpd xmm0, xmm0
    code: "660f7cc0",
    setup: (c) => new Float64Array(c.xmm.buffer).set([1, 2]),
    check: (c) => eq(Array.from(new Float64Array(c.xmm.buffer, 0, 2)).join(), "3,3", "haddpd"),
  },
  // mov rcx, 0x10; lzcnt rax, rcx
  abm: { code: "48c7c110000000f3480fbdc1", check: (c) => eq(r64(c, 0), 59n, "lzcnt") },
  // mov rcx, 0xf0; mov rdx, 0x0404; bextr rax, rcx, rdx
  bmi1: { code: "48c7c1f000000048c7c204040000c4e2e8f7c1", check: (c) => eq(r64(c, 0), 0xfn, "bextr") },
  // mov rcx, 0xff; mov rdx, 0x0f0f; pext rax, rcx, rdx
  bmi2: { code: "48c7c1ff00000048c7c20f0f0000c4e2f2f5c2", check: (c) => eq(r64(c, 0), 0xfn, "pext") },
  // mov rax, -1; mov rcx, 1; adox rax, rcx
  adx: {
    code: "48c7c0ffffffff48c7c101000000f3480f38f6c1",
    check: (c) => eq([r64(c, 0), c.getFlags() & 0x801].join(), "0,2048", "adox"),
  },
  movbe: { // movbe rax, [rbx]
    code: "480f38f003",
    setup: (_c, ram) => ram.write(0x30000, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])),
    check: (c) => eq(r64(c, 0), 0x0102030405060708n, "movbe"),
  },
  rdseed: { code: "480fc7f8", check: (c) => eq(c.getFlags() & 1, 1, "rdseed CF") },
  // wrmsr TSC_AUX = 42; rdpid rax
  rdpid: { code: "b9030100c0b82a00000031d20f30f30fc7f8", check: (c) => eq(r64(c, 0), 42n, "rdpid") },
};
