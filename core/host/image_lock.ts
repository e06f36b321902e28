/**
 * QEMU's image locking protocol (block/file-posix.c raw_apply_lock_bytes / raw_check_lock_bytes), so that
 * microvm.ts and QEMU see each other's images in use: Linux OFD byte-range locks (F_OFD_SETLK) on byte
 * 100 + bit for every permission held and 200 + bit for every permission not shared with others, then a
 * conflict test (F_OFD_GETLK) on the opposite bytes. Permission bits (QEMU 7.2 BLK_PERM_*): consistent
 * read 0, write 1, write unchanged 2, resize 3. A virtio-blk drive holds {consistent read} plus {write}
 * when writable and shares everything but {write}. Needs --allow-ffi; without it the caller falls back to
 * flock (which QEMU does not see).
 * @module
 */

const LOCK_PERM_BASE = 100;
const LOCK_SHARED_BASE = 200;
const PERM_NAMES = ["consistent read", "write", "write unchanged", "resize"];
const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const O_RDONLY = 0;
const O_CLOEXEC = 0x80000;

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | null | undefined;

function libc(): Deno.DynamicLibrary<typeof SYMBOLS> | null {
  if (lib !== undefined) return lib;
  lib = null;
  try {
    if (Deno.build.os === "linux" && Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
      lib = Deno.dlopen("libc.so.6", SYMBOLS);
    }
  } catch {
    lib = null;
  }
  return lib;
}

/** struct flock (x86-64/arm64): l_type i16 @0, l_whence i16 @2, l_start i64 @8, l_len i64 @16, l_pid i32 @24. */
function flock(type: number, start: number): Uint8Array {
  const b = new Uint8Array(32);
  const dv = new DataView(b.buffer);
  dv.setInt16(0, type, true);
  dv.setInt16(2, 0, true); // SEEK_SET
  dv.setBigInt64(8, BigInt(start), true);
  dv.setBigInt64(16, 1n, true);
  return b;
}

/** Result of lockImage: held (release it on close), a conflict message, or unavailable (no FFI). */
export type ImageLock = { release(): void } | { conflict: string } | null;

/**
 * Take QEMU's locks for a virtio-blk style user of `path` (writable or read-only). Returns null when OFD
 * locks cannot be used here (no FFI, the file cannot be opened, or the filesystem has no locks).
 */
export function lockImage(path: string, writable: boolean): ImageLock {
  const c = libc();
  if (!c) return null;
  const fd = c.symbols.open(new TextEncoder().encode(path + "\0"), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return null;
  const perm = writable ? 0b0011 : 0b0001; // consistent read (+ write)
  const unshared = 0b0010; // others may not write
  for (let bit = 0; bit < PERM_NAMES.length; bit++) {
    for (const [on, base] of [[perm, LOCK_PERM_BASE], [unshared, LOCK_SHARED_BASE]] as const) {
      if (!(on & (1 << bit))) continue;
      if (c.symbols.fcntl(fd, F_OFD_SETLK, flock(F_RDLCK, base + bit)) < 0) {
        c.symbols.close(fd);
        // EAGAIN: someone is testing with a write lock this instant; anything else: no OFD locks here.
        return null;
      }
    }
  }
  for (let bit = 0; bit < PERM_NAMES.length; bit++) {
    const tests: [number, string][] = [];
    if (perm & (1 << bit)) tests.push([LOCK_SHARED_BASE + bit, `Failed to get "${PERM_NAMES[bit]}" lock`]);
    if (unshared & (1 << bit)) {
      tests.push([LOCK_PERM_BASE + bit, `Failed to get shared "${PERM_NAMES[bit]}" lock`]);
    }
    for (const [byte, msg] of tests) {
      const fl = flock(F_WRLCK, byte);
      if (c.symbols.fcntl(fd, F_OFD_GETLK, fl) < 0) continue;
      if (new DataView(fl.buffer).getInt16(0, true) !== F_UNLCK) {
        c.symbols.close(fd);
        return { conflict: msg };
      }
    }
  }
  let open = true;
  return {
    release() {
      if (open) c.symbols.close(fd); // closing the description drops its OFD locks
      open = false;
    },
  };
}
