/**
 * Reproducer for cpu_bugs.md BUG 2: a read-modify-write instruction whose write faults must leave RFLAGS
 * unchanged. Run `deno run -A tools/difftest/repro_rmw_fault.ts` (PASS/FAIL per instruction).
 * @module
 */
import { CpuFault } from "../../core/cpu/cpu.ts";
import { attachJit } from "../../core/cpu/jit.ts";
import { makeSoftCpu } from "./isa_fuzz.ts";

/** Instruction bytes (operating on [rbx]) and a name. */
export const RMW_CASES: ReadonlyArray<[string, number[]]> = [
  ["add qword [rbx],4", [0x48, 0x83, 0x03, 0x04]],
  ["adc dword [rbx],1", [0x83, 0x13, 0x01]],
  ["inc qword [rbx]", [0x48, 0xff, 0x03]],
  ["shl dword [rbx],3", [0xc1, 0x23, 0x03]],
  ["neg qword [rbx]", [0x48, 0xf7, 0x1b]],
  ["xadd [rbx],rax", [0x48, 0x0f, 0xc1, 0x03]],
  ["sub byte [rbx],1", [0x80, 0x2b, 0x01]],
  ["cmpxchg [rbx],rcx", [0x48, 0x0f, 0xb1, 0x0b]],
];

/**
 * Run `code` against a present, read-only data page with the interpreter or as a translated block; returns
 * [fault vector or -1, flags after].
 */
export function runRmwFault(code: number[], flags = 0x247, translate = false): [number, number] {
  const { c, it, ram } = makeSoftCpu({ splitCode: true });
  ram.writeU64(0x6000 + 0x100 * 8, 0x300000n | 5n); // virtual 0x300000: present, user, read-only
  c.flushTlb();
  ram.write(0x200000, new Uint8Array([...code, 0xf4]));
  ram.writeU64(0x300000, 0x10n);
  c.r[3] = 0x300000;
  c.r[0] = 0x10;
  c.r[1] = 0x99;
  c.setFlags(flags);
  c.rip = 0x200000;
  let vec = -1;
  try {
    if (translate) {
      c.rd8(0x200000); // put the code page in the TLB: the translator does not walk page tables itself
      // A block must fault, not retire; forms the translator declines (run() === 0) go to the interpreter.
      if (attachJit(c, 1).run(c, 1) === 0) it.step();
      else vec = -2;
    } else it.step();
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    vec = e.vec;
  }
  return [vec, c.getFlags()];
}

if (import.meta.main) {
  for (const translate of [false, true]) {
    for (const [name, code] of RMW_CASES) {
      const [vec, f] = runRmwFault(code, 0x247, translate);
      const ok = vec === 14 && f === 0x247;
      const mode = translate ? "xlat  " : "interp";
      console.log(
        `${ok ? "PASS" : "FAIL"} ${mode} ${name.padEnd(20)} #${vec} flags 0x${f.toString(16)} (want 0x247)`,
      );
    }
  }
}
