import { equal, ok, throws } from "node:assert/strict";
import { fmtRatio, fmtSummary, markdownTable, summarize } from "./stats.ts";
import { blkReadMBps, hvcLine, oursVmm, qemuVmm, serialLine } from "./guest.ts";
import { parseWorkload, workloadCmd, WRITE_BYTES } from "./workload.ts";
import { parseBenchArgs } from "../run.ts";
import { MICRO_LOOPS } from "../mips.ts";

Deno.test("summarize takes the median of an even sample as the mean of the middle two", () => {
  const s = summarize([4, 1, 3, 2, NaN]);
  equal(s.median, 2.5);
  equal(s.min, 1);
  equal(s.max, 4);
  equal(s.n, 4);
  equal(fmtSummary(s, 1), "2.5 / 1.0 / 4.0");
  equal(fmtSummary(summarize([])), "n/a");
});

Deno.test("fmtRatio prints n/a for a missing side", () => {
  equal(fmtRatio(3, 2), "1.50x");
  equal(fmtRatio(250, 2), "125x");
  equal(fmtRatio(NaN, 2), "n/a");
  equal(fmtRatio(1, 0), "n/a");
});

Deno.test("markdownTable pads columns to the widest cell", () => {
  equal(markdownTable(["a", "bb"], [["ccc", "d"]]), "| a   | bb  |\n| --- | --- |\n| ccc | d   |");
});

Deno.test("blkReadMBps converts the guest's centiseconds", () => {
  equal(blkReadMBps("GUEST-BLK-READ dev=/dev/vda bytes=67108864 centisecs=50\n"), 67.108864 * 2);
  ok(Number.isNaN(blkReadMBps("GUEST-BLK-READ dev=/dev/vda bytes=1 centisecs=0")));
  ok(Number.isNaN(blkReadMBps("")));
});

Deno.test("parseWorkload reads the write and awk spans", () => {
  const out = [
    "[    1.0] x GUEST-BLK-READ dev=/dev/vda bytes=67108864 centisecs=100",
    `GUEST-BLK-WRITE bytes=${WRITE_BYTES} t0=3.00 t1=5.00`,
    "GUEST-CPU-LOOP iterations=2000 t0=5.50 t1=6.50",
  ].join("\n");
  const w = parseWorkload(out);
  equal(w.readMBps, 67.108864);
  equal(w.writeMBps, WRITE_BYTES / 1e6 / 2);
  equal(w.awkItersPerS, 2000);
});

Deno.test('workloadCmd has no double quote, so it fits in guest_cmd="..."', () => {
  ok(!workloadCmd(10).includes('"'));
});

Deno.test("QEMU lines get acpi=off and ours do not", () => {
  const g = { kernel: "vmlinux" as const, smp: 2, initramfs: false };
  const q = serialLine(qemuVmm("/usr/bin/qemu-system-x86_64"), g);
  equal(q[q.indexOf("-M") + 1], "microvm,acpi=off");
  const o = serialLine(oursVmm(), g);
  equal(o[o.indexOf("-M") + 1], "microvm");
  ok(o.includes("virtio-blk-device,drive=test"));
  ok(hvcLine(oursVmm(), 2).includes("virtconsole,chardev=virtiocon0"));
});

Deno.test("parseBenchArgs refuses an unknown part", () => {
  const a = parseBenchArgs(["--runs", "3", "--only", "boot,disk", "--no-qemu"]);
  equal(a.runs, 3);
  equal([...a.only].join(","), "boot,disk");
  equal(a.qemu, false);
  throws(() => parseBenchArgs(["--only", "gpu"]), /unknown part 'gpu'/);
  throws(() => parseBenchArgs(["--runs", "0"]), /positive integer/);
});

Deno.test("micro loops branch back to their loop head", () => {
  // The rel8 of each loop's closing jnz must land on the byte after the ECX set-up (or the call).
  for (const l of MICRO_LOOPS) {
    const jnz = l.code.lastIndexOf(0x75);
    const target = jnz + 2 + ((l.code[jnz + 1] << 24) >> 24);
    const head = l.name.startsWith("load/store") ? 12 : 5;
    equal(target, head, l.name);
  }
});
