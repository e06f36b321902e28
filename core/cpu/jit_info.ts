/**
 * `info jit` text for the software CPU, in the spirit of QEMU's (accel/tcg/translate-all.c dump_exec_info):
 * translation buffer state, then statistics.
 * @module
 */
import type { JitStats } from "./jit.ts";

/** Format the JIT counters; `icount` is every instruction retired (interpreted or translated). */
export function formatJitInfo(s: JitStats, icount: number, enabled: boolean): string {
  const pct = (a: number, b: number) => (b > 0 ? ((100 * a) / b).toFixed(1) : "0.0");
  const avg = (a: number, b: number) => (b > 0 ? Math.round(a / b) : 0);
  const lines = [
    "Translation buffer state:",
    `JIT                 ${enabled ? "on" : "off (every instruction interpreted)"}`,
    `gen code size       ${s.codeBytes} bytes of JS source`,
    `TB count            ${s.blocks}`,
    `TB translated       ${s.translated} (${s.failed} start addresses left to the interpreter)`,
    `TB avg target size  ${avg(s.guestBytes, s.translated)} bytes`,
    `TB avg host size    ${avg(s.codeBytes, s.translated)} bytes (expansion ratio: ${
      (s.guestBytes > 0 ? s.codeBytes / s.guestBytes : 0).toFixed(1)
    })`,
    `compile time        ${s.compileMs.toFixed(1)} ms (${
      s.translated > 0 ? ((1000 * s.compileMs) / s.translated).toFixed(0) : "0"
    } us per TB)`,
    "",
    "Statistics:",
    `TB flush count      ${s.flushes}`,
    `TB invalidate count ${s.invalidatedBlocks} (${s.invalidatedPages} code pages written)`,
    `insns executed      ${icount}`,
    `insns in JIT code   ${s.jitInsns} (${pct(s.jitInsns, icount)}%)`,
  ];
  return lines.join("\n") + "\n";
}
