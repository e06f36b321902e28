/**
 * KVM doorbells (ioeventfd), irqfd lines, kernel-irqchip=on routing and system_reset of in-kernel interrupt
 * state, proven with tiny test guests on the trace-recording board; plus the board side (Microvm's
 * doorbell list, hook opt-out and GSI rerouting), which needs no /dev/kvm.
 * The KVM part prints one `SKIP: …` line when /dev/kvm is absent.
 */
import assert from "node:assert/strict";
import { Decoder, DecoderOptions, Formatter, FormatterSyntax } from "iced-x86";
import type { Doorbell, DoorbellSource, KernelIrqLines, MmioBus } from "../core/accel.ts";
import type { IrqLine } from "../core/types.ts";
import { KvmAccelerator, probeKvm } from "../core/kvm/mod.ts";
import {
  Asm,
  EXIT_LISTING,
  EXIT_TRACE,
  exitSeq,
  guest,
  HALT,
  IRQ_REQUEST_PORT,
  KERNEL_PIC,
  runGuest,
  SMP_INIT_SIPI,
  type TestGuest,
  TraceBoard,
} from "./kvm_guests.ts";
import { buildBoard, parseArgs } from "./lib/machine.ts";
import { CountingLog } from "../core/types.ts";
import { VirtualClock } from "../core/clock.ts";
import { BufferChar } from "../core/host/chardev.ts";
import { Microvm } from "../devices/microvm.ts";
import { prot32Entry } from "./kvm_guests.ts";

const KVM_PRESENT = probeKvm().usable;
if (!KVM_PRESENT) console.log("SKIP: /dev/kvm is absent or unusable: KVM doorbell/irqfd/reset tests not run");

const NOTIFY = 0xfeb00050;
const FLAG = 0x600;
const IDT_ADDR = 0x700;
const IDTR_ADDR = 0x6f0;
const OUT_PORT = 0x510;

/** A TraceBoard with one doorbell (QueueNotify of queue 0 at 0xfeb00050) and the kernel-irqchip hook. */
class DoorbellBoard extends TraceBoard {
  rings = 0;
  /** What a rung doorbell does (default: set the guest's flag byte). */
  onRing: () => void = () => this.ram.writeU8(FLAG, 1);
  kernel: KernelIrqLines | null = null;
  readonly doorbells: DoorbellSource;
  readonly #db: Doorbell;
  dbEnabled = true;

  constructor(opts: { ncpus?: number } = {}) {
    super(opts);
    this.#db = {
      addr: NOTIFY,
      size: 4,
      value: 0,
      ring: () => {
        this.rings++;
        this.onRing();
      },
    };
    const list = [this.#db];
    // deno-lint-ignore no-this-alias
    const self = this;
    this.doorbells = {
      list: () => list,
      get enabled() {
        return self.dbEnabled;
      },
    };
    // As the board does: a doorbell write that exits is dispatched to the same device action.
    const inner = this.mmio;
    (this as { mmio: MmioBus }).mmio = {
      read: inner.read,
      write: (addr, size, value) => {
        inner.write(addr, size, value);
        if (addr === NOTIFY && size === 4 && value === 0) this.#db.ring();
      },
    };
  }

  useKernelIrqchip(lines: KernelIrqLines | null): void {
    this.kernel = lines;
  }
}

/** prot32: `mov dword [QueueNotify], 0`, spin on the flag, then a non-matching value and a 2-byte write. */
const DOORBELL: TestGuest = guest("doorbell", "prot32", (a: Asm) => {
  a.b(0xc7, 0x05).imm(NOTIFY, 4).imm(0, 4);
  a.label("spin").b(0x80, 0x3d).imm(FLAG, 4).b(0x00).j8(0x74, "spin");
  a.b(0xc7, 0x05).imm(NOTIFY, 4).imm(7, 4);
  a.b(0x66, 0xc7, 0x05).imm(NOTIFY, 4).imm(0, 2);
  exitSeq(a);
}, [
  "mov dword [0FEB00050h],0",
  "cmp byte [600h],0",
  "je short 0000100Ah",
  "mov dword [0FEB00050h],7",
  "mov word [0FEB00050h],0",
  ...EXIT_LISTING,
], {
  exit: "paused",
  trace: ["mmio.w 0xfeb00050 4 0x7", "mmio.w 0xfeb00050 2 0x0", EXIT_TRACE],
  serial: "",
  regs: {},
});

