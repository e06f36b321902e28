import assert from "node:assert/strict";
import { formatCliError, isCliAction, parseCommandLine } from "./mod.ts";
import { MICROVM_DEVICES } from "../../devices/microvm.ts";
import { makeHarnessBoard } from "../../core/cpu/harness.ts";
import { linux64EntryState } from "../../core/boot/bzimage.ts";
import { SoftCpuAccelerator } from "../../core/cpu/mod.ts";

const parse = (argv: string[]) => parseCommandLine(argv, "microvm.ts", { devices: MICROVM_DEVICES });

Deno.test("-accel tcg,jit=off|on parses into the accelerator config; bad values are one QEMU-style error", () => {
  for (const [v, want] of [["off", false], ["on", true]] as const) {
    const cfg = parse(["-M", "microvm", "-accel", `tcg,jit=${v}`]);
    assert.ok(!isCliAction(cfg));
    assert.equal(cfg.accel[0].name, "tcg");
    assert.equal(cfg.accel[0].jit, want);
  }
  let msg = "";
  try {
    parse(["-M", "microvm", "-accel", "tcg,jit=maybe"]);
  } catch (e) {
    msg = formatCliError("microvm.ts", e as Error);
  }
  assert.match(msg, /jit/);
  assert.match(msg, /expects 'on' or 'off'/);
});

Deno.test("jit=off runs every instruction in the interpreter, jit on runs the same loop translated", async () => {
  // mov ecx, 20000; L: add rax, rcx; dec ecx; jnz L; ud2 (no IDT: the triple fault ends the run)
  const code = [0xb9, 0x20, 0x4e, 0, 0, 0x48, 0x01, 0xc8, 0xff, 0xc9, 0x75, 0xf9, 0x0f, 0x0b];
  const out: Array<{ rax: number; icount: number; jit: number }> = [];
  for (const jit of [false, true]) {
    const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20 });
    ram.write(0x100000, new Uint8Array(code));
    const accel = new SoftCpuAccelerator({ jit });
    accel.init(board, linux64EntryState(ram, 0x100000));
    const exit = await accel.run();
    assert.deepEqual(exit, { kind: "shutdown", reason: "triple-fault" });
    out.push({ rax: accel.cpus[0].r[0], icount: accel.icount, jit: accel.jit!.stats.jitInsns });
    assert.match(accel.infoJit(), jit ? /JIT {17}on/ : /JIT {17}off/);
    accel.destroy();
  }
  assert.equal(out[0].rax, 20000 * 20001 / 2);
  assert.equal(out[1].rax, out[0].rax);
  assert.equal(out[1].icount, out[0].icount);
  assert.equal(out[0].jit, 0);
  assert.ok(out[1].jit > 50000, `${out[1].jit} instructions in translated code`);
});
