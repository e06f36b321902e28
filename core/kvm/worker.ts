/**
 * Application-processor vCPU threads: one Worker per AP runs KVM_RUN on its own thread; every PIO/MMIO
 * exit is forwarded to the thread that owns the devices (the BSP's, where `run()` was called) through a
 * SharedArrayBuffer mailbox, so devices still run on one thread (STYLE.md §2.5). The AP kicks the
 * device thread with SIGUSR2 (its KVM_RUN returns EINTR, it serves the mailbox) and sleeps in Atomics.wait
 * until the reply is written. A forwarded exit costs a thread round trip (measured in bench/kvm_bench.ts);
 * Linux APs rarely touch ports, and their LAPIC and kvmclock traffic stays in the kernel.
 *
 * This file is both the protocol (imported by mod.ts) and the Worker entry point (`self.onmessage`).
 * @module
 */
import { EAGAIN, EINTR, Libc, MAP_SHARED, PROT_READ, PROT_WRITE, SIGUSR2 } from "./ffi.ts";
import * as K from "./kvm_api.ts";

/** Mailbox slots (Int32Array indices). */
export const MB = {
  /** 0 idle, 1 request from the AP, 2 reply from the device thread. */
  state: 0,
  /** Request kind (REQ_*). */
  kind: 1,
  addrLo: 2,
  addrHi: 3,
  size: 4,
  value: 5,
  /** Control from the device thread: CTL_*. */
  ctl: 6,
  /** The AP thread's kernel tid (for kicks). */
  tid: 7,
  /** 1 while the AP is parked (paused or quitting). */
  parked: 8,
  length: 16,
} as const;

/** Request kinds. */
export const REQ_IO_READ = 1;
export const REQ_IO_WRITE = 2;
export const REQ_MMIO_READ = 3;
export const REQ_MMIO_WRITE = 4;
/** The AP stopped for good: `value` is EVT_*. */
export const REQ_EVENT = 5;
/** A level-triggered EOI (KVM_EXIT_IOAPIC_EOI): `value` is the vector. */
export const REQ_EOI = 6;
export const EVT_TRIPLE_FAULT = 1;
export const EVT_INTERNAL_ERROR = 2;
export const EVT_RESET = 3;
export const EVT_SHUTDOWN = 4;

export const CTL_RUN = 0;
export const CTL_PAUSE = 1;
export const CTL_QUIT = 2;

/** The start message a vCPU worker receives. */
export interface ApStart {
  fd: number;
  runSize: number;
  mailbox: SharedArrayBuffer;
  /** Kernel tid of the device thread (kicked on each request). */
  mainTid: number;
}

