/**
 * virtio-balloon ("virtio-balloon-device", virtio 1.2 §5.5; behaviour of QEMU 7.2 hw/virtio/virtio-balloon.c):
 * queues inflate, deflate, stats (always) and reporting (free-page-reporting=on). The host sets a target
 * (`num_pages` in config); the driver gives pages back on the inflate queue, takes them on the deflate queue,
 * and reports `actual`. Stats arrive on the stats queue; the device keeps the buffer and returns it every
 * `guest-stats-polling-interval` seconds so the driver refills it, as QEMU does.
 *
 * Host memory: guest RAM is one JavaScript SharedArrayBuffer, which has no madvise(MADV_DONTNEED). A page
 * the guest gives up (inflate or free-page report) is zeroed if it is not zero already; that keeps its
 * contents from lingering but does not lower the process RSS (the pages stay committed). Pages never
 * touched are left untouched (reading a fresh page does not commit it). `releasedPages` counts them.
 * @module
 */
import { type Clock, type DeviceState, type PropDef, StateError, type Timer } from "../../core/types.ts";
import {
  commonFeatures,
  commonPropertyValues,
  configRead,
  featureBit,
  VIRTIO_COMMON_PROPS,
  VIRTIO_ID_BALLOON,
  type VirtioCommon,
  virtioCommon,
  type VirtioCommonOptions,
  type VirtioContext,
  type VirtioDevice,
} from "./device.ts";
import type { VirtqElement } from "./queue.ts";

/** Feature bits (virtio 1.2 §5.5.3). */
export const VIRTIO_BALLOON_F_MUST_TELL_HOST = 0;
export const VIRTIO_BALLOON_F_STATS_VQ = 1;
export const VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 2;
export const VIRTIO_BALLOON_F_FREE_PAGE_HINT = 3;
export const VIRTIO_BALLOON_F_PAGE_POISON = 4;
export const VIRTIO_BALLOON_F_REPORTING = 5;
/** Balloon page size (VIRTIO_BALLOON_PFN_SHIFT). */
export const BALLOON_PAGE = 4096;
const QUEUE_SIZE = 128;

/** Stat tags and QEMU's names for them (balloon_stat_names). */
export const BALLOON_STAT_NAMES = [
  "stat-swap-in",
  "stat-swap-out",
  "stat-major-faults",
  "stat-minor-faults",
  "stat-free-memory",
  "stat-total-memory",
  "stat-available-memory",
  "stat-disk-caches",
  "stat-htlb-pgalloc",
  "stat-htlb-pgfail",
] as const;

/** Properties of virtio-balloon-device in info qtree order (QEMU 7.2 virtio_balloon_properties). */
export const VIRTIO_BALLOON_PROPS: readonly PropDef[] = [
  { name: "deflate-on-oom", type: "bool", default: false, help: "on/off" },
  { name: "free-page-hint", type: "bool", default: false, help: "on/off (accepted, must be off)" },
  { name: "page-poison", type: "bool", default: true, help: "on/off" },
  { name: "free-page-reporting", type: "bool", default: false, help: "on/off" },
  { name: "qemu-4-0-config-size", type: "bool", default: false, help: "on/off" },
  { name: "iothread", type: "str", help: "accepted, ignored" },
  ...VIRTIO_COMMON_PROPS,
];

/** The part of guest RAM the balloon touches. */
export interface BalloonRam {
  readonly size: number;
  /** Zero-copy view of [gpa, gpa+len) or null outside RAM. */
  view(gpa: number, len: number): Uint8Array | null;
}

/** Options of virtio-balloon-device. */
export interface VirtioBalloonOptions extends VirtioCommonOptions {
  id: string;
  ram: BalloonRam;
  clock: Clock;
  /** Wall clock in seconds for `last-update` (injected; default the virtual clock). */
  wallSeconds?: () => number;
  deflateOnOom?: boolean;
  freePageReporting?: boolean;
  pagePoison?: boolean;
  qemu40ConfigSize?: boolean;
}

/** What `query-balloon` and `guest-stats` report. */
export interface BalloonStats {
  stats: Record<string, number>;
  "last-update": number;
}

