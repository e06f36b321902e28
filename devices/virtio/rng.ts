/**
 * virtio-rng ("virtio-rng-device", virtio 1.2 §5.4): one request queue whose device-writable buffers are
 * filled with host entropy, with QEMU 7.2's optional rate limit (max-bytes per period ms, hw/virtio/virtio-rng.c).
 * The entropy source is injected so tests stay deterministic.
 * @module
 */
import {
  type Clock,
  type DeviceState,
  type PropDef,
  StateError,
  type Timer,
  UserError,
} from "../../core/types.ts";
import {
  commonFeatures,
  commonPropertyValues,
  VIRTIO_COMMON_PROPS,
  VIRTIO_ID_RNG,
  type VirtioCommon,
  virtioCommon,
  type VirtioCommonOptions,
  type VirtioContext,
  type VirtioDevice,
} from "./device.ts";

/** QEMU's default max-bytes (INT64_MAX: unlimited in practice). */
export const VIRTIO_RNG_DEFAULT_MAX_BYTES = 9223372036854775807n;
/** QEMU's default period (ms). */
export const VIRTIO_RNG_DEFAULT_PERIOD_MS = 1 << 16;
const QUEUE_SIZE = 8;
/** crypto.getRandomValues fills at most this many bytes per call. */
const ENTROPY_CHUNK = 65536;

/** Properties of virtio-rng-device in info qtree order. */
export const VIRTIO_RNG_PROPS: readonly PropDef[] = [
  { name: "max-bytes", type: "uint64", default: "9223372036854775807", help: "bytes allowed per period" },
  { name: "period", type: "uint32", default: VIRTIO_RNG_DEFAULT_PERIOD_MS, help: "rate-limit period in ms" },
  { name: "rng", type: "str", default: "", help: "ID of an rng backend (accepted; host entropy is used)" },
  ...VIRTIO_COMMON_PROPS,
];

/** Fill `buf` with random bytes. */
export type EntropySource = (buf: Uint8Array) => void;

/** The default entropy source: the host CSPRNG (Web Crypto). */
export function hostEntropy(buf: Uint8Array): void {
  for (let off = 0; off < buf.length; off += ENTROPY_CHUNK) {
    crypto.getRandomValues(buf.subarray(off, Math.min(buf.length, off + ENTROPY_CHUNK)));
  }
}

/** Options of virtio-rng-device. */
export interface VirtioRngOptions extends VirtioCommonOptions {
  id: string;
  /** Entropy source; default hostEntropy. */
  entropy?: EntropySource;
  /** Bytes per period (bigint or number); default unlimited. A limit needs `clock`. */
  maxBytes?: bigint | number;
  /** Rate-limit period in ms. */
  periodMs?: number;
  /** The machine clock, for the rate-limit timer. */
  clock?: Clock;
  /** The rng backend id, for info qtree. */
  rngName?: string;
}

/** virtio-rng-device. */
export class VirtioRng implements VirtioDevice {
  static readonly TYPE_NAME = "virtio-rng-device";
  static readonly PROPS: readonly PropDef[] = VIRTIO_RNG_PROPS;

  readonly id: string;
  readonly typeName: string = VirtioRng.TYPE_NAME;
  readonly deviceId: number = VIRTIO_ID_RNG;
  readonly queueSizes: readonly number[] = [QUEUE_SIZE];
  readonly configSize = 0;

  readonly #common: VirtioCommon;
  readonly #entropy: EntropySource;
  readonly #maxBytes: bigint;
  readonly #periodMs: number;
  readonly #rngName: string;
  readonly #timer: Timer | null;
  readonly #clock: Clock | null;
  /** Bytes still allowed in this period (number: the limit is far below 2^53 whenever it matters). */
  #quota: number;
  #ctx: VirtioContext | null = null;

