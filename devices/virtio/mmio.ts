/**
 * virtio-mmio transport (virtio 1.2 §4.2; QEMU 7.2 hw/virtio/virtio-mmio.c): a 0x200-byte register window
 * with the legacy v1 layout (force-legacy=on, QEMU's default: GuestPageSize/QueuePFN/QueueAlign) or the
 * modern v2 layout (QueueDesc/Driver/Device Low/High, QueueReady, ConfigGeneration). One virtio device may be
 * plugged; an empty transport answers magic, version and vendor with device id 0 so Linux skips it.
 * The status register is driven by an explicit table of allowed transitions (`STATUS_TRANSITIONS`).
 * @module
 */
import {
  CountingLog,
  type Device,
  type DeviceState,
  type GuestLog,
  type GuestMemory,
  type IrqLine,
  type PropDef,
  type RegionOps,
  StateError,
  UserError,
} from "../../core/types.ts";
import {
  featureBit,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_VERSION_1,
  VIRTIO_LEGACY_FEATURES,
  VIRTIO_QUEUE_MAX,
  type VirtioContext,
  type VirtioDevice,
  VIRTQUEUE_MAX_SIZE,
} from "./device.ts";
import { type QueueEnv, Virtqueue, type VirtqueueState } from "./queue.ts";

/** Register offsets (Linux include/uapi/linux/virtio_mmio.h). */
export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
export const VIRTIO_MMIO_VERSION = 0x004;
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
export const VIRTIO_MMIO_GUEST_PAGE_SIZE = 0x028;
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
export const VIRTIO_MMIO_QUEUE_ALIGN = 0x03c;
export const VIRTIO_MMIO_QUEUE_PFN = 0x040;
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
export const VIRTIO_MMIO_STATUS = 0x070;
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
export const VIRTIO_MMIO_QUEUE_AVAIL_LOW = 0x090;
export const VIRTIO_MMIO_QUEUE_AVAIL_HIGH = 0x094;
export const VIRTIO_MMIO_QUEUE_USED_LOW = 0x0a0;
export const VIRTIO_MMIO_QUEUE_USED_HIGH = 0x0a4;
export const VIRTIO_MMIO_SHM_SEL = 0x0ac;
export const VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0;
export const VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4;
export const VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8;
export const VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc;
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
export const VIRTIO_MMIO_CONFIG = 0x100;

/** "virt" */
export const VIRT_MAGIC = 0x74726976;
/** "QEMU" */
export const VIRT_VENDOR = 0x554d4551;
export const VIRT_VERSION_LEGACY = 1;
export const VIRT_VERSION = 2;

/** InterruptStatus bits. */
export const VIRTIO_MMIO_INT_VRING = 0x1;
export const VIRTIO_MMIO_INT_CONFIG = 0x2;

const ACK = VIRTIO_CONFIG_S_ACKNOWLEDGE;
const DRV = VIRTIO_CONFIG_S_DRIVER;
const FOK = VIRTIO_CONFIG_S_FEATURES_OK;
const DOK = VIRTIO_CONFIG_S_DRIVER_OK;
/** Driver-owned status bits that move through the table; FAILED may be added any time, NEEDS_RESET is the device's. */
const STATUS_CORE = ACK | DRV | FOK | DOK;

/**
 * Allowed status transitions of the driver-owned bits (virtio 1.2 §3.1.1; Firecracker's transport keeps the
 * same table). Writing the current value again is always allowed; writing 0 resets; FAILED can be added
 * from any state. Legacy drivers skip FEATURES_OK (virtio 1.2 §7.2.1).
 */
export const STATUS_TRANSITIONS: readonly { from: number; to: number; legacyOnly: boolean }[] = [
  { from: 0, to: ACK, legacyOnly: false },
  { from: ACK, to: ACK | DRV, legacyOnly: false },
  { from: ACK | DRV, to: ACK | DRV | FOK, legacyOnly: false },
  { from: ACK | DRV | FOK, to: ACK | DRV | FOK | DOK, legacyOnly: false },
  { from: ACK | DRV, to: ACK | DRV | DOK, legacyOnly: true },
];

