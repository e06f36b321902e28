/**
 * virtio-9p ("virtio-9p-device", virtio 1.2 §5.19 is silent; the device is QEMU 7.2 hw/9pfs/virtio-9p-device.c):
 * one request queue of 128 entries; each chain carries one 9P message in its driver-readable part and room
 * for the reply in its device-writable part. Config space is the mount tag (le16 length, then the bytes),
 * offered with feature bit 0 (VIRTIO_9P_MOUNT_TAG). The protocol lives in p9_server.ts.
 * @module
 */
import { type DeviceState, type PropDef, StateError, UserError } from "../../core/types.ts";
import type { FsBackend } from "../../core/fsdev.ts";
import {
  commonFeatures,
  commonPropertyValues,
  featureBit,
  VIRTIO_COMMON_PROPS,
  VIRTIO_ID_9P,
  type VirtioCommon,
  virtioCommon,
  type VirtioCommonOptions,
  type VirtioContext,
  type VirtioDevice,
} from "./device.ts";
import { P9Server } from "./p9_server.ts";

/** Feature bit: the config space holds a mount tag. */
export const VIRTIO_9P_MOUNT_TAG = 0;
/** Longest mount tag (QEMU MAX_TAG_LEN). */
export const MAX_TAG_LEN = 255;
/** Queue size (QEMU MAX_REQ). */
const QUEUE_SIZE = 128;
/** A request larger than this is cut (the msize bounds real ones; this bounds a hostile descriptor chain). */
const MAX_REQUEST_BYTES = 4 << 20;

/** Properties of virtio-9p-device in info qtree order. */
export const VIRTIO_9P_PROPS: readonly PropDef[] = [
  { name: "mount_tag", type: "str", help: "the tag the guest mounts (mount -t 9p TAG)" },
  { name: "fsdev", type: "str", help: "ID of a -fsdev" },
  ...VIRTIO_COMMON_PROPS,
];

/** Options of virtio-9p-device. */
export interface VirtioP9Options extends VirtioCommonOptions {
  id: string;
  fs: FsBackend;
  fsdevName: string;
  mountTag: string;
}

/** virtio-9p-device. */
export class VirtioP9 implements VirtioDevice {
  static readonly TYPE_NAME = "virtio-9p-device";
  static readonly PROPS: readonly PropDef[] = VIRTIO_9P_PROPS;

  readonly id: string;
  readonly typeName: string = VirtioP9.TYPE_NAME;
  readonly deviceId: number = VIRTIO_ID_9P;
  readonly queueSizes: readonly number[] = [QUEUE_SIZE];
  readonly configSize: number;
  /** The protocol server (tests and the monitor read its counters). */
  readonly server: P9Server;
  readonly #common: VirtioCommon;
  readonly #config: Uint8Array;
  readonly #tag: string;
  readonly #fsdevName: string;
  #ctx: VirtioContext | null = null;

  /** @throws UserError on a missing or too long mount tag */
  constructor(o: VirtioP9Options) {
    this.id = o.id;
    this.#common = virtioCommon(o);
    this.#fsdevName = o.fsdevName;
    if (!o.mountTag) throw new UserError("virtio-9p-device: mount_tag property not set");
    const tag = new TextEncoder().encode(o.mountTag);
    if (tag.length > MAX_TAG_LEN) {
      throw new UserError(
        `mount tag '${o.mountTag}' (${tag.length} bytes) is longer than maximum (${MAX_TAG_LEN} bytes)`,
      );
    }
    this.#tag = o.mountTag;
    this.#config = new Uint8Array(2 + tag.length);
    this.#config[0] = tag.length & 0xff;
    this.#config[1] = tag.length >> 8;
    this.#config.set(tag, 2);
    this.configSize = this.#config.length;
    this.server = new P9Server(o.fs);
  }

  hostFeatures(_modern: boolean): bigint {
    return commonFeatures(this.#common) | featureBit(VIRTIO_9P_MOUNT_TAG);
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | (this.#config[offset + i] ?? 0xff);
    return v >>> 0;
  }

  writeConfig(): void {
    // The mount tag is read-only.
  }

  attach(ctx: VirtioContext): void {
    this.#ctx = ctx;
  }

  queueNotify(_index: number): void {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk) return;
    const q = ctx.queues[0];
    let done = 0;
    for (;;) {
      const e = q.pop();
      if (e === null) break;
      const n = Math.min(e.outBytes, MAX_REQUEST_BYTES);
      if (n < 7) {
        // QEMU handle_9p_output: a request without a full header breaks the device.
        ctx.fail("Malformed 9p request");
        return;
      }
      const req = new Uint8Array(n);
      e.readOut(ctx.mem, 0, req);
      const reply = this.server.handle(req, e.inBytes);
      if (reply.length > e.inBytes) {
        ctx.fail(`VirtFS reply type ${reply[4]} needs ${reply.length} bytes, buffer has ${e.inBytes}`);
        return;
      }
      const w = e.writeIn(ctx.mem, 0, reply);
      q.push(e, w);
      done++;
    }
    if (done > 0) ctx.notify(q);
  }

  reset(): void {
    this.server.reset();
  }

  saveState(): DeviceState {
    // Open host files cannot be carried across a snapshot; like QEMU (which blocks migration while the
    // export is mounted) we save only the tag, and a restored guest must remount.
    return { version: 1, tag: this.#tag };
  }

  loadState(s: DeviceState): void {
    if (s.version !== 1 || s.tag !== this.#tag) throw new StateError(`${this.id}: bad virtio-9p state`);
    this.server.reset();
  }

  propertyValues(): Record<string, string | number | boolean> {
    return {
      mount_tag: this.#tag,
      fsdev: this.#fsdevName,
      ...commonPropertyValues(this.hostFeatures(!(this.#ctx?.legacy ?? true))),
    };
  }
}
