/**
 * Split virtqueues (virtio 1.2 §2.7): descriptor table, available and used rings in guest memory, with
 * indirect descriptors and EVENT_IDX. Every guest access goes through GuestMemory; a driver that breaks the
 * protocol makes the queue call `env.fail()` (QEMU virtio_error: the device then needs a reset) and get
 * nothing back — never a host exception. Checks and messages follow QEMU 7.2 virtqueue_split_pop().
 * @module
 */
import type { GuestMemory } from "../../core/types.ts";
import { VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_RING_F_EVENT_IDX } from "./device.ts";

/** Descriptor flags (virtio 1.2 §2.7.5). */
export const VRING_DESC_F_NEXT = 0x1;
export const VRING_DESC_F_WRITE = 0x2;
export const VRING_DESC_F_INDIRECT = 0x4;
/** avail->flags: the driver does not want interrupts (ignored with EVENT_IDX). */
export const VRING_AVAIL_F_NO_INTERRUPT = 0x1;
/** used->flags: the device does not want notifications. */
export const VRING_USED_F_NO_NOTIFY = 0x1;

const DESC_SIZE = 16;

/** What a queue needs from its transport. */
export interface QueueEnv {
  readonly mem: GuestMemory;
  /** True when the driver accepted feature `bit`. */
  hasFeature(bit: number): boolean;
  /** True once the device was marked broken (no further queue processing until reset). */
  readonly broken: boolean;
  /** Mark the device broken (QEMU virtio_error). */
  fail(msg: string): void;
}

/** One popped request: the descriptor chain split into driver-readable (out) and device-writable (in) buffers. */
export class VirtqElement {
  /** Head descriptor index (returned in the used ring). */
  readonly head: number;
  readonly outAddr: number[] = [];
  readonly outLen: number[] = [];
  readonly inAddr: number[] = [];
  readonly inLen: number[] = [];
  /** Total bytes of out / in buffers. */
  outBytes = 0;
  inBytes = 0;
  constructor(head: number) {
    this.head = head;
  }

  /** Gather out bytes from `offset` into `dst`; returns how many were copied. */
  readOut(mem: GuestMemory, offset: number, dst: Uint8Array): number {
    return gather(mem, this.outAddr, this.outLen, offset, dst);
  }

  /** Scatter `src` into the in buffers from `offset`; returns how many were copied. */
  writeIn(mem: GuestMemory, offset: number, src: Uint8Array): number {
    return scatter(mem, this.inAddr, this.inLen, offset, src);
  }
}

function gather(mem: GuestMemory, addrs: number[], lens: number[], offset: number, dst: Uint8Array): number {
  let done = 0;
  let skip = offset;
  for (let i = 0; i < addrs.length && done < dst.length; i++) {
    const len = lens[i];
    if (skip >= len) {
      skip -= len;
      continue;
    }
    const n = Math.min(len - skip, dst.length - done);
    if (!mem.readInto(addrs[i] + skip, dst.subarray(done, done + n))) return done;
    done += n;
    skip = 0;
  }
  return done;
}

function scatter(mem: GuestMemory, addrs: number[], lens: number[], offset: number, src: Uint8Array): number {
  let done = 0;
  let skip = offset;
  for (let i = 0; i < addrs.length && done < src.length; i++) {
    const len = lens[i];
    if (skip >= len) {
      skip -= len;
      continue;
    }
    const n = Math.min(len - skip, src.length - done);
    if (!mem.write(addrs[i] + skip, src.subarray(done, done + n))) return done;
    done += n;
    skip = 0;
  }
  return done;
}

/** Saved state of one queue. */
export interface VirtqueueState {
  num: number;
  desc: number;
  avail: number;
  used: number;
  align: number;
  lastAvail: number;
  usedIdx: number;
  signalledUsed: number;
  signalledUsedValid: boolean;
  inuse: number;
}