/** Properties of virtio-mmio as info qtree lists them. */
export const VIRTIO_MMIO_PROPS: readonly PropDef[] = [
  { name: "format_transport_address", type: "bool", default: true, help: "on/off" },
  { name: "force-legacy", type: "bool", default: true, help: "on/off: version 1 register layout" },
  { name: "ioeventfd", type: "bool", default: true, help: "on/off (accepted; no effect, off without KVM)" },
];

/** Construction options of a virtio-mmio transport. */
export interface VirtioMmioOptions {
  /** Unique id, e.g. "virtio-mmio@feb00e00". */
  id: string;
  /** The transport's interrupt output (level = InterruptStatus != 0). */
  irq: IrqLine;
  /** Guest RAM as DMA sees it. */
  mem: GuestMemory;
  log?: GuestLog;
  /** true (default): legacy v1 layout; false: modern v2. */
  forceLegacy?: boolean;
  /** Accepted for qtree compatibility; notifications are always handled in the access. */
  ioeventfd?: boolean;
  formatTransportAddress?: boolean;
}

interface ModernQueueRegs {
  num: number;
  enabled: boolean;
  desc: [number, number];
  avail: [number, number];
  used: [number, number];
}

function freshModernRegs(): ModernQueueRegs {
  return { num: 0, enabled: false, desc: [0, 0], avail: [0, 0], used: [0, 0] };
}

function ctz32(v: number): number {
  v >>>= 0;
  if (v === 0) return 32;
  return 31 - Math.clz32(v & -v);
}

const U32 = 0x1_0000_0000;

/**
 * A 64-bit guest address as a JS number. Addresses of 2^53 and above lie outside any guest RAM; they are
 * kept as MAX_SAFE_INTEGER (still outside RAM, so every access fails as it should) rather than as an
 * inexact number that the device's own saveState could not restore (fuzzer finding virtio-mmio/001, 002).
 */
function guestAddr(a: number): number {
  return Number.isSafeInteger(a) ? a : Number.MAX_SAFE_INTEGER;
}

/** The virtio-mmio transport: registers, status machine, interrupt status and queue setup. */
export class VirtioMmio implements Device {
  static readonly TYPE_NAME = "virtio-mmio";
  /** Region name and size as QEMU's `info mtree` shows them. */
  static readonly REGION_NAME = "virtio-mmio";
  static readonly REGION_SIZE = 0x200;
  static readonly PROPS: readonly PropDef[] = VIRTIO_MMIO_PROPS;

  readonly id: string;
  readonly typeName: string = VirtioMmio.TYPE_NAME;
  /** Register window callbacks; map `REGION_SIZE` bytes named `REGION_NAME`. */
  readonly ops: RegionOps;

  readonly #irq: IrqLine;
  readonly #mem: GuestMemory;
  readonly #log: GuestLog;
  readonly #legacy: boolean;
  readonly #ioeventfd: boolean;
  readonly #formatTransportAddress: boolean;

  #dev: VirtioDevice | null = null;
  #queues: Virtqueue[] = [];
  #modernQueues: ModernQueueRegs[] = [];
  /** Everything the device offers (legacy: low word visible; modern: VERSION_1 added, legacy bits hidden). */
  #hostFeatures = 0n;

  #status = 0;
  #isr = 0;
  #queueSel = 0;
  #hostFeaturesSel = 0;
  #guestFeaturesSel = 0;
  #guestPageShift = 0;
  /** Negotiated features as two 32-bit halves (hot path: hasFeature on every pop). */
  #gfLo = 0;
  #gfHi = 0;
  /** Modern: DriverFeatures words staged until FEATURES_OK. */
  #guestFeaturesStaged: [number, number] = [0, 0];
  #generation = 0;
  #broken = false;
  readonly #ctx: VirtioContext & QueueEnv;

