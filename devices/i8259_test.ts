import assert from "node:assert/strict";
import { RecordingIrq } from "../tests/fakes.ts";
import { CountingLog } from "../core/types.ts";
import { formatInfoPic, I8259Pair, type I8259State } from "./i8259.ts";

function setup() {
  const out = new RecordingIrq();
  const log = new CountingLog();
  const pic = new I8259Pair({ output: out, log });
  const io: Record<number, [typeof pic.masterOps, number]> = {
    0x20: [pic.masterOps, 0],
    0x21: [pic.masterOps, 1],
    0xa0: [pic.slaveOps, 0],
    0xa1: [pic.slaveOps, 1],
    0x4d0: [pic.elcrMasterOps, 0],
    0x4d1: [pic.elcrSlaveOps, 0],
  };
  const outb = (port: number, v: number) => io[port][0].write(io[port][1], 1, v);
  const inb = (port: number) => io[port][0].read(io[port][1], 1);
  return { out, log, pic, outb, inb };
}

/** Linux's init_8259A(): vectors 0x30/0x38, cascade on IRQ2, 8086 mode. */
function linuxInit(outb: (p: number, v: number) => void, autoEoi = false) {
  outb(0x21, 0xff);
  outb(0xa1, 0xff);
  outb(0x20, 0x11);
  outb(0x21, 0x30);
  outb(0x21, 0x04);
  outb(0x21, autoEoi ? 0x03 : 0x01);
  outb(0xa0, 0x11);
  outb(0xa1, 0x38);
  outb(0xa1, 0x02);
  outb(0xa1, autoEoi ? 0x03 : 0x01);
  outb(0x21, 0x00);
  outb(0xa1, 0x00);
}

Deno.test("I8259Pair delivers an edge IRQ with its vector and needs EOI", () => {
  const { out, pic, outb, inb } = setup();
  linuxInit(outb);
  pic.irqLine(4).set(true);
  assert.equal(out.level, true);
  assert.equal(pic.intAck(), 0x34);
  assert.equal(out.level, false);
  outb(0x20, 0x0b); // OCW3: read ISR
  assert.equal(inb(0x20), 0x10);
  // Lower-priority IRQ 5 waits for EOI of IRQ 4.
  pic.irqLine(5).set(true);
  assert.equal(out.level, false);
  outb(0x20, 0x20); // non-specific EOI
  assert.equal(out.level, true);
  assert.equal(pic.intAck(), 0x35);
});

Deno.test("I8259Pair cascades slave IRQs through IRQ2", () => {
  const { out, pic, outb, inb } = setup();
  linuxInit(outb);
  pic.irqLine(12).set(true);
  assert.equal(out.level, true);
  assert.equal(pic.intAck(), 0x3c);
  outb(0xa0, 0x0b);
  assert.equal(inb(0xa0), 0x10);
  outb(0x20, 0x0b);
  assert.equal(inb(0x20), 0x04);
  outb(0xa0, 0x20);
  outb(0x20, 0x20);
  assert.equal(inb(0x20), 0);
});

Deno.test("I8259Pair edge IRQ needs a new rising edge", () => {
  const { out, pic, outb } = setup();
  linuxInit(outb);
  const l = pic.irqLine(3);
  l.set(true);
  pic.intAck();
  outb(0x20, 0x20);
  assert.equal(out.level, false, "held-high edge line does not retrigger");
  l.set(false);
  l.set(true);
  assert.equal(out.level, true);
});

Deno.test("I8259Pair level mode via ELCR keeps IRR while the line is high", () => {
  const { out, pic, outb, inb } = setup();
  linuxInit(outb);
  outb(0x4d1, 0xff);
  assert.equal(inb(0x4d1), 0xde, "ELCR2 mask");
  outb(0x4d0, 0xff);
  assert.equal(inb(0x4d0), 0xf8, "ELCR1 mask");
  const l = pic.irqLine(9);
  l.set(true);
  assert.equal(pic.intAck(), 0x39);
  outb(0xa0, 0x20);
  outb(0x20, 0x20);
  assert.equal(out.level, true, "still asserted");
  l.set(false);
  outb(0xa0, 0x0a);
  assert.equal(inb(0xa0), 0, "slave IRR follows the line");
  // The master's cascade input is edge-triggered and stays latched: the CPU sees spurious IRQ 15.
  assert.equal(pic.intAck(), 0x3f);
});

Deno.test("I8259Pair masks with IMR (OCW1)", () => {
  const { out, pic, outb, inb } = setup();
  linuxInit(outb);
  outb(0x21, 0x01);
  assert.equal(inb(0x21), 0x01);
  pic.irqLine(0).set(true);
  assert.equal(out.level, false);
  outb(0x20, 0x0a);
  assert.equal(inb(0x20), 0x01, "IRR still records it");
  outb(0x21, 0x00);
  assert.equal(out.level, true);
});

