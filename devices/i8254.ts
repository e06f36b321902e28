/**
 * Intel 8254 programmable interval timer ("isa-pit") and the PC speaker/NMI-status port 0x61 ("pcspk"),
 * following QEMU 7.2's hw/timer/i8254.c, i8254_common.c and hw/audio/pcspk.c, plus the 8254 datasheet
 * where QEMU leaves gaps (BCD counting, modes 6/7 as aliases of 2/3). The counter is derived from the
 * virtual clock at 1.193182 MHz; channel 0's output is an IrqLine driven by a Timer at each transition.
 * @module
 */
import type { Clock, Device, DeviceState, GuestLog, IrqLine, RegionOps, Timer } from "../core/types.ts";
import { StateError } from "../core/types.ts";

/** Input clock of the PC's 8254 in Hz. */
export const PIT_FREQ = 1193182;
const NS_PER_SEC = 1_000_000_000;

// Port offsets.
export const PIT_CHANNEL0 = 0;
export const PIT_CHANNEL1 = 1;
export const PIT_CHANNEL2 = 2;
export const PIT_MODE_COMMAND = 3;

// Control word fields (datasheet figure 8).
export const PIT_SC_READBACK = 3;
export const PIT_RW_LATCH = 0;
export const PIT_RW_LSB = 1;
export const PIT_RW_MSB = 2;
export const PIT_RW_WORD = 3;
/** Read-back command: 0 in this bit latches the count. */
export const PIT_RB_NOT_COUNT = 0x20;
/** Read-back command: 0 in this bit latches the status. */
export const PIT_RB_NOT_STATUS = 0x10;

// Port 0x61 bits (PC/AT system control port B).
export const SPK_GATE2 = 0x01;
export const SPK_DATA = 0x02;
export const SPK_REFRESH = 0x10;
export const SPK_OUT2 = 0x20;

// Read/write byte-sequence states (QEMU's RW_STATE_*).
const RW_LSB = 1;
const RW_MSB = 2;
const RW_WORD0 = 3;
const RW_WORD1 = 4;

/** Saved state of one channel. Times are virtual ns; `count` is the loaded count (1..0x10000, binary). */
export interface PitChannelState {
  count: number;
  latchedCount: number;
  countLatched: number;
  statusLatched: number;
  status: number;
  readState: number;
  writeState: number;
  writeLatch: number;
  rwMode: number;
  mode: number;
  bcd: number;
  gate: number;
  countLoadTime: number;
  nextTransitionTime: number;
}

/** Saved state of the PIT and speaker port (version 1). */
export interface I8254State extends DeviceState {
  version: 1;
  channels: PitChannelState[];
  speakerData: number;
  refreshToggle: number;
}

/** What `info pit`-style consumers (and pcspk) see of a channel. */
export interface PitChannelInfo {
  gate: number;
  mode: number;
  initialCount: number;
  out: number;
}

/** muldiv64(delta, PIT_FREQ, 1e9) without losing precision above 2^53. */
function nsToTicks(deltaNs: number): number {
  if (deltaNs <= 0) return 0;
  const q = Math.floor(deltaNs / NS_PER_SEC);
  const r = deltaNs - q * NS_PER_SEC;
  return q * PIT_FREQ + Math.floor((r * PIT_FREQ) / NS_PER_SEC);
}

/** muldiv64(ticks, 1e9, PIT_FREQ) rounded up. */
function ticksToNsCeil(ticks: number): number {
  const q = Math.floor(ticks / PIT_FREQ);
  const r = ticks - q * PIT_FREQ;
  return q * NS_PER_SEC + Math.ceil((r * NS_PER_SEC) / PIT_FREQ);
}

function toBcd(v: number): number {
  return ((Math.floor(v / 1000) % 10) << 12) | ((Math.floor(v / 100) % 10) << 8) |
    ((Math.floor(v / 10) % 10) << 4) | (v % 10);
}

function fromBcd(v: number): number {
  return ((v >> 12) & 0xf) * 1000 + ((v >> 8) & 0xf) * 100 + ((v >> 4) & 0xf) * 10 + (v & 0xf);
}

class PitChannel implements PitChannelState {
  count = 0x10000;
  latchedCount = 0;
  countLatched = 0;
  statusLatched = 0;
  status = 0;
  readState = 0;
  writeState = 0;
  writeLatch = 0;
  rwMode = 0;
  mode = 0;
  bcd = 0;
  gate = 0;
  countLoadTime = 0;
  nextTransitionTime = -1;

