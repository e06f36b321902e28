/**
 * End-to-end Linux boots on the software CPU (`-accel tcg`), from the seed command lines of QEMU's
 * microvm documentation. The VMM runs without --allow-ffi, --allow-run or --allow-net.
 */
import assert from "node:assert/strict";
import { boot, guestLines, seedDir } from "./lib/boot.ts";
import { SEED_LINE_1, SEED_LINE_2, withTcg } from "./lib/machine.ts";

const dir = await seedDir();

function withAppend(argv: string[], extra: string): string[] {
  const i = argv.indexOf("-append");
  const out = argv.slice();
  out[i + 1] = `${out[i + 1]} ${extra}`;
  return out;
}

function explain(out: string): string {
  return `\n--- output tail ---\n${out.split("\n").slice(-25).join("\n")}`;
}

Deno.test("seed line 1 (-accel tcg, -smp 2, rootfs as /dev/vda) boots to GUEST-BLK-READ and exits 0", async () => {
  const r = await boot([...withAppend(withTcg(SEED_LINE_1), "ro reboot=t"), "-no-reboot"], { cwd: dir });
  const g = guestLines(r.out);
  assert.equal(r.code, 0, `exit code${explain(r.out)}`);
  assert.ok(g.includes("GUEST-INIT-OK"), explain(r.out));
  assert.ok(g.includes("GUEST-CPUS 2"), explain(r.out));
  assert.ok(g.includes("GUEST-VIRTIO virtio0 id=0x0002 driver=virtio_blk"), explain(r.out));
  assert.ok(
    g.some((l) => /^GUEST-BLK-READ dev=\/dev\/vda bytes=67108864 centisecs=\d+$/.test(l)),
    explain(r.out),
  );
  assert.ok(
    g.includes(
      "GUEST-CMDLINE earlyprintk=ttyS0 console=ttyS0 root=/dev/vda ro reboot=t virtio_mmio.device=512@0xfeb00e00:12",
    ),
    explain(r.out),
  );
  assert.equal(g[g.length - 1], "GUEST-REBOOT");
});

Deno.test("seed line 2 (all legacy devices off, console on hvc0) boots to GUEST-BLK-READ and exits 0", async () => {
  const r = await boot([...withAppend(withTcg(SEED_LINE_2), "ro reboot=t"), "-no-reboot"], { cwd: dir });
  const g = guestLines(r.out);
  assert.equal(r.code, 0, `exit code${explain(r.out)}`);
  assert.ok(g.includes("GUEST-INIT-OK"), explain(r.out));
  assert.ok(g.includes("GUEST-VIRTIO virtio0 id=0x0003 driver=virtio_console"), explain(r.out));
  assert.ok(g.includes("GUEST-VIRTIO virtio1 id=0x0002 driver=virtio_blk"), explain(r.out));
  assert.ok(g.some((l) => l.startsWith("GUEST-BLK-READ dev=/dev/vda bytes=67108864")), explain(r.out));
  assert.equal(g[g.length - 1], "GUEST-REBOOT");
});

Deno.test("bzImage + initramfs boots through the 64-bit boot protocol and exits 0 on GUEST-REBOOT", async () => {
  const r = await boot([
    "-M",
    "microvm",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-m",
    "256m",
    "-kernel",
    "bzImage",
    "-initrd",
    "initramfs.cpio.gz",
    "-append",
    "console=ttyS0 rdinit=/init reboot=t",
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-serial",
    "stdio",
    "-no-reboot",
  ], { cwd: dir });
  const g = guestLines(r.out);
  assert.equal(r.code, 0, `exit code${explain(r.out)}`);
  assert.deepEqual(g.filter((l) => /^GUEST-(INIT-OK|CPUS|REBOOT)/.test(l)), [
    "GUEST-INIT-OK",
    "GUEST-CPUS 1",
    "GUEST-REBOOT",
  ]);
});
