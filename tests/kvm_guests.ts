/**
 * Tiny test guests for the accelerators (KVM now, the software CPU for the cross-check) and a
 * trace-recording AccelBoard to run them on: RAM in a page-aligned SharedArrayBuffer, an IoBus and an
 * MmioBus that record every access as a line ("io.w 0x3f8 1 0x48"), and a few fake registers so the
 * guests read deterministic values. Port 0xf4 is the test's exit port (QEMU's isa-debug-exit address).
 *
 * A cross-check is ten lines:
 * ```ts
 * for (const g of KVM_TEST_GUESTS) {
 *   const r = await runGuest(new SoftCpuAccelerator(), g);
 *   assert.deepEqual(r.trace, g.expect.trace);
 *   assert.equal(r.exit.kind, g.expect.exit);
 * }
 * ```
 * @module
 */
import type {
  AccelBoard,
  Accelerator,
  CpuEntryState,
  CpuRegisters,
  IoBus,
  LocalApicPort,
  MmioBus,
  MsrHandler,
  PhysMap,
  RunExit,
  SegmentState,
} from "../core/accel.ts";
import type { Clock, MsiSink, Timer } from "../core/types.ts";
import { ByteMemory } from "../core/memory.ts";

// ---------------------------------------------------------------------------------------------------
// Guest RAM over a page-aligned SharedArrayBuffer (KVM needs page-aligned host addresses).

/** A page-aligned view of `size` bytes inside a SharedArrayBuffer (4 KiB of slack absorbs V8's header). */
export function alignedSharedBytes(size: number): Uint8Array {
  const sab = new SharedArrayBuffer(size + 4096);
  const raw = new Uint8Array(sab);
  const mis = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(raw)) & 0xfffn);
  const start = mis === 0 ? 0 : 4096 - mis;
  return raw.subarray(start, start + size);
}

