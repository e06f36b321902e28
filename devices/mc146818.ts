/**
 * Motorola MC146818 real-time clock with 128 bytes of CMOS ("mc146818rtc"), following QEMU 7.2's
 * hw/rtc/mc146818rtc.c (lost_tick_policy=discard, as microvm uses) and the MC146818A datasheet:
 * BCD/binary and 12/24 h time, SET bit, divider control, UIP for 244 µs before each update, periodic
 * (PF), alarm (AF, with don't-care values 0xC0-0xFF) and update-ended (UF) interrupts, register C
 * read-to-clear, register D VRT, century at 0x32. Time = `baseTimeMs` (host time at start or -rtc base)
 * + the virtual clock; guest writes to the time registers move the base, as QEMU does.
 * @module
 */
import type { Clock, Device, DeviceState, GuestLog, IrqLine, RegionOps, Timer } from "../core/types.ts";
import { StateError } from "../core/types.ts";

// CMOS register indices (datasheet figure 3).
export const RTC_SECONDS = 0x00;
export const RTC_SECONDS_ALARM = 0x01;
export const RTC_MINUTES = 0x02;
export const RTC_MINUTES_ALARM = 0x03;
export const RTC_HOURS = 0x04;
export const RTC_HOURS_ALARM = 0x05;
export const RTC_DAY_OF_WEEK = 0x06;
export const RTC_DAY_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
export const RTC_REG_D = 0x0d;
/** Century byte (ACPI FADT default). */
export const RTC_CENTURY = 0x32;
/** The IBM PS/2 century byte, aliased to RTC_CENTURY (as QEMU does). */
export const RTC_IBM_PS2_CENTURY_BYTE = 0x37;

export const REG_A_UIP = 0x80;
export const REG_B_SET = 0x80;
export const REG_B_PIE = 0x40;
export const REG_B_AIE = 0x20;
export const REG_B_UIE = 0x10;
export const REG_B_SQWE = 0x08;
export const REG_B_DM = 0x04;
export const REG_B_24H = 0x02;
export const REG_B_DSE = 0x01;
export const REG_C_UF = 0x10;
export const REG_C_IRQF = 0x80;
export const REG_C_PF = 0x40;
export const REG_C_AF = 0x20;
export const REG_C_MASK = 0x70;
export const REG_D_VRT = 0x80;

const NS_PER_SEC = 1_000_000_000;
const RTC_CLOCK_RATE = 32768;
/** UIP is set this long before each update (8 cycles of 32.768 kHz = 244 µs). */
export const UIP_HOLD_LENGTH_NS = Math.floor((8 * NS_PER_SEC) / RTC_CLOCK_RATE);
const SEC_PER_MIN = 60;
const MIN_PER_HOUR = 60;
const HOUR_PER_DAY = 24;
const SEC_PER_DAY = 86400;

/** Periodic interrupt period in 32 kHz cycles for a rate-select code (datasheet table 5). */
export function periodicPeriodToClock(periodCode: number): number {
  if (!periodCode) return 0;
  if (periodCode <= 2) periodCode += 7; // codes 1 and 2 behave as 8 and 9 on the 32.768 kHz time base
  return 1 << (periodCode - 1);
}

/** muldiv64(clocks, 1e9, 32768), exact for large values. */
export function periodicClockToNs(clocks: number): number {
  const q = Math.floor(clocks / RTC_CLOCK_RATE);
  const r = clocks - q * RTC_CLOCK_RATE;
  return q * NS_PER_SEC + Math.floor((r * NS_PER_SEC) / RTC_CLOCK_RATE);
}

function nsToRtcClock(ns: number): number {
  const q = Math.floor(ns / NS_PER_SEC);
  const r = ns - q * NS_PER_SEC;
  return q * RTC_CLOCK_RATE + Math.floor((r * RTC_CLOCK_RATE) / NS_PER_SEC);
}

