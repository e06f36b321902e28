/**
 * 16550A UART ("isa-serial"), register-compatible with QEMU 7.2's hw/char/serial.c and the National
 * Semiconductor PC16550D datasheet: RBR/THR/IER/IIR/FCR/LCR/MCR/LSR/MSR/SCR, divisor latch, 16-byte FIFOs
 * with trigger levels, character-timeout interrupt, loopback. Transmission is instantaneous (as in QEMU);
 * the baud rate only scales the RX FIFO timeout.
 * @module
 */
import type {
  CharBackend,
  CharReceiver,
  Clock,
  Device,
  DeviceState,
  GuestLog,
  IrqLine,
  RegionOps,
  Timer,
} from "../core/types.ts";
import { StateError } from "../core/types.ts";

// Register offsets (PC16550D §8.2, table III).
export const UART_RBR = 0; // read, DLAB=0
export const UART_THR = 0; // write, DLAB=0
export const UART_DLL = 0; // DLAB=1
export const UART_IER = 1; // DLAB=0
export const UART_DLM = 1; // DLAB=1
export const UART_IIR = 2; // read
export const UART_FCR = 2; // write
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;

export const LCR_DLAB = 0x80;
export const LCR_SBC = 0x40; // set break

export const IER_RDI = 0x01;
export const IER_THRI = 0x02;
export const IER_RLSI = 0x04;
export const IER_MSI = 0x08;

export const IIR_NO_INT = 0x01;
export const IIR_ID = 0x06;
export const IIR_MSI = 0x00;
export const IIR_THRI = 0x02;
export const IIR_RDI = 0x04;
export const IIR_RLSI = 0x06;
export const IIR_CTI = 0x0c;
export const IIR_FE = 0xc0;

export const FCR_FE = 0x01;
export const FCR_RFR = 0x02;
export const FCR_XFR = 0x04;
export const FCR_DMS = 0x08;
export const FCR_ITL_MASK = 0xc0;

export const MCR_DTR = 0x01;
export const MCR_RTS = 0x02;
export const MCR_OUT1 = 0x04;
export const MCR_OUT2 = 0x08;
export const MCR_LOOP = 0x10;

export const LSR_DR = 0x01;
export const LSR_OE = 0x02;
export const LSR_PE = 0x04;
export const LSR_FE = 0x08;
export const LSR_BI = 0x10;
export const LSR_THRE = 0x20;
export const LSR_TEMT = 0x40;
/** LSR bits that raise the receiver-line-status interrupt. */
export const LSR_INT_ANY = 0x1e;

export const MSR_DCTS = 0x01;
export const MSR_DDSR = 0x02;
export const MSR_TERI = 0x04;
export const MSR_DDCD = 0x08;
export const MSR_CTS = 0x10;
export const MSR_DSR = 0x20;
export const MSR_RI = 0x40;
export const MSR_DCD = 0x80;
export const MSR_ANY_DELTA = 0x0f;

/** FIFO depth of the 16550A. */
export const UART_FIFO_LENGTH = 16;
/** Default input clock / 16 of a PC serial port (1.8432 MHz / 16). */
export const UART_DEFAULT_BAUDBASE = 115200;

const NS_PER_SEC = 1_000_000_000;
const ITL_BYTES = [1, 4, 8, 14] as const;

/** A 16-byte ring buffer (QEMU's Fifo8). */
class ByteFifo {
  readonly buf = new Uint8Array(UART_FIFO_LENGTH);
  head = 0;
  num = 0;
  get full(): boolean {
    return this.num === UART_FIFO_LENGTH;
  }
  push(b: number): void {
    this.buf[(this.head + this.num) % UART_FIFO_LENGTH] = b;
    this.num++;
  }
  pop(): number {
    const b = this.buf[this.head];
    this.head = (this.head + 1) % UART_FIFO_LENGTH;
    this.num--;
    return b;
  }
  reset(): void {
    this.head = 0;
    this.num = 0;
  }
  toArray(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.num; i++) out.push(this.buf[(this.head + i) % UART_FIFO_LENGTH]);
    return out;
  }
}