  /** Counter wrap modulus: 0x10000 binary, 10000 in BCD. */
  get #modulus(): number {
    return this.bcd ? 10000 : 0x10000;
  }

  getCount(now: number): number {
    const d = nsToTicks(now - this.countLoadTime);
    let counter: number;
    switch (this.mode) {
      case 0:
      case 1:
      case 4:
      case 5:
        counter = (((this.count - d) % this.#modulus) + this.#modulus) % this.#modulus;
        break;
      case 3:
        // QEMU: "may be incorrect for odd counts".
        counter = this.count - ((2 * d) % this.count);
        break;
      default:
        counter = this.count - (d % this.count);
        break;
    }
    return this.bcd ? toBcd(counter % 10000) : counter & 0xffff;
  }

  getOut(now: number): number {
    const d = nsToTicks(now - this.countLoadTime);
    switch (this.mode) {
      case 1:
        return d < this.count ? 1 : 0;
      case 2:
        return d % this.count === 0 && d !== 0 ? 1 : 0;
      case 3:
        return d % this.count < ((this.count + 1) >> 1) ? 1 : 0;
      case 4:
      case 5:
        return d === this.count ? 1 : 0;
      default: // mode 0
        return d >= this.count ? 1 : 0;
    }
  }

  /** Virtual time of the next output transition after `now`, or -1. */
  nextTransition(now: number): number {
    const d = nsToTicks(now - this.countLoadTime);
    let next: number;
    switch (this.mode) {
      case 2: {
        const base = d - (d % this.count);
        // OUT is high for the one tick at each multiple of the count (QEMU's model of the mode 2 pulse):
        // fall on the tick after it, rise at the next multiple.
        next = d - base === 0 && d !== 0 ? d + 1 : base + this.count;
        break;
      }
      case 3: {
        const base = d - (d % this.count);
        const half = (this.count + 1) >> 1;
        next = d - base < half ? base + half : base + this.count;
        break;
      }
      case 4:
      case 5:
        if (d < this.count) next = this.count;
        else if (d === this.count) next = this.count + 1;
        else return -1;
        break;
      default: // modes 0, 1
        if (d < this.count) next = this.count;
        else return -1;
        break;
    }
    // Round up so that at the deadline the counter has surely reached the transition tick (QEMU rounds
    // down and then fires a second time 1 ns later; rounding up gives the same edges without the extra
    // wake-up and without a stray early edge after reset).
    let t = this.countLoadTime + ticksToNsCeil(next);
    if (t <= now) t = now + 1; // rounding guard (QEMU does the same)
    return t;
  }

  latchCount(now: number): void {
    if (!this.countLatched) {
      this.latchedCount = this.getCount(now);
      this.countLatched = this.rwMode;
    }
  }
}

/** Constructor options of I8254. */
export interface I8254Options {
  /** Device id (default "pit"). */
  id?: string;
  /** Channel 0 output (ISA IRQ 0). */
  irq: IrqLine;
  clock: Clock;
  log: GuestLog;
}

/**
 * The 8254 PIT. Map `ops` as 4 ports named "pit" (0x40-0x43) and, if the board wants the speaker port,
 * `speakerOps` as 1 port named "pcspk" (0x61).
 *
 * @example
 * ```ts ignore
 * const pit = new I8254({ irq: pic.irqLine(0), clock, log });
 * io.map("pit", 0x40, 4, pit.ops);
 * ```
 */
export class I8254 implements Device {
  /** QEMU type name. */
  static readonly typeName = "isa-pit";
  readonly typeName = I8254.typeName;
  readonly id: string;
  /** Ports 0x40-0x43: channel 0..2 data and the mode/command register. */
  readonly ops: RegionOps;
  /** Port 0x61: gate 2, speaker data, refresh toggle, OUT2 (QEMU's pcspk). */
  readonly speakerOps: RegionOps;

  readonly #irq: IrqLine;
  readonly #clock: Clock;
  readonly #log: GuestLog;
  readonly #channels: PitChannel[] = [new PitChannel(), new PitChannel(), new PitChannel()];
  readonly #timer: Timer;
  #irqLevel = false;
  #speakerData = 0;
  #refreshToggle = 0;

  constructor(opts: I8254Options) {
    this.id = opts.id ?? "pit";
    this.#irq = opts.irq;
    this.#clock = opts.clock;
    this.#log = opts.log;
    this.#timer = this.#clock.timer(() => this.#irqTimer());
    this.ops = {
      read: (offset: number, _size: 1 | 2 | 4): number => this.#read(offset),
      write: (offset: number, _size: 1 | 2 | 4, value: number): void => this.#write(offset, value & 0xff),
      impl: { min: 1, max: 1 },
    };
    this.speakerOps = {
      read: (_offset: number, _size: 1 | 2 | 4): number => this.#speakerRead(),
      write: (_offset: number, _size: 1 | 2 | 4, value: number): void => this.#speakerWrite(value & 0xff),
      impl: { min: 1, max: 1 },
    };
    this.reset();
  }

  /** Level of channel 0's output line. */
  get irqLevel(): boolean {
    return this.#irqLevel;
  }

  /** Set a channel's GATE input (channel 2's is port 0x61 bit 0; 0 and 1 are tied high on the PC). */
  setGate(channel: number, level: boolean): void {
    const s = this.#channels[channel & 3];
    if (!s) return;
    const val = level ? 1 : 0;
    // Modes 1, 2, 3, 5 restart on a rising gate edge; gating does not pause counting here (as QEMU).
    if (s.mode !== 0 && s.mode !== 4 && s.gate < val) {
      s.countLoadTime = this.#clock.now();
      if (s === this.#channels[0]) this.#updateIrq(s.countLoadTime);
    }
    s.gate = val;
  }

  /** Gate, mode, initial count and output of a channel now. */
  channelInfo(channel: number): PitChannelInfo {
    const s = this.#channels[channel];
    if (!s) throw new RangeError(`i8254: channel ${channel} out of range 0..2`);
    return { gate: s.gate, mode: s.mode, initialCount: s.count, out: s.getOut(this.#clock.now()) };
  }

  reset(): void {
    const now = this.#clock.now();
    this.#channels.forEach((s, i) => {
      s.mode = 3;
      s.gate = i !== 2 ? 1 : 0;
      s.countLoadTime = now;
      s.count = 0x10000;
      s.bcd = 0;
      s.rwMode = 0;
      s.readState = 0;
      s.writeState = 0;
      s.countLatched = 0;
      s.statusLatched = 0;
    });
    this.#speakerData = 0;
    this.#refreshToggle = 0;
    // Like QEMU's pit_reset: the line starts low and the timer is armed for channel 0's next transition
    // (its first rising edge comes one full period after reset).
    const s0 = this.#channels[0];
    s0.nextTransitionTime = s0.nextTransition(now);
    this.#irqLevel = false;
    this.#irq.set(false);
    this.#timer.arm(s0.nextTransitionTime);
  }

  #irqTimer(): void {
    this.#updateIrq(this.#channels[0].nextTransitionTime);
  }

  /** Drive IRQ0 from channel 0's output at `time` and arm the timer for the next transition. */
  #updateIrq(time: number): void {
    const s = this.#channels[0];
    const next = s.nextTransition(time);
    const level = s.getOut(time) !== 0;
    this.#irqLevel = level;
    this.#irq.set(level);
    s.nextTransitionTime = next;
    if (next !== -1) this.#timer.arm(next);
    else this.#timer.cancel();
  }

  #loadCount(s: PitChannel, val: number): void {
    let v = s.bcd ? fromBcd(val) : val;
    if (v === 0) v = s.bcd ? 10000 : 0x10000;
    s.countLoadTime = this.#clock.now();
    s.count = v;
    if (s === this.#channels[0]) this.#updateIrq(s.countLoadTime);
  }

  #write(offset: number, val: number): void {
    const now = this.#clock.now();
    const addr = offset & 3;
    if (addr === PIT_MODE_COMMAND) {
      const channel = val >> 6;
      if (channel === PIT_SC_READBACK) {
        for (let c = 0; c < 3; c++) {
          if (!(val & (2 << c))) continue;
          const s = this.#channels[c];
          if (!(val & PIT_RB_NOT_COUNT)) s.latchCount(now);
          if (!(val & PIT_RB_NOT_STATUS) && !s.statusLatched) {
            // Status byte: OUT, null count (always 0 here, as QEMU), RW, mode, BCD (datasheet figure 11).
            s.status = (s.getOut(now) << 7) | (s.rwMode << 4) | (s.mode << 1) | s.bcd;
            s.statusLatched = 1;
          }
        }
        return;
      }
      const s = this.#channels[channel];
      const access = (val >> 4) & 3;
      if (access === PIT_RW_LATCH) {
        s.latchCount(now);
        return;
      }
      s.rwMode = access;
      s.readState = access;
      s.writeState = access;
      let mode = (val >> 1) & 7;
      if (mode >= 6) mode -= 4; // modes 6 and 7 are 2 and 3 (datasheet: "X10", "X11")
      s.mode = mode;
      s.bcd = val & 1;
      return;
    }
    const s = this.#channels[addr];
    switch (s.writeState) {
      case RW_MSB:
        this.#loadCount(s, val << 8);
        break;
      case RW_WORD0:
        s.writeLatch = val;
        s.writeState = RW_WORD1;
        break;
      case RW_WORD1:
        this.#loadCount(s, s.writeLatch | (val << 8));
        s.writeState = RW_WORD0;
        break;
      case RW_LSB:
        this.#loadCount(s, val);
        break;
      default: // never programmed: QEMU treats it as LSB
        this.#log.guestError(this.id, `write to channel ${addr} before its control word`);
        this.#loadCount(s, val);
        break;
    }
  }

  #read(offset: number): number {
    const addr = offset & 3;
    if (addr === PIT_MODE_COMMAND) return 0; // write-only; QEMU returns 0
    const s = this.#channels[addr];
    const now = this.#clock.now();
    if (s.statusLatched) {
      s.statusLatched = 0;
      return s.status;
    }
    if (s.countLatched) {
      switch (s.countLatched) {
        case RW_MSB:
          s.countLatched = 0;
          return (s.latchedCount >> 8) & 0xff;
        case RW_WORD0:
          s.countLatched = RW_MSB;
          return s.latchedCount & 0xff;
        default: // RW_LSB
          s.countLatched = 0;
          return s.latchedCount & 0xff;
      }
    }
    switch (s.readState) {
      case RW_MSB:
        return (s.getCount(now) >> 8) & 0xff;
      case RW_WORD0:
        s.readState = RW_WORD1;
        return s.getCount(now) & 0xff;
      case RW_WORD1:
        s.readState = RW_WORD0;
        return (s.getCount(now) >> 8) & 0xff;
      default: // RW_LSB
        return s.getCount(now) & 0xff;
    }
  }

  #speakerRead(): number {
    const s = this.#channels[2];
    // Bit 4 toggles on every read: a stand-in for the DRAM refresh clock that BIOS delay loops poll.
    this.#refreshToggle ^= SPK_REFRESH;
    return s.gate | (this.#speakerData << 1) | this.#refreshToggle | (s.getOut(this.#clock.now()) << 5);
  }

  #speakerWrite(val: number): void {
    this.#speakerData = (val >> 1) & 1;
    this.setGate(2, (val & SPK_GATE2) !== 0);
  }

  saveState(): I8254State {
    return {
      version: 1,
      channels: this.#channels.map((s) => ({
        count: s.count,
        latchedCount: s.latchedCount,
        countLatched: s.countLatched,
        statusLatched: s.statusLatched,
        status: s.status,
        readState: s.readState,
        writeState: s.writeState,
        writeLatch: s.writeLatch,
        rwMode: s.rwMode,
        mode: s.mode,
        bcd: s.bcd,
        gate: s.gate,
        countLoadTime: s.countLoadTime,
        nextTransitionTime: s.nextTransitionTime,
      })),
      speakerData: this.#speakerData,
      refreshToggle: this.#refreshToggle,
    };
  }

  loadState(state: DeviceState): void {
    if (state === null || typeof state !== "object") {
      throw new StateError("Invalid i8254 state: not an object");
    }
    if (state.version !== 1) {
      throw new StateError(`Unsupported i8254 state version "${String(state.version)}"`);
    }
    const chans = state.channels;
    if (!Array.isArray(chans) || chans.length !== 3) {
      throw new StateError('Invalid i8254 state: "channels" must hold 3 channels');
    }
    const limits: Record<keyof PitChannelState, [number, number]> = {
      count: [1, 0x10000],
      latchedCount: [0, 0xffff],
      countLatched: [0, 4],
      statusLatched: [0, 1],
      status: [0, 0xff],
      readState: [0, 4],
      writeState: [0, 4],
      writeLatch: [0, 0xff],
      rwMode: [0, 3],
      mode: [0, 5],
      bcd: [0, 1],
      gate: [0, 1],
      countLoadTime: [0, Number.MAX_SAFE_INTEGER],
      nextTransitionTime: [-1, Number.MAX_SAFE_INTEGER],
    };
    const parsed = chans.map((c: unknown, i: number) => {
      if (c === null || typeof c !== "object") throw new StateError(`Invalid i8254 state: channel ${i}`);
      const o = c as Record<string, unknown>;
      const out = {} as PitChannelState;
      for (const [k, [min, max]] of Object.entries(limits)) {
        const v = o[k];
        if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
          throw new StateError(
            `Invalid i8254 state: "channels[${i}].${k}" must be an integer in ${min}..${max}`,
          );
        }
        (out as unknown as Record<string, number>)[k] = v;
      }
      return out;
    });
    const bit = (v: unknown, name: string, mask: number): number => {
      if (typeof v !== "number" || !Number.isInteger(v) || (v & ~mask) !== 0) {
        throw new StateError(`Invalid i8254 state: "${name}"`);
      }
      return v;
    };
    const speakerData = bit(state.speakerData, "speakerData", 1);
    const refreshToggle = bit(state.refreshToggle, "refreshToggle", SPK_REFRESH);
    parsed.forEach((p, i) => Object.assign(this.#channels[i], p));
    this.#speakerData = speakerData;
    this.#refreshToggle = refreshToggle;
    const s0 = this.#channels[0];
    const now = this.#clock.now();
    this.#irqLevel = s0.getOut(now) !== 0;
    this.#irq.set(this.#irqLevel);
    if (s0.nextTransitionTime !== -1) this.#timer.arm(s0.nextTransitionTime);
    else this.#timer.cancel();
  }
}
