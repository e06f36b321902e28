/**
 * BlockBackend over a host file (raw images only), the host side of `-drive file=…`. Errors at open time are
 * UserErrors in QEMU's words; snapshot=on keeps every write in an in-memory copy-on-write overlay; an
 * advisory exclusive lock (shared for read-only use) keeps two VMs from writing one image.
 * @module
 */
import { type BlockBackend, UserError } from "../types.ts";
import { lockImage } from "./image_lock.ts";

/** QEMU-protocol locks held per open image file (released on close). */
const imageLocks = new WeakMap<Deno.FsFile, { release(): void }>();

/** Cache modes of -drive cache=… (QEMU block/file-posix + blockdev.c semantics for what matters here). */
export type BlockCacheMode = "writeback" | "none" | "writethrough" | "directsync" | "unsafe";

/** Options of openBlockFile. */
export interface BlockFileOptions {
  /** Open read-only (readonly=on). */
  readOnly?: boolean;
  /** snapshot=on: writes go to a temporary in-memory overlay, the image is never written. */
  snapshot?: boolean;
  /** cache=…; default writeback. */
  cache?: BlockCacheMode;
  /** format=…; only "raw" is supported. Default: probe (a qcow2 header is refused). */
  format?: string;
  /** Drive id (-drive id=…), reported as BlockBackend.id. */
  id?: string;
}

const CHUNK = 64 * 1024;
const QCOW_MAGIC = 0x514649fb; // "QFI\xfb"

function errnoText(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "No such file or directory";
  if (e instanceof Deno.errors.PermissionDenied) return "Permission denied";
  if (e instanceof Deno.errors.IsADirectory) return "Is a directory";
  if (e instanceof Error) return e.message.replace(/ \(os error \d+\).*$/, "").replace(/^[^:]*: /, "");
  return String(e);
}

/** A raw image file as a BlockBackend; `writeback` says whether the guest sees a volatile write cache. */
export class BlockFile implements BlockBackend {
  readonly id: string;
  readonly size: number;
  readonly readOnly: boolean;
  /** cache=writeback/none/unsafe: the device offers a write cache that the guest flushes. */
  readonly writeback: boolean;
  readonly path: string;
  readonly #file: Deno.FsFile;
  readonly #snapshot: boolean;
  readonly #ignoreFlush: boolean;
  /** snapshot=on overlay: chunk index → chunk contents. */
  readonly #overlay = new Map<number, Uint8Array>();
  #closed = false;

  constructor(path: string, file: Deno.FsFile, size: number, o: BlockFileOptions) {
    this.path = path;
    this.#file = file;
    this.size = size;
    this.id = o.id ?? "";
    this.readOnly = o.readOnly ?? false;
    this.#snapshot = o.snapshot ?? false;
    const cache = o.cache ?? "writeback";
    this.writeback = cache !== "writethrough" && cache !== "directsync";
    this.#ignoreFlush = cache === "unsafe" || this.#snapshot;
  }