/** Broken-down UTC time (struct tm, months 0-based, year full). */
interface Tm {
  sec: number;
  min: number;
  hour: number;
  wday: number;
  mday: number;
  mon: number;
  year: number;
}

function gmtime(sec: number): Tm {
  const d = new Date(sec * 1000);
  return {
    sec: d.getUTCSeconds(),
    min: d.getUTCMinutes(),
    hour: d.getUTCHours(),
    wday: d.getUTCDay(),
    mday: d.getUTCDate(),
    mon: d.getUTCMonth(),
    year: d.getUTCFullYear(),
  };
}

/** mktimegm: seconds since the epoch; out-of-range fields carry over like mktime. */
function mktimegm(tm: Tm): number {
  const d = new Date(0);
  d.setUTCFullYear(tm.year, tm.mon, tm.mday);
  d.setUTCHours(tm.hour, tm.min, tm.sec, 0);
  return Math.floor(d.getTime() / 1000);
}

/** Saved state of the RTC (version 1). Times are virtual ns except baseRtc (epoch seconds). */
export interface Mc146818State extends DeviceState {
  version: 1;
  cmos: number[];
  cmosIndex: number;
  nmiMasked: boolean;
  baseRtc: number;
  lastUpdate: number;
  offset: number;
  nextPeriodicTime: number;
  periodicArmed: boolean;
  /** Update timer deadline, or -1 when not armed. */
  updateTimerNs: number;
  nextAlarmTime: number;
}

/** Guest RAM layout for microvm's CMOS memory-size bytes. */
export interface RtcMemorySizes {
  /** Bytes of RAM below 4 GiB. */
  belowGb4: number;
  /** Bytes of RAM above 4 GiB. */
  aboveGb4: number;
}

/** Constructor options of Mc146818Rtc. */
export interface Mc146818RtcOptions {
  /** Device id (default "rtc"). */
  id?: string;
  /** Interrupt output (ISA IRQ 8). */
  irq: IrqLine;
  clock: Clock;
  log: GuestLog;
  /** Wall time in ms since the epoch at virtual time 0 (host time, or -rtc base=...). */
  baseTimeMs: number;
  /** QEMU's base_year property; microvm passes 2000, which QEMU turns into 0 (century byte in use). */
  baseYear?: number;
}

/**
 * The MC146818 RTC/CMOS. Map `ops` as a 2-port region named "rtc" at 0x70 with a 1-port subregion
 * "rtc-index" at offset 0 using `indexOps` (QEMU uses the same handlers for both).
 *
 * @example
 * ```ts ignore
 * const rtc = new Mc146818Rtc({ irq: gsi(8), clock, log, baseTimeMs: Date.now() });
 * rtc.setMemorySize({ belowGb4: 512 * 2 ** 20, aboveGb4: 0 });
 * ```
 */
export class Mc146818Rtc implements Device {
  /** QEMU type name. */
  static readonly typeName = "mc146818rtc";
  readonly typeName = Mc146818Rtc.typeName;
  readonly id: string;
  /** Ports 0x70 (index, bit 7 = NMI mask) and 0x71 (data). */
  readonly ops: RegionOps;
  /** The same handlers, for QEMU's "rtc-index" subregion (offset 0 = index port). */
  readonly indexOps: RegionOps;

  readonly #irq: IrqLine;
  readonly #clock: Clock;
  readonly #log: GuestLog;
  readonly #baseYear: number;
  readonly #cmos = new Uint8Array(128);
  #cmosIndex = 0;
  #nmiMasked = false;
  #baseRtc = 0;
  #lastUpdate = 0;
  #offset = 0;
  #period = 0;
  #nextPeriodicTime = 0;
  #nextAlarmTime = 0;
  #irqLevel = false;
  readonly #periodicTimer: Timer;
  readonly #updateTimer: Timer;