/** Add an IDT with one 32-bit interrupt gate (selector 0x18) for `vector` → the guest's `handler`. */
function withIdt(g: TestGuest, vector: number): TestGuest {
  const handler = g.symbols.handler;
  const idt = new Uint8Array((vector + 1) * 8);
  const dv = new DataView(idt.buffer);
  dv.setUint16(vector * 8, handler & 0xffff, true);
  dv.setUint16(vector * 8 + 2, 0x18, true);
  dv.setUint16(vector * 8 + 4, 0x8e00, true);
  dv.setUint16(vector * 8 + 6, handler >>> 16, true);
  const idtr = new Uint8Array(6);
  new DataView(idtr.buffer).setUint16(0, idt.length - 1, true);
  new DataView(idtr.buffer).setUint32(2, IDT_ADDR, true);
  g.memory.push({ gpa: IDT_ADDR, bytes: idt }, { gpa: IDTR_ADDR, bytes: idtr });
  return g;
}

/**
 * prot32 with kernel-irqchip=on: mask both PICs, enable the LAPIC, route IOAPIC pin 5 to vector 0x35 (edge,
 * fixed, APIC 0), sti, ring the doorbell and spin. The handler sets the flag, EOIs the LAPIC and leaves
 * without IRET (kvm_pvm cannot emulate a protected-mode IRET at guest CPL0; see kvm_guests.ts MSI_LEVEL).
 */
const IOAPIC_DOORBELL: TestGuest = withIdt(
  guest("ioapic-doorbell", "prot32", (a: Asm) => {
    a.b(0xb0, 0xff).b(0xe6, 0x21).b(0xe6, 0xa1); // mask every PIC input
    a.b(0xc7, 0x05).imm(0xfee000f0, 4).imm(0x1ff, 4); // LAPIC SVR: enabled
    a.b(0xc7, 0x05).imm(0xfec00000, 4).imm(0x1a, 4); // IOREGSEL = redirection 5, low
    a.b(0xc7, 0x05).imm(0xfec00010, 4).imm(0x35, 4); // vector 0x35, fixed, edge, unmasked
    a.b(0xc7, 0x05).imm(0xfec00000, 4).imm(0x1b, 4); // redirection 5, high
    a.b(0xc7, 0x05).imm(0xfec00010, 4).imm(0, 4); // destination APIC 0
    a.b(0x0f, 0x01, 0x1d).imm(IDTR_ADDR, 4); // lidt
    a.b(0xfb); // sti
    a.b(0xc7, 0x05).imm(NOTIFY, 4).imm(0, 4); // doorbell
    a.label("spin").b(0x80, 0x3d).imm(FLAG, 4).b(0x00).j8(0x74, "spin");
    a.label("exit");
    exitSeq(a);
    a.label("handler").b(0xc6, 0x05).imm(FLAG, 4).b(0x01);
    a.b(0xc7, 0x05).imm(0xfee000b0, 4).imm(0, 4); // LAPIC EOI
    a.b(0xe6, 0x80); // out 0x80, al: a userspace exit (see MSI_LEVEL)
    a.j8(0xeb, "exit");
  }, [
    "mov al,0FFh",
    "out 21h,al",
    "out 0A1h,al",
    "mov dword [0FEE000F0h],1FFh",
    "mov dword [0FEC00000h],1Ah",
    "mov dword [0FEC00010h],35h",
    "mov dword [0FEC00000h],1Bh",
    "mov dword [0FEC00010h],0",
    "lidt [6F0h]",
    "sti",
    "mov dword [0FEB00050h],0",
    "cmp byte [600h],0",
    "je short 0000104Ah",
    ...EXIT_LISTING,
    "mov byte [600h],1",
    "mov dword [0FEE000B0h],0",
    "out 80h,al",
    "jmp short 00001053h",
  ], {
    exit: "paused",
    trace: ["io.w 0x80 1 0xff", EXIT_TRACE],
    serial: "",
    regs: {},
  }),
  0x35,
);