/** GuestMemory + PhysMap over one byte array at GPA 0 (no ROM, no holes). */
export class FlatRam extends ByteMemory implements PhysMap {
  readonly generation = 0;
  constructor(u8: Uint8Array) {
    super(u8);
  }
  /** The backing bytes (PhysMap's name for them). */
  get u8(): Uint8Array {
    return this.bytes;
  }
  pageBase(gpn: number): number {
    return gpn >= 0 && gpn * 4096 < this.bytes.length ? gpn * 4096 : -1;
  }
  isReadOnly(_gpn: number): boolean {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------
// The trace-recording board.

/** Test exit port: a write stops the run (`onExit`) and records the value. */
export const EXIT_PORT = 0xf4;
/** The fake virtio-mmio window the MMIO guests probe (microvm's first transport). */
export const VIRTIO_BASE = 0xfeb00000;
const VIRTIO_SIZE = 0x200;
/** virtio-mmio read-only identity registers (virtio spec §4.2.2). */
const VIRTIO_MAGIC = 0x74726976;
const VIRTIO_VERSION = 2;
const VIRTIO_VENDOR = 0x554d4551;
/** Initial CMOS contents of the fake RTC: seconds 0x30, minutes 0x15, hours 0x09, status B 0x02. */
const CMOS_INIT: ReadonlyArray<[number, number]> = [[0x00, 0x30], [0x02, 0x15], [0x04, 0x09], [0x0b, 0x02]];

function hex(v: number): string {
  return "0x" + (v >>> 0).toString(16);
}

/** A clock that never moves (the test guests use no timers). */
class StillClock implements Clock {
  now(): number {
    return 0;
  }
  timer(_cb: () => void): Timer {
    return { arm() {}, cancel() {}, armed: false, deadline: Infinity };
  }
}

/** An AccelBoard that records every port and MMIO access as one text line. */
export class TraceBoard implements AccelBoard {
  readonly ram: FlatRam;
  readonly phys: FlatRam;
  readonly clock: Clock;
  msi: MsiSink | null = null;
  readonly ncpus: number;
  readonly lapics: readonly LocalApicPort[] = [];
  readonly cpuModel: string;
  readonly cpuFeatures: ReadonlyArray<{ name: string; on: boolean }> = [];
  readonly msrHandlers: readonly MsrHandler[] = [];
  readonly tscKhz = 1000000;
  /** Every access in order: "io.r 0x3fd 1 0x60", "mmio.w 0xfeb00070 4 0xf". */
  readonly trace: string[] = [];
  /** Bytes written to the serial data port 0x3f8, as text. */
  serial = "";
  /** Value written to EXIT_PORT, or null. */
  exitCode: number | null = null;
  /** Called on a write to EXIT_PORT (a test sets it to `accel.requestStop`). */
  onExit: (() => void) | null = null;
  /** Called after every port write (tests use it to raise interrupts on a guest's request). */
  onIoWrite: ((port: number, size: number, value: number) => void) | null = null;
  readonly io: IoBus;
  readonly mmio: MmioBus;
  readonly #ports = new Map<number, number>();
  readonly #cmos = new Uint8Array(128);
  #cmosIndex = 0;
  readonly #virtio = new Map<number, number>();

  constructor(opts: { ramSize?: number; ncpus?: number; cpuModel?: string; clock?: Clock } = {}) {
    this.clock = opts.clock ?? new StillClock();
    const u8 = alignedSharedBytes(opts.ramSize ?? 2 << 20);
    this.ram = new FlatRam(u8);
    this.phys = this.ram;
    this.ncpus = opts.ncpus ?? 1;
    this.cpuModel = opts.cpuModel ?? "host";
    for (const [i, v] of CMOS_INIT) this.#cmos[i] = v;
    this.io = {
      read: (port, size) => {
        const v = this.#ioRead(port, size);
        this.trace.push(`io.r ${hex(port)} ${size} ${hex(v)}`);
        return v;
      },
      write: (port, size, value) => {
        this.trace.push(`io.w ${hex(port)} ${size} ${hex(value)}`);
        this.#ioWrite(port, size, value);
        this.onIoWrite?.(port, size, value);
      },
    };
    this.mmio = {
      read: (addr, size) => {
        const v = this.#mmioRead(addr, size);
        this.trace.push(`mmio.r ${hex(addr)} ${size} ${hex(v)}`);
        return v;
      },
      write: (addr, size, value) => {
        this.trace.push(`mmio.w ${hex(addr)} ${size} ${hex(value)}`);
        if (addr >= VIRTIO_BASE && addr < VIRTIO_BASE + VIRTIO_SIZE) {
          this.#virtio.set(addr - VIRTIO_BASE, value);
        }
      },
    };
  }

  #ioRead(port: number, size: number): number {
    const ones = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    if (port === 0x3fd) return 0x60; // LSR: THR empty, transmitter empty
    if (port === 0x71) return this.#cmos[this.#cmosIndex];
    return (this.#ports.get(port) ?? ones) & ones;
  }

  #ioWrite(port: number, _size: number, value: number): void {
    if (port === 0x3f8) this.serial += String.fromCharCode(value & 0xff);
    else if (port === 0x70) this.#cmosIndex = value & 0x7f; // bit 7 is the NMI mask
    else if (port === 0x71) this.#cmos[this.#cmosIndex] = value & 0xff;
    else if (port === EXIT_PORT) {
      this.exitCode = value;
      this.onExit?.();
    }
    this.#ports.set(port, value);
  }

  #mmioRead(addr: number, size: number): number {
    const ones = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    if (addr < VIRTIO_BASE || addr >= VIRTIO_BASE + VIRTIO_SIZE) return ones;
    const off = addr - VIRTIO_BASE;
    switch (off) {
      case 0x000:
        return VIRTIO_MAGIC;
      case 0x004:
        return VIRTIO_VERSION;
      case 0x008:
        return 0; // device id 0: an empty transport
      case 0x00c:
        return VIRTIO_VENDOR;
    }
    return (this.#virtio.get(off) ?? 0) & ones;
  }

  /** Copy a guest's code and data into RAM. */
  load(g: TestGuest): void {
    this.ram.write(g.codeAddr, g.code);
    for (const m of g.memory) this.ram.write(m.gpa, m.bytes);
  }
}

// ---------------------------------------------------------------------------------------------------
// A minimal assembler: raw bytes with their listing, labels and short/near branches.

/** A minimal x86 assembler: raw bytes, labels, rel8 branches and absolute label immediates. */
export class Asm {
  readonly #bytes: number[] = [];
  readonly #labels = new Map<string, number>();
  readonly #fix: Array<{ at: number; label: string; width: 1 | 4 }> = [];
  readonly #abs: Array<{ at: number; label: string; n: number }> = [];
  #codeEnd = -1;
  constructor(readonly origin: number) {}
  /** Mark the end of the instructions (data follows). */
  data(): this {
    this.#codeEnd = this.#bytes.length;
    return this;
  }
  get codeSize(): number {
    return this.#codeEnd < 0 ? this.#bytes.length : this.#codeEnd;
  }
  get here(): number {
    return this.origin + this.#bytes.length;
  }
  /** Emit raw bytes. */
  b(...bytes: number[]): this {
    this.#bytes.push(...bytes.map((x) => x & 0xff));
    return this;
  }
  /** Little-endian immediate of `n` bytes. */
  imm(v: number | bigint, n: number): this {
    let x = BigInt.asUintN(n * 8, BigInt(v));
    for (let i = 0; i < n; i++, x >>= 8n) this.#bytes.push(Number(x & 0xffn));
    return this;
  }
  /** Absolute address of `label` as an `n`-byte immediate (filled in by done()). */
  immLabel(label: string, n: number): this {
    this.#abs.push({ at: this.#bytes.length, label, n });
    for (let i = 0; i < n; i++) this.#bytes.push(0);
    return this;
  }
  label(name: string): this {
    this.#labels.set(name, this.here);
    return this;
  }
  /** Short branch (jcc/jmp rel8) with opcode `op` to `label`. */
  j8(op: number, label: string): this {
    this.#bytes.push(op);
    this.#fix.push({ at: this.#bytes.length, label, width: 1 });
    this.#bytes.push(0);
    return this;
  }
  /** Every label's address. */
  get labels(): Record<string, number> {
    return Object.fromEntries(this.#labels);
  }
  /** Address of a label (after assembly). */
  addr(label: string): number {
    const a = this.#labels.get(label);
    if (a === undefined) throw new Error(`Unknown label "${label}"`);
    return a;
  }
  done(): Uint8Array {
    for (const f of this.#fix) {
      const rel = this.addr(f.label) - (this.origin + f.at + f.width);
      if (rel < -128 || rel > 127) throw new Error(`Branch to "${f.label}" out of rel8 range`);
      this.#bytes[f.at] = rel & 0xff;
    }
    for (const f of this.#abs) {
      let v = this.addr(f.label);
      for (let i = 0; i < f.n; i++, v = Math.floor(v / 256)) this.#bytes[f.at + i] = v & 0xff;
    }
    return new Uint8Array(this.#bytes);
  }
}

// ---------------------------------------------------------------------------------------------------
// Entry states.

function seg(selector: number, base: number, limit: number, attrs: number): SegmentState {
  return { selector, base, limit, attrs };
}

const CODE_ADDR = 0x1000;
const STACK_TOP = 0x8000;
const GDT_ADDR = 0x500;
const PML4_ADDR = 0x10000;

/** Flat GDT: null, 0x08 64-bit code, 0x10 data, 0x18 32-bit code. */
function gdtBytes(): Uint8Array {
  const b = new Uint8Array(32);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(8, 0x00af9b000000ffffn, true);
  dv.setBigUint64(16, 0x00cf93000000ffffn, true);
  dv.setBigUint64(24, 0x00cf9b000000ffffn, true);
  return b;
}

/** Identity map of 0..1 GiB and 3..4 GiB with 2 MiB pages (PML4 → PDPT → two PDs). */
function identityPageTables(): Array<{ gpa: number; bytes: Uint8Array }> {
  const pml4 = new Uint8Array(4096);
  const pdpt = new Uint8Array(4096);
  const pdLow = new Uint8Array(4096);
  const pdHigh = new Uint8Array(4096);
  const P_RW = 0x3n;
  const PS = 0x80n;
  new DataView(pml4.buffer).setBigUint64(0, BigInt(PML4_ADDR + 0x1000) | P_RW, true);
  const pdv = new DataView(pdpt.buffer);
  pdv.setBigUint64(0, BigInt(PML4_ADDR + 0x2000) | P_RW, true);
  pdv.setBigUint64(3 * 8, BigInt(PML4_ADDR + 0x3000) | P_RW, true);
  const low = new DataView(pdLow.buffer);
  const high = new DataView(pdHigh.buffer);
  for (let i = 0; i < 512; i++) {
    low.setBigUint64(i * 8, (BigInt(i) << 21n) | P_RW | PS, true);
    high.setBigUint64(i * 8, (0xc0000000n + (BigInt(i) << 21n)) | P_RW | PS, true);
  }
  return [
    { gpa: PML4_ADDR, bytes: pml4 },
    { gpa: PML4_ADDR + 0x1000, bytes: pdpt },
    { gpa: PML4_ADDR + 0x2000, bytes: pdLow },
    { gpa: PML4_ADDR + 0x3000, bytes: pdHigh },
  ];
}

function regs(rip: number): Record<string, bigint> {
  return { rip: BigInt(rip), rflags: 0x2n, rsp: BigInt(STACK_TOP) };
}

/** Real mode at 0000:1000 (as after a jump from the reset vector). */
export function realModeEntry(rip = CODE_ADDR): CpuEntryState {
  const data = seg(0, 0, 0xffff, 0x93);
  return {
    regs: regs(rip),
    cs: seg(0, 0, 0xffff, 0x9b),
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    tr: seg(0, 0, 0xffff, 0x8b),
    ldtr: seg(0, 0, 0xffff, 0x82),
    gdt: { base: 0, limit: 0xffff },
    idt: { base: 0, limit: 0x3ff },
    cr0: 0x10n,
    cr3: 0n,
    cr4: 0n,
    efer: 0n,
  };
}

/** 32-bit flat protected mode, paging off: the PVH boot protocol's entry state (CS 0x18, DS 0x10). */
export function prot32Entry(rip = CODE_ADDR): CpuEntryState {
  const data = seg(0x10, 0, 0xffffffff, 0xc093);
  return {
    regs: regs(rip),
    cs: seg(0x18, 0, 0xffffffff, 0xc09b),
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    tr: seg(0, 0, 0xffff, 0x8b),
    ldtr: seg(0, 0, 0, 0),
    gdt: { base: GDT_ADDR, limit: 31 },
    idt: { base: 0, limit: 0 },
    cr0: 0x11n,
    cr3: 0n,
    cr4: 0n,
    efer: 0n,
  };
}

/** 64-bit long mode with the identity page tables at 0x10000 (CS 0x08 L=1, DS 0x10). */
export function longModeEntry(rip = CODE_ADDR): CpuEntryState {
  const data = seg(0x10, 0, 0xffffffff, 0xc093);
  return {
    regs: regs(rip),
    cs: seg(0x08, 0, 0xffffffff, 0xa09b),
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    tr: seg(0, 0, 0xffff, 0x8b),
    ldtr: seg(0, 0, 0, 0),
    gdt: { base: GDT_ADDR, limit: 31 },
    idt: { base: 0, limit: 0 },
    cr0: 0x80000011n,
    cr3: BigInt(PML4_ADDR),
    cr4: 0x20n,
    efer: 0x500n,
  };
}

// ---------------------------------------------------------------------------------------------------
// The guests.

/** What running a guest must produce. */
export interface GuestExpectation {
  exit: RunExit["kind"];
  /** For exit "shutdown". */
  reason?: string;
  trace: string[];
  serial: string;
  /** General registers that must match exactly at the end (others are not checked). */
  regs: Record<string, bigint>;
  /** The vCPU is halted at the end. */
  halted?: boolean;
}

/** A test guest: code at `codeAddr`, extra memory, the entry state and the expected outcome. */
export interface TestGuest {
  name: string;
  mode: "real" | "prot32" | "long";
  codeAddr: number;
  code: Uint8Array;
  /** Label addresses from the assembler. */
  symbols: Record<string, number>;
  /** Bytes of `code` that are instructions (data follows). */
  codeSize: number;
  /** The instructions as iced-x86 (NASM syntax) disassembles them; tests check the bytes against it. */
  listing: string[];
  memory: Array<{ gpa: number; bytes: Uint8Array }>;
  entry: CpuEntryState;
  expect: GuestExpectation;
}

const ENTRY: Record<TestGuest["mode"], (rip?: number) => CpuEntryState> = {
  real: realModeEntry,
  prot32: prot32Entry,
  long: longModeEntry,
};

/** Assemble a TestGuest at CODE_ADDR with the entry state (and GDT/page tables) of `mode`. */
export function guest(
  name: string,
  mode: TestGuest["mode"],
  build: (a: Asm) => void,
  listing: string[],
  expect: GuestExpectation,
): TestGuest {
  const a = new Asm(CODE_ADDR);
  build(a);
  const memory = mode === "long" ? [{ gpa: GDT_ADDR, bytes: gdtBytes() }, ...identityPageTables()] : [];
  if (mode === "prot32") memory.push({ gpa: GDT_ADDR, bytes: gdtBytes() });
  const code = a.done();
  return {
    name,
    mode,
    codeAddr: CODE_ADDR,
    code,
    codeSize: a.codeSize,
    symbols: a.labels,
    listing,
    memory,
    entry: ENTRY[mode](),
    expect,
  };
}

/** out 0xf4, al with al = 0; then cli; hlt (the run has stopped by then). */
export function exitSeq(a: Asm): void {
  a.b(0xb0, 0x00).b(0xe6, EXIT_PORT).b(0xfa).b(0xf4);
}
/** The listing of exitSeq. */
export const EXIT_LISTING = ["mov al,0", "out 0F4h,al", "cli", "hlt"];
/** The trace line exitSeq leaves. */
export const EXIT_TRACE = "io.w 0xf4 1 0x0";

function serialTrace(text: string): string[] {
  const t: string[] = [];
  for (const ch of text) t.push("io.r 0x3fd 1 0x60", `io.w 0x3f8 1 ${hex(ch.charCodeAt(0))}`);
  return t;
}

/** Real mode: print "Hi!\n" on the 16550 at 0x3f8, polling LSR.THRE before each byte. */
export const SERIAL_HELLO: TestGuest = guest("serial-hello", "real", (a) => {
  a.b(0xbe).immLabel("msg", 2); // mov si, msg
  a.label("next").b(0xba).imm(0x3fd, 2);
  a.label("wait").b(0xec).b(0xa8, 0x20).j8(0x74, "wait");
  a.b(0x8a, 0x04).b(0x46); // mov al,[si]; inc si
  a.b(0x84, 0xc0).j8(0x74, "done");
  a.b(0xba).imm(0x3f8, 2).b(0xee).j8(0xeb, "next");
  a.label("done");
  exitSeq(a);
  a.data().label("msg").b(..."Hi!\n".split("").map((c) => c.charCodeAt(0)), 0);
}, [
  "mov si,101Eh",
  "mov dx,3FDh",
  "in al,dx",
  "test al,20h",
  "je short 1006h",
  "mov al,[si]",
  "inc si",
  "test al,al",
  "je short 1018h",
  "mov dx,3F8h",
  "out dx,al",
  "jmp short 1003h",
  ...EXIT_LISTING,
], {
  exit: "paused",
  trace: [...serialTrace("Hi!\n"), "io.r 0x3fd 1 0x60", EXIT_TRACE],
  serial: "Hi!\n",
  regs: { rsi: 0x1023n, rdx: 0x3fdn, rax: 0n, rip: 0x101cn },
});

/** Real mode: write CMOS register 0x0e, read it back, read the seconds register (NMI-mask bit set). */
export const RTC_CMOS: TestGuest = guest("rtc-cmos", "real", (a) => {
  a.b(0xb0, 0x0e).b(0xe6, 0x70).b(0xb0, 0x5a).b(0xe6, 0x71); // CMOS[0x0e] = 0x5a
  a.b(0xb0, 0x0e).b(0xe6, 0x70).b(0xe4, 0x71).b(0x88, 0xc3); // bl = CMOS[0x0e]
  a.b(0xb0, 0x80).b(0xe6, 0x70).b(0xe4, 0x71).b(0x88, 0xc1); // cl = CMOS[0x00] (NMI disabled)
  exitSeq(a);
}, [
  "mov al,0Eh",
  "out 70h,al",
  "mov al,5Ah",
  "out 71h,al",
  "mov al,0Eh",
  "out 70h,al",
  "in al,71h",
  "mov bl,al",
  "mov al,80h",
  "out 70h,al",
  "in al,71h",
  "mov cl,al",
  ...EXIT_LISTING,
], {
  exit: "paused",
  trace: [
    "io.w 0x70 1 0xe",
    "io.w 0x71 1 0x5a",
    "io.w 0x70 1 0xe",
    "io.r 0x71 1 0x5a",
    "io.w 0x70 1 0x80",
    "io.r 0x71 1 0x30",
    EXIT_TRACE,
  ],
  serial: "",
  regs: { rbx: 0x5an, rcx: 0x30n, rax: 0n },
});

/** Real mode: program the 8259 (ICW1-4, OCW1), read the mask back, program PIT channel 0, 16/32-bit ports. */
export const PIC_PIT: TestGuest = guest("pic-pit", "real", (a) => {
  a.b(0xb0, 0x11).b(0xe6, 0x20).b(0xb0, 0x20).b(0xe6, 0x21); // ICW1, ICW2 = vector 0x20
  a.b(0xb0, 0x04).b(0xe6, 0x21).b(0xb0, 0x01).b(0xe6, 0x21); // ICW3, ICW4 = 8086 mode
  a.b(0xb0, 0xfb).b(0xe6, 0x21).b(0xe4, 0x21).b(0x88, 0xc3); // OCW1 mask, read back → bl
  a.b(0xb0, 0x34).b(0xe6, 0x43).b(0xb0, 0x9c).b(0xe6, 0x40).b(0xb0, 0x2e).b(0xe6, 0x40); // ch0 mode 2, 0x2e9c
  a.b(0xba).imm(0x510, 2).b(0xb8).imm(0x0019, 2).b(0xef); // out dx, ax (16-bit)
  a.b(0x66, 0xed).b(0x66, 0x89, 0xc7); // in eax, dx (32-bit); mov edi, eax
  exitSeq(a);
}, [
  "mov al,11h",
  "out 20h,al",
  "mov al,20h",
  "out 21h,al",
  "mov al,4",
  "out 21h,al",
  "mov al,1",
  "out 21h,al",
  "mov al,0FBh",
  "out 21h,al",
  "in al,21h",
  "mov bl,al",
  "mov al,34h",
  "out 43h,al",
  "mov al,9Ch",
  "out 40h,al",
  "mov al,2Eh",
  "out 40h,al",
  "mov dx,510h",
  "mov ax,19h",
  "out dx,ax",
  "in eax,dx",
  "mov edi,eax",
  ...EXIT_LISTING,
], {
  exit: "paused",
  trace: [
    "io.w 0x20 1 0x11",
    "io.w 0x21 1 0x20",
    "io.w 0x21 1 0x4",
    "io.w 0x21 1 0x1",
    "io.w 0x21 1 0xfb",
    "io.r 0x21 1 0xfb",
    "io.w 0x43 1 0x34",
    "io.w 0x40 1 0x9c",
    "io.w 0x40 1 0x2e",
    "io.w 0x510 2 0x19",
    "io.r 0x510 4 0x19",
    EXIT_TRACE,
  ],
  serial: "",
  regs: { rbx: 0xfbn, rdi: 0x19n, rdx: 0x510n },
});

/** 32-bit protected mode (PVH entry state): probe the virtio-mmio window, then `rep outsb` a string. */
export const MMIO_VIRTIO: TestGuest = guest("mmio-virtio", "prot32", (a) => {
  a.b(0xa1).imm(VIRTIO_BASE, 4).b(0x89, 0xc3); // mov eax,[magic]; mov ebx,eax
  a.b(0xa1).imm(VIRTIO_BASE + 4, 4).b(0x89, 0xc1); // mov eax,[version]; mov ecx,eax
  a.b(0xc7, 0x05).imm(VIRTIO_BASE + 0x70, 4).imm(0x0f, 4); // mov dword [status], 0xf
  a.b(0x66, 0xc7, 0x05).imm(VIRTIO_BASE + 0x30, 4).imm(0x1234, 2); // mov word [queue_sel], 0x1234
  a.b(0xa0).imm(VIRTIO_BASE + 0x30, 4).b(0x88, 0xc2); // mov al,[queue_sel]; mov dl,al
  a.b(0xa1).imm(0xfec00000, 4).b(0x89, 0xc5); // unassigned MMIO reads all-ones → ebp
  a.b(0xbe).immLabel("msg", 4).b(0xb9).imm(3, 4).b(0x66, 0xba).imm(0x3f8, 2).b(0xf3, 0x6e); // rep outsb "PVH"
  exitSeq(a);
  a.data().label("msg").b(0x50, 0x56, 0x48);
}, [
  "mov eax,[0FEB00000h]",
  "mov ebx,eax",
  "mov eax,[0FEB00004h]",
  "mov ecx,eax",
  "mov dword [0FEB00070h],0Fh",
  "mov word [0FEB00030h],1234h",
  "mov al,[0FEB00030h]",
  "mov dl,al",
  "mov eax,[0FEC00000h]",
  "mov ebp,eax",
  "mov esi,1045h",
  "mov ecx,3",
  "mov dx,3F8h",
  "rep outsb",
  ...EXIT_LISTING,
], {
  exit: "paused",
  trace: [
    "mmio.r 0xfeb00000 4 0x74726976",
    "mmio.r 0xfeb00004 4 0x2",
    "mmio.w 0xfeb00070 4 0xf",
    "mmio.w 0xfeb00030 2 0x1234",
    "mmio.r 0xfeb00030 1 0x34",
    "mmio.r 0xfec00000 4 0xffffffff",
    "io.w 0x3f8 1 0x50",
    "io.w 0x3f8 1 0x56",
    "io.w 0x3f8 1 0x48",
    EXIT_TRACE,
  ],
  serial: "PVH",
  regs: { rbx: 0x74726976n, rcx: 0n, rbp: 0xffffffffn, rsi: 0x1048n, rax: 0xffffff00n, rip: 0x1043n },
});

/** 64-bit long mode on identity paging: 64-bit immediates, 8-byte MMIO read/write (split in two), serial. */
export const LONG_MODE: TestGuest = guest("long-mode", "long", (a) => {
  a.b(0x48, 0xb8).imm(0x1122334455667788n, 8); // mov rax, imm64
  a.b(0xbe).imm(VIRTIO_BASE, 4); // mov esi, 0xfeb00000 (zero-extended)
  a.b(0x8b, 0x1e); // mov ebx,[rsi]
  a.b(0x48, 0x8b, 0x16); // mov rdx,[rsi]: magic | version << 32
  a.b(0x48, 0x89, 0x46, 0x50); // mov [rsi+0x50],rax: two 4-byte writes
  a.b(0x48, 0x8b, 0x4e, 0x50); // mov rcx,[rsi+0x50]
  a.b(0x66, 0xba).imm(0x3f8, 2).b(0xb0, 0x4c).b(0xee); // 'L'
  a.b(0x48, 0xc7, 0xc7).imm(-2, 4); // mov rdi, -2 (sign-extended)
  exitSeq(a);
}, [
  "mov rax,1122334455667788h",
  "mov esi,0FEB00000h",
  "mov ebx,[rsi]",
  "mov rdx,[rsi]",
  "mov [rsi+50h],rax",
  "mov rcx,[rsi+50h]",
  "mov dx,3F8h",
  "mov al,4Ch",
  "out dx,al",
  "mov rdi,0FFFFFFFFFFFFFFFEh",
  ...EXIT_LISTING,
], {
  exit: "paused",
  trace: [
    "mmio.r 0xfeb00000 4 0x74726976",
    "mmio.r 0xfeb00000 4 0x74726976",
    "mmio.r 0xfeb00004 4 0x2",
    "mmio.w 0xfeb00050 4 0x55667788",
    "mmio.w 0xfeb00054 4 0x11223344",
    "mmio.r 0xfeb00050 4 0x55667788",
    "mmio.r 0xfeb00054 4 0x11223344",
    "io.w 0x3f8 1 0x4c",
    EXIT_TRACE,
  ],
  serial: "L",
  regs: {
    rax: 0x1122334455667700n,
    rbx: 0x74726976n,
    rdx: 0x00000002747203f8n,
    rcx: 0x1122334455667788n,
    rdi: 0xfffffffffffffffen,
  },
});

/** Real mode: print "H", then cli; hlt forever (the test stops the run and checks the halted state). */
export const HALT: TestGuest = guest(
  "hlt",
  "real",
  (a) => {
    a.b(0xba).imm(0x3f8, 2).b(0xb0, 0x48).b(0xee).b(0xfa).label("h").b(0xf4).j8(0xeb, "h");
  },
  ["mov dx,3F8h", "mov al,48h", "out dx,al", "cli", "hlt", "jmp short 1007h"],
  {
    exit: "paused",
    trace: ["io.w 0x3f8 1 0x48"],
    serial: "H",
    regs: { rip: 0x1008n },
    halted: true,
  },
);

/** Long mode with an empty IDT: `ud2` → #UD → #GP → #DF → triple fault → shutdown. */
export const TRIPLE_FAULT: TestGuest = guest(
  "triple-fault",
  "long",
  (a) => {
    a.b(0x66, 0xba).imm(0x3f8, 2).b(0xb0, 0x54).b(0xee).b(0x0f, 0x0b);
  },
  ["mov dx,3F8h", "mov al,54h", "out dx,al", "ud2"],
  {
    exit: "shutdown",
    reason: "triple-fault",
    trace: ["io.w 0x3f8 1 0x54"],
    serial: "T",
    regs: {},
  },
);

/** Every test guest, in the order tests run them. */
export const KVM_TEST_GUESTS: readonly TestGuest[] = [
  SERIAL_HELLO,
  RTC_CMOS,
  PIC_PIT,
  MMIO_VIRTIO,
  LONG_MODE,
  HALT,
  TRIPLE_FAULT,
];

/** Port a guest writes to ask the test for an interrupt (see IrqTestGuest). */
export const IRQ_REQUEST_PORT = 0x502;
const FLAG_ADDR = 0x600;
const IDT_ADDR = 0x700;
const IDTR_ADDR = 0x6f0;

/** A guest that asks for one interrupt by writing IRQ_REQUEST_PORT and waits for its handler to run. */
export interface IrqTestGuest extends TestGuest {
  /** How the test delivers it: PIC ExtINT through the accelerator, or an MSI through `board.msi`. */
  irq: { kind: "extint" | "msi"; vector: number; msiData: number };
}

/**
 * Real mode: IVT[8] → handler; ask for IRQ0 through the PIC (ExtINT, vector 8); sti; spin until the
 * handler sets a flag; the handler sends the PIC a non-specific EOI.
 */
export const EXTINT: IrqTestGuest = {
  ...guest("extint", "real", (a) => {
    a.b(0xc7, 0x06).imm(8 * 4, 2).immLabel("handler", 2); // mov word [0x20], handler
    a.b(0xc7, 0x06).imm(8 * 4 + 2, 2).imm(0, 2); // mov word [0x22], 0
    a.b(0xba).imm(IRQ_REQUEST_PORT, 2).b(0xb0, 0x01).b(0xee); // ask for IRQ0
    a.b(0xfb); // sti
    a.label("spin").b(0x80, 0x3e).imm(FLAG_ADDR, 2).b(0x00).j8(0x74, "spin");
    exitSeq(a);
    a.label("handler").b(0xc6, 0x06).imm(FLAG_ADDR, 2).b(0x01); // mov byte [flag], 1
    a.b(0xb0, 0x20).b(0xe6, 0x20).b(0xcf); // PIC EOI; iret
  }, [
    "mov word [20h],1020h",
    "mov word [22h],0",
    "mov dx,502h",
    "mov al,1",
    "out dx,al",
    "sti",
    "cmp byte [600h],0",
    "je short 1013h",
    ...EXIT_LISTING,
    "mov byte [600h],1",
    "mov al,20h",
    "out 20h,al",
    "iret",
  ], {
    exit: "paused",
    trace: ["io.w 0x502 1 0x1", "io.w 0x20 1 0x20", EXIT_TRACE],
    serial: "",
    regs: {},
  }),
  irq: { kind: "extint", vector: 8, msiData: 0 },
};

/**
 * 32-bit protected mode: software-enable the LAPIC (SVR), load an IDT with a gate for vector 0x30, ask
 * for a level-triggered MSI with that vector, sti, spin; the handler writes the LAPIC EOI register.
 */
export const MSI_LEVEL: IrqTestGuest = {
  ...guest("msi-level", "prot32", (a) => {
    a.b(0xc7, 0x05).imm(0xfee000f0, 4).imm(0x1ff, 4); // mov dword [LAPIC SVR], 0x1ff
    a.b(0x0f, 0x01, 0x1d).imm(IDTR_ADDR, 4); // lidt [idtr]
    a.b(0x66, 0xba).imm(IRQ_REQUEST_PORT, 2).b(0xb0, 0x01).b(0xee); // ask for the MSI
    a.b(0xfb); // sti
    a.label("spin").b(0x80, 0x3d).imm(FLAG_ADDR, 4).b(0x00).j8(0x74, "spin");
    a.label("exit");
    exitSeq(a);
    // The handler does not IRET: kvm_pvm emulates guest CPL0 with KVM's instruction emulator, which
    // implements IRET in real mode only (protected-mode IRET is an internal error there).
    a.label("handler").b(0xc6, 0x05).imm(FLAG_ADDR, 4).b(0x01); // mov byte [flag], 1
    a.b(0xc7, 0x05).imm(0xfee000b0, 4).imm(0, 4); // LAPIC EOI
    // A port write before leaving: kvm_pvm emulates CPL0 code in batches and reports the EOI exit only
    // at the next entry after a userspace exit.
    a.b(0xe6, 0x80); // out 0x80, al (POST code)
    a.j8(0xeb, "exit");
  }, [
    "mov dword [0FEE000F0h],1FFh",
    "lidt [6F0h]",
    "mov dx,502h",
    "mov al,1",
    "out dx,al",
    "sti",
    "cmp byte [600h],0",
    "je short 00001019h",
    ...EXIT_LISTING,
    "mov byte [600h],1",
    "mov dword [0FEE000B0h],0",
    "out 80h,al",
    "jmp short 00001022h",
  ], {
    exit: "paused",
    trace: ["io.w 0x502 1 0x1", "io.w 0x80 1 0x1", EXIT_TRACE],
    serial: "",
    regs: {},
  }),
  irq: { kind: "msi", vector: 0x30, msiData: 0xc030 },
};
// IDT (one 32-bit interrupt gate, vector 0x30 → handler, selector 0x18) and IDTR for MSI_LEVEL.
{
  const handler = MSI_LEVEL.symbols.handler;
  const idt = new Uint8Array(0x31 * 8);
  const dv = new DataView(idt.buffer);
  dv.setUint16(0x30 * 8, handler & 0xffff, true);
  dv.setUint16(0x30 * 8 + 2, 0x18, true);
  dv.setUint16(0x30 * 8 + 4, 0x8e00, true);
  dv.setUint16(0x30 * 8 + 6, handler >>> 16, true);
  const idtr = new Uint8Array(6);
  new DataView(idtr.buffer).setUint16(0, idt.length - 1, true);
  new DataView(idtr.buffer).setUint32(2, IDT_ADDR, true);
  MSI_LEVEL.memory.push({ gpa: IDT_ADDR, bytes: idt }, { gpa: IDTR_ADDR, bytes: idtr });
}

/** Real mode: spin until the byte at 0x600 becomes non-zero (set by the test from a clock timer), then exit. */
export const WAIT_FLAG: TestGuest = guest(
  "wait-flag",
  "real",
  (a) => {
    a.label("spin").b(0x80, 0x3e).imm(FLAG_ADDR, 2).b(0x00).j8(0x74, "spin");
    exitSeq(a);
  },
  ["cmp byte [600h],0", "je short 1000h", ...EXIT_LISTING],
  {
    exit: "paused",
    trace: [EXIT_TRACE],
    serial: "",
    regs: {},
  },
);

/**
 * Real mode with the PIC in the kernel (kernel-irqchip=on): program the master 8259 (vector base 0x20,
 * only IRQ4 unmasked), IVT[0x24] → handler, ask for GSI 4, sti, spin; the handler sets the flag and EOIs.
 * The PIC ports never leave the kernel, so the trace holds only the request and the exit.
 */
export const KERNEL_PIC: TestGuest = guest("kernel-pic", "real", (a) => {
  a.b(0xc7, 0x06).imm(0x24 * 4, 2).immLabel("handler", 2); // IVT[0x24] = 0000:handler
  a.b(0xc7, 0x06).imm(0x24 * 4 + 2, 2).imm(0, 2);
  a.b(0xb0, 0x11).b(0xe6, 0x20).b(0xb0, 0x20).b(0xe6, 0x21); // ICW1, ICW2 = 0x20
  a.b(0xb0, 0x04).b(0xe6, 0x21).b(0xb0, 0x01).b(0xe6, 0x21); // ICW3, ICW4
  a.b(0xb0, 0xef).b(0xe6, 0x21); // OCW1: only IRQ4
  a.b(0xba).imm(IRQ_REQUEST_PORT, 2).b(0xb0, 0x01).b(0xee); // ask for GSI 4
  a.b(0xfb); // sti
  a.label("spin").b(0x80, 0x3e).imm(FLAG_ADDR, 2).b(0x00).j8(0x74, "spin");
  exitSeq(a);
  a.label("handler").b(0xc6, 0x06).imm(FLAG_ADDR, 2).b(0x01); // mov byte [flag], 1
  a.b(0xb0, 0x20).b(0xe6, 0x20).b(0xcf); // EOI; iret
}, [
  "mov word [90h],1034h",
  "mov word [92h],0",
  "mov al,11h",
  "out 20h,al",
  "mov al,20h",
  "out 21h,al",
  "mov al,4",
  "out 21h,al",
  "mov al,1",
  "out 21h,al",
  "mov al,0EFh",
  "out 21h,al",
  "mov dx,502h",
  "mov al,1",
  "out dx,al",
  "sti",
  "cmp byte [600h],0",
  "je short 1027h",
  ...EXIT_LISTING,
  "mov byte [600h],1",
  "mov al,20h",
  "out 20h,al",
  "iret",
], {
  exit: "paused",
  trace: ["io.w 0x502 1 0x1", EXIT_TRACE],
  serial: "",
  regs: {},
});

/** Where SMP_INIT_SIPI's AP starts (SIPI vector 2 → 0200:0000). */
export const AP_TRAMPOLINE = 0x2000;

/**
 * Two vCPUs. The BSP (32-bit protected mode) software-enables its LAPIC, sends INIT and SIPI (vector 2)
 * to APIC id 1 through the ICR, and spins on a flag. The AP starts in real mode at 0x2000, prints "A" on
 * the serial port (on KVM: forwarded from the AP's thread to the device thread), sets the flag and halts.
 */
export const SMP_INIT_SIPI: TestGuest = guest("smp-init-sipi", "prot32", (a) => {
  a.b(0xc7, 0x05).imm(0xfee000f0, 4).imm(0x1ff, 4); // SVR: APIC software-enabled
  a.b(0xc7, 0x05).imm(0xfee00310, 4).imm(0x01000000, 4); // ICR high: destination APIC id 1
  a.b(0xc7, 0x05).imm(0xfee00300, 4).imm(0x00004500, 4); // ICR low: INIT, assert
  a.b(0xc7, 0x05).imm(0xfee00300, 4).imm(0x00004600 | (AP_TRAMPOLINE >> 12), 4); // ICR low: SIPI
  a.label("spin").b(0x80, 0x3d).imm(FLAG_ADDR, 4).b(0x00).j8(0x74, "spin");
  exitSeq(a);
}, [
  "mov dword [0FEE000F0h],1FFh",
  "mov dword [0FEE00310h],1000000h",
  "mov dword [0FEE00300h],4500h",
  "mov dword [0FEE00300h],4602h",
  "cmp byte [600h],0",
  "je short 00001028h",
  ...EXIT_LISTING,
], {
  exit: "paused",
  trace: ["io.w 0x3f8 1 0x41", EXIT_TRACE],
  serial: "A",
  regs: {},
});
SMP_INIT_SIPI.memory.push({
  gpa: AP_TRAMPOLINE,
  // mov dx,0x3f8; mov al,'A'; out dx,al; mov byte [0x600],1; cli; hlt; jmp $-1
  bytes: new Uint8Array([
    0xba,
    0xf8,
    0x03,
    0xb0,
    0x41,
    0xee,
    0xc6,
    0x06,
    0x00,
    0x06,
    0x01,
    0xfa,
    0xf4,
    0xeb,
    0xfd,
  ]),
});

/** The interrupt guests (need an interrupt controller: KVM's in-kernel LAPIC, or our PIC/LAPIC models). */
export const IRQ_TEST_GUESTS: readonly IrqTestGuest[] = [EXTINT, MSI_LEVEL];

/** Result of `runGuest`. */
export interface GuestRun {
  exit: RunExit;
  trace: string[];
  serial: string;
  regs: CpuRegisters;
  board: TraceBoard;
}

/**
 * Run `g` on `accel` over a fresh TraceBoard until the exit port, a shutdown or `maxYields` event-loop
 * turns (then requestStop: the HALT guest ends that way). Destroys the accelerator afterwards.
 */
export async function runGuest(
  accel: Accelerator,
  g: TestGuest,
  opts: { maxYields?: number; board?: TraceBoard } = {},
): Promise<GuestRun> {
  const board = opts.board ?? new TraceBoard();
  board.load(g);
  board.onExit = () => accel.requestStop();
  accel.init(board, g.entry);
  try {
    const ch = new MessageChannel();
    let turns = 0;
    const max = opts.maxYields ?? 20;
    ch.port1.onmessage = () => {
      if (++turns >= max) accel.requestStop();
      else ch.port2.postMessage(0);
    };
    ch.port2.postMessage(0);
    const exit = await accel.run();
    ch.port1.close();
    ch.port2.close();
    return { exit, trace: board.trace, serial: board.serial, regs: accel.registers(0), board };
  } finally {
    accel.destroy();
  }
}