  constructor(o: VirtioMmioOptions) {
    this.id = o.id;
    this.#irq = o.irq;
    this.#mem = o.mem;
    this.#log = o.log ?? new CountingLog();
    this.#legacy = o.forceLegacy ?? true;
    this.#ioeventfd = o.ioeventfd ?? false;
    this.#formatTransportAddress = o.formatTransportAddress ?? true;
    this.ops = {
      read: (offset, size) => this.read(offset, size),
      write: (offset, size, value) => this.write(offset, size, value),
      valid: { min: 1, max: 4 },
      impl: { min: 1, max: 4 },
    };
    // The context the device and its queues see: closures over this transport.
    // deno-lint-ignore no-this-alias
    const self = this;
    this.#ctx = {
      get mem() {
        return self.#mem;
      },
      get log() {
        return self.#log;
      },
      get legacy() {
        return self.#legacy;
      },
      get queues() {
        return self.#queues;
      },
      get driverOk() {
        return (self.#status & DOK) !== 0 && !self.#broken;
      },
      get broken() {
        return self.#broken;
      },
      hasFeature: (bit: number) => this.#hasFeature(bit),
      notify: (q: Virtqueue) => this.#notifyQueue(q),
      notifyConfig: () => this.#notifyConfig(),
      fail: (msg: string) => this.#fail(msg),
    };
  }

  /** True for the legacy (version 1) register layout. */
  get legacy(): boolean {
    return this.#legacy;
  }
  /** The plugged device, or null for an empty transport. */
  get device(): VirtioDevice | null {
    return this.#dev;
  }
  /** Device status register. */
  get status(): number {
    return this.#status;
  }
  /** InterruptStatus register. */
  get interruptStatus(): number {
    return this.#isr;
  }
  /** True after a protocol error until the driver resets the device. */
  get broken(): boolean {
    return this.#broken;
  }
  /** The device's queues (empty for an empty transport). */
  get queues(): readonly Virtqueue[] {
    return this.#queues;
  }