  constructor(opts: Mc146818RtcOptions) {
    this.id = opts.id ?? "rtc";
    this.#irq = opts.irq;
    this.#clock = opts.clock;
    this.#log = opts.log;
    const by = opts.baseYear ?? 0;
    this.#baseYear = by === 2000 ? 0 : by;
    if (!Number.isFinite(opts.baseTimeMs)) throw new RangeError("mc146818: baseTimeMs must be finite");
    this.#periodicTimer = this.#clock.timer(() => this.#periodicTimerFired());
    this.#updateTimer = this.#clock.timer(() => this.#updateTimerFired());
    this.ops = {
      read: (offset: number, _size: 1 | 2 | 4): number => this.#ioRead(offset),
      write: (offset: number, _size: 1 | 2 | 4, value: number): void => this.#ioWrite(offset, value & 0xff),
      impl: { min: 1, max: 1 },
    };
    this.indexOps = this.ops;
    // Power-on (QEMU realize): divider on at 32.768 kHz, 1024 Hz rate, 24 h, battery good.
    this.#cmos[RTC_REG_A] = 0x26;
    this.#cmos[RTC_REG_B] = 0x02;
    this.#cmos[RTC_REG_C] = 0x00;
    this.#cmos[RTC_REG_D] = REG_D_VRT;
    this.#setDateFromBase(Math.floor(opts.baseTimeMs / 1000));
    this.#checkUpdateTimer();
  }

  /** Level of the IRQ output. */
  get irqLevel(): boolean {
    return this.#irqLevel;
  }

  /** NMI mask bit last written to the index port (bit 7); the board may gate NMIs with it. */
  get nmiMasked(): boolean {
    return this.#nmiMasked;
  }

  /** Raw CMOS byte (board use: boot order, memory size...). */
  getCmos(addr: number): number {
    return this.#cmos[addr & 0x7f];
  }

  /** Set a raw CMOS byte (QEMU mc146818rtc_set_cmos_data). */
  setCmos(addr: number, value: number): void {
    if (addr >= 0 && addr <= 127) this.#cmos[addr] = value & 0xff;
  }

  /** Store the RAM sizes in CMOS exactly as QEMU's microvm_set_rtc (0x15-0x18, 0x30-0x31, 0x34-0x35, 0x5b-0x5d). */
  setMemorySize(sizes: RtcMemorySizes): void {
    const KiB = 1024;
    const MiB = 1024 * KiB;
    const below = sizes.belowGb4;
    let val = Math.min(Math.floor(below / KiB), 640);
    this.setCmos(0x15, val);
    this.setCmos(0x16, val >> 8);
    // extended memory (next 64 MiB)
    val = below > MiB ? Math.floor((below - MiB) / KiB) : 0;
    if (val > 65535) val = 65535;
    this.setCmos(0x17, val);
    this.setCmos(0x18, val >> 8);
    this.setCmos(0x30, val);
    this.setCmos(0x31, val >> 8);
    // memory between 16 MiB and 4 GiB, in 64 KiB units
    val = below > 16 * MiB ? Math.floor((below - 16 * MiB) / (64 * KiB)) : 0;
    if (val > 65535) val = 65535;
    this.setCmos(0x34, val);
    this.setCmos(0x35, val >> 8);
    // memory above 4 GiB, in 64 KiB units (QEMU truncates to int)
    val = Math.floor(sizes.aboveGb4 / 65536) | 0;
    this.setCmos(0x5b, val);
    this.setCmos(0x5c, val >> 8);
    this.setCmos(0x5d, val >> 16);
  }

  /** The guest's current RTC time in ms since the epoch (QEMU's "rtc-time" / `date` property). */
  guestTimeMs(): number {
    this.#updateTime();
    const tm = this.#getTime();
    const sec = mktimegm(tm);
    return Number.isFinite(sec) ? sec * 1000 : this.#baseRtc * 1000;
  }

