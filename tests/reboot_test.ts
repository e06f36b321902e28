/**
 * Guest reboot as QEMU's microvm does it, for every method Linux tries (reboot=t/k/b/p and the default
 * order). microvm has no keyboard controller and no 0xcf9, so `k`, `b` and the default all end in the
 * real-mode far jump to the reset vector F000:FFF0 (where qboot would run) and `p` ends in a triple
 * fault; either is a reset request: -no-reboot exits 0, otherwise the machine boots again.
 */
import assert from "node:assert/strict";
import { boot, guestLines, seedDir } from "./lib/boot.ts";
import { buildBoard, SEED_LINE_1, SEED_LINE_2, withTcg } from "./lib/machine.ts";
import { SoftCpuAccelerator } from "../core/cpu/mod.ts";
import type { CpuEntryState, SegmentState } from "../core/accel.ts";

const dir = await seedDir();

function withAppend(argv: string[], extra: string): string[] {
  const i = argv.indexOf("-append");
  const out = argv.slice();
  out[i + 1] = `${out[i + 1]} ${extra}`;
  return out;
}

function tail(out: string): string {
  return `\n--- output tail ---\n${out.split("\n").slice(-20).join("\n")}`;
}

function realModeAt(cs: number, ip: number): CpuEntryState {
  const seg = (sel: number): SegmentState => ({ selector: sel, base: sel * 16, limit: 0xffff, attrs: 0x93 });
  return {
    regs: { rip: BigInt(ip), rflags: 2n, rsp: 0x7000n },
    cs: { ...seg(cs), attrs: 0x9b },
    ds: seg(0),
    es: seg(0),
    ss: seg(0),
    fs: seg(0),
    gs: seg(0),
    tr: { selector: 0, base: 0, limit: 0xffff, attrs: 0x8b },
    ldtr: { selector: 0, base: 0, limit: 0xffff, attrs: 0x82 },
    gdt: { base: 0, limit: 0xffff },
    idt: { base: 0, limit: 0x3ff },
    cr0: 0x10n,
    cr3: 0n,
    cr4: 0n,
    efer: 0n,
  };
}

Deno.test("executing the reset vector F000:FFF0 is a reset request (software CPU, register level)", async () => {
  const { machine } = buildBoard(["-M", "microvm,acpi=off", "-accel", "tcg", "-m", "64m", "-nodefaults"]);
  // The far jump Linux's machine_real_restart() ends with: jmp far F000:FFF0.
  machine.ram.write(0x7c00, new Uint8Array([0xea, 0xf0, 0xff, 0x00, 0xf0]));
  const accel = new SoftCpuAccelerator();
  accel.init(machine.accelBoard(), realModeAt(0, 0x7c00));
  const exit = await accel.run();
  accel.destroy();
  assert.deepEqual(exit, { kind: "shutdown", reason: "triple-fault" });
  // system_reset writes the stub again even if the guest overwrote it.
  machine.ram.write(0xffff0, new Uint8Array(16));
  machine.reset();
  const back = [0, 1, 2, 3, 4, 5, 6].map((i) => machine.memory.read(0xffff0 + i, 1));
  assert.deepEqual(back, [0x2e, 0x0f, 0x01, 0x1e, 0xf8, 0xff, 0xcc]);
});

const NOREAD = "ro guest_noread=1";

for (const method of ["", "reboot=k", "reboot=b", "reboot=p", "reboot=t"]) {
  Deno.test(`seed line 1: guest reboot ${method || "(default order)"} under -no-reboot exits 0`, async () => {
    const r = await boot([...withAppend(withTcg(SEED_LINE_1), `${NOREAD} ${method}`), "-no-reboot"], {
      cwd: dir,
      timeoutMs: 240_000,
    });
    const g = guestLines(r.out);
    assert.equal(r.timedOut, false, `timed out${tail(r.out)}`);
    assert.equal(r.code, 0, `exit code${tail(r.out)}`);
    assert.equal(g[g.length - 1], "GUEST-REBOOT", tail(r.out));
    assert.ok(r.out.includes("reboot: machine restart"), tail(r.out));
  });
}

Deno.test("seed line 2 (all legacy off): default reboot under -no-reboot exits 0", async () => {
  const r = await boot([...withAppend(withTcg(SEED_LINE_2), NOREAD), "-no-reboot"], {
    cwd: dir,
    timeoutMs: 240_000,
  });
  const g = guestLines(r.out);
  assert.equal(r.code, 0, `exit code${tail(r.out)}`);
  assert.equal(g[g.length - 1], "GUEST-REBOOT", tail(r.out));
});

for (const [name, line] of [["1", SEED_LINE_1], ["2", SEED_LINE_2]] as const) {
  Deno.test(`seed line ${name}: without -no-reboot a default-order guest reboot boots the machine again`, async () => {
    let boots = 0;
    const r = await boot(withAppend(withTcg(line), NOREAD), {
      cwd: dir,
      timeoutMs: 300_000,
      onOutput: (out) => (boots = out.split("GUEST-INIT-OK").length - 1) >= 2,
    });
    assert.equal(r.timedOut, false, `timed out${tail(r.out)}`);
    assert.equal(boots, 2, tail(r.out));
    const g = guestLines(r.out);
    assert.ok(g.indexOf("GUEST-REBOOT") < g.lastIndexOf("GUEST-INIT-OK"), tail(r.out));
  });
}