  /** @throws UserError on a zero period or a rate limit without a clock */
  constructor(o: VirtioRngOptions) {
    this.id = o.id;
    this.#common = virtioCommon(o);
    this.#entropy = o.entropy ?? hostEntropy;
    this.#maxBytes = BigInt(o.maxBytes ?? VIRTIO_RNG_DEFAULT_MAX_BYTES);
    this.#periodMs = o.periodMs ?? VIRTIO_RNG_DEFAULT_PERIOD_MS;
    this.#rngName = o.rngName ?? "";
    if (!Number.isInteger(this.#periodMs) || this.#periodMs <= 0) {
      throw new UserError("'period' parameter expects a positive integer");
    }
    if (this.#maxBytes <= 0n || this.#maxBytes > VIRTIO_RNG_DEFAULT_MAX_BYTES) {
      throw new UserError("'max-bytes' parameter must be non-zero, and less than 2^63");
    }
    this.#clock = o.clock ?? null;
    this.#timer = this.#clock !== null ? this.#clock.timer(() => this.#refill()) : null;
    if (this.#limited && this.#timer === null) {
      throw new UserError("virtio-rng max-bytes needs the machine clock");
    }
    this.#quota = this.#limited ? Number(this.#maxBytes) : Number.MAX_SAFE_INTEGER;
  }

  get #limited(): boolean {
    return this.#maxBytes < VIRTIO_RNG_DEFAULT_MAX_BYTES;
  }

  hostFeatures(_modern: boolean): bigint {
    return commonFeatures(this.#common);
  }

  readConfig(): number {
    return 0xffffffff;
  }
  writeConfig(): void {}

  attach(ctx: VirtioContext): void {
    this.#ctx = ctx;
  }

  queueNotify(_index: number): void {
    this.#process();
  }

  statusChanged(): void {
    this.#process();
  }

  #refill(): void {
    this.#quota = Number(this.#maxBytes);
    this.#process();
  }

  /** Fill as many buffers as the quota allows (QEMU virtio_rng_process + chr_read). */
  #process(): void {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk) return;
    const q = ctx.queues[0];
    if (!q.ready) return;
    let done = 0;
    while (this.#quota > 0) {
      const e = q.pop();
      if (e === null) break;
      // At most ENTROPY_CHUNK per buffer (the device may fill less than offered, virtio 1.2 §5.4.6): the chain's
      // length is the guest's to choose and must not buy unbounded host work.
      const n = Math.min(e.inBytes, this.#quota, ENTROPY_CHUNK);
      let written = 0;
      while (written < n) {
        const buf = new Uint8Array(Math.min(ENTROPY_CHUNK, n - written));
        this.#entropy(buf);
        const w = e.writeIn(ctx.mem, written, buf);
        written += w;
        if (w < buf.length) break;
      }
      if (this.#limited) this.#quota -= written;
      q.push(e, written);
      done++;
    }
    if (done > 0) ctx.notify(q);
    if (this.#limited && this.#quota <= 0 && this.#timer !== null && !this.#timer.armed) {
      this.#timer.arm(this.#clock!.now() + this.#periodMs * 1e6);
    }
  }

  reset(): void {
    this.#timer?.cancel();
    this.#quota = this.#limited ? Number(this.#maxBytes) : Number.MAX_SAFE_INTEGER;
  }

  saveState(): DeviceState {
    return {
      version: 1,
      quota: this.#quota,
      timerDeadline: this.#timer?.armed ? this.#timer.deadline : null,
    };
  }

  loadState(s: DeviceState): void {
    if (s.version !== 1 || !Number.isSafeInteger(s.quota) || (s.quota as number) < 0) {
      throw new StateError(`${this.id}: bad virtio-rng state`);
    }
    if (s.timerDeadline !== null && typeof s.timerDeadline !== "number") {
      throw new StateError(`${this.id}: bad virtio-rng timer`);
    }
    this.#quota = s.quota as number;
    if (this.#timer !== null) {
      if (typeof s.timerDeadline === "number") this.#timer.arm(s.timerDeadline);
      else this.#timer.cancel();
    }
  }

  propertyValues(): Record<string, string | number | boolean> {
    return {
      "max-bytes": this.#maxBytes.toString(),
      period: this.#periodMs,
      rng: this.#rngName,
      ...commonPropertyValues(this.hostFeatures(!(this.#ctx?.legacy ?? true))),
    };
  }
}
