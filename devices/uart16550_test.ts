import assert from "node:assert/strict";
import { ManualClock, RecordingIrq } from "../tests/fakes.ts";
import { type CharBackend, type CharReceiver, CountingLog } from "../core/types.ts";
import {
  FCR_FE,
  FCR_RFR,
  IER_MSI,
  IER_RDI,
  IER_RLSI,
  IER_THRI,
  IIR_CTI,
  IIR_NO_INT,
  IIR_RDI,
  IIR_RLSI,
  IIR_THRI,
  LCR_DLAB,
  LSR_DR,
  LSR_OE,
  LSR_TEMT,
  LSR_THRE,
  MCR_LOOP,
  MCR_OUT2,
  Uart16550,
  UART_DLL,
  UART_DLM,
  UART_FCR,
  UART_IER,
  UART_IIR,
  UART_LCR,
  UART_LSR,
  UART_MCR,
  UART_MSR,
  UART_RBR,
  UART_SCR,
  UART_THR,
} from "./uart16550.ts";

class TestBackend implements CharBackend {
  out: number[] = [];
  receiver: CharReceiver | null = null;
  accepts = 0;
  connected = true;
  write(data: Uint8Array): void {
    this.out.push(...data);
  }
  setReceiver(r: CharReceiver | null): void {
    this.receiver = r;
  }
  accept(): void {
    this.accepts++;
  }
}

function setup() {
  const clock = new ManualClock();
  const irq = new RecordingIrq();
  const backend = new TestBackend();
  const log = new CountingLog();
  const uart = new Uart16550({ irq, clock, log, backend });
  const inb = (o: number) => uart.ops.read(o, 1);
  const outb = (o: number, v: number) => uart.ops.write(o, 1, v);
  return { clock, irq, backend, log, uart, inb, outb };
}

Deno.test("Uart16550 has power-on register values", () => {
  const { inb, irq } = setup();
  assert.equal(inb(UART_IER), 0);
  assert.equal(inb(UART_IIR), IIR_NO_INT);
  assert.equal(inb(UART_LCR), 0);
  assert.equal(inb(UART_MCR), MCR_OUT2);
  assert.equal(inb(UART_LSR), LSR_TEMT | LSR_THRE);
  assert.equal(inb(UART_MSR), 0xb0);
  assert.equal(irq.level, false);
});