Deno.test("I8259Pair returns spurious IRQ 7 when nothing is pending", () => {
  const { pic, outb } = setup();
  linuxInit(outb);
  assert.equal(pic.intAck(), 0x37);
});

Deno.test("I8259Pair returns spurious IRQ 15 when the slave request vanished", () => {
  const { pic, outb } = setup();
  linuxInit(outb);
  outb(0x4d1, 0x02); // IRQ9 level
  const l = pic.irqLine(9);
  l.set(true);
  // Mask on the slave after the master latched the cascade edge.
  outb(0xa1, 0x02);
  assert.equal(pic.intAck(), 0x3f);
});

Deno.test("I8259Pair auto-EOI leaves ISR clear", () => {
  const { pic, outb, inb } = setup();
  linuxInit(outb, true);
  pic.irqLine(1).set(true);
  assert.equal(pic.intAck(), 0x31);
  outb(0x20, 0x0b);
  assert.equal(inb(0x20), 0);
});

Deno.test("I8259Pair specific EOI and rotation change priorities", () => {
  const { out, pic, outb } = setup();
  linuxInit(outb);
  outb(0x20, 0xc0 | 4); // set priority: IRQ5 highest
  pic.irqLine(3).set(true);
  pic.irqLine(6).set(true);
  assert.equal(pic.intAck(), 0x36, "IRQ6 beats IRQ3 after rotation");
  outb(0x20, 0x60 | 6); // specific EOI 6
  assert.equal(out.level, true);
  assert.equal(pic.intAck(), 0x33);
  outb(0x20, 0xa0); // rotate on non-specific EOI
  assert.deepEqual(pic.saveState().master.priorityAdd, 4);
});

Deno.test("I8259Pair poll command acknowledges through a read", () => {
  const { pic, outb, inb } = setup();
  linuxInit(outb);
  pic.irqLine(6).set(true);
  outb(0x20, 0x0c);
  assert.equal(inb(0x20), 0x86);
  outb(0x20, 0x0c);
  assert.equal(inb(0x20), 0x00);
});

Deno.test("I8259Pair special mask mode lets lower priorities through", () => {
  const { out, pic, outb } = setup();
  linuxInit(outb);
  pic.irqLine(2 + 1).set(true);
  assert.equal(pic.intAck(), 0x33); // IRQ3 in service
  outb(0x21, 0x08); // mask IRQ3
  outb(0x20, 0x68); // OCW3: set special mask
  pic.irqLine(5).set(true);
  assert.equal(out.level, true);
  assert.equal(pic.intAck(), 0x35);
});

Deno.test("I8259Pair ICW1 with LTIM logs unimplemented", () => {
  const { log, outb } = setup();
  outb(0x20, 0x19);
  assert.equal(log.unimps, 1);
});

Deno.test("I8259Pair info pic matches QEMU's format", () => {
  const { pic, outb } = setup();
  linuxInit(outb);
  outb(0xa1, 0xff);
  outb(0x21, 0xfb);
  pic.irqLine(0).set(true);
  pic.irqLine(4).set(true);
  assert.equal(
    formatInfoPic(pic.saveState()),
    "pic1: irr=00 imr=ff isr=00 hprio=0 irq_base=38 rr_sel=0 elcr=00 fnm=0\n" +
      "pic0: irr=11 imr=fb isr=00 hprio=0 irq_base=30 rr_sel=0 elcr=00 fnm=0\n",
  );
});

Deno.test("I8259Pair saveState/loadState round-trips and refuses bad state", () => {
  const a = setup();
  linuxInit(a.outb);
  a.pic.irqLine(4).set(true);
  a.pic.irqLine(10).set(true);
  const st = a.pic.saveState();
  const b = setup();
  b.pic.loadState(structuredClone(st));
  assert.deepEqual(b.pic.saveState(), st);
  assert.equal(b.out.level, true);
  assert.equal(b.pic.intAck(), 0x3a, "cascade IRQ2 outranks IRQ4");
  const bad = structuredClone(st) as I8259State;
  bad.master.irr = 256;
  assert.throws(() => b.pic.loadState(bad), /master\.irr/);
  assert.throws(() => b.pic.loadState({ version: 9 }), /version/);
});

Deno.test("I8259Pair random writes must not throw", () => {
  let seed = 0xdeadbeef;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8;
  const { pic, outb, inb } = setup();
  const ports = [0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1];
  try {
    for (let i = 0; i < 20000; i++) {
      const p = ports[rnd() % ports.length];
      switch (rnd() % 4) {
        case 0:
          outb(p, rnd() & 0xff);
          break;
        case 1:
          inb(p);
          break;
        case 2:
          pic.irqLine(rnd() & 15).set((rnd() & 1) === 1);
          break;
        default: {
          const v = pic.intAck();
          assert.ok(v >= 0 && v <= 0xff);
        }
      }
    }
    pic.loadState(pic.saveState());
  } catch (e) {
    throw new Error(`seed 0xdeadbeef: ${e}`);
  }
});