/**
 * prot32: print the LAPIC's SVR, TPR, LVT timer and IRR[95:64] on port 0x510, change the first three, ask
 * for an MSI on vector 0x40 with IF=0 (it stays pending in IRR) and print IRR[95:64] again.
 */
const LAPIC_STATE: TestGuest = guest("lapic-state", "prot32", (a: Asm) => {
  a.b(0x66, 0xba).imm(OUT_PORT, 2);
  for (const reg of [0xfee000f0, 0xfee00080, 0xfee00320, 0xfee00220]) a.b(0xa1).imm(reg, 4).b(0xef);
  a.b(0xc7, 0x05).imm(0xfee000f0, 4).imm(0x1ff, 4);
  a.b(0xc7, 0x05).imm(0xfee00080, 4).imm(0x20, 4);
  a.b(0xc7, 0x05).imm(0xfee00320, 4).imm(0x30, 4);
  a.b(0x66, 0xba).imm(IRQ_REQUEST_PORT, 2).b(0xb0, 0x01).b(0xee);
  a.b(0x66, 0xba).imm(OUT_PORT, 2).b(0xa1).imm(0xfee00220, 4).b(0xef);
  exitSeq(a);
}, [
  "mov dx,510h",
  "mov eax,[0FEE000F0h]",
  "out dx,eax",
  "mov eax,[0FEE00080h]",
  "out dx,eax",
  "mov eax,[0FEE00320h]",
  "out dx,eax",
  "mov eax,[0FEE00220h]",
  "out dx,eax",
  "mov dword [0FEE000F0h],1FFh",
  "mov dword [0FEE00080h],20h",
  "mov dword [0FEE00320h],30h",
  "mov dx,502h",
  "mov al,1",
  "out dx,al",
  "mov dx,510h",
  "mov eax,[0FEE00220h]",
  "out dx,eax",
  ...EXIT_LISTING,
], {
  exit: "paused",
  trace: [
    "io.w 0x510 4 0xff",
    "io.w 0x510 4 0x0",
    "io.w 0x510 4 0x10000",
    "io.w 0x510 4 0x0",
    "io.w 0x502 1 0x1",
    "io.w 0x510 4 0x1",
    EXIT_TRACE,
  ],
  serial: "",
  regs: {},
});

/**
 * prot32 with kernel-irqchip=on: print the master PIC's IMR and IOAPIC redirection 5 (low), then change
 * both (IMR 0xa5, vector 0x35 unmasked).
 */
const IRQCHIP_STATE: TestGuest = guest("irqchip-state", "prot32", (a: Asm) => {
  a.b(0x66, 0xba).imm(OUT_PORT, 2);
  a.b(0xe4, 0x21).b(0xee); // in al,21h; out dx,al
  a.b(0xc7, 0x05).imm(0xfec00000, 4).imm(0x1a, 4);
  a.b(0xa1).imm(0xfec00010, 4).b(0xef);
  a.b(0xb0, 0xa5).b(0xe6, 0x21);
  a.b(0xc7, 0x05).imm(0xfec00010, 4).imm(0x35, 4);
  exitSeq(a);
}, [
  "mov dx,510h",
  "in al,21h",
  "out dx,al",
  "mov dword [0FEC00000h],1Ah",
  "mov eax,[0FEC00010h]",
  "out dx,eax",
  "mov al,0A5h",
  "out 21h,al",
  "mov dword [0FEC00010h],35h",
  ...EXIT_LISTING,
], {
  exit: "paused",
  trace: [],
  serial: "",
  regs: {},
});

