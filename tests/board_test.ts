/**
 * The microvm board against QEMU 7.2's captures: info mtree for both seed command lines, the kernel
 * command line QEMU's auto-kernel-cmdline builds, device placement and register-level probes.
 */
import assert from "node:assert/strict";
import { assertText, golden } from "./lib/golden.ts";
import { buildBoard, SEED_LINE_1, SEED_LINE_2, withTcg } from "./lib/machine.ts";

Deno.test("seed line 1 (-accel tcg) info mtree matches QEMU 7.2 tcg-legacy-blk-net", () => {
  const { machine } = buildBoard(withTcg(SEED_LINE_1), { accel: "tcg" });
  assertText(
    machine.infoMtree(false, ["cpu-smm-1", "I/O", "memory", "cpu-smm-0"]),
    golden("mtree/tcg-legacy-blk-net.mtree.txt"),
  );
  assertText(machine.infoMtree(true, ["memory", "I/O"]), golden("mtree/tcg-legacy-blk-net.mtree-f.txt"));
});

Deno.test("seed line 2 (all legacy off, -accel tcg) info mtree matches QEMU 7.2 tcg-nolegacy-blk-hvc", () => {
  const { machine } = buildBoard(withTcg(SEED_LINE_2), { accel: "tcg" });
  assertText(
    machine.infoMtree(false, ["cpu-smm-0", "cpu-smm-1", "memory", "I/O"]),
    golden("mtree/tcg-nolegacy-blk-hvc.mtree.txt"),
  );
  assertText(machine.infoMtree(true, ["I/O", "memory"]), golden("mtree/tcg-nolegacy-blk-hvc.mtree-f.txt"));
});

Deno.test("seed line 1 with KVM: info mtree matches QEMU 7.2 kvm-legacy-acpioff-blk (no RTC under KVM)", () => {
  const { machine } = buildBoard(SEED_LINE_1, { accel: "kvm" });
  assertText(machine.infoMtree(false, ["I/O", "memory"]), golden("mtree/kvm-legacy-acpioff-blk.mtree.txt"));
  assertText(machine.infoMtree(true, ["memory", "I/O"]), golden("mtree/kvm-legacy-acpioff-blk.mtree-f.txt"));
});

Deno.test("auto-kernel-cmdline appends transports top slot first, as QEMU 7.2 does", () => {
  const { machine } = buildBoard(withTcg(SEED_LINE_2));
  machine.reset();
  assert.equal(
    machine.kernelCmdline,
    "console=hvc0 root=/dev/vda virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11",
  );
  const { machine: m2 } = buildBoard([
    "-M",
    "microvm,auto-kernel-cmdline=off",
    ...withTcg(SEED_LINE_1).slice(2),
  ]);
  assert.equal(m2.kernelCmdline, "earlyprintk=ttyS0 console=ttyS0 root=/dev/vda");
});

Deno.test("virtio-mmio transports answer magic, legacy version, vendor; empty ones have device id 0", () => {
  const { machine } = buildBoard(withTcg(SEED_LINE_1));
  const m = machine.memory;
  for (let i = 0; i < 8; i++) {
    const base = 0xfeb00000 + i * 0x200;
    assert.equal(m.read(base, 4), 0x74726976);
    assert.equal(m.read(base + 4, 4), 1);
    assert.equal(m.read(base + 0xc, 4), 0x554d4551);
    assert.equal(m.read(base + 8, 4), i === 7 ? 2 : 0, `device id at slot ${i}`);
  }
});

Deno.test("microvm acpi=on is refused with one line; pit/pic/rtc/isa-serial off remove the ports", () => {
  assert.throws(() => buildBoard(["-M", "microvm,acpi=on"]), /no ACPI/);
  const { machine } = buildBoard(withTcg(SEED_LINE_2));
  for (const port of [0x20, 0x40, 0x71, 0x3fd]) {
    assert.equal(machine.io.read(port, 1), 0xff, `port ${port.toString(16)}`);
  }
  const { machine: legacy } = buildBoard(withTcg(SEED_LINE_1));
  assert.equal(legacy.io.read(0x3fd, 1), 0x60, "UART LSR: THRE|TEMT after reset");
});

Deno.test("fw_cfg answers the QEMU signature and the CPU count through port 0x510", () => {
  const { machine } = buildBoard(withTcg(SEED_LINE_1));
  machine.io.write(0x510, 2, 0x0000);
  const sig = [0, 1, 2, 3].map(() => String.fromCharCode(machine.io.read(0x511, 1))).join("");
  assert.equal(sig, "QEMU");
  machine.io.write(0x510, 2, 0x0005); // FW_CFG_NB_CPUS
  assert.equal(machine.io.read(0x511, 1) | (machine.io.read(0x511, 1) << 8), 2);
});

Deno.test("RTC CMOS holds the memory size the way microvm_set_rtc writes it", () => {
  const { machine } = buildBoard(withTcg(SEED_LINE_1));
  const cmos = (i: number) => {
    machine.io.write(0x70, 1, i);
    return machine.io.read(0x71, 1);
  };
  assert.equal(cmos(0x15) | (cmos(0x16) << 8), 640);
  assert.equal(cmos(0x34) | (cmos(0x35) << 8), (512 - 16) * 16); // 64 KiB units above 16 MiB
});

Deno.test("info qtree matches QEMU 7.2 for seed line 2 (virtio-serial + virtconsole + blk, no legacy devices)", () => {
  const { machine } = buildBoard(withTcg(SEED_LINE_2), { accel: "tcg" });
  const want = golden("qtree/tcg-nolegacy-blk-hvc.txt");
  // The captured guest had opened hvc0; ours has not booted.
  assertText(machine.infoQtree(), want.replace("guest on, host on", "guest off, host on"));
});
