/**
 * ioeventfd plumbing: guest writes KVM completes in the kernel (KVM_IOEVENTFD) signal eventfds; one poller
 * thread (a Worker blocked in poll(2), `_ioevent_worker.ts`) wakes when any of them is signalled, marks which,
 * and kicks the device thread out of KVM_RUN with SIGUSR2. The device thread then `drain()`s: it reads the
 * marked eventfds and runs their callbacks, so devices still run on the one thread that owns them
 * (STYLE.md §2.5). QEMU does the same with its main loop polling the host notifiers of virtio-mmio.
 * @module
 */
import { EFD_CLOEXEC, EFD_NONBLOCK, type Libc } from "./ffi.ts";

/** Slots of the shared Int32Array between the device thread and the poller. */
export const IOEV = {
  /** 1 while marked eventfds wait for the device thread's drain. */
  pending: 0,
  /** 1: the poller must leave. */
  quit: 1,
  /** Kernel tid of the device thread (kick target). */
  mainTid: 2,
  /** Number of eventfds in `fds`. */
  count: 3,
  /** The control eventfd that wakes the poller to quit. */
  control: 4,
  /** 1 once the poller has left its loop. */
  done: 5,
  /** Bitmap of signalled eventfds (8 words). */
  bits: 8,
  /** The eventfds, in registration order. */
  fds: 16,
} as const;
/** Most eventfds one poller serves (the bitmap's size). */
export const IOEV_MAX = 256;
/** Length of the shared array in 32-bit words. */
export const IOEV_WORDS = IOEV.fds + IOEV_MAX;

/** The start message of the poller Worker. */
export interface PollerStart {
  shared: SharedArrayBuffer;
}

/** Device-thread side of the eventfd poller: owns the eventfds, starts the Worker, drains signals. */
export class IoEventPoller {
  readonly #libc: Libc;
  readonly #w: Int32Array;
  readonly #fds: number[] = [];
  readonly #callbacks: Array<() => void> = [];
  readonly #buf = new Uint8Array(8);
  #worker: Worker | null = null;
  #closed = false;

  constructor(libc: Libc, mainTid: number) {
    this.#libc = libc;
    this.#w = new Int32Array(new SharedArrayBuffer(IOEV_WORDS * 4));
    this.#w[IOEV.mainTid] = mainTid;
    this.#w[IOEV.control] = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }

  /** Number of eventfds added. */
  get size(): number {
    return this.#fds.length;
  }

  /** A new non-blocking eventfd whose signals run `cb` on the device thread; null when the poller is full. */
  add(cb: () => void): number | null {
    if (this.#fds.length >= IOEV_MAX || this.#worker !== null) return null;
    const fd = this.#libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    this.#w[IOEV.fds + this.#fds.length] = fd;
    this.#fds.push(fd);
    this.#callbacks.push(cb);
    this.#w[IOEV.count] = this.#fds.length;
    return fd;
  }

  /** Start the poller thread (after every add). */
  start(): void {
    if (this.#worker !== null || this.#fds.length === 0) return;
    this.#worker = new Worker(new URL("./_ioevent_worker.ts", import.meta.url).href, { type: "module" });
    const start: PollerStart = { shared: this.#w.buffer as SharedArrayBuffer };
    this.#worker.postMessage(start);
  }

  /** True when the poller has marked eventfds (cheap: one atomic load). */
  get pending(): boolean {
    return Atomics.load(this.#w, IOEV.pending) === 1;
  }

  /** Run the callbacks of the marked eventfds and let the poller go on; returns how many ran. */
  drain(): number {
    if (Atomics.load(this.#w, IOEV.pending) !== 1) return 0;
    let n = 0;
    for (let k = 0; k < IOEV_MAX / 32; k++) {
      let bits = Atomics.exchange(this.#w, IOEV.bits + k, 0);
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        n += this.#consume(k * 32 + b);
      }
    }
    Atomics.store(this.#w, IOEV.pending, 0);
    Atomics.notify(this.#w, IOEV.pending);
    return n;
  }

  /** Read every eventfd, marked or not, and run the callbacks of those signalled (after a deassign). */
  drainAll(): number {
    let n = 0;
    for (let i = 0; i < this.#fds.length; i++) n += this.#consume(i);
    return n;
  }

  /** Read every eventfd and drop the signals without running callbacks (system_reset: old guest's writes). */
  discardAll(): void {
    for (const fd of this.#fds) this.#libc.read(fd, this.#buf);
    for (let k = 0; k < IOEV_MAX / 32; k++) Atomics.store(this.#w, IOEV.bits + k, 0);
    if (Atomics.load(this.#w, IOEV.pending) === 1) {
      Atomics.store(this.#w, IOEV.pending, 0);
      Atomics.notify(this.#w, IOEV.pending);
    }
  }

  #consume(i: number): number {
    const fd = this.#fds[i];
    if (fd === undefined || this.#libc.read(fd, this.#buf) !== 8) return 0;
    this.#callbacks[i]();
    return 1;
  }

  /** Stop the poller thread and close every eventfd. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const w = this.#w;
    if (this.#worker !== null) {
      Atomics.store(w, IOEV.quit, 1);
      Atomics.notify(w, IOEV.pending);
      const one = new Uint8Array(8);
      one[0] = 1;
      this.#libc.write(w[IOEV.control], one);
      const end = performance.now() + 500;
      while (Atomics.load(w, IOEV.done) === 0 && performance.now() < end) Atomics.wait(w, IOEV.done, 0, 20);
      this.#worker.terminate();
      this.#worker = null;
    }
    for (const fd of this.#fds) this.#libc.close(fd);
    this.#libc.close(w[IOEV.control]);
  }
}
