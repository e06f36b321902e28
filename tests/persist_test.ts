/**
 * Guest disk data is never lost: a file written and synced by the guest survives a SIGKILL of the VMM
 * right after the sync, and a second boot reads it back (virtio-blk flush = fsync).
 */
import assert from "node:assert/strict";
import { boot, guestLines, seedDir } from "./lib/boot.ts";

const dir = await seedDir();

function line(cmd: string): string[] {
  return [
    "-M",
    "microvm",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-m",
    "256m",
    "-kernel",
    "vmlinux",
    "-append",
    `console=ttyS0 root=/dev/vda rw reboot=t guest_noread=1 guest_cmd="${cmd}"`,
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-serial",
    "stdio",
    "-drive",
    "id=test,file=test.img,format=raw,if=none",
    "-device",
    "virtio-blk-device,drive=test",
    "-no-reboot",
  ];
}

Deno.test("issue 5: a file synced by the guest survives SIGKILL of the VMM and is read back by the next boot", async () => {
  const token = `persist-${crypto.randomUUID().slice(0, 8)}`;
  const first = await boot(line(`echo ${token} > /persist.txt; sync; echo SYNCED-MARK`), {
    cwd: dir,
    onOutput: (out) => out.includes("SYNCED-MARK\r\n") || out.includes("SYNCED-MARK\n"),
  });
  assert.equal(first.code, null, "the first VMM is killed with SIGKILL right after the guest's sync");
  assert.ok(first.out.includes("SYNCED-MARK"), first.out.slice(-2000));
  const second = await boot(line("cat /persist.txt"), { cwd: dir });
  assert.equal(second.code, 0, second.out.slice(-2000));
  const g = guestLines(second.out);
  const begin = g.indexOf("GUEST-CMD-BEGIN");
  assert.ok(begin >= 0, second.out.slice(-2000));
  assert.ok(second.out.includes(token), `token missing after reboot:\n${second.out.slice(-2000)}`);
});
