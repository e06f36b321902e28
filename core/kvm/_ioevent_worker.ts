/**
 * The eventfd poller thread (Worker entry; see ioevent.ts): poll(2) on the registered eventfds, mark the
 * signalled ones, kick the device thread with SIGUSR2, wait until it has drained them, poll again.
 * @module
 */
import { Libc, SIGUSR2 } from "./ffi.ts";
import { IOEV, type PollerStart } from "./ioevent.ts";

const POLLIN = 0x1;

function pollerMain(msg: PollerStart): void {
  const libc = new Libc();
  const w = new Int32Array(msg.shared);
  const scratch = new Uint8Array(8);
  const n = Atomics.load(w, IOEV.count);
  const pfd = new Uint8Array(8 * (n + 1));
  const dv = new DataView(pfd.buffer);
  // struct pollfd { int fd; short events; short revents; }: slot 0 is the control eventfd.
  dv.setInt32(0, w[IOEV.control], true);
  dv.setInt16(4, POLLIN, true);
  for (let i = 0; i < n; i++) {
    dv.setInt32(8 * (i + 1), w[IOEV.fds + i], true);
    dv.setInt16(8 * (i + 1) + 4, POLLIN, true);
  }
  while (Atomics.load(w, IOEV.quit) === 0) {
    const r = libc.poll(pfd, -1);
    if (Atomics.load(w, IOEV.quit) !== 0) break;
    if (r <= 0) continue; // EINTR
    if ((dv.getInt16(6, true) & POLLIN) !== 0) libc.read(w[IOEV.control], scratch);
    let any = false;
    for (let i = 0; i < n; i++) {
      if ((dv.getInt16(8 * (i + 1) + 6, true) & POLLIN) === 0) continue;
      Atomics.or(w, IOEV.bits + (i >> 5), 1 << (i & 31));
      any = true;
    }
    if (!any) continue;
    Atomics.store(w, IOEV.pending, 1);
    libc.tgkill(w[IOEV.mainTid], SIGUSR2);
    // The marked eventfds stay readable until the device thread reads them: wait for its drain.
    while (Atomics.load(w, IOEV.pending) === 1 && Atomics.load(w, IOEV.quit) === 0) {
      Atomics.wait(w, IOEV.pending, 1, 1000);
    }
  }
  Atomics.store(w, IOEV.done, 1);
  Atomics.notify(w, IOEV.done);
  libc.closeLibrary();
}

// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
if (typeof scope.WorkerGlobalScope !== "undefined" && scope instanceof scope.WorkerGlobalScope) {
  scope.onmessage = (e: MessageEvent<PollerStart>) => pollerMain(e.data);
}
