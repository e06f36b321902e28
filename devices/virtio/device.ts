/**
 * The device side of virtio: what a virtio device (blk, console, rng…) implements and what its transport
 * (virtio/mmio.ts) hands it. Transport and device are separate classes (STYLE.md §2.2): the device sees
 * feature bits, config bytes, queues and an interrupt request; the transport owns registers and status.
 * Feature and status numbers follow the virtio 1.2 spec §2.1, §6 and QEMU 7.2 hw/virtio/virtio.c.
 * @module
 */
import type { DeviceState, GuestLog, GuestMemory, PropDef } from "../../core/types.ts";
import type { Virtqueue } from "./queue.ts";

/** Device status bits (virtio 1.2 §2.1). */
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 0x01;
export const VIRTIO_CONFIG_S_DRIVER = 0x02;
export const VIRTIO_CONFIG_S_DRIVER_OK = 0x04;
export const VIRTIO_CONFIG_S_FEATURES_OK = 0x08;
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
export const VIRTIO_CONFIG_S_FAILED = 0x80;

/** Transport/ring feature bit numbers (virtio 1.2 §6). */
export const VIRTIO_F_NOTIFY_ON_EMPTY = 24;
export const VIRTIO_F_ANY_LAYOUT = 27;
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_BAD_FEATURE = 30;
export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_ACCESS_PLATFORM = 33;
export const VIRTIO_F_RING_PACKED = 34;
export const VIRTIO_F_RING_RESET = 40;

/** Feature bits a modern (v2) transport hides from the driver (QEMU VIRTIO_LEGACY_FEATURES). */
export const VIRTIO_LEGACY_FEATURES: bigint = (1n << BigInt(VIRTIO_F_BAD_FEATURE)) |
  (1n << BigInt(VIRTIO_F_NOTIFY_ON_EMPTY)) | (1n << BigInt(VIRTIO_F_ANY_LAYOUT));

/** Device ids (virtio 1.2 §5). */
export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_CONSOLE = 3;
export const VIRTIO_ID_RNG = 4;
export const VIRTIO_ID_BALLOON = 5;
export const VIRTIO_ID_9P = 9;
export const VIRTIO_ID_VSOCK = 19;

/** Largest queue a transport offers (QEMU VIRTQUEUE_MAX_SIZE, read back as QueueNumMax). */
export const VIRTQUEUE_MAX_SIZE = 1024;
/** Queue index limit of QueueSel/QueueNotify (QEMU VIRTIO_QUEUE_MAX). */
export const VIRTIO_QUEUE_MAX = 1024;

/** 1n << bit, for feature masks. */
export function featureBit(bit: number): bigint {
  return 1n << BigInt(bit);
}

/** What the transport gives a plugged device: memory, queues and the ways to signal the driver. */
export interface VirtioContext {
  readonly mem: GuestMemory;
  readonly log: GuestLog;
  /** True on a legacy (virtio-mmio version 1) transport. */
  readonly legacy: boolean;
  /** The device's queues, index = virtio queue number. */
  readonly queues: readonly Virtqueue[];
  /** True once the driver set DRIVER_OK (and the device is not broken). */
  readonly driverOk: boolean;
  /** True when the driver accepted feature `bit`. */
  hasFeature(bit: number): boolean;
  /** Used buffers were added to `q`: raise the used-buffer interrupt if the ring asks for one (virtio_notify). */
  notify(q: Virtqueue): void;
  /** Config space changed (virtio_notify_config): bumps ConfigGeneration, interrupts once DRIVER_OK. */
  notifyConfig(): void;
  /** The driver broke the protocol (QEMU virtio_error): mark the device as needing reset. */
  fail(msg: string): void;
}

/** A virtio device as a transport drives it. All methods are synchronous and never throw for guest input. */
export interface VirtioDevice {
  readonly id: string;
  /** QEMU type name ("virtio-blk-device"). */
  readonly typeName: string;
  /** Virtio device id (2 = block …). */
  readonly deviceId: number;
  /** Default size of each queue (QEMU virtio_add_queue); the number of entries is the number of queues. */
  readonly queueSizes: readonly number[];
  /** Feature bits offered, including ring bits from the common properties; `modern` adds/removes layout-specific bits. */
  hostFeatures(modern: boolean): bigint;
  /** Bytes of device config space (reads past it return all-ones). */
  readonly configSize: number;
  /** Read `size` bytes little-endian at `offset` of config space (offset + size <= configSize). */
  readConfig(offset: number, size: 1 | 2 | 4): number;
  /** Write config space (offset + size <= configSize). */
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void;
  /** Called once when plugged into a transport. */
  attach(ctx: VirtioContext): void;
  /** The driver notified queue `index` (which exists and has rings). */
  queueNotify(index: number): void;
  /** Features accepted by the driver (legacy: each GuestFeatures write; v2: at FEATURES_OK). */
  setFeatures?(features: bigint): void;
  /** The status register changed (after the transport accepted the transition). */
  statusChanged?(status: number): void;
  /** Device reset (status 0 written, or machine reset). Queues are reset by the transport. */
  reset(): void;
  saveState(): DeviceState;
  loadState(state: DeviceState): void;
  /** Current property values for `info qtree`, in table order. */
  propertyValues(): Record<string, string | number | boolean>;
}

