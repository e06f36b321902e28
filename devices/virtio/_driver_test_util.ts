/**
 * Test-only: a minimal register-level virtio-mmio driver (the qtest way: plain MMIO reads/writes plus rings in
 * FakeMemory), shared by the virtio unit tests. Not imported by production code.
 * @module
 */
import type { FakeMemory } from "../../tests/fakes.ts";
import {
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_GUEST_PAGE_SIZE,
  VIRTIO_MMIO_INTERRUPT_ACK,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_QUEUE_ALIGN,
  VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
  VIRTIO_MMIO_QUEUE_AVAIL_LOW,
  VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_PFN,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_USED_HIGH,
  VIRTIO_MMIO_QUEUE_USED_LOW,
  VIRTIO_MMIO_STATUS,
  type VirtioMmio,
} from "./mmio.ts";
import { VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from "./queue.ts";

/** One buffer of a chain: guest address, length, device-writable. */
export interface TestBuf {
  addr: number;
  len: number;
  write?: boolean;
  /** Extra descriptor flags (e.g. INDIRECT). */
  flags?: number;
}

/** Where the test driver puts queue `i` (page aligned, 64 KiB apart). */
export function ringBase(i: number): number {
  return 0x10000 + i * 0x10000;
}

/** A register-level driver for one transport. */
export class TestDriver {
  readonly t: VirtioMmio;
  readonly mem: FakeMemory;
  readonly #size = new Map<number, number>();
  readonly #nextDesc = new Map<number, number>();
  readonly #availIdx = new Map<number, number>();
  readonly #rings = new Map<number, { desc: number; avail: number; used: number }>();

  constructor(t: VirtioMmio, mem: FakeMemory) {
    this.t = t;
    this.mem = mem;
  }

  r(off: number): number {
    return this.t.read(off, 4);
  }
  w(off: number, v: number): void {
    this.t.write(off, 4, v);
  }

  /** Offered features (both words). */
  hostFeatures(): bigint {
    this.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    const hi = this.r(VIRTIO_MMIO_DEVICE_FEATURES);
    this.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    const lo = this.r(VIRTIO_MMIO_DEVICE_FEATURES);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** Linux's probe order: reset, ACK, DRIVER, features, FEATURES_OK (modern), queues, DRIVER_OK. */
  init(opts: { features?: (offered: bigint) => bigint; queues: number[]; size?: number }): bigint {
    this.w(VIRTIO_MMIO_STATUS, 0);
    this.w(VIRTIO_MMIO_STATUS, 1);
    this.w(VIRTIO_MMIO_STATUS, 3);
    const offered = this.hostFeatures();
    const f = opts.features ? opts.features(offered) : offered;
    this.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    this.w(VIRTIO_MMIO_DRIVER_FEATURES, Number(f >> 32n) >>> 0);
    this.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    this.w(VIRTIO_MMIO_DRIVER_FEATURES, Number(f & 0xffffffffn));
    let st = 3;
    if (!this.t.legacy) {
      this.w(VIRTIO_MMIO_STATUS, 0xb);
      st = this.r(VIRTIO_MMIO_STATUS);
      if (!(st & 8)) return f;
    }
    for (const q of opts.queues) this.setupQueue(q, opts.size ?? 16);
    this.w(VIRTIO_MMIO_STATUS, st | 4);
    return f;
  }

  setupQueue(i: number, size: number): void {
    const base = ringBase(i);
    this.w(VIRTIO_MMIO_QUEUE_SEL, i);
    if (this.r(VIRTIO_MMIO_QUEUE_NUM_MAX) === 0) throw new Error(`queue ${i} does not exist`);
    this.w(VIRTIO_MMIO_QUEUE_NUM, size);
    const desc = base;
    const avail = desc + 16 * size;
    let used: number;
    if (this.t.legacy) {
      this.w(VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096);
      this.w(VIRTIO_MMIO_QUEUE_ALIGN, 4096);
      this.w(VIRTIO_MMIO_QUEUE_PFN, base / 4096);
      used = Math.ceil((avail + 4 + 2 * size) / 4096) * 4096;
    } else {
      used = Math.ceil((avail + 6 + 2 * size) / 4) * 4;
      this.w(VIRTIO_MMIO_QUEUE_DESC_LOW, desc);
      this.w(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
      this.w(VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail);
      this.w(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
      this.w(VIRTIO_MMIO_QUEUE_USED_LOW, used);
      this.w(VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
      this.w(VIRTIO_MMIO_QUEUE_READY, 1);
    }
    this.#size.set(i, size);
    this.#nextDesc.set(i, 0);
    this.#availIdx.set(i, 0);
    this.#rings.set(i, { desc, avail, used });
  }

  rings(i: number): { desc: number; avail: number; used: number } {
    return this.#rings.get(i)!;
  }

  /** Write raw descriptor `d` of queue `i`. */
  writeDesc(i: number, d: number, addr: number, len: number, flags: number, next: number): void {
    const base = this.rings(i).desc + 16 * d;
    this.mem.writeU64(base, addr);
    this.mem.writeU32(base + 8, len);
    this.mem.writeU16(base + 12, flags);
    this.mem.writeU16(base + 14, next);
  }

  /** Put `head` in the avail ring and bump avail idx (no kick). */
  publish(i: number, head: number): void {
    const size = this.#size.get(i)!;
    const idx = this.#availIdx.get(i)!;
    const { avail } = this.rings(i);
    this.mem.writeU16(avail + 4 + 2 * (idx % size), head);
    this.#availIdx.set(i, (idx + 1) & 0xffff);
    this.mem.writeU16(avail + 2, (idx + 1) & 0xffff);
  }

  /** Add a chain of buffers; returns its head descriptor index. */
  addChain(i: number, bufs: TestBuf[]): number {
    const size = this.#size.get(i)!;
    let d = this.#nextDesc.get(i)!;
    const head = d;
    for (let k = 0; k < bufs.length; k++) {
      const b = bufs[k];
      const next = (d + 1) % size;
      const flags = (b.write ? VRING_DESC_F_WRITE : 0) | (k + 1 < bufs.length ? VRING_DESC_F_NEXT : 0) |
        (b.flags ?? 0);
      this.writeDesc(i, d, b.addr, b.len, flags, next);
      d = next;
    }
    this.#nextDesc.set(i, d);
    this.publish(i, head);
    return head;
  }

  kick(i: number): void {
    this.w(VIRTIO_MMIO_QUEUE_NOTIFY, i);
  }

  usedIdx(i: number): number {
    return this.mem.readU16(this.rings(i).used + 2);
  }

  /** Used ring entry `n` of queue `i`. */
  used(i: number, n: number): { id: number; len: number } {
    const size = this.#size.get(i)!;
    const base = this.rings(i).used + 4 + 8 * (n % size);
    return { id: this.mem.readU32(base), len: this.mem.readU32(base + 4) };
  }

  isr(): number {
    return this.r(VIRTIO_MMIO_INTERRUPT_STATUS);
  }

  ack(bits = 3): void {
    this.w(VIRTIO_MMIO_INTERRUPT_ACK, bits);
  }
}
