/**
 * Reproducer for cpu_bugs.md bug 1: the block translator decodes a block's first instruction from host
 * bytes that follow the guest page physically, not from the next virtual page. Run:
 * `deno run -A tools/difftest/repro_page_cross.ts` (prints PASS/FAIL for the interpreter and the translator).
 * @module
 */
import { attachJit } from "../../core/cpu/jit.ts";
import { makeSoftCpu } from "./isa_fuzz.ts";

/** Outcome of one run: rax at the end and the rip where it stopped. */
export interface PageCrossResult {
  rax: number;
  rip: number;
}

/**
 * Virtual 0x200000 -> physical 0x200000, virtual 0x201000 -> physical 0x280000 (4 KiB pages).
 * Code: `mov eax, 0x1000` ending exactly at 0x201000 (`len` 5) or straddling it (`len` 6: `mov eax` with a
 * 66h-less REX form), then at virtual 0x201000 `add eax, 1; hlt`; the physically following page holds
 * `add eax, 0x64; hlt` instead. A correct CPU ends with eax 0x1001.
 */
export function runPageCross(translate: boolean, straddle: boolean): PageCrossResult {
  const { c, it, ram } = makeSoftCpu();
  // PDPT[0] -> PD at 0x5000; PD[1] -> PT at 0x6000 (covers 0x200000-0x3fffff); other PD entries 2 MiB pages.
  ram.writeU64(0x2000, 0x5000n | 7n);
  for (let i = 0; i < 512; i++) ram.writeU64(0x5000 + i * 8, BigInt(i) * 0x200000n | 0x87n);
  ram.writeU64(0x5008, 0x6000n | 7n);
  for (let j = 0; j < 512; j++) ram.writeU64(0x6000 + j * 8, 0x200000n + BigInt(j) * 0x1000n | 7n);
  ram.writeU64(0x6008, 0x280000n | 7n); // virtual 0x201000 -> physical 0x280000
  c.flushTlb();
  // Entry jump so that the target is a branch target (block start).
  ram.write(0x200100, new Uint8Array([0xe9, ...le32(0x200ffb - 0x200105)]));
  // mov eax, 0x1000 (b8 imm32, 5 bytes) ending exactly at the page end, or 41 b8.. (mov r8d) + xchg? keep
  // it simple: straddle uses `48 c7 c0 imm32` (mov rax, imm32, 7 bytes) starting at 0x200ffb.
  const first = straddle ? [0x48, 0xc7, 0xc0, 0x00, 0x10, 0x00, 0x00] : [0xb8, 0x00, 0x10, 0x00, 0x00];
  const start = 0x201000 - (straddle ? 4 : 5);
  ram.write(0x200100, new Uint8Array([0xe9, ...le32(start - 0x200105)]));
  const virtNext = [0x83, 0xc0, 0x01, 0xf4]; // add eax, 1; hlt
  const physNext = [0x83, 0xc0, 0x64, 0xf4]; // add eax, 0x64; hlt
  const k = 0x201000 - start;
  ram.write(start, new Uint8Array(first.slice(0, k)));
  // Virtual page 0x201000 (physical 0x280000): rest of the first instruction, then the real continuation.
  ram.write(0x280000, new Uint8Array([...first.slice(k), ...virtNext]));
  // Physical page 0x201000 (not mapped at virtual 0x201000): decoy bytes.
  ram.write(0x201000, new Uint8Array([...first.slice(k), ...physNext]));
  const tr = translate ? attachJit(c, 1) : null;
  c.rip = 0x200100;
  c.atBranch = true;
  for (let n = 0; n < 100 && !c.halted; n++) {
    const m = tr && c.atBranch ? tr.run(c, 1) : 0;
    if (m === 0) {
      c.atBranch = false;
      it.step();
      // A jump leaves the next instruction a block start.
      if (c.rip === start) c.atBranch = true;
    }
  }
  return { rax: c.r[0], rip: c.rip };
}

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

if (import.meta.main) {
  for (const straddle of [false, true]) {
    for (const translate of [false, true]) {
      const r = runPageCross(translate, straddle);
      const ok = r.rax === 0x1001;
      console.log(
        `${ok ? "PASS" : "FAIL"} ${translate ? "translator " : "interpreter"} ${
          straddle ? "first insn straddles the page" : "first insn ends at the page end"
        }: eax=0x${r.rax.toString(16)} (want 0x1001) rip=0x${r.rip.toString(16)}`,
      );
    }
  }
}