  #preadExact(offset: number, dst: Uint8Array): boolean {
    try {
      this.#file.seekSync(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < dst.length) {
        const n = this.#file.readSync(dst.subarray(done));
        if (n === null) {
          dst.fill(0, done); // past EOF of a short image reads as zeros
          break;
        }
        done += n;
      }
      return true;
    } catch (_e: unknown) {
      return false; // host I/O error: the device reports IOERR to the guest
    }
  }

  #pwriteAll(offset: number, src: Uint8Array): boolean {
    try {
      this.#file.seekSync(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < src.length) done += this.#file.writeSync(src.subarray(done));
      return true;
    } catch (_e: unknown) {
      return false;
    }
  }

  #inRange(offset: number, len: number): boolean {
    return Number.isSafeInteger(offset) && offset >= 0 && len >= 0 && offset + len <= this.size &&
      !this.#closed;
  }

  read(offset: number, dst: Uint8Array): boolean {
    if (!this.#inRange(offset, dst.length)) return false;
    if (!this.#snapshot || this.#overlay.size === 0) return this.#preadExact(offset, dst);
    let done = 0;
    while (done < dst.length) {
      const pos = offset + done;
      const ci = Math.floor(pos / CHUNK);
      const within = pos - ci * CHUNK;
      const n = Math.min(CHUNK - within, dst.length - done);
      const chunk = this.#overlay.get(ci);
      if (chunk !== undefined) dst.set(chunk.subarray(within, within + n), done);
      else if (!this.#preadExact(pos, dst.subarray(done, done + n))) return false;
      done += n;
    }
    return true;
  }

  write(offset: number, src: Uint8Array): boolean {
    if (this.readOnly || !this.#inRange(offset, src.length)) return false;
    if (!this.#snapshot) return this.#pwriteAll(offset, src);
    let done = 0;
    while (done < src.length) {
      const pos = offset + done;
      const ci = Math.floor(pos / CHUNK);
      const within = pos - ci * CHUNK;
      const n = Math.min(CHUNK - within, src.length - done);
      let chunk = this.#overlay.get(ci);
      if (chunk === undefined) {
        chunk = new Uint8Array(CHUNK);
        const base = ci * CHUNK;
        if (!this.#preadExact(base, chunk.subarray(0, Math.min(CHUNK, this.size - base)))) return false;
        this.#overlay.set(ci, chunk);
      }
      chunk.set(src.subarray(done, done + n), within);
      done += n;
    }
    return true;
  }

  writeZeroes(offset: number, length: number): boolean {
    if (this.readOnly || !this.#inRange(offset, length)) return false;
    const zero = new Uint8Array(Math.min(length, 1 << 20));
    for (let off = 0; off < length; off += zero.length) {
      if (!this.write(offset + off, zero.subarray(0, Math.min(zero.length, length - off)))) return false;
    }
    return true;
  }

  /** fsync, unless snapshot=on or cache=unsafe (QEMU ignores flushes then). */
  flush(): boolean {
    if (this.#closed) return false;
    if (this.#ignoreFlush || this.readOnly) return true;
    try {
      this.#file.syncSync();
      return true;
    } catch (_e: unknown) {
      return false;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#overlay.clear();
    try {
      this.#file.unlockSync();
    } catch (_e: unknown) {
      // the lock goes away with the descriptor anyway
    }
    imageLocks.get(this.#file)?.release();
    imageLocks.delete(this.#file);
    this.#file.close();
  }
}

/**
 * Open a raw disk image as a BlockBackend.
 * @throws UserError `Could not open 'x': No such file or directory`, a lock conflict, or an unsupported format
 * @example
 * ```ts
 * const drive = openBlockFile("rootfs.ext4", { snapshot: true, id: "test" });
 * ```
 */
export function openBlockFile(path: string, o: BlockFileOptions = {}): BlockFile {
  const format = o.format;
  if (format !== undefined && format !== "raw") {
    if (
      format === "qcow2" || format === "qcow" || format === "vmdk" || format === "vdi" || format === "vpc"
    ) {
      throw new UserError(
        `Image format '${format}' is not supported: convert it with qemu-img convert -O raw`,
      );
    }
    throw new UserError(`Unknown driver '${format}'`);
  }
  const writable = !(o.readOnly ?? false) && !(o.snapshot ?? false);
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true, write: writable });
  } catch (e: unknown) {
    throw new UserError(`Could not open '${path}': ${errnoText(e)}`);
  }
  let size: number;
  try {
    const st = file.statSync();
    if (st.isDirectory) throw new Deno.errors.IsADirectory("Is a directory");
    size = st.size;
  } catch (e: unknown) {
    file.close();
    throw new UserError(`Could not open '${path}': ${errnoText(e)}`);
  }
  let locked = false;
  try {
    locked = file.tryLockSync(writable);
  } catch (_e: unknown) {
    locked = true; // filesystems without flock: run unlocked, as QEMU does with locking=auto
  }
  if (!locked) {
    file.close();
    throw new UserError(
      `Failed to get ${writable ? "" : "shared "}"write" lock: is another process using the image [${path}]?`,
    );
  }
  if (format === undefined && size >= 4) {
    const head = new Uint8Array(4);
    try {
      file.seekSync(0, Deno.SeekMode.Start);
      file.readSync(head);
    } catch (_e: unknown) {
      head.fill(0);
    }
    if (new DataView(head.buffer).getUint32(0, false) === QCOW_MAGIC) {
      file.close();
      throw new UserError(
        `Image format 'qcow2' is not supported: convert '${path}' with qemu-img convert -O raw`,
      );
    }
  }
  // QEMU's own protocol (OFD byte locks) as well, so that QEMU and microvm.ts see each other.
  const ofd = lockImage(path, writable);
  if (ofd && "conflict" in ofd) {
    file.unlockSync();
    file.close();
    throw new UserError(`${ofd.conflict}: is another process using the image [${path}]?`);
  }
  if (ofd) imageLocks.set(file, ofd);
  return new BlockFile(path, file, size, { ...o, readOnly: o.readOnly ?? false });
}