  /**
   * Plug a device into this transport (QEMU: -device X on the virtio-mmio bus, before the guest runs).
   * @throws UserError when the transport already holds a device
   */
  plug(dev: VirtioDevice): void {
    if (this.#dev !== null) {
      throw new UserError(
        `Bus '${this.id}' does not support hotplugging: it already holds '${this.#dev.typeName}'`,
      );
    }
    this.#dev = dev;
    this.#hostFeatures = dev.hostFeatures(!this.#legacy);
    if (!this.#legacy) this.#hostFeatures |= featureBit(VIRTIO_F_VERSION_1);
    this.#queues = dev.queueSizes.map((size, i) => new Virtqueue(i, size, this.#ctx));
    this.#modernQueues = dev.queueSizes.map(freshModernRegs);
    dev.attach(this.#ctx);
  }

  /** Property values for info qtree. */
  propertyValues(): Record<string, string | number | boolean> {
    return {
      format_transport_address: this.#formatTransportAddress,
      "force-legacy": this.#legacy,
      ioeventfd: this.#ioeventfd,
    };
  }

  #hasFeature(bit: number): boolean {
    return bit < 32
      ? ((this.#gfLo >>> bit) & 1) === 1
      : bit < 64
      ? ((this.#gfHi >>> (bit - 32)) & 1) === 1
      : false;
  }

  /** Features the driver may see (modern hides the legacy-only bits, as QEMU's DEVICE_FEATURES read does). */
  #offered(): bigint {
    return this.#legacy ? this.#hostFeatures & 0xffffffffn : this.#hostFeatures & ~VIRTIO_LEGACY_FEATURES;
  }

  #setFeatures(value: bigint): void {
    const dev = this.#dev;
    if (dev === null) return;
    const bad = value & ~this.#hostFeatures;
    if (bad !== 0n) this.#log.guestError(this.id, `driver accepted unoffered features 0x${bad.toString(16)}`);
    const f = value & this.#hostFeatures;
    this.#gfLo = Number(f & 0xffffffffn);
    this.#gfHi = Number((f >> 32n) & 0xffffffffn);
    dev.setFeatures?.(f);
  }

  /** Drive the line from InterruptStatus. Like QEMU's virtio_mmio_update_irq this re-asserts on every update, so an
   * edge-triggered controller that counts each assertion sees one per notification, as under QEMU. */
  #updateIrq(): void {
    this.#irq.set(this.#isr !== 0);
  }

  #notifyQueue(q: Virtqueue): void {
    if (this.#broken) return;
    if (q.shouldNotify()) {
      this.#isr |= VIRTIO_MMIO_INT_VRING;
      this.#updateIrq();
    }
  }

  /** virtio_notify_config: only once the driver is up; QEMU sets both ISR bits. */
  #notifyConfig(): void {
    if (!(this.#status & DOK)) return;
    this.#isr |= VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG;
    this.#generation = (this.#generation + 1) >>> 0;
    this.#updateIrq();
  }

  /** virtio_error: the device stops processing; NEEDS_RESET is set (and signalled to v1.0 drivers). */
  #fail(msg: string): void {
    this.#log.guestError(this.id, msg);
    if (this.#broken) return;
    this.#status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    if (this.#hasFeature(VIRTIO_F_VERSION_1)) this.#notifyConfig();
    this.#broken = true;
  }

  /** virtio_reset: device, queues, status and interrupt back to power-on; transport selectors stay. */
  #virtioReset(): void {
    this.#dev?.reset();
    this.#status = 0;
    this.#isr = 0;
    this.#queueSel = 0;
    this.#broken = false;
    this.#gfLo = this.#gfHi = 0;
    for (const q of this.#queues) q.reset();
    this.#updateIrq();
  }

  /** Machine reset (QEMU virtio_mmio_reset). */
  reset(): void {
    this.#virtioReset();
    this.#hostFeaturesSel = 0;
    this.#guestFeaturesSel = 0;
    this.#guestPageShift = 0;
    this.#guestFeaturesStaged = [0, 0];
    this.#modernQueues = this.#queues.map(freshModernRegs);
  }

  #guestError(msg: string): void {
    this.#log.guestError(this.id, msg);
  }

  /** MMIO read at `offset` (0..0x1ff). */
  read(offset: number, size: 1 | 2 | 4): number {
    const dev = this.#dev;
    if (dev === null) {
      // Empty transport: read-as-zero except identification, so Linux probes and skips it (QEMU comment).
      switch (offset) {
        case VIRTIO_MMIO_MAGIC_VALUE:
          return VIRT_MAGIC;
        case VIRTIO_MMIO_VERSION:
          return this.#legacy ? VIRT_VERSION_LEGACY : VIRT_VERSION;
        case VIRTIO_MMIO_VENDOR_ID:
          return VIRT_VENDOR;
        default:
          return 0;
      }
    }
    if (offset >= VIRTIO_MMIO_CONFIG) {
      const off = offset - VIRTIO_MMIO_CONFIG;
      if (off + size > dev.configSize) return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
      return dev.readConfig(off, size) >>> 0;
    }
    if (size !== 4) {
      this.#guestError(`wrong size access to register 0x${offset.toString(16)} (size ${size})`);
      return 0;
    }
    const sel = this.#queueSel;
    const q = sel < this.#queues.length ? this.#queues[sel] : null;
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRT_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return this.#legacy ? VIRT_VERSION_LEGACY : VIRT_VERSION;
      case VIRTIO_MMIO_DEVICE_ID:
        return dev.deviceId;
      case VIRTIO_MMIO_VENDOR_ID:
        return VIRT_VENDOR;
      case VIRTIO_MMIO_DEVICE_FEATURES:
        if (this.#legacy) return this.#hostFeaturesSel ? 0 : Number(this.#hostFeatures & 0xffffffffn);
        return Number((this.#offered() >> BigInt(32 * this.#hostFeaturesSel)) & 0xffffffffn);
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return q === null || q.size === 0 ? 0 : VIRTQUEUE_MAX_SIZE;
      case VIRTIO_MMIO_QUEUE_PFN:
        if (!this.#legacy) {
          this.#guestError("read from legacy register QueuePFN in non-legacy mode");
          return 0;
        }
        return q === null ? 0 : Math.floor(q.descAddr / 2 ** this.#guestPageShift) >>> 0;
      case VIRTIO_MMIO_QUEUE_READY:
        if (this.#legacy) {
          this.#guestError("read from non-legacy register QueueReady in legacy mode");
          return 0;
        }
        return sel < this.#modernQueues.length && this.#modernQueues[sel].enabled ? 1 : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return this.#isr;
      case VIRTIO_MMIO_STATUS:
        return this.#status;
      case VIRTIO_MMIO_CONFIG_GENERATION:
        if (this.#legacy) {
          this.#guestError("read from non-legacy register ConfigGeneration in legacy mode");
          return 0;
        }
        return this.#generation;
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
        // No shared memory regions: length all-ones means "absent" to Linux (QEMU does the same).
        return 0xffffffff;
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
      case VIRTIO_MMIO_DRIVER_FEATURES:
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
      case VIRTIO_MMIO_GUEST_PAGE_SIZE:
      case VIRTIO_MMIO_QUEUE_SEL:
      case VIRTIO_MMIO_QUEUE_NUM:
      case VIRTIO_MMIO_QUEUE_ALIGN:
      case VIRTIO_MMIO_QUEUE_NOTIFY:
      case VIRTIO_MMIO_INTERRUPT_ACK:
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
      case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
      case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
      case VIRTIO_MMIO_QUEUE_USED_LOW:
      case VIRTIO_MMIO_QUEUE_USED_HIGH:
        this.#guestError(`read of write-only register 0x${offset.toString(16)}`);
        return 0;
      default:
        this.#guestError(`bad register offset 0x${offset.toString(16)}`);
        return 0;
    }
  }

  /** MMIO write at `offset` (0..0x1ff). */
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    const dev = this.#dev;
    if (dev === null) return; // empty transport: write-ignored
    value >>>= 0;
    if (offset >= VIRTIO_MMIO_CONFIG) {
      const off = offset - VIRTIO_MMIO_CONFIG;
      if (off + size > dev.configSize) return;
      dev.writeConfig(off, size, value);
      return;
    }
    if (size !== 4) {
      this.#guestError(`wrong size access to register 0x${offset.toString(16)} (size ${size})`);
      return;
    }
    const sel = this.#queueSel;
    const q = sel < this.#queues.length ? this.#queues[sel] : null;
    const mq = sel < this.#modernQueues.length ? this.#modernQueues[sel] : null;
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        this.#hostFeaturesSel = value ? 1 : 0;
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES:
        if (this.#legacy) {
          if (this.#guestFeaturesSel) {
            this.#guestError("attempt to write guest features with guest_features_sel > 0 in legacy mode");
          } else this.#setFeatures(BigInt(value));
        } else {
          this.#guestFeaturesStaged[this.#guestFeaturesSel] = value;
        }
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        this.#guestFeaturesSel = value ? 1 : 0;
        return;
      case VIRTIO_MMIO_GUEST_PAGE_SIZE:
        if (!this.#legacy) {
          return this.#guestError("write to legacy register GuestPageSize in non-legacy mode");
        }
        this.#guestPageShift = ctz32(value);
        if (this.#guestPageShift > 31) this.#guestPageShift = 0;
        return;
      case VIRTIO_MMIO_QUEUE_SEL:
        if (value < VIRTIO_QUEUE_MAX) this.#queueSel = value;
        return;
      case VIRTIO_MMIO_QUEUE_NUM:
        if (q === null) return;
        q.setSize(value, VIRTQUEUE_MAX_SIZE);
        if (this.#legacy) q.updateLegacyRings();
        else if (mq !== null) mq.num = value;
        return;
      case VIRTIO_MMIO_QUEUE_ALIGN:
        if (!this.#legacy) return this.#guestError("write to legacy register QueueAlign in non-legacy mode");
        if (this.#hasFeature(VIRTIO_F_VERSION_1)) {
          return this.#guestError("queue alignment set for a virtio-1 device");
        }
        q?.setAlign(value);
        return;
      case VIRTIO_MMIO_QUEUE_PFN:
        if (!this.#legacy) return this.#guestError("write to legacy register QueuePFN in non-legacy mode");
        // Legacy drivers release a queue by writing 0; QEMU resets the whole device then.
        if (value === 0) this.#virtioReset();
        else q?.setLegacyAddr(guestAddr(value * 2 ** this.#guestPageShift));
        return;
      case VIRTIO_MMIO_QUEUE_READY:
        if (this.#legacy) return this.#guestError("write to non-legacy register QueueReady in legacy mode");
        if (mq === null || q === null) return;
        if (value) {
          q.setSize(mq.num, VIRTQUEUE_MAX_SIZE);
          q.setRings(
            guestAddr(mq.desc[1] * U32 + mq.desc[0]),
            guestAddr(mq.avail[1] * U32 + mq.avail[0]),
            guestAddr(mq.used[1] * U32 + mq.used[0]),
          );
          mq.enabled = true;
        } else mq.enabled = false;
        return;
      case VIRTIO_MMIO_QUEUE_NOTIFY:
        if (
          value < VIRTIO_QUEUE_MAX && value < this.#queues.length && !this.#broken &&
          this.#queues[value].ready
        ) {
          dev.queueNotify(value);
        }
        return;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        this.#isr &= ~value;
        this.#updateIrq();
        return;
      case VIRTIO_MMIO_STATUS:
        this.#writeStatus(value & 0xff);
        return;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
      case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
      case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
      case VIRTIO_MMIO_QUEUE_USED_LOW:
      case VIRTIO_MMIO_QUEUE_USED_HIGH: {
        if (this.#legacy) {
          return this.#guestError(`write to non-legacy register 0x${offset.toString(16)} in legacy mode`);
        }
        if (mq === null) return;
        const half = (offset & 4) >> 2;
        if (offset < VIRTIO_MMIO_QUEUE_AVAIL_LOW) mq.desc[half] = value;
        else if (offset < VIRTIO_MMIO_QUEUE_USED_LOW) mq.avail[half] = value;
        else mq.used[half] = value;
        return;
      }
      case VIRTIO_MMIO_MAGIC_VALUE:
      case VIRTIO_MMIO_VERSION:
      case VIRTIO_MMIO_DEVICE_ID:
      case VIRTIO_MMIO_VENDOR_ID:
      case VIRTIO_MMIO_DEVICE_FEATURES:
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
      case VIRTIO_MMIO_INTERRUPT_STATUS:
      case VIRTIO_MMIO_CONFIG_GENERATION:
        this.#guestError(`write to read-only register 0x${offset.toString(16)}`);
        return;
      default:
        this.#guestError(`bad register offset 0x${offset.toString(16)}`);
    }
  }

  #writeStatus(value: number): void {
    if (value === 0) {
      this.#virtioReset();
      // Modern soft reset: queues must be enabled again (QEMU virtio_mmio_soft_reset).
      if (!this.#legacy) { for (const mq of this.#modernQueues) mq.enabled = false; }
      this.#dev?.statusChanged?.(0);
      return;
    }
    const cur = this.#status & STATUS_CORE;
    let next = value & STATUS_CORE;
    const failed = (this.#status | value) & VIRTIO_CONFIG_S_FAILED;
    if (next !== cur) {
      const ok = STATUS_TRANSITIONS.some((t) =>
        t.from === cur && t.to === next && (!t.legacyOnly || this.#legacy)
      );
      if (!ok) {
        this.#guestError(`status transition 0x${cur.toString(16)} -> 0x${next.toString(16)} refused`);
        next = cur;
      } else if ((next & FOK) && !(cur & FOK) && !this.#legacy && !this.#acceptFeatures()) {
        next = cur; // FEATURES_OK stays clear: the driver reads it back and gives up (virtio 1.2 §3.1.1 step 6)
      }
    }
    this.#status = next | failed | (this.#status & VIRTIO_CONFIG_S_NEEDS_RESET);
    this.#dev?.statusChanged?.(this.#status);
  }

  /** Modern FEATURES_OK: apply staged features; refuse unoffered bits or a missing VERSION_1. */
  #acceptFeatures(): boolean {
    const want = (BigInt(this.#guestFeaturesStaged[1]) << 32n) | BigInt(this.#guestFeaturesStaged[0]);
    const bad = want & ~this.#offered();
    if (bad !== 0n) {
      this.#guestError(`FEATURES_OK refused: unoffered features 0x${bad.toString(16)}`);
      return false;
    }
    if ((want & featureBit(VIRTIO_F_VERSION_1)) === 0n) {
      this.#guestError("FEATURES_OK refused: VIRTIO_F_VERSION_1 not accepted on a version 2 transport");
      return false;
    }
    this.#setFeatures(want);
    return true;
  }

  saveState(): DeviceState {
    return {
      version: 1,
      status: this.#status,
      isr: this.#isr,
      queueSel: this.#queueSel,
      hostFeaturesSel: this.#hostFeaturesSel,
      guestFeaturesSel: this.#guestFeaturesSel,
      guestPageShift: this.#guestPageShift,
      guestFeatures: [this.#gfLo, this.#gfHi],
      guestFeaturesStaged: [...this.#guestFeaturesStaged],
      generation: this.#generation,
      broken: this.#broken,
      queues: this.#queues.map((q) => q.saveState()),
      modernQueues: this.#modernQueues.map((m) => ({
        num: m.num,
        enabled: m.enabled,
        desc: [...m.desc],
        avail: [...m.avail],
        used: [...m.used],
      })),
      device: this.#dev === null ? null : this.#dev.saveState(),
    };
  }

  loadState(s: DeviceState): void {
    const u32 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
    const pair = (v: unknown) => Array.isArray(v) && v.length === 2 && v.every(u32);
    if (s.version !== 1) throw new StateError(`${this.id}: unsupported state version ${s.version}`);
    for (
      const k of [
        "status",
        "isr",
        "queueSel",
        "hostFeaturesSel",
        "guestFeaturesSel",
        "guestPageShift",
        "generation",
      ]
    ) {
      if (!u32(s[k])) throw new StateError(`${this.id}: bad field "${k}"`);
    }
    if (!pair(s.guestFeatures) || !pair(s.guestFeaturesStaged) || typeof s.broken !== "boolean") {
      throw new StateError(`${this.id}: bad feature state`);
    }
    const queues = s.queues as VirtqueueState[];
    const mqs = s.modernQueues as ModernQueueRegs[];
    if (!Array.isArray(queues) || queues.length !== this.#queues.length) {
      throw new StateError(`${this.id}: queue count mismatch`);
    }
    if (!Array.isArray(mqs) || mqs.length !== this.#queues.length) {
      throw new StateError(`${this.id}: queue register count mismatch`);
    }
    for (const m of mqs) {
      if (!u32(m.num) || typeof m.enabled !== "boolean" || !pair(m.desc) || !pair(m.avail) || !pair(m.used)) {
        throw new StateError(`${this.id}: bad queue registers`);
      }
    }
    if ((s.device === null) !== (this.#dev === null)) {
      throw new StateError(`${this.id}: plugged device mismatch`);
    }
    // Validate queues on scratch copies first so a bad state leaves this transport untouched.
    const scratch = queues.map((qs, i) => {
      const q = new Virtqueue(i, this.#queues[i].defaultSize, this.#ctx);
      const err = q.loadState(qs);
      if (err !== null) throw new StateError(`${this.id}: queue ${i}: ${err}`);
      return q;
    });
    if (this.#dev !== null) this.#dev.loadState(s.device as DeviceState);
    this.#queues.forEach((q, i) => q.loadState(scratch[i].saveState()));
    this.#status = (s.status as number) & 0xff;
    this.#isr = (s.isr as number) & 3;
    this.#queueSel = Math.min(s.queueSel as number, VIRTIO_QUEUE_MAX - 1);
    this.#hostFeaturesSel = (s.hostFeaturesSel as number) ? 1 : 0;
    this.#guestFeaturesSel = (s.guestFeaturesSel as number) ? 1 : 0;
    this.#guestPageShift = Math.min(s.guestPageShift as number, 31);
    [this.#gfLo, this.#gfHi] = s.guestFeatures as [number, number];
    this.#guestFeaturesStaged = [...(s.guestFeaturesStaged as [number, number])];
    this.#generation = s.generation as number;
    this.#broken = s.broken as boolean;
    this.#modernQueues = mqs.map((m) => ({
      num: m.num,
      enabled: m.enabled,
      desc: [m.desc[0], m.desc[1]],
      avail: [m.avail[0], m.avail[1]],
      used: [m.used[0], m.used[1]],
    }));
    this.#updateIrq();
  }
}
