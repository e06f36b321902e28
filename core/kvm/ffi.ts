/**
 * libc bindings for the KVM accelerator through Deno FFI: open/close/ioctl/mmap/munmap/eventfd,
 * errno, thread ids and signal kicks (tgkill, POSIX per-thread timers). Linux x86-64 only.
 * One `Libc` object per thread (Deno FFI libraries are per isolate); nothing here is module-level state.
 * @module
 */

/** open(2) flags. */
export const O_RDWR = 0x2;
/** open(2) close-on-exec. */
export const O_CLOEXEC = 0x80000;
/** mmap(2) protections and flags. */
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
/** eventfd(2) flags. */
export const EFD_CLOEXEC = 0x80000;
export const EFD_NONBLOCK = 0x800;
/** errno values the accelerator reacts to. */
export const ENOENT = 2;
export const EINTR = 4;
export const EAGAIN = 11;
export const EACCES = 13;
export const EFAULT = 14;
export const EINVAL = 22;
/** Signal numbers (x86-64 Linux). SIGUSR1 belongs to Deno's inspector, so vCPU kicks use SIGUSR2. */
export const SIGUSR2 = 12;
/** Linux syscall numbers used directly (x86-64). */
const SYS_GETTID = 186;
const SYS_TGKILL = 234;
/** clock ids and sigevent notification for timer_create(2). */
const CLOCK_MONOTONIC = 1;
const SIGEV_THREAD_ID = 4;
/** pthread_sigmask(3) how. */
const SIG_BLOCK = 0;
const SIG_UNBLOCK = 1;

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  // The kernel's ioctl takes `unsigned int cmd`, so the request travels as u32.
  ioctlPtr: { name: "ioctl", parameters: ["i32", "u32", "buffer"], result: "i32" },
  ioctlRaw: { name: "ioctl", parameters: ["i32", "u32", "pointer"], result: "i32" },
  ioctlInt: { name: "ioctl", parameters: ["i32", "u32", "u64"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // Blocking: called only from the eventfd poller's own Worker thread.
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  errnoLocation: { name: "__errno_location", parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  syscall3: { name: "syscall", parameters: ["i64", "i64", "i64", "i64"], result: "i64" },
  getpid: { parameters: [], result: "i32" },
  sigtimedwait: { parameters: ["buffer", "pointer", "buffer"], result: "i32" },
  pthreadSigmask: { name: "pthread_sigmask", parameters: ["i32", "buffer", "buffer"], result: "i32" },
  timerCreate: { name: "timer_create", parameters: ["i32", "buffer", "buffer"], result: "i32" },
  timerSettime: { name: "timer_settime", parameters: ["pointer", "i32", "buffer", "buffer"], result: "i32" },
  timerDelete: { name: "timer_delete", parameters: ["pointer"], result: "i32" },
} as const;

/** A failed libc call: `errno` plus the call that failed. */
export class SysError extends Error {
  constructor(readonly call: string, readonly errno: number, text: string) {
    super(`${call} failed: ${text} (errno ${errno})`);
    this.name = "SysError";
  }
}

/** A POSIX timer delivering a signal to one thread periodically (timer_create with SIGEV_THREAD_ID). */
export interface ThreadTimer {
  /** Set the period in microseconds; 0 disarms. */
  setPeriodUs(us: number): void;
  delete(): void;
}

/** The libc surface used by core/kvm (a dlopen'ed libc.so.6). */
export class Libc {
  readonly #lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  readonly #errno: Deno.UnsafePointerView;

  constructor() {
    this.#lib = Deno.dlopen("libc.so.6", SYMBOLS);
    const p = this.#lib.symbols.errnoLocation();
    if (p === null) throw new Error("__errno_location returned NULL");
    this.#errno = new Deno.UnsafePointerView(p);
  }

  /** errno of the last failing call on this thread. */
  errno(): number {
    // __errno_location is per thread but stable for the thread's lifetime.
    return this.#errno.getInt32(0);
  }

  /** strerror(errno) as text. */
  strerror(errno: number): string {
    const p = this.#lib.symbols.strerror(errno);
    return p === null ? `errno ${errno}` : Deno.UnsafePointerView.getCString(p);
  }

  /** Throw SysError for the last failure. */
  fail(call: string): never {
    const e = this.errno();
    throw new SysError(call, e, this.strerror(e));
  }

  /** open(2); returns the fd or -errno (no throw: callers decide). */
  open(path: string, flags: number): number {
    const fd = this.#lib.symbols.open(new TextEncoder().encode(path + "\0"), flags);
    return fd < 0 ? -this.errno() : fd;
  }

  close(fd: number): void {
    this.#lib.symbols.close(fd);
  }

  /** ioctl with a struct argument; returns the result or -errno. */
  ioctlBuf(fd: number, req: number, arg: Uint8Array): number {
    const r = this.#lib.symbols.ioctlPtr(fd, req, arg);
    return r < 0 ? -this.errno() : r;
  }

  /** ioctl with a raw pointer argument (e.g. into mmap'ed memory); returns the result or -errno. */
  ioctlPtr(fd: number, req: number, arg: Deno.PointerValue): number {
    const r = this.#lib.symbols.ioctlRaw(fd, req, arg);
    return r < 0 ? -this.errno() : r;
  }

  /** ioctl with an integer argument (or none); returns the result or -errno. */
  ioctl(fd: number, req: number, arg: number | bigint = 0): number {
    const r = this.#lib.symbols.ioctlInt(fd, req, BigInt(arg));
    return r < 0 ? -this.errno() : r;
  }

  /** The raw integer ioctl (hot path, e.g. KVM_RUN): returns the raw result; read errno() when negative. */
  get ioctlFast(): (fd: number, req: number, arg: bigint) => number {
    return this.#lib.symbols.ioctlInt;
  }

  /** Block `sig` in the calling thread; returns the previous kernel sigset (8 bytes). */
  blockSignal(sig: number): Uint8Array {
    const set = new Uint8Array(128);
    set[(sig - 1) >> 3] |= 1 << ((sig - 1) & 7);
    const old = new Uint8Array(128);
    if (this.#lib.symbols.pthreadSigmask(SIG_BLOCK, set, old) !== 0) this.fail("pthread_sigmask");
    return old.slice(0, 8);
  }

  /**
   * Consume pending instances of a blocked `sig` without running a handler (QEMU's kvm_eat_signals):
   * KVM_RUN returns EINTR for a signal it unblocked, but restores the blocked mask before returning, so
   * the signal stays pending and would make every later KVM_RUN fail at once. Returns how many were eaten.
   */
  eatSignal(sig: number): number {
    const set = new Uint8Array(128);
    set[(sig - 1) >> 3] |= 1 << ((sig - 1) & 7);
    const zero = new Uint8Array(16);
    let n = 0;
    while (this.#lib.symbols.sigtimedwait(set, null, zero) === sig) n++;
    return n;
  }

  /** Unblock `sig` in the calling thread. */
  unblockSignal(sig: number): void {
    const set = new Uint8Array(128);
    set[(sig - 1) >> 3] |= 1 << ((sig - 1) & 7);
    this.#lib.symbols.pthreadSigmask(SIG_UNBLOCK, set, null);
  }

  /** mmap(2) of `len` bytes; throws SysError on failure. */
  mmap(len: number, prot: number, flags: number, fd: number, offset = 0): Deno.PointerObject {
    const p = this.#lib.symbols.mmap(null, BigInt(len), prot, flags, fd, BigInt(offset));
    if (p === null || Deno.UnsafePointer.value(p) === 0xffffffffffffffffn) this.fail("mmap");
    return p;
  }

  munmap(p: Deno.PointerObject, len: number): void {
    this.#lib.symbols.munmap(p, BigInt(len));
  }

  /** eventfd(2); throws SysError on failure. */
  eventfd(initval: number, flags: number): number {
    const fd = this.#lib.symbols.eventfd(initval, flags);
    if (fd < 0) this.fail("eventfd");
    return fd;
  }

  /** read(2) into `buf`; returns bytes or -errno. */
  read(fd: number, buf: Uint8Array): number {
    const r = Number(this.#lib.symbols.read(fd, buf, BigInt(buf.length)));
    return r < 0 ? -this.errno() : r;
  }

  /** write(2) from `buf`; returns bytes or -errno. */
  write(fd: number, buf: Uint8Array): number {
    const r = Number(this.#lib.symbols.write(fd, buf, BigInt(buf.length)));
    return r < 0 ? -this.errno() : r;
  }

  /** poll(2) on `fds` (struct pollfd array, 8 bytes each) with a timeout in ms (-1: forever); count or -errno. */
  poll(fds: Uint8Array, timeoutMs: number): number {
    const r = this.#lib.symbols.poll(fds, BigInt(fds.length >> 3), timeoutMs);
    return r < 0 ? -this.errno() : r;
  }

  /** The calling thread's kernel thread id. */
  gettid(): number {
    return Number(this.#lib.symbols.syscall3(BigInt(SYS_GETTID), 0n, 0n, 0n));
  }

  getpid(): number {
    return this.#lib.symbols.getpid();
  }

  /** Send `sig` to thread `tid` of this process (a vCPU kick). */
  tgkill(tid: number, sig: number): number {
    return Number(
      this.#lib.symbols.syscall3(BigInt(SYS_TGKILL), BigInt(this.getpid()), BigInt(tid), BigInt(sig)),
    );
  }

  /** A CLOCK_MONOTONIC timer that sends `sig` to thread `tid` every period. */
  threadTimer(tid: number, sig: number): ThreadTimer {
    // struct sigevent (64 bytes): sigev_value @0, sigev_signo @8, sigev_notify @12, _tid @16.
    const sev = new Uint8Array(64);
    const dv = new DataView(sev.buffer);
    dv.setInt32(8, sig, true);
    dv.setInt32(12, SIGEV_THREAD_ID, true);
    dv.setInt32(16, tid, true);
    const idBuf = new Uint8Array(8);
    if (this.#lib.symbols.timerCreate(CLOCK_MONOTONIC, sev, idBuf) < 0) this.fail("timer_create");
    // timer_t is a pointer-sized id (glibc: an int cast to void*).
    const id = Deno.UnsafePointer.create(new DataView(idBuf.buffer).getBigUint64(0, true));
    const lib = this.#lib;
    const spec = new Uint8Array(32);
    const sdv = new DataView(spec.buffer);
    let deleted = false;
    return {
      setPeriodUs(us: number): void {
        if (deleted) return;
        const sec = BigInt(Math.floor(us / 1e6));
        const nsec = BigInt(Math.round((us % 1e6) * 1000));
        // struct itimerspec: it_interval {sec, nsec}, it_value {sec, nsec}.
        sdv.setBigInt64(0, sec, true);
        sdv.setBigInt64(8, nsec, true);
        sdv.setBigInt64(16, sec, true);
        sdv.setBigInt64(24, nsec, true);
        lib.symbols.timerSettime(id, 0, spec, new Uint8Array(32));
      },
      delete(): void {
        if (deleted) return;
        deleted = true;
        lib.symbols.timerDelete(id);
      },
    };
  }

  /** Release the library handle. */
  closeLibrary(): void {
    this.#lib.close();
  }
}