Deno.test("Uart16550 sends THR bytes to the backend", () => {
  const { inb, outb, backend } = setup();
  for (const b of new TextEncoder().encode("hi\n")) outb(UART_THR, b);
  assert.deepEqual(backend.out, [0x68, 0x69, 0x0a]);
  assert.equal(inb(UART_LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
});

Deno.test("Uart16550 exposes the divisor latch with DLAB", () => {
  const { inb, outb, backend } = setup();
  outb(UART_LCR, LCR_DLAB | 0x03);
  outb(UART_DLL, 0x01);
  outb(UART_DLM, 0x02);
  assert.equal(inb(UART_DLL), 0x01);
  assert.equal(inb(UART_DLM), 0x02);
  assert.equal(backend.out.length, 0, "DLL write is not a THR write");
  outb(UART_LCR, 0x03);
  assert.equal(inb(UART_IER), 0);
});

Deno.test("Uart16550 raises THRE interrupt when enabled and clears it on IIR read", () => {
  const { inb, outb, irq } = setup();
  outb(UART_IER, IER_THRI);
  assert.equal(irq.level, true);
  assert.equal(inb(UART_IIR), IIR_THRI);
  assert.equal(irq.level, false);
  assert.equal(inb(UART_IIR), IIR_NO_INT);
  outb(UART_THR, 0x41); // transmit completes at once: THRE again
  assert.equal(irq.level, true);
});

Deno.test("Uart16550 receives a byte without FIFO and raises RDI", () => {
  const { inb, outb, irq, uart, backend } = setup();
  outb(UART_IER, IER_RDI);
  assert.equal(uart.canReceive(), 1);
  uart.receive(Uint8Array.of(0x55));
  assert.equal(uart.canReceive(), 0);
  assert.equal(irq.level, true);
  assert.equal(inb(UART_IIR), IIR_RDI);
  assert.equal(inb(UART_LSR) & LSR_DR, LSR_DR);
  assert.equal(inb(UART_RBR), 0x55);
  assert.equal(irq.level, false);
  assert.equal(inb(UART_LSR) & LSR_DR, 0);
  assert.equal(backend.accepts, 1, "reading RBR tells the backend there is room");
});

Deno.test("Uart16550 overrun without FIFO sets OE, cleared by LSR read, with RLSI", () => {
  const { inb, outb, irq, uart } = setup();
  outb(UART_IER, IER_RLSI);
  uart.receive(Uint8Array.of(1));
  uart.receive(Uint8Array.of(2));
  assert.equal(irq.level, true);
  assert.equal(inb(UART_IIR), IIR_RLSI);
  assert.equal(inb(UART_LSR) & LSR_OE, LSR_OE);
  assert.equal(inb(UART_LSR) & LSR_OE, 0);
  assert.equal(irq.level, false);
  assert.equal(inb(UART_RBR), 2);
});

Deno.test("Uart16550 FIFO trigger level gates RDI and timeout raises CTI", () => {
  const { inb, outb, irq, uart, clock } = setup();
  outb(UART_FCR, FCR_FE | 0x40); // 4-byte trigger
  assert.equal(inb(UART_IIR) & 0xc0, 0xc0);
  outb(UART_IER, IER_RDI);
  assert.equal(uart.canReceive(), 4);
  uart.receive(Uint8Array.of(1, 2, 3));
  assert.equal(irq.level, false, "below the trigger level");
  // 4 character times at 9600 8N1 later the timeout interrupt fires.
  clock.step(4 * 1041660 - 1);
  assert.equal(irq.level, false);
  clock.step(1);
  assert.equal(irq.level, true);
  assert.equal(inb(UART_IIR) & 0x0f, IIR_CTI);
  assert.equal(inb(UART_RBR), 1);
  assert.equal(irq.level, false, "reading RBR clears the timeout");
  uart.receive(Uint8Array.of(4, 5));
  assert.equal(irq.level, true, "4 bytes reach the trigger level");
  assert.equal(inb(UART_IIR) & 0x0f, IIR_RDI);
  for (const want of [2, 3, 4, 5]) assert.equal(inb(UART_RBR), want);
  assert.equal(inb(UART_LSR) & LSR_DR, 0);
  assert.equal(irq.level, false);
});

Deno.test("Uart16550 FIFO holds 16 bytes then overruns without overwriting", () => {
  const { inb, outb, uart } = setup();
  outb(UART_FCR, FCR_FE | 0xc0);
  const data = Uint8Array.from({ length: 17 }, (_, i) => i);
  uart.receive(data);
  assert.equal(uart.canReceive(), 0);
  assert.equal(inb(UART_LSR) & LSR_OE, LSR_OE);
  for (let i = 0; i < 16; i++) assert.equal(inb(UART_RBR), i);
  assert.equal(inb(UART_LSR) & LSR_DR, 0);
});

Deno.test("Uart16550 FCR receive reset clears the FIFO", () => {
  const { inb, outb, uart } = setup();
  outb(UART_FCR, FCR_FE);
  uart.receive(Uint8Array.of(1, 2));
  outb(UART_FCR, FCR_FE | FCR_RFR);
  assert.equal(inb(UART_LSR) & LSR_DR, 0);
  assert.equal(inb(UART_RBR), 0);
});

Deno.test("Uart16550 loopback routes TX to RX and modem outputs to inputs", () => {
  const { inb, outb, backend, uart } = setup();
  outb(UART_MCR, MCR_LOOP | 0x0f);
  assert.equal(inb(UART_MSR), 0xf0);
  outb(UART_MCR, MCR_LOOP);
  assert.equal(inb(UART_MSR), 0x00);
  assert.equal(uart.canReceive(), 0, "serial input disconnected in loopback");
  outb(UART_THR, 0x5a);
  assert.equal(backend.out.length, 0);
  assert.equal(inb(UART_LSR) & LSR_DR, LSR_DR);
  assert.equal(inb(UART_RBR), 0x5a);
  assert.equal(backend.accepts, 0);
});

Deno.test("Uart16550 keeps the scratch register", () => {
  const { inb, outb } = setup();
  outb(UART_SCR, 0xa5);
  assert.equal(inb(UART_SCR), 0xa5);
});

Deno.test("Uart16550 modem status interrupt is masked without deltas", () => {
  const { outb, irq } = setup();
  outb(UART_IER, IER_MSI);
  assert.equal(irq.level, false);
});

Deno.test("Uart16550 saveState/loadState round-trips and refuses bad state", () => {
  const a = setup();
  a.outb(UART_FCR, FCR_FE | 0x80);
  a.outb(UART_IER, IER_RDI | IER_THRI);
  a.outb(UART_SCR, 7);
  a.uart.receive(Uint8Array.of(9, 8, 7));
  const st = a.uart.saveState();
  const b = setup();
  b.uart.loadState(structuredClone(st));
  assert.deepEqual(b.uart.saveState(), st);
  assert.equal(b.inb(UART_RBR), 9);
  assert.throws(() => b.uart.loadState({ ...st, lcr: 300 }), /lcr/);
  assert.throws(() => b.uart.loadState({ ...st, version: 2 }), /version/);
  assert.throws(() => b.uart.loadState({ ...st, recvFifo: new Array(17).fill(0) }), /recvFifo/);
});

Deno.test("Uart16550 reset returns to power-on state", () => {
  const { inb, outb, uart, irq } = setup();
  outb(UART_IER, IER_THRI);
  outb(UART_LCR, 0x1b);
  uart.reset();
  assert.equal(inb(UART_LCR), 0);
  assert.equal(irq.level, false);
});

Deno.test("Uart16550 random writes must not throw", () => {
  let seed = 0x1234abcd;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8;
  const { uart, clock } = setup();
  try {
    for (let i = 0; i < 20000; i++) {
      const off = rnd() & 7;
      switch (rnd() % 4) {
        case 0:
          uart.ops.write(off, 1, rnd() & 0xff);
          break;
        case 1:
          uart.ops.read(off, 1);
          break;
        case 2:
          if (uart.canReceive() > 0) uart.receive(Uint8Array.of(rnd() & 0xff, rnd() & 0xff));
          break;
        default:
          clock.step(rnd() % 5_000_000);
      }
    }
    const st = uart.saveState();
    uart.loadState(st);
  } catch (e) {
    throw new Error(`seed 0x1234abcd: ${e}`);
  }
});
