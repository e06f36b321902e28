import assert from "node:assert/strict";
import { formatIrqStats, GsiRouter, IrqFanout, pulse } from "./irq.ts";
import { RecordingIrq } from "../tests/fakes.ts";
import { UserError } from "./types.ts";

Deno.test("GsiRouter drives every connected sink and counts rising edges", () => {
  const gsi = new GsiRouter(24);
  const ioapic = new RecordingIrq();
  const pic = new RecordingIrq();
  gsi.connect(4, ioapic);
  gsi.connect(4, pic);
  const line = gsi.line(4);
  line.set(true);
  line.set(true); // level held: not a new edge
  line.set(false);
  pulse(line);
  assert.deepEqual(ioapic.history, [true, true, false, true, false]);
  assert.deepEqual(pic.history, ioapic.history);
  assert.equal(gsi.raises(4), 2);
  assert.equal(gsi.level(4), false);
  assert.equal(gsi.counts()[4], 2);
  gsi.reset();
  assert.equal(gsi.raises(4), 0);
  assert.throws(() => gsi.line(24), UserError);
});

Deno.test("IrqFanout forwards levels to all sinks", () => {
  const a = new RecordingIrq();
  const b = new RecordingIrq();
  const f = new IrqFanout([a]);
  f.add(b);
  f.set(true);
  assert.equal(a.level && b.level, true);
});

Deno.test("formatIrqStats prints QEMU's info irq block", () => {
  const counts = new Array(24).fill(0);
  counts[0] = 98;
  counts[4] = 2636;
  counts[11] = 6;
  assert.equal(formatIrqStats("ioapic", counts), "IRQ statistics for ioapic:\n 0: 98\n 4: 2636\n11: 6\n");
});
