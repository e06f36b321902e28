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

export const FEATURE_TESTS_EXT: Record<string, FeatureTest> = {};