/** Common virtio properties (DEFINE_VIRTIO_COMMON_FEATURES and friends in QEMU 7.2), as info qtree lists them. */
export const VIRTIO_COMMON_PROPS: readonly PropDef[] = [
  { name: "indirect_desc", type: "bool", default: true, help: "on/off" },
  { name: "event_idx", type: "bool", default: true, help: "on/off" },
  { name: "notify_on_empty", type: "bool", default: true, help: "on/off" },
  { name: "any_layout", type: "bool", default: true, help: "on/off" },
  { name: "iommu_platform", type: "bool", default: false, help: "on/off (accepted, must be off)" },
  { name: "packed", type: "bool", default: false, help: "on/off (accepted, must be off)" },
  { name: "queue_reset", type: "bool", default: true, help: "on/off" },
  { name: "use-started", type: "bool", default: true, help: "on/off" },
  { name: "use-disabled-flag", type: "bool", default: true, help: "on/off" },
  { name: "x-disable-legacy-check", type: "bool", default: false, help: "on/off" },
];

/** Options shared by every virtio device (the common properties). */
export interface VirtioCommonOptions {
  indirectDesc?: boolean;
  eventIdx?: boolean;
  notifyOnEmpty?: boolean;
  anyLayout?: boolean;
  queueReset?: boolean;
}

/** Resolved common properties. */
export interface VirtioCommon {
  indirectDesc: boolean;
  eventIdx: boolean;
  notifyOnEmpty: boolean;
  anyLayout: boolean;
  queueReset: boolean;
}

/** Fill in defaults for the common properties. */
export function virtioCommon(o: VirtioCommonOptions): VirtioCommon {
  return {
    indirectDesc: o.indirectDesc ?? true,
    eventIdx: o.eventIdx ?? true,
    notifyOnEmpty: o.notifyOnEmpty ?? true,
    anyLayout: o.anyLayout ?? true,
    queueReset: o.queueReset ?? true,
  };
}

/** Feature bits the common properties contribute (QEMU host_features defaults). */
export function commonFeatures(c: VirtioCommon): bigint {
  let f = 0n;
  if (c.indirectDesc) f |= featureBit(VIRTIO_RING_F_INDIRECT_DESC);
  if (c.eventIdx) f |= featureBit(VIRTIO_RING_F_EVENT_IDX);
  if (c.notifyOnEmpty) f |= featureBit(VIRTIO_F_NOTIFY_ON_EMPTY);
  if (c.anyLayout) f |= featureBit(VIRTIO_F_ANY_LAYOUT);
  if (c.queueReset) f |= featureBit(VIRTIO_F_RING_RESET);
  return f;
}

/** Property values of the common properties for info qtree (`hostFeatures` = what the device offers). */
export function commonPropertyValues(hostFeatures: bigint): Record<string, boolean> {
  const has = (bit: number) => (hostFeatures & featureBit(bit)) !== 0n;
  return {
    indirect_desc: has(VIRTIO_RING_F_INDIRECT_DESC),
    event_idx: has(VIRTIO_RING_F_EVENT_IDX),
    notify_on_empty: has(VIRTIO_F_NOTIFY_ON_EMPTY),
    any_layout: has(VIRTIO_F_ANY_LAYOUT),
    iommu_platform: false,
    packed: false,
    queue_reset: has(VIRTIO_F_RING_RESET),
    "use-started": true,
    "use-disabled-flag": true,
    "x-disable-legacy-check": false,
  };
}

/** Read `size` bytes little-endian from a config byte array; out of range reads return all-ones (QEMU virtio_config_read*). */
export function configRead(bytes: Uint8Array, offset: number, size: 1 | 2 | 4): number {
  if (offset < 0 || offset + size > bytes.length) return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = (v << 8) | bytes[offset + i];
  return v >>> 0;
}

/** Write `size` bytes little-endian into a config byte array; out of range writes are dropped. Returns false if dropped. */
export function configWrite(bytes: Uint8Array, offset: number, size: 1 | 2 | 4, value: number): boolean {
  if (offset < 0 || offset + size > bytes.length) return false;
  for (let i = 0; i < size; i++) bytes[offset + i] = (value >>> (8 * i)) & 0xff;
  return true;
}