Deno.test("kvm_irqfd test guests disassemble to their listings", () => {
  for (const g of [DOORBELL, IOAPIC_DOORBELL, LAPIC_STATE, IRQCHIP_STATE, RNG_REQUEST]) {
    const d = new Decoder(32, g.code.subarray(0, g.codeSize), DecoderOptions.None);
    d.ip = BigInt(g.codeAddr);
    const f = new Formatter(FormatterSyntax.Nasm);
    const out = d.decodeAll().map((ins) => {
      const t = f.format(ins);
      ins.free();
      return t;
    });
    d.free();
    f.free();
    assert.deepEqual(out, g.listing, g.name);
  }
});

/** Run `g` until its exit port (or `maxYields` event-loop turns), without destroying the accelerator. */
async function runOnce(accel: KvmAccelerator, maxYields = 20): Promise<void> {
  const ch = new MessageChannel();
  let turns = 0;
  ch.port1.onmessage = () => {
    if (++turns >= maxYields) accel.requestStop();
    else ch.port2.postMessage(0);
  };
  ch.port2.postMessage(0);
  try {
    const exit = await accel.run();
    assert.equal(exit.kind, "paused", JSON.stringify(exit));
  } finally {
    ch.port1.close();
    ch.port2.close();
  }
}

/** Init `accel` on `board` with `g`, run, reset, run again; returns both traces. */
async function runResetRun(
  accel: KvmAccelerator,
  board: TraceBoard,
  g: TestGuest,
  opts: { maxYields?: number; between?: () => void } = {},
) {
  const maxYields = opts.maxYields ?? 20;
  board.load(g);
  board.onExit = () => accel.requestStop();
  accel.init(board, g.entry);
  try {
    await runOnce(accel, maxYields);
    const first = board.trace.length;
    opts.between?.();
    board.load(g); // the guest may have changed its own memory (flags)
    board.ram.writeU8(FLAG, 0);
    accel.reset(g.entry);
    await runOnce(accel, maxYields);
    return { first: board.trace.slice(0, first), second: board.trace.slice(first), stats: accel.stats };
  } finally {
    accel.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------
// Doorbells (ioeventfd).

Deno.test({
  name: "KvmAccelerator completes a doorbell write in the kernel and rings it on the device thread",
  ignore: !KVM_PRESENT,
  async fn() {
    const board = new DoorbellBoard();
    const accel = new KvmAccelerator({ warn: () => {} });
    const stats = accel.stats;
    // Generous: the poller Worker's first start (module load) can take a second on a loaded host.
    const r = await runGuest(accel, DOORBELL, { board, maxYields: 5000 });
    assert.equal(r.exit.kind, "paused", JSON.stringify(r.exit));
    // The 4-byte write of 0 never left the kernel; 7 and the 2-byte write do not match and exit.
    assert.deepEqual(r.trace, DOORBELL.expect.trace);
    assert.equal(board.rings, 1);
    assert.equal(stats.ioevent, 1);
  },
});

Deno.test({
  name: "KvmAccelerator leaves doorbells to MMIO exits while the board disables them (plugin hooks)",
  ignore: !KVM_PRESENT,
  async fn() {
    const board = new DoorbellBoard();
    board.dbEnabled = false;
    const accel = new KvmAccelerator({ warn: () => {} });
    const stats = accel.stats;
    const r = await runGuest(accel, DOORBELL, { board, maxYields: 5000 });
    assert.equal(r.exit.kind, "paused", JSON.stringify(r.exit));
    assert.deepEqual(r.trace, ["mmio.w 0xfeb00050 4 0x0", ...DOORBELL.expect.trace]);
    assert.equal(board.rings, 1);
    assert.equal(stats.ioevent, 0);
  },
});

Deno.test({
  name: "KvmAccelerator deassigns doorbells when the board disables them between runs",
  ignore: !KVM_PRESENT,
  async fn() {
    const board = new DoorbellBoard();
    const accel = new KvmAccelerator({ warn: () => {} });
    const r = await runResetRun(accel, board, DOORBELL, {
      maxYields: 5000,
      between: () => (board.dbEnabled = false),
    });
    assert.deepEqual(r.first, DOORBELL.expect.trace);
    assert.deepEqual(r.second, ["mmio.w 0xfeb00050 4 0x0", ...DOORBELL.expect.trace]);
    assert.equal(board.rings, 2);
    assert.equal(r.stats.ioevent, 1);
  },
});

// ---------------------------------------------------------------------------------------------------
// kernel-irqchip=on: GSIs into the in-kernel PIC/IOAPIC, irqfd edges.

Deno.test({
  name:
    "KvmAccelerator with kernel-irqchip=on hands the board irqfd lines; a pulse reaches the in-kernel PIC",
  ignore: !KVM_PRESENT,
  async fn() {
    const board = new DoorbellBoard();
    const accel = new KvmAccelerator({ warn: () => {}, irqchip: "on" });
    const stats = accel.stats;
    let line: IrqLine | null = null;
    board.onIoWrite = (port) => {
      if (port !== IRQ_REQUEST_PORT) return;
      line ??= board.kernel!.pulse(4);
      line.set(true);
    };
    const r = await runGuest(accel, KERNEL_PIC, { board });
    assert.equal(r.exit.kind, "paused", JSON.stringify(r.exit));
    assert.deepEqual(r.trace, KERNEL_PIC.expect.trace);
    assert.equal(board.ram.readU8(FLAG), 1, "handler ran");
    assert.equal(stats.irqfd, 1);
    assert.equal(board.kernel, null, "destroy hands the GSIs back");
  },
});

Deno.test({
  name:
    "KvmAccelerator with kernel-irqchip=on: doorbell (ioeventfd) → device → irqfd → in-kernel IOAPIC → handler",
  ignore: !KVM_PRESENT,
  async fn() {
    const board = new DoorbellBoard();
    const accel = new KvmAccelerator({ warn: () => {}, irqchip: "on" });
    const stats = accel.stats;
    board.onRing = () => board.kernel!.pulse(5).set(true);
    const r = await runGuest(accel, IOAPIC_DOORBELL, { board, maxYields: 5000 });
    assert.equal(r.exit.kind, "paused", JSON.stringify(r.exit));
    assert.deepEqual(r.trace, IOAPIC_DOORBELL.expect.trace);
    assert.equal(board.ram.readU8(FLAG), 1, "handler ran");
    assert.equal(stats.ioevent, 1);
    assert.equal(stats.irqfd, 1);
  },
});

// ---------------------------------------------------------------------------------------------------
// reset(): in-kernel interrupt state back to power-on.

Deno.test({
  name: "KvmAccelerator.reset restores the in-kernel LAPIC (SVR, TPR, LVT, pending IRR) to its power-on page",
  ignore: !KVM_PRESENT,
  async fn() {
    const board = new TraceBoard();
    const accel = new KvmAccelerator({ warn: () => {} });
    board.onIoWrite = (port) => {
      if (port === IRQ_REQUEST_PORT) board.msi!.sendMsi(0xfee00000, 0x40);
    };
    const r = await runResetRun(accel, board, LAPIC_STATE);
    assert.deepEqual(r.first, LAPIC_STATE.expect.trace);
    assert.deepEqual(r.second, LAPIC_STATE.expect.trace);
  },
});

Deno.test({
  name: "KvmAccelerator.reset makes a BSP halted in the kernel runnable again",
  ignore: !KVM_PRESENT,
  async fn() {
    const board = new TraceBoard();
    const accel = new KvmAccelerator({ warn: () => {} });
    const r = await runResetRun(accel, board, HALT, { maxYields: 20 });
    assert.deepEqual(r.first, HALT.expect.trace);
    assert.deepEqual(r.second, HALT.expect.trace);
    assert.equal(board.serial, "HH");
  },
});

Deno.test({
  name: "KvmAccelerator.reset puts the AP back to wait-for-SIPI so INIT/SIPI starts it again",
  ignore: !KVM_PRESENT,
  async fn() {
    const board = new TraceBoard({ ncpus: 2 });
    const accel = new KvmAccelerator({ warn: () => {} });
    const r = await runResetRun(accel, board, SMP_INIT_SIPI, { maxYields: 100_000 });
    assert.deepEqual(r.first, SMP_INIT_SIPI.expect.trace);
    assert.deepEqual(r.second, SMP_INIT_SIPI.expect.trace);
    assert.equal(board.serial, "AA");
  },
});

Deno.test({
  name: "KvmAccelerator.reset with kernel-irqchip=on restores the in-kernel PIC and IOAPIC",
  ignore: !KVM_PRESENT,
  async fn() {
    const board = new TraceBoard();
    const accel = new KvmAccelerator({ warn: () => {}, irqchip: "on" });
    const r = await runResetRun(accel, board, IRQCHIP_STATE);
    assert.equal(r.first.length, 3, r.first.join("; "));
    assert.equal(r.first[2], EXIT_TRACE);
    // The guest changed IMR to 0xa5 and unmasked redirection 5 as vector 0x35: reset undid both.
    assert.notEqual(r.first[0], "io.w 0x510 1 0xa5");
    assert.equal(r.first[1], "io.w 0x510 4 0x10000", "IOAPIC pins start masked");
    assert.deepEqual(r.second, r.first);
  },
});

// ---------------------------------------------------------------------------------------------------
// The board side (no KVM needed).

Deno.test("Microvm offers one QueueNotify doorbell per queue with ioeventfd=on, and none by default", () => {
  const argv = ["-M", "microvm", "-device", "virtio-rng-device"];
  assert.equal(buildBoard(argv).machine.accelBoard().doorbells?.list().length, 0);
  const { machine } = buildBoard([...argv, "-global", "virtio-mmio.ioeventfd=on"]);
  const dbs = machine.accelBoard().doorbells!;
  assert.deepEqual(dbs.list().map((d) => [d.addr, d.size, d.value]), [[0xfeb00e50, 4, 0]]);
  assert.equal(dbs.enabled, true);
});

Deno.test("Microvm doorbells ring through dispatch and are disabled while a memory hook is installed", () => {
  const { machine } = buildBoard([
    "-M",
    "microvm",
    "-device",
    "virtio-rng-device",
    "-global",
    "virtio-mmio.ioeventfd=on",
  ]);
  const dbs = machine.accelBoard().doorbells!;
  const seen: string[] = [];
  const remove = machine.memory.addHook({
    ranges: [{ addr: 0xfeb00e00, size: 0x200 }],
    onAccess: (ev) => seen.push(`${ev.dir} ${ev.addr.toString(16)} ${ev.value}`),
  });
  assert.equal(dbs.enabled, false, "a hook must see every access: doorbells exit");
  dbs.list()[0].ring();
  assert.deepEqual(seen, ["write feb00e50 0"]);
  remove();
  assert.equal(dbs.enabled, true);
});

Deno.test("Microvm routes GSIs to the accelerator's in-kernel lines: virtio transports as pulses, the rest as levels", () => {
  const { machine } = buildBoard(["-M", "microvm", "-device", "virtio-rng-device", "-serial", "none"]);
  const calls: string[] = [];
  const mk = (kind: string, g: number): IrqLine => ({ set: (l) => calls.push(`${kind}${g}=${l}`) });
  const ab = machine.accelBoard();
  ab.useKernelIrqchip!({ line: (g) => mk("line", g), pulse: (g) => mk("pulse", g) });
  const ioapicBefore = JSON.stringify(machine.ioapic.saveState());
  machine.gsi.line(4).set(true);
  machine.gsi.line(12).set(true); // transport 7 holds the rng device: GSI 5 + 7
  machine.gsi.line(12).set(false);
  assert.deepEqual(calls, ["line4=true", "pulse12=true", "pulse12=false"]);
  assert.equal(JSON.stringify(machine.ioapic.saveState()), ioapicBefore, "our IOAPIC saw nothing");
  ab.useKernelIrqchip!(null);
  machine.gsi.line(4).set(false);
  assert.equal(calls.length, 3);
});

// ---------------------------------------------------------------------------------------------------
// End to end: the real board, a virtio-rng request notified through ioeventfd, completed with an interrupt.

/** The rng transport (slot 7: QEMU fills from the top) and its GSI. */
const RNG_BASE = 0xfeb00e00;
const RNG_GSI = 12;
const RNG_VECTOR = 0x3c;
const QUEUE_GPA = 0x20000;
const USED_GPA = 0x21000;
const BUF_GPA = 0x30000;

/**
 * prot32: mask the PICs, enable the LAPIC, route IOAPIC pin 12 to vector 0x3c, sti, QueueNotify(0) on the
 * rng transport, spin. The handler reads InterruptStatus, acknowledges it, sets the flag, EOIs the LAPIC.
 * Runs unchanged on the userspace IOAPIC (split irqchip) and the in-kernel one (kernel-irqchip=on).
 */
const RNG_REQUEST: TestGuest = withIdt(
  guest("rng-request", "prot32", (a: Asm) => {
    a.b(0xb0, 0xff).b(0xe6, 0x21).b(0xe6, 0xa1);
    a.b(0xc7, 0x05).imm(0xfee000f0, 4).imm(0x1ff, 4);
    a.b(0xc7, 0x05).imm(0xfec00000, 4).imm(0x10 + 2 * RNG_GSI, 4);
    a.b(0xc7, 0x05).imm(0xfec00010, 4).imm(RNG_VECTOR, 4);
    a.b(0xc7, 0x05).imm(0xfec00000, 4).imm(0x11 + 2 * RNG_GSI, 4);
    a.b(0xc7, 0x05).imm(0xfec00010, 4).imm(0, 4);
    a.b(0x0f, 0x01, 0x1d).imm(IDTR_ADDR, 4);
    a.b(0xfb);
    a.b(0xc7, 0x05).imm(RNG_BASE + 0x50, 4).imm(0, 4); // QueueNotify
    a.label("spin").b(0x80, 0x3d).imm(FLAG, 4).b(0x00).j8(0x74, "spin");
    a.label("exit");
    exitSeq(a);
    a.label("handler").b(0xa1).imm(RNG_BASE + 0x60, 4); // InterruptStatus
    a.b(0xa3).imm(RNG_BASE + 0x64, 4); // InterruptACK
    a.b(0xc6, 0x05).imm(FLAG, 4).b(0x01);
    a.b(0xc7, 0x05).imm(0xfee000b0, 4).imm(0, 4);
    a.b(0xe6, 0x80);
    a.j8(0xeb, "exit");
  }, [
    "mov al,0FFh",
    "out 21h,al",
    "out 0A1h,al",
    "mov dword [0FEE000F0h],1FFh",
    "mov dword [0FEC00000h],28h",
    "mov dword [0FEC00010h],3Ch",
    "mov dword [0FEC00000h],29h",
    "mov dword [0FEC00010h],0",
    "lidt [6F0h]",
    "sti",
    "mov dword [0FEB00E50h],0",
    "cmp byte [600h],0",
    "je short 0000104Ah",
    ...EXIT_LISTING,
    "mov eax,[0FEB00E60h]",
    "mov [0FEB00E64h],eax",
    "mov byte [600h],1",
    "mov dword [0FEE000B0h],0",
    "out 80h,al",
    "jmp short 00001053h",
  ], { exit: "paused", trace: [], serial: "", regs: {} }),
  RNG_VECTOR,
);

/** A Microvm on KVM-ready (page-aligned) RAM with no kernel, built from `argv`. */
function kvmBoard(argv: string[]): Microvm {
  const cfg = parseArgs(argv);
  return new Microvm(cfg, {
    log: new CountingLog(),
    clock: new VirtualClock({ mode: "manual" }),
    accel: "kvm",
    chardev: (id) => new BufferChar({ id }),
    drive: () => {
      throw new Error("no drives here");
    },
    wallClockMs: Date.UTC(2026, 0, 1),
    cpuSignature: 0x663,
    cpuFeatures: 0x0781abfd,
    hostPageOffset: (buf: SharedArrayBuffer) =>
      Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(buf))) & 0xfffn),
  });
}