/** virtio-balloon-device. */
export class VirtioBalloon implements VirtioDevice {
  static readonly TYPE_NAME = "virtio-balloon-device";
  static readonly PROPS: readonly PropDef[] = VIRTIO_BALLOON_PROPS;

  readonly id: string;
  readonly typeName: string = VirtioBalloon.TYPE_NAME;
  readonly deviceId: number = VIRTIO_ID_BALLOON;
  readonly queueSizes: readonly number[];
  readonly configSize: number;
  readonly #common: VirtioCommon;
  readonly #ram: BalloonRam;
  readonly #clock: Clock;
  readonly #wall: () => number;
  readonly #features: bigint;
  readonly #timer: Timer;
  readonly #reportingQueue: number;
  #ctx: VirtioContext | null = null;
  /** Config: pages the host wants in the balloon, and what the driver says it holds. */
  #numPages = 0;
  #actual = 0;
  #poisonVal = 0;
  /** Guest page frames currently in the balloon. */
  readonly #inflated = new Set<number>();
  #statsElem: VirtqElement | null = null;
  #pollSeconds = 0;
  #stats = new Map<number, number>();
  #lastUpdate = 0;
  /** Pages whose host memory was zeroed (inflated or reported). */
  releasedPages = 0;
  /** Free-page reports received. */
  reports = 0;
  /** Called when the driver changes `actual` (QMP BALLOON_CHANGE carries the new guest size in bytes). */
  onChange: ((actualBytes: number) => void) | null = null;