  reset(): void {
    this.#cmos[RTC_REG_B] &= ~(REG_B_PIE | REG_B_AIE | REG_B_SQWE);
    this.#cmos[RTC_REG_C] &= ~(REG_C_UF | REG_C_IRQF | REG_C_PF | REG_C_AF);
    this.#periodicTimerUpdate(this.#clock.now(), 0, false);
    this.#checkUpdateTimer();
    this.#setIrq(false);
  }

  // ---- time base ----

  #running(): boolean {
    return !(this.#cmos[RTC_REG_B] & REG_B_SET) && (this.#cmos[RTC_REG_A] & 0x70) <= 0x20;
  }

  /** Nanoseconds elapsed since baseRtc (seconds) in guest time; may exceed 1e9. */
  #guestElapsedNs(): number {
    return this.#clock.now() - this.#lastUpdate + this.#offset;
  }

  #guestSubSecondNs(): number {
    const e = this.#guestElapsedNs();
    return ((e % NS_PER_SEC) + NS_PER_SEC) % NS_PER_SEC;
  }

  #guestSeconds(): number {
    return this.#baseRtc + Math.floor(this.#guestElapsedNs() / NS_PER_SEC);
  }

  #setDateFromBase(sec: number): void {
    this.#baseRtc = sec;
    this.#lastUpdate = this.#clock.now();
    this.#offset = 0;
    this.#setCmosTime(gmtime(sec));
  }

  #toBcd(a: number): number {
    if (this.#cmos[RTC_REG_B] & REG_B_DM) return a & 0xff;
    return ((Math.floor(a / 10) << 4) | (a % 10)) & 0xff;
  }

  /** Register value → number; -1 for alarm don't-care values 0xC0-0xFF. */
  #fromBcd(a: number): number {
    if ((a & 0xc0) === 0xc0) return -1;
    if (this.#cmos[RTC_REG_B] & REG_B_DM) return a;
    return (a >> 4) * 10 + (a & 0x0f);
  }

  #getTime(): Tm {
    const c = this.#cmos;
    let hour = this.#fromBcd(c[RTC_HOURS] & 0x7f);
    if (!(c[RTC_REG_B] & REG_B_24H)) {
      hour %= 12;
      if (c[RTC_HOURS] & 0x80) hour += 12; // PM bit
    }
    return {
      sec: this.#fromBcd(c[RTC_SECONDS]),
      min: this.#fromBcd(c[RTC_MINUTES]),
      hour,
      wday: this.#fromBcd(c[RTC_DAY_OF_WEEK]) - 1,
      mday: this.#fromBcd(c[RTC_DAY_OF_MONTH]),
      mon: this.#fromBcd(c[RTC_MONTH]) - 1,
      year: this.#fromBcd(c[RTC_YEAR]) + this.#baseYear + this.#fromBcd(c[RTC_CENTURY]) * 100,
    };
  }

  /** The guest wrote the time: move the base (QEMU rtc_set_time). */
  #setTime(): void {
    const sec = mktimegm(this.#getTime());
    if (!Number.isFinite(sec)) {
      this.#log.guestError(this.id, "invalid date written to RTC registers");
      return;
    }
    this.#baseRtc = sec;
    this.#lastUpdate = this.#clock.now();
  }

  #setCmosTime(tm: Tm): void {
    const c = this.#cmos;
    c[RTC_SECONDS] = this.#toBcd(tm.sec);
    c[RTC_MINUTES] = this.#toBcd(tm.min);
    if (c[RTC_REG_B] & REG_B_24H) {
      c[RTC_HOURS] = this.#toBcd(tm.hour);
    } else {
      const h = tm.hour % 12 ? tm.hour % 12 : 12;
      c[RTC_HOURS] = this.#toBcd(h) | (tm.hour >= 12 ? 0x80 : 0);
    }
    c[RTC_DAY_OF_WEEK] = this.#toBcd(tm.wday + 1);
    c[RTC_DAY_OF_MONTH] = this.#toBcd(tm.mday);
    c[RTC_MONTH] = this.#toBcd(tm.mon + 1);
    const year = tm.year - this.#baseYear;
    c[RTC_YEAR] = this.#toBcd(((year % 100) + 100) % 100);
    c[RTC_CENTURY] = this.#toBcd(Math.floor(year / 100) & 0x7f);
  }

  /** Bring the time registers up to date unless SET is on (QEMU rtc_update_time). */
  #updateTime(): void {
    if (this.#cmos[RTC_REG_B] & REG_B_SET) return;
    this.#setCmosTime(gmtime(this.#guestSeconds()));
  }

  #updateInProgress(): boolean {
    if (!this.#running()) return false;
    if (this.#updateTimer.armed) {
      // Latch UIP until the update timer fires.
      if (this.#clock.now() >= this.#updateTimer.deadline - UIP_HOLD_LENGTH_NS) {
        this.#cmos[RTC_REG_A] |= REG_A_UIP;
        return true;
      }
    }
    return this.#guestSubSecondNs() >= NS_PER_SEC - UIP_HOLD_LENGTH_NS;
  }

  // ---- interrupts and timers ----

  #setIrq(level: boolean): void {
    if (level === this.#irqLevel) return;
    this.#irqLevel = level;
    this.#irq.set(level);
  }

  #periodicClockTicks(): number {
    // QEMU runs the periodic timer only while PIE is set, so PF is only seen with PIE on (a QEMU
    // simplification of the datasheet, where PF sets regardless of PIE).
    if (!(this.#cmos[RTC_REG_B] & REG_B_PIE)) return 0;
    return periodicPeriodToClock(this.#cmos[RTC_REG_A] & 0x0f);
  }

  #periodicTimerUpdate(currentTime: number, oldPeriod: number, periodChange: boolean): void {
    const period = this.#periodicClockTicks();
    this.#period = period;
    if (!period) {
      this.#periodicTimer.cancel();
      return;
    }
    const curClock = nsToRtcClock(currentTime);
    let lostClock = 0;
    if (oldPeriod && periodChange) {
      // Count the time since the last interrupt so a period change does not lose progress.
      const lastPeriodicClock = nsToRtcClock(this.#nextPeriodicTime) - oldPeriod;
      lostClock = Math.max(0, curClock - lastPeriodicClock);
    }
    lostClock = Math.min(lostClock, period); // lost_tick_policy=discard
    const nextIrqClock = curClock + period - lostClock;
    this.#nextPeriodicTime = periodicClockToNs(nextIrqClock) + 1;
    this.#periodicTimer.arm(this.#nextPeriodicTime);
  }

  #periodicTimerFired(): void {
    this.#periodicTimerUpdate(this.#nextPeriodicTime, this.#period, false);
    this.#cmos[RTC_REG_C] |= REG_C_PF;
    if (this.#cmos[RTC_REG_B] & REG_B_PIE) {
      this.#cmos[RTC_REG_C] |= REG_C_IRQF;
      this.#setIrq(true);
    }
  }

  #convertHour(hour: number): number {
    if (!(this.#cmos[RTC_REG_B] & REG_B_24H)) {
      hour %= 12;
      if (this.#cmos[RTC_HOURS] & 0x80) hour += 12;
    }
    return hour;
  }

  /** Seconds until the alarm matches (1..86400), honouring don't-care fields (QEMU get_next_alarm). */
  #nextAlarm(): number {
    this.#updateTime();
    const c = this.#cmos;
    let alarmSec = this.#fromBcd(c[RTC_SECONDS_ALARM]);
    let alarmMin = this.#fromBcd(c[RTC_MINUTES_ALARM]);
    let alarmHour = this.#fromBcd(c[RTC_HOURS_ALARM]);
    alarmHour = alarmHour === -1 ? -1 : this.#convertHour(alarmHour);
    const curSec = this.#fromBcd(c[RTC_SECONDS]);
    const curMin = this.#fromBcd(c[RTC_MINUTES]);
    const curHour = this.#convertHour(this.#fromBcd(c[RTC_HOURS]));

    if (alarmHour === -1) {
      alarmHour = curHour;
      if (alarmMin === -1) {
        alarmMin = curMin;
        if (alarmSec === -1) alarmSec = curSec + 1;
        else if (curSec > alarmSec) alarmMin++;
      } else if (curMin === alarmMin) {
        if (alarmSec === -1) alarmSec = curSec + 1;
        else if (curSec > alarmSec) alarmHour++;
        if (alarmSec === SEC_PER_MIN) {
          alarmSec = 0;
          alarmHour++;
        }
      } else if (curMin > alarmMin) {
        alarmHour++;
      }
    } else if (curHour === alarmHour) {
      if (alarmMin === -1) {
        alarmMin = curMin;
        if (alarmSec === -1) alarmSec = curSec + 1;
        else if (curSec > alarmSec) alarmMin++;
        if (alarmSec === SEC_PER_MIN) {
          alarmSec = 0;
          alarmMin++;
        }
        alarmMin %= MIN_PER_HOUR;
      } else if (curMin === alarmMin) {
        if (alarmSec === -1) alarmSec = curSec + 1;
        alarmSec %= SEC_PER_MIN;
      }
    }
    if (alarmMin === -1) alarmMin = 0;
    if (alarmSec === -1) alarmSec = 0;
    if (alarmSec === SEC_PER_MIN) {
      alarmSec = 0;
      alarmMin++;
    }
    if (alarmMin === MIN_PER_HOUR) {
      alarmMin = 0;
      alarmHour++;
    }
    alarmHour %= HOUR_PER_DAY;
    const hour = alarmHour - curHour;
    const min = hour * MIN_PER_HOUR + alarmMin - curMin;
    const sec = min * SEC_PER_MIN + alarmSec - curSec;
    return sec <= 0 ? sec + SEC_PER_DAY : sec;
  }

  /** (Re)arm the update-ended timer for the next second, or for the alarm when UF is already set. */
  #checkUpdateTimer(): void {
    const c = this.#cmos;
    // Dividers held in reset stop updates and their interrupts (datasheet, DV2-0 = 11x).
    if ((c[RTC_REG_A] & 0x60) === 0x60) {
      this.#updateTimer.cancel();
      return;
    }
    const now = this.#clock.now();
    let nextUpdateTime = now + NS_PER_SEC - this.#guestSubSecondNs();
    const nextAlarmSec = this.#nextAlarm();
    this.#nextAlarmTime = nextUpdateTime + (nextAlarmSec - 1) * NS_PER_SEC;
    if (!(c[RTC_REG_A] & REG_A_UIP) && (c[RTC_REG_C] & REG_C_UF)) {
      // UF already set: only AF can still change; nothing to do if it cannot.
      if ((c[RTC_REG_B] & REG_B_SET) || (c[RTC_REG_C] & REG_C_AF)) {
        this.#updateTimer.cancel();
        return;
      }
      nextUpdateTime = this.#nextAlarmTime;
    }
    if (!this.#updateTimer.armed || this.#updateTimer.deadline !== nextUpdateTime) {
      this.#updateTimer.arm(nextUpdateTime);
    }
  }

  #updateTimerFired(): void {
    const c = this.#cmos;
    if ((c[RTC_REG_A] & 0x60) === 0x60) return; // cannot happen: the timer is cancelled then
    this.#updateTime();
    c[RTC_REG_A] &= ~REG_A_UIP;
    let irqs = REG_C_UF;
    if (this.#clock.now() >= this.#nextAlarmTime) irqs |= REG_C_AF;
    const newIrqs = irqs & ~c[RTC_REG_C];
    c[RTC_REG_C] |= irqs;
    if (newIrqs & c[RTC_REG_B]) {
      c[RTC_REG_C] |= REG_C_IRQF;
      this.#setIrq(true);
    }
    this.#checkUpdateTimer();
  }

  // ---- ports ----

  #ioWrite(offset: number, data: number): void {
    const c = this.#cmos;
    if ((offset & 1) === 0) {
      this.#cmosIndex = data & 0x7f;
      this.#nmiMasked = (data & 0x80) !== 0;
      return;
    }
    switch (this.#cmosIndex) {
      case RTC_SECONDS_ALARM:
      case RTC_MINUTES_ALARM:
      case RTC_HOURS_ALARM:
        c[this.#cmosIndex] = data;
        this.#checkUpdateTimer();
        break;
      case RTC_IBM_PS2_CENTURY_BYTE:
        this.#cmosIndex = RTC_CENTURY;
      // falls through
      case RTC_CENTURY:
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
        c[this.#cmosIndex] = data;
        // While SET is on (or the divider is stopped) the clock does not take the new value yet.
        if (this.#running()) {
          this.#setTime();
          this.#checkUpdateTimer();
        }
        break;
      case RTC_REG_A: {
        const updatePeriodic = ((c[RTC_REG_A] ^ data) & 0x0f) !== 0;
        const oldPeriod = this.#periodicClockTicks();
        if ((data & 0x60) === 0x60) {
          if (this.#running()) this.#updateTime();
          c[RTC_REG_A] &= ~REG_A_UIP;
        } else if ((c[RTC_REG_A] & 0x60) === 0x60 && (data & 0x70) <= 0x20) {
          // Leaving divider reset: the first update comes half a second later (datasheet).
          if (!(c[RTC_REG_B] & REG_B_SET)) {
            this.#offset = 500_000_000;
            this.#setTime();
          }
          c[RTC_REG_A] &= ~REG_A_UIP;
        }
        c[RTC_REG_A] = (data & ~REG_A_UIP) | (c[RTC_REG_A] & REG_A_UIP); // UIP is read-only
        if (updatePeriodic) this.#periodicTimerUpdate(this.#clock.now(), oldPeriod, true);
        this.#checkUpdateTimer();
        break;
      }
      case RTC_REG_B: {
        const updatePeriodic = ((c[RTC_REG_B] ^ data) & REG_B_PIE) !== 0;
        const oldPeriod = this.#periodicClockTicks();
        if (data & REG_B_SET) {
          if (this.#running()) this.#updateTime(); // freeze the registers at the time SET was written
          c[RTC_REG_A] &= ~REG_A_UIP;
          data &= ~REG_B_UIE; // SET clears UIE (datasheet)
        } else if ((c[RTC_REG_B] & REG_B_SET) && (c[RTC_REG_A] & 0x70) <= 0x20) {
          // Leaving SET mode: the written time starts counting, keeping the sub-second phase.
          this.#offset = this.#guestSubSecondNs();
          this.#setTime();
        }
        // A flag already pending when its enable is set raises the interrupt at once.
        if (data & c[RTC_REG_C] & REG_C_MASK) {
          c[RTC_REG_C] |= REG_C_IRQF;
          this.#setIrq(true);
        } else {
          c[RTC_REG_C] &= ~REG_C_IRQF;
          this.#setIrq(false);
        }
        c[RTC_REG_B] = data;
        if (updatePeriodic) this.#periodicTimerUpdate(this.#clock.now(), oldPeriod, true);
        this.#checkUpdateTimer();
        break;
      }
      case RTC_REG_C:
      case RTC_REG_D:
        break; // read-only
      default:
        c[this.#cmosIndex] = data;
        break;
    }
  }

  #ioRead(offset: number): number {
    const c = this.#cmos;
    if ((offset & 1) === 0) return 0xff; // index port is write-only
    switch (this.#cmosIndex) {
      case RTC_IBM_PS2_CENTURY_BYTE:
        this.#cmosIndex = RTC_CENTURY;
      // falls through
      case RTC_CENTURY:
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
        if (this.#running()) this.#updateTime();
        return c[this.#cmosIndex];
      case RTC_REG_A: {
        let ret = c[RTC_REG_A];
        if (this.#updateInProgress()) ret |= REG_A_UIP;
        return ret;
      }
      case RTC_REG_C: {
        const ret = c[RTC_REG_C];
        this.#setIrq(false);
        c[RTC_REG_C] = 0;
        if (ret & (REG_C_UF | REG_C_AF)) this.#checkUpdateTimer();
        return ret;
      }
      default:
        return c[this.#cmosIndex];
    }
  }

  // ---- snapshots ----

  saveState(): Mc146818State {
    this.#updateTime(); // QEMU rtc_pre_save
    return {
      version: 1,
      cmos: Array.from(this.#cmos),
      cmosIndex: this.#cmosIndex,
      nmiMasked: this.#nmiMasked,
      baseRtc: this.#baseRtc,
      lastUpdate: this.#lastUpdate,
      offset: this.#offset,
      nextPeriodicTime: this.#nextPeriodicTime,
      periodicArmed: this.#periodicTimer.armed,
      updateTimerNs: this.#updateTimer.armed ? this.#updateTimer.deadline : -1,
      nextAlarmTime: this.#nextAlarmTime,
    };
  }

  loadState(state: DeviceState): void {
    if (state === null || typeof state !== "object") throw new StateError("Invalid rtc state: not an object");
    if (state.version !== 1) throw new StateError(`Unsupported rtc state version "${String(state.version)}"`);
    const s = state as Mc146818State;
    const cmos = s.cmos;
    if (
      !Array.isArray(cmos) || cmos.length !== 128 ||
      !cmos.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)
    ) {
      throw new StateError('Invalid rtc state: "cmos" must be 128 bytes');
    }
    const int = (v: unknown, name: string, min: number): number => {
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
        throw new StateError(`Invalid rtc state: "${name}" must be an integer >= ${min}`);
      }
      return v;
    };
    const cmosIndex = int(s.cmosIndex, "cmosIndex", 0);
    if (cmosIndex > 0x7f) throw new StateError('Invalid rtc state: "cmosIndex" must be at most 127');
    const baseRtc = int(s.baseRtc, "baseRtc", Number.MIN_SAFE_INTEGER);
    const lastUpdate = int(s.lastUpdate, "lastUpdate", Number.MIN_SAFE_INTEGER);
    const offset = int(s.offset, "offset", Number.MIN_SAFE_INTEGER);
    const nextPeriodicTime = int(s.nextPeriodicTime, "nextPeriodicTime", 0);
    const updateTimerNs = int(s.updateTimerNs, "updateTimerNs", -1);
    const nextAlarmTime = int(s.nextAlarmTime, "nextAlarmTime", Number.MIN_SAFE_INTEGER);
    if (typeof s.nmiMasked !== "boolean" || typeof s.periodicArmed !== "boolean") {
      throw new StateError('Invalid rtc state: "nmiMasked" and "periodicArmed" must be booleans');
    }
    this.#cmos.set(cmos);
    this.#cmosIndex = cmosIndex;
    this.#nmiMasked = s.nmiMasked;
    this.#baseRtc = baseRtc;
    this.#lastUpdate = lastUpdate;
    this.#offset = offset;
    this.#nextPeriodicTime = nextPeriodicTime;
    this.#nextAlarmTime = nextAlarmTime;
    this.#period = this.#periodicClockTicks();
    if (s.periodicArmed && this.#period) this.#periodicTimer.arm(nextPeriodicTime);
    else this.#periodicTimer.cancel();
    if (updateTimerNs >= 0) this.#updateTimer.arm(updateTimerNs);
    else this.#updateTimer.cancel();
    const level = (this.#cmos[RTC_REG_C] & REG_C_IRQF) !== 0;
    this.#irqLevel = level;
    this.#irq.set(level);
  }
}