/** Saved state of a Uart16550 (version 1). */
export interface Uart16550State extends DeviceState {
  version: 1;
  divider: number;
  rbr: number;
  ier: number;
  iir: number;
  lcr: number;
  mcr: number;
  lsr: number;
  msr: number;
  scr: number;
  fcr: number;
  thrIpending: boolean;
  timeoutIpending: boolean;
  recvFifo: number[];
  xmitFifo: number[];
  /** Virtual-clock deadline of the RX FIFO character timeout, or -1 when not armed. */
  fifoTimeoutNs: number;
}

/** Constructor options of Uart16550. */
export interface Uart16550Options {
  /** Device id (default "serial0"). */
  id?: string;
  /** Interrupt output (level; ISA IRQ 4 on the PC). */
  irq: IrqLine;
  clock: Clock;
  log: GuestLog;
  /** Host side; null leaves the port unconnected (output dropped). */
  backend?: CharBackend | null;
  /** Input clock / 16 in Hz (QEMU's baudbase), default 115200. */
  baudbase?: number;
}

/**
 * A 16550A UART. Map `ops` as an 8-port region named "serial" (byte access; wider accesses are split).
 * It is also the CharReceiver its backend delivers host input to.
 *
 * @example
 * ```ts ignore
 * const uart = new Uart16550({ irq, clock, log, backend: new NullChar() });
 * io.map("serial", 0x3f8, 8, uart.ops);
 * ```
 */
export class Uart16550 implements Device, CharReceiver {
  /** QEMU type name. */
  static readonly typeName = "isa-serial";
  readonly typeName = Uart16550.typeName;
  readonly id: string;
  /** Port handlers for offsets 0..7 (QEMU region "serial"). */
  readonly ops: RegionOps;

  readonly #irq: IrqLine;
  readonly #clock: Clock;
  readonly #log: GuestLog;
  readonly #baudbase: number;
  #backend: CharBackend | null = null;
  readonly #fifoTimer: Timer;
  readonly #txByte = new Uint8Array(1);

  #divider = 0x0c;
  #rbr = 0;
  #thr = 0;
  #tsr = 0;
  #ier = 0;
  #iir = IIR_NO_INT;
  #lcr = 0;
  #mcr = MCR_OUT2;
  #lsr = LSR_TEMT | LSR_THRE;
  #msr = MSR_DCD | MSR_DSR | MSR_CTS;
  #scr = 0;
  #fcr = 0;
  #recvFifoItl = 1;
  #thrIpending = false;
  #timeoutIpending = false;
  #charTransmitTime = Math.floor(NS_PER_SEC / 9600) * 10;
  readonly #recvFifo = new ByteFifo();
  readonly #xmitFifo = new ByteFifo();
  #irqLevel = false;

  constructor(opts: Uart16550Options) {
    this.id = opts.id ?? "serial0";
    this.#irq = opts.irq;
    this.#clock = opts.clock;
    this.#log = opts.log;
    this.#baudbase = opts.baudbase ?? UART_DEFAULT_BAUDBASE;
    this.#fifoTimer = this.#clock.timer(() => this.#fifoTimeout());
    this.ops = {
      read: (offset: number, _size: 1 | 2 | 4): number => this.#read(offset),
      write: (offset: number, _size: 1 | 2 | 4, value: number): void => this.#write(offset, value & 0xff),
      impl: { min: 1, max: 1 },
    };
    this.reset();
    this.attach(opts.backend ?? null);
  }