/** Set up the rng's legacy queue 0 as a driver would: one 16-byte device-writable buffer, DRIVER_OK. */
function setupRngQueue(m: Microvm): void {
  const w = (off: number, v: number) => m.memory.write(RNG_BASE + off, 4, v);
  w(0x70, 1);
  w(0x70, 3);
  w(0x28, 4096); // GuestPageSize
  w(0x30, 0); // QueueSel
  w(0x38, 8); // QueueNum
  w(0x3c, 4096); // QueueAlign
  w(0x40, QUEUE_GPA / 4096); // QueuePFN
  w(0x70, 7); // DRIVER_OK
  m.ram.writeU64(QUEUE_GPA, BUF_GPA); // desc[0].addr
  m.ram.writeU32(QUEUE_GPA + 8, 16); // .len
  m.ram.writeU16(QUEUE_GPA + 12, 2); // .flags = WRITE
  m.ram.writeU16(QUEUE_GPA + 8 * 16 + 2, 1); // avail.idx = 1 (ring[0] = 0)
}

for (const irqchip of ["split", "on"] as const) {
  Deno.test({
    name:
      `Microvm on KVM (kernel-irqchip=${irqchip}): a virtio-rng request rung through ioeventfd completes ` +
      "with an interrupt",
    ignore: !KVM_PRESENT,
    async fn() {
      const m = kvmBoard([
        "-M",
        "microvm",
        "-m",
        "16m",
        "-device",
        "virtio-rng-device",
        "-global",
        "virtio-mmio.ioeventfd=on",
      ]);
      setupRngQueue(m);
      const g = RNG_REQUEST;
      m.ram.write(g.codeAddr, g.code);
      for (const b of g.memory) m.ram.write(b.gpa, b.bytes);
      const accel = new KvmAccelerator({ warn: () => {}, irqchip });
      accel.init(m.accelBoard(), prot32Entry());
      try {
        const ch = new MessageChannel();
        let turns = 0;
        ch.port1.onmessage = () => {
          if (m.ram.readU8(FLAG) === 1 || ++turns >= 5000) accel.requestStop();
          else ch.port2.postMessage(0);
        };
        ch.port2.postMessage(0);
        const exit = await accel.run();
        ch.port1.close();
        ch.port2.close();
        assert.equal(exit.kind, "paused", JSON.stringify(exit));
        assert.equal(m.ram.readU8(FLAG), 1, "the completion interrupt reached the guest's handler");
        assert.equal(m.ram.readU16(USED_GPA + 2), 1, "used.idx");
        assert.equal(m.ram.readU32(USED_GPA + 8), 16, "used.ring[0].len");
        assert.equal(m.transports[7].interruptStatus, 0, "the handler acknowledged the interrupt");
        assert.equal(accel.stats.ioevent, 1, "QueueNotify completed in the kernel");
        if (irqchip === "on") assert.equal(accel.stats.irqfd, 1, "one irqfd pulse on GSI 12");
        else assert.equal(accel.stats.msi, 1, "one MSI from our IOAPIC");
      } finally {
        accel.destroy();
      }
    },
  });
}
