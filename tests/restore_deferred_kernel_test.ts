/**
 * `-incoming`: the destination does not load the kernel and initrd (the stream replaces RAM and vCPU
 * state): their files are checked at start-up, read only at the first reset, and RAM is left untouched
 * (all zero) for the RAM loader. The restored guest answering on its console is tests/migration_test.ts.
 */
import assert from "node:assert/strict";
import { isCliAction, parseCommandLine } from "../shell/cli/mod.ts";
import { buildVm } from "../shell/vm.ts";
import { MICROVM_DEVICES } from "../devices/microvm.ts";
import { UserError } from "../core/types.ts";
import { guestFile } from "../core/host/guest_files.ts";

async function build(extra: string[]) {
  const cfg = parseCommandLine(
    ["-M", "microvm", "-accel", "tcg", "-m", "64m", "-nodefaults", "-display", "none", ...extra],
    "microvm.ts",
    { devices: MICROVM_DEVICES },
  );
  if (isCliAction(cfg)) throw new Error("unexpected CLI action");
  return await buildVm(cfg);
}

Deno.test("-incoming: kernel and initrd are not loaded into RAM until a reset", async () => {
  const args = ["-kernel", await guestFile("vmlinux"), "-initrd", await guestFile("initramfs.cpio.gz")];
  const booted = await build(args);
  const incoming = await build([...args, "-incoming", "defer"]);
  try {
    const ramOf = (r: typeof booted) => r.machine.ram.u8.subarray(0, r.machine.ram.size);
    // A plain start loads the kernel and enters it in protected mode (PVH).
    const at = booted.machine.boot!.kernel.addr;
    assert.ok(ramOf(booted).subarray(at, at + 0x10000).some((b) => b !== 0));
    assert.equal(booted.machine.entry()?.cs.selector, 0x10);
    // Under -incoming, guest RAM is untouched (fresh zero pages) and the vCPU gets the power-on state.
    assert.equal(incoming.machine.loaderPages, null);
    assert.ok(ramOf(incoming).every((b) => b === 0), "RAM written before the stream arrived");
    const e = incoming.machine.entry();
    assert.equal(e?.cs.selector, 0xf000);
    assert.equal(e?.regs.rip, 0xfff0n);
    // A reset (system_reset after the restore) loads the kernel as a plain start does.
    incoming.machine.reset();
    assert.equal(incoming.machine.entry()?.cs.selector, 0x10);
    assert.deepEqual(
      ramOf(incoming).subarray(at, at + 0x10000),
      ramOf(booted).subarray(at, at + 0x10000),
    );
  } finally {
    booted.close();
    incoming.close();
  }
});

Deno.test("-incoming: a missing kernel or initrd file is still refused at start-up", async () => {
  await assert.rejects(
    build(["-kernel", "/nonexistent/vmlinux", "-incoming", "defer"]),
    (e: unknown) =>
      e instanceof UserError && /could not open kernel file '\/nonexistent\/vmlinux'/.test(e.message),
  );
  await assert.rejects(
    build(["-kernel", await guestFile("vmlinux"), "-initrd", "/nonexistent/initrd", "-incoming", "defer"]),
    (e: unknown) => e instanceof UserError && /could not load initrd '\/nonexistent\/initrd'/.test(e.message),
  );
});