  /** Connect (or with null, disconnect) the host backend; registers this UART as its receiver. */
  attach(backend: CharBackend | null): void {
    if (this.#backend) this.#backend.setReceiver(null);
    this.#backend = backend;
    if (backend) backend.setReceiver(this);
  }

  /** The connected backend, if any. */
  get backend(): CharBackend | null {
    return this.#backend;
  }

  /** Current level of the interrupt output. */
  get irqLevel(): boolean {
    return this.#irqLevel;
  }

  reset(): void {
    this.#rbr = 0;
    this.#ier = 0;
    this.#iir = IIR_NO_INT;
    this.#lcr = 0;
    this.#lsr = LSR_TEMT | LSR_THRE;
    this.#msr = MSR_DCD | MSR_DSR | MSR_CTS;
    this.#divider = 0x0c; // 9600 8N1
    this.#mcr = MCR_OUT2;
    this.#scr = 0;
    this.#fcr = 0;
    this.#recvFifoItl = 1;
    this.#charTransmitTime = Math.floor(NS_PER_SEC / 9600) * 10;
    this.#timeoutIpending = false;
    this.#fifoTimer.cancel();
    this.#recvFifo.reset();
    this.#xmitFifo.reset();
    this.#thrIpending = false;
    this.#setIrq(false);
  }

  // ---- CharReceiver (host → guest) ----

  /** Bytes the UART can take now (QEMU serial_can_receive: up to the trigger level with FIFOs on). */
  canReceive(): number {
    // In loopback the serial input pin is disconnected from the receiver (datasheet §8.6, MCR bit 4).
    if (this.#mcr & MCR_LOOP) return 0;
    return this.#canReceive();
  }

  /** Deliver host bytes (at most canReceive(); extra bytes overrun as on the real chip). */
  receive(data: Uint8Array): void {
    if (data.length === 0) return;
    this.#receive(data);
  }

  /** A break condition from the host (QEMU CHR_EVENT_BREAK): a NUL with LSR.BI. */
  receiveBreak(): void {
    this.#rbr = 0;
    this.#recvFifoPut(0);
    this.#lsr |= LSR_BI | LSR_DR;
    this.#updateIrq();
  }

  #canReceive(): number {
    if (this.#fcr & FCR_FE) {
      const n = this.#recvFifo.num;
      if (n >= UART_FIFO_LENGTH) return 0;
      // Advertise up to the trigger level so the guest gets a chance to react (QEMU's choice).
      return n <= this.#recvFifoItl ? Math.max(this.#recvFifoItl - n, 1) : 1;
    }
    return this.#lsr & LSR_DR ? 0 : 1;
  }

  #receive(data: Uint8Array): void {
    if (this.#fcr & FCR_FE) {
      for (let i = 0; i < data.length; i++) this.#recvFifoPut(data[i]);
      this.#lsr |= LSR_DR;
      this.#fifoTimer.arm(this.#clock.now() + this.#charTransmitTime * 4);
    } else {
      if (this.#lsr & LSR_DR) this.#lsr |= LSR_OE;
      this.#rbr = data[data.length - 1];
      if (data.length > 1) this.#lsr |= LSR_OE; // every byte but the last was overrun
      this.#lsr |= LSR_DR;
    }
    this.#updateIrq();
  }

  #recvFifoPut(b: number): void {
    // Receive overruns do not overwrite FIFO contents (datasheet: the character in the shift register is lost).
    if (!this.#recvFifo.full) this.#recvFifo.push(b);
    else this.#lsr |= LSR_OE;
  }

  #fifoTimeout(): void {
    if (this.#recvFifo.num) {
      this.#timeoutIpending = true;
      this.#updateIrq();
    }
  }

  // ---- interrupts ----