/** A split virtqueue: ring addresses and device-side indices. */
export class Virtqueue {
  /** Queue number within its device. */
  readonly index: number;
  /** Size the device created the queue with (QEMU num_default). */
  readonly defaultSize: number;
  readonly #env: QueueEnv;
  #num: number;
  #desc = 0;
  #avail = 0;
  #used = 0;
  /** Legacy ring alignment (QueueAlign), used to place the used ring after QueuePFN. */
  #align = 4096;
  #lastAvail = 0;
  #usedIdx = 0;
  #signalledUsed = 0;
  #signalledUsedValid = false;
  #inuse = 0;

  constructor(index: number, defaultSize: number, env: QueueEnv) {
    this.index = index;
    this.defaultSize = defaultSize;
    this.#num = defaultSize;
    this.#env = env;
  }

  /** Current number of entries (QueueNum). */
  get size(): number {
    return this.#num;
  }
  get descAddr(): number {
    return this.#desc;
  }
  get availAddr(): number {
    return this.#avail;
  }
  get usedAddr(): number {
    return this.#used;
  }
  /** Requests popped and not yet pushed back. */
  get inuse(): number {
    return this.#inuse;
  }
  /** Next avail index the device will read. */
  get lastAvailIdx(): number {
    return this.#lastAvail;
  }
  /** Used index the device last published. */
  get usedIdx(): number {
    return this.#usedIdx;
  }
  /** The driver set up rings (QEMU: vring.desc != 0). */
  get ready(): boolean {
    return this.#desc !== 0 && this.#num !== 0;
  }

