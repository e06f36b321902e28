import assert from "node:assert/strict";
import { type Op, parseQtest, toQtest } from "./input.ts";

Deno.test("toQtest and parseQtest round-trip every op kind in QEMU's qtest syntax", () => {
  const ops: Op[] = [
    { op: "out", size: 1, addr: 0x70, value: 0x8b },
    { op: "in", size: 2, addr: 0x71 },
    { op: "write", size: 4, addr: 0xfeb00e70, value: 0xffffffff },
    { op: "read", size: 1, addr: 0xfec00010 },
    { op: "mem", addr: 0x40000, data: Uint8Array.of(1, 0xab, 0) },
    { op: "step", ns: 1000000 },
  ];
  const text = toQtest(ops, { comments: ["symptom: x"], argv: ["-M", "microvm"] });
  assert.equal(
    text,
    '# symptom: x\n# argv: ["-M","microvm"]\noutb 0x70 0x8b\ninw 0x71\nwritel 0xfeb00e70 0xffffffff\n' +
      "readb 0xfec00010\nwrite 0x40000 0x3 0x01ab00\nclock_step 1000000\n",
  );
  const back = parseQtest(text);
  assert.deepEqual(back.ops, ops);
  assert.deepEqual(back.argv, ["-M", "microvm"]);
  assert.deepEqual(back.comments, ["symptom: x"]);
});

Deno.test("parseQtest skips IRQ-intercept lines, takes clock_step without argument, rejects garbage", () => {
  assert.deepEqual(parseQtest("irq_intercept_in ioapic\nclock_step\n").ops, [{ op: "step", ns: -1 }]);
  assert.throws(() => parseQtest("outb 0x70"), /Qtest line 1: missing value/);
  assert.throws(() => parseQtest("\nfrob 1"), /Qtest line 2: unknown command "frob"/);
  assert.throws(() => parseQtest("write 0x0 0x1 0xzz"), /bad data/);
  assert.throws(() => parseQtest("outb -1 0"), /bad address/);
});