  #setIrq(level: boolean): void {
    this.#irqLevel = level;
    this.#irq.set(level);
  }

  /** IIR priority: line status > char timeout > RX data > THRE > modem status (datasheet table IV). */
  #updateIrq(): void {
    let id = IIR_NO_INT;
    if ((this.#ier & IER_RLSI) && (this.#lsr & LSR_INT_ANY)) {
      id = IIR_RLSI;
    } else if ((this.#ier & IER_RDI) && this.#timeoutIpending) {
      // IER.RDI masks the timeout interrupt too (not in the datasheet, observed on hardware; QEMU).
      id = IIR_CTI;
    } else if (
      (this.#ier & IER_RDI) && (this.#lsr & LSR_DR) &&
      (!(this.#fcr & FCR_FE) || this.#recvFifo.num >= this.#recvFifoItl)
    ) {
      id = IIR_RDI;
    } else if ((this.#ier & IER_THRI) && this.#thrIpending) {
      id = IIR_THRI;
    } else if ((this.#ier & IER_MSI) && (this.#msr & MSR_ANY_DELTA)) {
      id = IIR_MSI;
    }
    this.#iir = id | (this.#iir & 0xf0);
    const level = id !== IIR_NO_INT;
    if (level !== this.#irqLevel) this.#setIrq(level);
  }

  #updateParameters(): void {
    if (this.#divider === 0 || this.#divider > this.#baudbase) return;
    let frame = 1; // start bit
    if (this.#lcr & 0x08) frame++; // parity
    frame += this.#lcr & 0x04 ? 2 : 1; // stop bits
    frame += (this.#lcr & 0x03) + 5; // data bits
    const speed = Math.floor(this.#baudbase / this.#divider);
    this.#charTransmitTime = Math.floor(NS_PER_SEC / speed) * frame;
  }

  // ---- transmit ----

  /** Move THR / TX FIFO through the shift register to the backend (instantaneous, as QEMU does). */
  #xmit(): void {
    do {
      if (this.#fcr & FCR_FE) {
        this.#tsr = this.#xmitFifo.num ? this.#xmitFifo.pop() : this.#thr;
        if (!this.#xmitFifo.num) this.#lsr |= LSR_THRE;
      } else {
        this.#tsr = this.#thr;
        this.#lsr |= LSR_THRE;
      }
      if ((this.#lsr & LSR_THRE) && !this.#thrIpending) {
        this.#thrIpending = true;
        this.#updateIrq();
      }
      if (this.#mcr & MCR_LOOP) {
        // Loopback: the transmitter output is wired to the receiver input (datasheet §8.6).
        this.#txByte[0] = this.#tsr;
        this.#receive(this.#txByte);
      } else if (this.#backend) {
        this.#txByte[0] = this.#tsr;
        this.#backend.write(this.#txByte);
      }
    } while (!(this.#lsr & LSR_THRE));
    this.#lsr |= LSR_TEMT;
  }

  // ---- registers ----

  #write(offset: number, val: number): void {
    switch (offset & 7) {
      case UART_THR:
        if (this.#lcr & LCR_DLAB) {
          this.#divider = (this.#divider & 0xff00) | val;
          this.#updateParameters();
          break;
        }
        this.#thr = val;
        if (this.#fcr & FCR_FE) {
          // TX overruns overwrite the oldest byte (QEMU); cannot happen with instantaneous transmit.
          if (this.#xmitFifo.full) this.#xmitFifo.pop();
          this.#xmitFifo.push(val);
        }
        this.#thrIpending = false;
        this.#lsr &= ~(LSR_THRE | LSR_TEMT);
        this.#updateIrq();
        this.#xmit();
        break;
      case UART_IER: {
        if (this.#lcr & LCR_DLAB) {
          this.#divider = (this.#divider & 0x00ff) | (val << 8);
          this.#updateParameters();
          break;
        }
        const changed = (this.#ier ^ val) & 0x0f;
        this.#ier = val & 0x0f;
        // Enabling THRI while THR is empty raises THRE again even if IIR was read before (Windows relies
        // on it; QEMU and Bochs resample on the rising edge).
        if (changed & IER_THRI) {
          this.#thrIpending = (this.#ier & IER_THRI) !== 0 && (this.#lsr & LSR_THRE) !== 0;
        }
        if (changed) this.#updateIrq();
        break;
      }
      case UART_FCR: {
        // Toggling FIFO enable clears both FIFOs (datasheet §8.4 FCR bit 0).
        if ((val ^ this.#fcr) & FCR_FE) val |= FCR_XFR | FCR_RFR;
        if (val & FCR_RFR) {
          this.#lsr &= ~(LSR_DR | LSR_BI);
          this.#fifoTimer.cancel();
          this.#timeoutIpending = false;
          this.#recvFifo.reset();
        }
        if (val & FCR_XFR) {
          this.#lsr |= LSR_THRE;
          this.#thrIpending = true;
          this.#xmitFifo.reset();
        }
        this.#writeFcr(val & 0xc9);
        this.#updateIrq();
        break;
      }
      case UART_LCR:
        this.#lcr = val;
        this.#updateParameters();
        break;
      case UART_MCR: {
        const wasLoop = this.#mcr & MCR_LOOP;
        this.#mcr = val & 0x1f;
        if (wasLoop && !(this.#mcr & MCR_LOOP)) this.#backend?.accept?.();
        break;
      }
      case UART_LSR:
      case UART_MSR:
        // Read-only on the 16550A (factory test registers): writes are ignored.
        break;
      case UART_SCR:
        this.#scr = val;
        break;
    }
  }

  #writeFcr(val: number): void {
    this.#fcr = val;
    if (val & FCR_FE) {
      this.#iir |= IIR_FE;
      this.#recvFifoItl = ITL_BYTES[(val & FCR_ITL_MASK) >> 6];
    } else {
      this.#iir &= ~IIR_FE;
    }
  }

  #read(offset: number): number {
    switch (offset & 7) {
      case UART_RBR: {
        if (this.#lcr & LCR_DLAB) return this.#divider & 0xff;
        let ret: number;
        if (this.#fcr & FCR_FE) {
          ret = this.#recvFifo.num ? this.#recvFifo.pop() : 0;
          if (this.#recvFifo.num === 0) {
            this.#lsr &= ~(LSR_DR | LSR_BI);
          } else {
            this.#fifoTimer.arm(this.#clock.now() + this.#charTransmitTime * 4);
          }
          this.#timeoutIpending = false;
        } else {
          ret = this.#rbr;
          this.#lsr &= ~(LSR_DR | LSR_BI);
        }
        this.#updateIrq();
        // Tell the backend there is room again (QEMU qemu_chr_fe_accept_input); not in loopback.
        if (!(this.#mcr & MCR_LOOP)) this.#backend?.accept?.();
        return ret;
      }
      case UART_IER:
        return this.#lcr & LCR_DLAB ? (this.#divider >> 8) & 0xff : this.#ier;
      case UART_IIR: {
        const ret = this.#iir;
        // Reading IIR while it reports THRE clears that interrupt (datasheet table IV).
        if ((ret & IIR_ID) === IIR_THRI) {
          this.#thrIpending = false;
          this.#updateIrq();
        }
        return ret;
      }
      case UART_LCR:
        return this.#lcr;
      case UART_MCR:
        return this.#mcr;
      case UART_LSR: {
        const ret = this.#lsr;
        // Reading LSR clears the error bits BI and OE (datasheet §8.5).
        if (this.#lsr & (LSR_BI | LSR_OE)) {
          this.#lsr &= ~(LSR_BI | LSR_OE);
          this.#updateIrq();
        }
        return ret;
      }
      case UART_MSR: {
        if (this.#mcr & MCR_LOOP) {
          // Loopback: DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD (datasheet §8.6).
          return ((this.#mcr & 0x0c) << 4) | ((this.#mcr & MCR_RTS) << 3) | ((this.#mcr & MCR_DTR) << 5);
        }
        const ret = this.#msr;
        if (this.#msr & MSR_ANY_DELTA) {
          this.#msr &= 0xf0;
          this.#updateIrq();
        }
        return ret;
      }
      default: // UART_SCR
        return this.#scr;
    }
  }

  // ---- snapshots ----

  saveState(): Uart16550State {
    return {
      version: 1,
      divider: this.#divider,
      rbr: this.#rbr,
      ier: this.#ier,
      iir: this.#iir,
      lcr: this.#lcr,
      mcr: this.#mcr,
      lsr: this.#lsr,
      msr: this.#msr,
      scr: this.#scr,
      fcr: this.#fcr,
      thrIpending: this.#thrIpending,
      timeoutIpending: this.#timeoutIpending,
      recvFifo: this.#recvFifo.toArray(),
      xmitFifo: this.#xmitFifo.toArray(),
      fifoTimeoutNs: this.#fifoTimer.armed ? this.#fifoTimer.deadline : -1,
    };
  }

  loadState(state: DeviceState): void {
    if (state === null || typeof state !== "object") {
      throw new StateError("Invalid serial state: not an object");
    }
    if (state.version !== 1) {
      throw new StateError(`Unsupported serial state version "${String(state.version)}"`);
    }
    const s = state as Uart16550State;
    const u8 = (name: string) => checkInt(state[name], name, 0, 0xff);
    const divider = checkInt(s.divider, "divider", 0, 0xffff);
    const regs = [
      u8("rbr"),
      u8("ier"),
      u8("iir"),
      u8("lcr"),
      u8("mcr"),
      u8("lsr"),
      u8("msr"),
      u8("scr"),
      u8("fcr"),
    ];
    const recv = checkBytes(s.recvFifo, "recvFifo", UART_FIFO_LENGTH);
    const xmit = checkBytes(s.xmitFifo, "xmitFifo", UART_FIFO_LENGTH);
    if (typeof s.thrIpending !== "boolean") throw new StateError("Invalid serial state: thrIpending");
    if (typeof s.timeoutIpending !== "boolean") throw new StateError("Invalid serial state: timeoutIpending");
    const deadline = s.fifoTimeoutNs;
    if (typeof deadline !== "number" || !(deadline === -1 || (Number.isFinite(deadline) && deadline >= 0))) {
      throw new StateError("Invalid serial state: fifoTimeoutNs");
    }
    [this.#rbr, this.#ier, this.#iir, this.#lcr, this.#mcr, this.#lsr, this.#msr, this.#scr] = regs;
    this.#ier &= 0x0f;
    this.#mcr &= 0x1f;
    this.#divider = divider;
    this.#recvFifo.reset();
    for (const b of recv) this.#recvFifo.push(b);
    this.#xmitFifo.reset();
    for (const b of xmit) this.#xmitFifo.push(b);
    this.#thrIpending = s.thrIpending;
    this.#timeoutIpending = s.timeoutIpending;
    this.#writeFcr(regs[8] & 0xc9);
    this.#updateParameters();
    if (deadline >= 0) this.#fifoTimer.arm(deadline);
    else this.#fifoTimer.cancel();
    // Transmission is instantaneous: a saved non-empty transmitter completes now.
    this.#lsr |= LSR_TEMT;
    if (this.#xmitFifo.num) this.#lsr &= ~LSR_TEMT;
    this.#updateIrq();
    if (!(this.#lsr & LSR_TEMT)) this.#xmit();
    this.#setIrq(this.#irqLevel);
  }
}

function checkInt(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new StateError(`Invalid serial state: "${name}" must be an integer in ${min}..${max}`);
  }
  return v;
}

function checkBytes(v: unknown, name: string, maxLen: number): number[] {
  if (!Array.isArray(v) || v.length > maxLen) {
    throw new StateError(`Invalid serial state: "${name}" must be an array of at most ${maxLen} bytes`);
  }
  return v.map((b, i) => checkInt(b, `${name}[${i}]`, 0, 0xff));
}