  /** QueueNum write (QEMU virtio_queue_set_num): ignored when it would create/remove a queue or exceeds `max`. */
  setSize(num: number, max: number): boolean {
    if ((num !== 0) !== (this.#num !== 0) || num > max || num < 0) return false;
    this.#num = num;
    return true;
  }

  /** Modern layout: the three ring addresses (QEMU virtio_queue_set_rings). */
  setRings(desc: number, avail: number, used: number): void {
    if (this.#num === 0) return;
    this.#desc = desc;
    this.#avail = avail;
    this.#used = used;
  }

  /** Legacy layout: QueueAlign write. */
  setAlign(align: number): void {
    this.#align = align;
    this.#updateLegacyRings();
  }
  get align(): number {
    return this.#align;
  }

  /** Legacy layout: descriptor table at `addr`, avail after it, used at the next `align` boundary. */
  setLegacyAddr(addr: number): void {
    this.#desc = addr;
    this.#updateLegacyRings();
  }

  /** Recompute legacy avail/used after QueueNum or QueueAlign changed (QEMU virtio_queue_update_rings). */
  updateLegacyRings(): void {
    this.#updateLegacyRings();
  }

  #updateLegacyRings(): void {
    if (this.#num === 0 || this.#desc === 0 || this.#align === 0) return;
    const safe = (a: number) => Number.isSafeInteger(a) ? a : Number.MAX_SAFE_INTEGER; // beyond any RAM
    this.#avail = safe(this.#desc + this.#num * DESC_SIZE);
    const availEnd = this.#avail + 4 + 2 * this.#num;
    // QEMU aligns with a power-of-two mask; a non-power-of-two QueueAlign rounds the same way.
    this.#used = safe(Math.ceil(availEnd / this.#align) * this.#align);
  }

  /** Back to the state after device reset: no rings, default size, indices zero. */
  reset(): void {
    this.#num = this.defaultSize;
    this.#desc = this.#avail = this.#used = 0;
    this.#align = 4096;
    this.#lastAvail = this.#usedIdx = this.#signalledUsed = 0;
    this.#signalledUsedValid = false;
    this.#inuse = 0;
  }

  /** True when all three rings lie in RAM; otherwise the device is failed (QEMU "Cannot map vring"). */
  #ringsOk(): boolean {
    const mem = this.#env.mem;
    const n = this.#num;
    if (
      mem.isRam(this.#desc, n * DESC_SIZE) && mem.isRam(this.#avail, 6 + 2 * n) &&
      mem.isRam(this.#used, 6 + 8 * n)
    ) return true;
    this.#env.fail(`Cannot map vring ${this.index}`);
    return false;
  }

  /** Descriptors the driver made available that the device has not popped (0 on a broken/unready queue). */
  availCount(): number {
    if (!this.ready || this.#env.broken || !this.#ringsOk()) return 0;
    return (this.#env.mem.readU16(this.#avail + 2) - this.#lastAvail) & 0xffff;
  }

  /** True when nothing is available (QEMU virtio_queue_empty). */
  isEmpty(): boolean {
    return this.availCount() === 0;
  }

  /** Device-writable bytes of the next available chain without popping it (0 if none or malformed). */
  peekInBytes(): number {
    const saveLast = this.#lastAvail;
    const e = this.#walk(false);
    this.#lastAvail = saveLast;
    return e === null ? 0 : e.inBytes;
  }

  /** Take the next available chain, or null (none, not ready, or a protocol error that failed the device). */
  pop(): VirtqElement | null {
    return this.#walk(true);
  }

  #walk(consume: boolean): VirtqElement | null {
    const env = this.#env;
    if (env.broken || !this.ready || !this.#ringsOk()) return null;
    const mem = env.mem;
    const num = this.#num;
    const availIdx = mem.readU16(this.#avail + 2);
    const count = (availIdx - this.#lastAvail) & 0xffff;
    if (count > num) {
      env.fail(`Guest moved used index from ${this.#lastAvail} to ${availIdx}`);
      return null;
    }
    if (count === 0) return null;
    if (consume && this.#inuse >= num) {
      env.fail("Virtqueue size exceeded");
      return null;
    }
    const head = mem.readU16(this.#avail + 4 + 2 * (this.#lastAvail % num));
    if (head >= num) {
      env.fail(`Guest says index ${head} is available`);
      return null;
    }
    const elem = new VirtqElement(head);
    let table = this.#desc;
    let max = num;
    let i = head;
    let addr = mem.readU64(table + i * DESC_SIZE);
    let len = mem.readU32(table + i * DESC_SIZE + 8);
    let flags = mem.readU16(table + i * DESC_SIZE + 12);
    let indirect = false;
    if (flags & VRING_DESC_F_INDIRECT) {
      indirect = true;
      // Indirect table: its length must be a whole number of descriptors and lie in RAM (virtio 1.2 §2.7.5.3).
      if (len === 0 || len % DESC_SIZE !== 0) {
        env.fail("Invalid size for indirect buffer table");
        return null;
      }
      if (addr < 0 || !mem.isRam(addr, len)) {
        env.fail("Cannot map indirect buffer");
        return null;
      }
      table = addr;
      max = len / DESC_SIZE;
      i = 0;
      addr = mem.readU64(table);
      len = mem.readU32(table + 8);
      flags = mem.readU16(table + 12);
    }
    // Hop budget: a chain has at most `max` descriptors; more means a loop (QEMU "Looped descriptor").
    for (;;) {
      if (indirect && (flags & VRING_DESC_F_INDIRECT)) {
        env.fail("Indirect descriptor in indirect table");
        return null;
      }
      if (len === 0) {
        env.fail("zero sized buffers are not allowed");
        return null;
      }
      if (addr < 0 || !mem.isRam(addr, len)) {
        env.fail("bogus descriptor or out of resources");
        return null;
      }
      if (flags & VRING_DESC_F_WRITE) {
        elem.inAddr.push(addr);
        elem.inLen.push(len);
        elem.inBytes += len;
      } else {
        if (elem.inAddr.length > 0) {
          env.fail("Incorrect order for descriptors");
          return null;
        }
        elem.outAddr.push(addr);
        elem.outLen.push(len);
        elem.outBytes += len;
      }
      if (elem.inAddr.length + elem.outAddr.length > max) {
        env.fail("Looped descriptor");
        return null;
      }
      if (!(flags & VRING_DESC_F_NEXT)) break;
      const next = mem.readU16(table + i * DESC_SIZE + 14);
      if (next >= max) {
        env.fail(`Desc next is ${next}`);
        return null;
      }
      i = next;
      addr = mem.readU64(table + i * DESC_SIZE);
      len = mem.readU32(table + i * DESC_SIZE + 8);
      flags = mem.readU16(table + i * DESC_SIZE + 12);
    }
    if (!consume) return elem;
    this.#lastAvail = (this.#lastAvail + 1) & 0xffff;
    this.#inuse++;
    // EVENT_IDX: tell the driver which avail index we want the next kick at (virtio 1.2 §2.7.10).
    if (env.hasFeature(VIRTIO_RING_F_EVENT_IDX)) mem.writeU16(this.#used + 4 + 8 * num, this.#lastAvail);
    return elem;
  }

  /** Return a finished element with `len` bytes written into its in buffers (QEMU virtqueue_push). */
  push(elem: VirtqElement, len: number): void {
    const env = this.#env;
    if (env.broken || !this.ready || !this.#ringsOk()) return;
    const mem = env.mem;
    const slot = this.#usedIdx % this.#num;
    mem.writeU32(this.#used + 4 + 8 * slot, elem.head);
    mem.writeU32(this.#used + 8 + 8 * slot, len >>> 0);
    this.#usedIdx = (this.#usedIdx + 1) & 0xffff;
    mem.writeU16(this.#used + 2, this.#usedIdx);
    if (this.#inuse > 0) this.#inuse--;
  }

  /** Whether the driver wants an interrupt for what was pushed since the last one (QEMU virtio_should_notify). */
  shouldNotify(): boolean {
    const env = this.#env;
    if (!this.ready || env.broken || !this.#ringsOk()) return false;
    const mem = env.mem;
    if (env.hasFeature(VIRTIO_F_NOTIFY_ON_EMPTY) && this.#inuse === 0 && this.availCount() === 0) return true;
    if (!env.hasFeature(VIRTIO_RING_F_EVENT_IDX)) {
      return (mem.readU16(this.#avail) & VRING_AVAIL_F_NO_INTERRUPT) === 0;
    }
    const valid = this.#signalledUsedValid;
    this.#signalledUsedValid = true;
    const old = this.#signalledUsed;
    const now = this.#usedIdx;
    this.#signalledUsed = now;
    const usedEvent = mem.readU16(this.#avail + 4 + 2 * this.#num);
    // vring_need_event(event, new, old): (u16)(new - event - 1) < (u16)(new - old)
    return !valid || ((now - usedEvent - 1) & 0xffff) < ((now - old) & 0xffff);
  }

  saveState(): VirtqueueState {
    return {
      num: this.#num,
      desc: this.#desc,
      avail: this.#avail,
      used: this.#used,
      align: this.#align,
      lastAvail: this.#lastAvail,
      usedIdx: this.#usedIdx,
      signalledUsed: this.#signalledUsed,
      signalledUsedValid: this.#signalledUsedValid,
      inuse: this.#inuse,
    };
  }

  /** Restore; returns an error sentence for invalid state instead of applying it. */
  loadState(s: VirtqueueState): string | null {
    const u16 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff;
    const addr = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
    if (!Number.isInteger(s.num) || s.num < 0 || s.num > 1024) return `bad queue size ${s.num}`;
    if (!addr(s.desc) || !addr(s.avail) || !addr(s.used) || !addr(s.align)) return "bad ring address";
    if (!u16(s.lastAvail) || !u16(s.usedIdx) || !u16(s.signalledUsed)) return "bad ring index";
    if (typeof s.signalledUsedValid !== "boolean" || !Number.isInteger(s.inuse) || s.inuse < 0) {
      return "bad queue state";
    }
    this.#num = s.num;
    this.#desc = s.desc;
    this.#avail = s.avail;
    this.#used = s.used;
    this.#align = s.align;
    this.#lastAvail = s.lastAvail;
    this.#usedIdx = s.usedIdx;
    this.#signalledUsed = s.signalledUsed;
    this.#signalledUsedValid = s.signalledUsedValid;
    this.#inuse = s.inuse;
    return null;
  }
}