/** The AP side: run the vCPU, forward exits, park on pause, leave on quit. */
function apMain(msg: ApStart, post: (m: unknown) => void): void {
  const libc = new Libc();
  const mb = new Int32Array(msg.mailbox);
  libc.blockSignal(SIGUSR2);
  Atomics.store(mb, MB.tid, libc.gettid());
  const ptr = libc.mmap(msg.runSize, PROT_READ | PROT_WRITE, MAP_SHARED, msg.fd, 0);
  const run = new DataView(Deno.UnsafePointerView.getArrayBuffer(ptr, msg.runSize));
  const ioctl = libc.ioctlFast;
  post({ ready: true });

  const request = (kind: number, addr: number, size: number, value: number): number => {
    mb[MB.kind] = kind;
    mb[MB.addrLo] = addr | 0;
    mb[MB.addrHi] = Math.floor(addr / 0x100000000) | 0;
    mb[MB.size] = size;
    mb[MB.value] = value | 0;
    Atomics.store(mb, MB.state, 1);
    libc.tgkill(msg.mainTid, SIGUSR2);
    while (Atomics.load(mb, MB.state) === 1) Atomics.wait(mb, MB.state, 1, 50);
    const v = mb[MB.value] >>> 0;
    Atomics.store(mb, MB.state, 0);
    return v;
  };
  const stopFor = (evt: number): void => {
    request(REQ_EVENT, 0, 0, evt);
    Atomics.store(mb, MB.ctl, CTL_PAUSE);
  };

  for (;;) {
    const ctl = Atomics.load(mb, MB.ctl);
    if (ctl !== CTL_RUN) {
      Atomics.store(mb, MB.parked, 1);
      Atomics.notify(mb, MB.parked);
      if (ctl === CTL_QUIT) break;
      Atomics.wait(mb, MB.ctl, ctl, 100);
      continue;
    }
    Atomics.store(mb, MB.parked, 0);
    const rc = ioctl(msg.fd, K.KVM_RUN, 0n);
    if (rc < 0) {
      const e = libc.errno();
      if (e === EINTR || e === EAGAIN) {
        libc.eatSignal(SIGUSR2);
        continue;
      }
      stopFor(EVT_INTERNAL_ERROR);
      continue;
    }
    switch (run.getUint32(K.RUN.exit_reason, true)) {
      case K.KVM_EXIT_IO: {
        const dir = run.getUint8(K.RUN.io_direction);
        const size = run.getUint8(K.RUN.io_size);
        const port = run.getUint16(K.RUN.io_port, true);
        const count = run.getUint32(K.RUN.io_count, true);
        let off = Number(run.getBigUint64(K.RUN.io_data_offset, true));
        for (let i = 0; i < count; i++, off += size) {
          if (dir === K.KVM_EXIT_IO_OUT) {
            const v = size === 1
              ? run.getUint8(off)
              : size === 2
              ? run.getUint16(off, true)
              : run.getUint32(off, true);
            request(REQ_IO_WRITE, port, size, v);
          } else {
            const v = request(REQ_IO_READ, port, size, 0);
            if (size === 1) run.setUint8(off, v & 0xff);
            else if (size === 2) run.setUint16(off, v & 0xffff, true);
            else run.setUint32(off, v, true);
          }
        }
        break;
      }
      case K.KVM_EXIT_MMIO: {
        const addr = Number(run.getBigUint64(K.RUN.mmio_phys_addr, true));
        const len = run.getUint32(K.RUN.mmio_len, true);
        const write = run.getUint8(K.RUN.mmio_is_write) !== 0;
        const d = K.RUN.mmio_data;
        // Whole 1/2/4-byte accesses; 8 bytes as two 4-byte halves; anything else byte by byte.
        const parts: Array<[number, number]> = len === 8
          ? [[0, 4], [4, 4]]
          : len === 1 || len === 2 || len === 4
          ? [[0, len]]
          : Array.from({ length: Math.min(len, 8) }, (_, i) => [i, 1] as [number, number]);
        for (const [o, n] of parts) {
          if (write) {
            const v = n === 1
              ? run.getUint8(d + o)
              : n === 2
              ? run.getUint16(d + o, true)
              : run.getUint32(d + o, true);
            request(REQ_MMIO_WRITE, addr + o, n, v);
          } else {
            const v = request(REQ_MMIO_READ, addr + o, n, 0);
            if (n === 1) run.setUint8(d + o, v & 0xff);
            else if (n === 2) run.setUint16(d + o, v & 0xffff, true);
            else run.setUint32(d + o, v, true);
          }
        }
        break;
      }
      case K.KVM_EXIT_IOAPIC_EOI:
        request(REQ_EOI, 0, 0, run.getUint8(K.RUN.eoi_vector));
        break;
      case K.KVM_EXIT_INTR:
        libc.eatSignal(SIGUSR2);
        break;
      case K.KVM_EXIT_SHUTDOWN:
        stopFor(EVT_TRIPLE_FAULT);
        break;
      case K.KVM_EXIT_SYSTEM_EVENT: {
        const t = run.getUint32(K.RUN.system_event_type, true);
        stopFor(
          t === K.KVM_SYSTEM_EVENT_RESET
            ? EVT_RESET
            : t === K.KVM_SYSTEM_EVENT_SHUTDOWN
            ? EVT_SHUTDOWN
            : EVT_INTERNAL_ERROR,
        );
        break;
      }
      default:
        stopFor(EVT_INTERNAL_ERROR);
    }
  }
  libc.munmap(ptr, msg.runSize);
  libc.closeLibrary();
  post({ done: true });
}

// Worker entry point: only when loaded as a Worker (mod.ts imports this file for the protocol too).
// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
if (typeof scope.WorkerGlobalScope !== "undefined" && scope instanceof scope.WorkerGlobalScope) {
  scope.onmessage = (e: MessageEvent<ApStart>) => apMain(e.data, (m) => scope.postMessage(m));
}