  constructor(o: VirtioBalloonOptions) {
    this.id = o.id;
    this.#common = virtioCommon(o);
    this.#ram = o.ram;
    this.#clock = o.clock;
    this.#wall = o.wallSeconds ?? (() => Math.floor(this.#clock.now() / 1e9));
    let f = featureBit(VIRTIO_BALLOON_F_STATS_VQ);
    if (o.deflateOnOom) f |= featureBit(VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
    if (o.freePageReporting) f |= featureBit(VIRTIO_BALLOON_F_REPORTING);
    if (o.pagePoison ?? true) f |= featureBit(VIRTIO_BALLOON_F_PAGE_POISON);
    this.#features = f;
    // virtio_balloon_config_size: poison_val only with PAGE_POISON (or the 4.0 layout).
    this.configSize = o.qemu40ConfigSize || (o.pagePoison ?? true) ? 16 : 8;
    const sizes = [QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE];
    this.#reportingQueue = -1;
    if (o.freePageReporting) {
      this.#reportingQueue = sizes.length;
      sizes.push(32);
    }
    this.queueSizes = sizes;
    this.#timer = this.#clock.timer(() => this.#poll());
  }

  hostFeatures(_modern: boolean): bigint {
    return commonFeatures(this.#common) | this.#features;
  }

  #configBytes(): Uint8Array {
    const b = new Uint8Array(16);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, this.#numPages, true);
    dv.setUint32(4, this.#actual, true);
    dv.setUint32(8, 0, true);
    dv.setUint32(12, this.#poisonVal, true);
    return b.subarray(0, this.configSize);
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    return configRead(this.#configBytes(), offset, size);
  }

  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    const b = this.#configBytes().slice();
    for (let i = 0; i < size && offset + i < b.length; i++) b[offset + i] = (value >>> (8 * i)) & 0xff;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const old = this.#actual;
    // The driver writes only `actual` (and poison_val); num_pages is the host's.
    this.#actual = dv.getUint32(4, true);
    if (b.length >= 16) this.#poisonVal = dv.getUint32(12, true);
    if (this.#actual !== old) this.onChange?.(this.#ram.size - this.#actual * BALLOON_PAGE);
  }

  attach(ctx: VirtioContext): void {
    this.#ctx = ctx;
  }

  /** QMP `balloon value=BYTES`: ask the guest to shrink or grow to `target` bytes (virtio_balloon_to_target). */
  setTarget(target: number): void {
    const ram = this.#ram.size;
    const t = Math.min(Math.max(0, Math.floor(target)), ram);
    this.#numPages = Math.floor((ram - t) / BALLOON_PAGE);
    this.#ctx?.notifyConfig();
  }

  /** Guest memory in bytes as the driver last reported it (query-balloon `actual`). */
  get actualBytes(): number {
    return this.#ram.size - this.#actual * BALLOON_PAGE;
  }

  /** Pages currently held by the balloon (inflated and not deflated). */
  get inflatedPages(): number {
    return this.#inflated.size;
  }

  /** The target the host set, in pages. */
  get targetPages(): number {
    return this.#numPages;
  }

  /** `guest-stats-polling-interval` in seconds (0 = off). */
  get pollInterval(): number {
    return this.#pollSeconds;
  }

  /** qom-set guest-stats-polling-interval (QEMU balloon_stats_set_poll_interval). */
  setPollInterval(seconds: number): void {
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 0xffffffff) {
      throw new RangeError("timer value is too big");
    }
    this.#pollSeconds = seconds;
    if (seconds === 0) this.#timer.cancel();
    else this.#timer.arm(this.#clock.now() + seconds * 1e9);
  }

  /** qom-get guest-stats: every stat name, -1 when the guest has not reported it. */
  guestStats(): BalloonStats {
    const stats: Record<string, number> = {};
    BALLOON_STAT_NAMES.forEach((n, i) => stats[n] = this.#stats.get(i) ?? -1);
    return { stats, "last-update": this.#lastUpdate };
  }

  queueNotify(index: number): void {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk) return;
    if (index === 0 || index === 1) this.#inflateDeflate(index === 0);
    else if (index === 2) this.#statsArrived();
    else if (index === this.#reportingQueue) this.#report();
  }

  #release(gpa: number, len: number): void {
    for (let off = 0; off < len; off += BALLOON_PAGE) {
      const v = this.#ram.view(gpa + off, Math.min(BALLOON_PAGE, len - off));
      if (v === null) return;
      // Zero only pages with data: writing a never-touched page would commit it.
      const words = v.byteOffset % 4 === 0 && v.length % 4 === 0
        ? new Uint32Array(v.buffer, v.byteOffset, v.length / 4)
        : v;
      let dirty = false;
      for (let i = 0; i < words.length; i++) {
        if (words[i] !== 0) {
          dirty = true;
          break;
        }
      }
      if (dirty) v.fill(0);
      this.releasedPages++;
    }
  }

  #inflateDeflate(inflate: boolean): void {
    const ctx = this.#ctx!;
    const q = ctx.queues[inflate ? 0 : 1];
    let done = 0;
    const pfn = new Uint8Array(4);
    for (;;) {
      const e = q.pop();
      if (e === null) break;
      for (let off = 0; off + 4 <= e.outBytes; off += 4) {
        if (e.readOut(ctx.mem, off, pfn) !== 4) break;
        const frame = (pfn[0] | (pfn[1] << 8) | (pfn[2] << 16) | (pfn[3] << 24)) >>> 0;
        const gpa = frame * BALLOON_PAGE;
        if (!ctx.mem.isRam(gpa, BALLOON_PAGE)) {
          ctx.log.guestError(this.id, `balloon: pfn 0x${frame.toString(16)} is not RAM`);
          continue;
        }
        if (inflate) {
          if (!this.#inflated.has(frame)) {
            this.#inflated.add(frame);
            // With a poison value set, QEMU keeps the page (its contents are the guest's poison pattern).
            if (this.#poisonVal === 0) this.#release(gpa, BALLOON_PAGE);
          }
        } else {
          this.#inflated.delete(frame);
        }
      }
      q.push(e, 0);
      done++;
    }
    if (done > 0) ctx.notify(q);
  }

  #statsArrived(): void {
    const ctx = this.#ctx!;
    const q = ctx.queues[2];
    const e = q.pop();
    if (e === null) return;
    if (this.#statsElem !== null) {
      // The driver may only have one stats buffer outstanding (QEMU: virtio_error "Guest sent more stats").
      ctx.fail("Guest sent more than one stats buffer");
      return;
    }
    const entry = new Uint8Array(10);
    for (let off = 0; off + 10 <= e.outBytes; off += 10) {
      if (e.readOut(ctx.mem, off, entry) !== 10) break;
      const dv = new DataView(entry.buffer);
      const tag = dv.getUint16(0, true);
      const val = Number(dv.getBigUint64(2, true));
      if (tag < BALLOON_STAT_NAMES.length) this.#stats.set(tag, val);
    }
    this.#lastUpdate = this.#wall();
    this.#statsElem = e;
    if (this.#pollSeconds > 0 && !this.#timer.armed) {
      this.#timer.arm(this.#clock.now() + this.#pollSeconds * 1e9);
    }
  }

  /** Timer: hand the stats buffer back so the driver refills it (balloon_stats_poll_cb). */
  #poll(): void {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk || this.#pollSeconds === 0) return;
    const e = this.#statsElem;
    if (e === null) {
      this.#timer.arm(this.#clock.now() + this.#pollSeconds * 1e9);
      return;
    }
    this.#statsElem = null;
    const q = ctx.queues[2];
    q.push(e, 0);
    ctx.notify(q);
  }

  #report(): void {
    const ctx = this.#ctx!;
    const q = ctx.queues[this.#reportingQueue];
    let done = 0;
    for (;;) {
      const e = q.pop();
      if (e === null) break;
      // Each device-writable buffer is one free range (virtio 1.2 §5.5.6.7).
      if (this.#poisonVal === 0) {
        for (let i = 0; i < e.inAddr.length; i++) this.#release(e.inAddr[i], e.inLen[i]);
      }
      this.reports++;
      q.push(e, 0);
      done++;
    }
    if (done > 0) ctx.notify(q);
  }

  /**
   * Linux queues its first stats buffer (and may queue pages) before it sets DRIVER_OK; QEMU handles a kick
   * whatever the status, so whatever was kicked early is taken once the driver is ready.
   */
  statusChanged(): void {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk) return;
    this.queueNotify(0);
    this.queueNotify(1);
    if (this.#statsElem === null) this.queueNotify(2);
    if (this.#reportingQueue >= 0) this.queueNotify(this.#reportingQueue);
  }

  reset(): void {
    this.#actual = 0;
    this.#poisonVal = 0;
    this.#inflated.clear();
    this.#statsElem = null;
    this.#timer.cancel();
    // num_pages is the host's request: it survives a device reset as in QEMU; the poll interval too.
    if (this.#pollSeconds > 0) this.#timer.arm(this.#clock.now() + this.#pollSeconds * 1e9);
  }

  saveState(): DeviceState {
    return {
      version: 1,
      numPages: this.#numPages,
      actual: this.#actual,
      poisonVal: this.#poisonVal,
      pollSeconds: this.#pollSeconds,
      inflated: [...this.#inflated],
    };
  }

  loadState(s: DeviceState): void {
    const u32 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
    if (
      s.version !== 1 || !u32(s.numPages) || !u32(s.actual) || !u32(s.poisonVal) || !u32(s.pollSeconds) ||
      !Array.isArray(s.inflated) || !(s.inflated as unknown[]).every(u32)
    ) throw new StateError(`${this.id}: bad virtio-balloon state`);
    this.#numPages = s.numPages as number;
    this.#actual = s.actual as number;
    this.#poisonVal = s.poisonVal as number;
    this.#inflated.clear();
    for (const p of s.inflated as number[]) this.#inflated.add(p);
    this.#statsElem = null;
    this.setPollInterval(s.pollSeconds as number);
  }

  propertyValues(): Record<string, string | number | boolean> {
    const has = (bit: number) => (this.#features & featureBit(bit)) !== 0n;
    return {
      "deflate-on-oom": has(VIRTIO_BALLOON_F_DEFLATE_ON_OOM),
      "free-page-hint": false,
      "page-poison": has(VIRTIO_BALLOON_F_PAGE_POISON),
      "free-page-reporting": has(VIRTIO_BALLOON_F_REPORTING),
      "qemu-4-0-config-size": this.configSize === 16 && !has(VIRTIO_BALLOON_F_PAGE_POISON),
      iothread: "",
      ...commonPropertyValues(this.hostFeatures(!(this.#ctx?.legacy ?? true))),
    };
  }
}
