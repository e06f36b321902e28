/**
 * `-fsdev local`: a host directory exported over 9P (QEMU hw/9pfs/9p-local.c), with Deno's synchronous file
 * APIs only (no --allow-ffi). Containment: every path is a list of components below the export root; each
 * call lstat()s every directory on the way and refuses a symlink or non-directory there, so a walk never
 * follows a host symlink; a final symlink is never opened, chmod'ed, chown'ed or truncated; `..` never
 * reaches this layer (the server resolves it, clamped at the root). After opening a file its fstat identity
 * (dev, inode) must match the lstat taken just before, which catches a component swapped for a symlink
 * between the two. What Deno cannot do without FFI: openat(O_NOFOLLOW) on every component (so a host-side
 * rename of a *directory* racing with a request is detected only at the final component), lchown/lutimes
 * (symlink ownership and times cannot be set), mknod of FIFOs/devices, and extended attributes (so
 * `mapped-xattr` cannot store guest credentials; see README). `mapped-file` keeps guest uid/gid/mode/rdev in
 * `.virtfs_metadata/<name>` files as QEMU does (symlinks and special files become regular host files).
 * @module
 */
import { statfsSync } from "node:fs";
import {
  Errno,
  type FsBackend,
  type FsCred,
  type FsDirEntry,
  FsError,
  type FsHandle,
  type FsSetattr,
  type FsStat,
  type FsStatfs,
} from "../fsdev.ts";
import { UserError } from "../types.ts";

/** Linux open(2) flags that matter to 9P Tlopen/Tlcreate. */
export const O_ACCMODE = 3;
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
/** mapped-file: per-directory metadata directory and the export root's metadata file (QEMU 9p-local.c). */
export const VIRTFS_META_DIR = ".virtfs_metadata";
export const VIRTFS_META_ROOT = ".virtfs_metadata_root";

/** Guest credentials stored by security_model=mapped-file. */
interface Meta {
  uid?: number;
  gid?: number;
  mode?: number;
  rdev?: number;
}

/** `-fsdev local` security models (QEMU 7.2 qemu-options.hx). */
export const SECURITY_MODELS = ["passthrough", "mapped-xattr", "mapped", "mapped-file", "none"] as const;

/** Options of a local export. */
export interface LocalFsOptions {
  path: string;
  securityModel: string;
  readOnly?: boolean;
}

/** errno by the `code` Deno puts on OS errors. */
const CODE_ERRNO: Record<string, number> = {
  EPERM: Errno.EPERM,
  ENOENT: Errno.ENOENT,
  EIO: Errno.EIO,
  EACCES: Errno.EACCES,
  EBUSY: Errno.EBUSY,
  EEXIST: Errno.EEXIST,
  EXDEV: Errno.EXDEV,
  ENOTDIR: Errno.ENOTDIR,
  EISDIR: Errno.EISDIR,
  EINVAL: Errno.EINVAL,
  EFBIG: Errno.EFBIG,
  ENOSPC: Errno.ENOSPC,
  EROFS: Errno.EROFS,
  EMLINK: Errno.EMLINK,
  ENAMETOOLONG: Errno.ENAMETOOLONG,
  ENOTEMPTY: Errno.ENOTEMPTY,
  ELOOP: Errno.ELOOP,
  EOPNOTSUPP: Errno.EOPNOTSUPP,
  ENOTSUP: Errno.EOPNOTSUPP,
  ENXIO: Errno.ENXIO,
  EAGAIN: Errno.EAGAIN,
};

/** Map a host exception to an FsError (unknown failures become EIO). */
export function toFsError(e: unknown): FsError {
  if (e instanceof FsError) return e;
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string" && code in CODE_ERRNO) return new FsError(CODE_ERRNO[code], String(e));
  if (e instanceof Deno.errors.NotFound) return new FsError(Errno.ENOENT);
  if (e instanceof Deno.errors.AlreadyExists) return new FsError(Errno.EEXIST);
  if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
    return new FsError(Errno.EACCES);
  }
  if (e instanceof Deno.errors.IsADirectory) return new FsError(Errno.EISDIR);
  if (e instanceof Deno.errors.NotADirectory) return new FsError(Errno.ENOTDIR);
  if (e instanceof Deno.errors.FilesystemLoop) return new FsError(Errno.ELOOP);
  return new FsError(Errno.EIO, String(e));
}

function wrap<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw toFsError(e);
  }
}

function splitTime(d: Date | null): [number, number] {
  const ms = d ? d.getTime() : 0;
  const sec = Math.floor(ms / 1000);
  return [sec, (ms - sec * 1000) * 1e6];
}

/** Deno.FileInfo → FsStat. */
export function fsStatOf(i: Deno.FileInfo): FsStat {
  const [as, an] = splitTime(i.atime);
  const [ms, mn] = splitTime(i.mtime);
  const [cs, cn] = splitTime(i.ctime ?? i.mtime);
  return {
    mode: i.mode ?? (i.isDirectory ? S_IFDIR | 0o755 : i.isSymlink ? S_IFLNK | 0o777 : S_IFREG | 0o644),
    uid: i.uid ?? 0,
    gid: i.gid ?? 0,
    nlink: i.nlink ?? 1,
    rdev: i.rdev ?? 0,
    size: i.size,
    blksize: i.blksize ?? 4096,
    blocks: i.blocks ?? 0,
    dev: i.dev,
    ino: i.ino ?? 0,
    atimeSec: as,
    atimeNsec: an,
    mtimeSec: ms,
    mtimeNsec: mn,
    ctimeSec: cs,
    ctimeNsec: cn,
  };
}

/** A name a guest may create or look up in a directory (QEMU name_is_illegal plus `.`/`..`). */
function checkName(name: string): void {
  if (name === "" || name.includes("/") || name.includes("\0")) throw new FsError(Errno.ENOENT);
  if (name === "." || name === "..") throw new FsError(Errno.EEXIST);
}

class LocalHandle implements FsHandle {
  readonly #file: Deno.FsFile;
  constructor(file: Deno.FsFile) {
    this.#file = file;
  }
  read(offset: number, dst: Uint8Array): number {
    return wrap(() => {
      this.#file.seekSync(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < dst.length) {
        const n = this.#file.readSync(dst.subarray(done));
        if (n === null || n === 0) break;
        done += n;
      }
      return done;
    });
  }
  write(offset: number, src: Uint8Array): number {
    return wrap(() => {
      this.#file.seekSync(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < src.length) {
        const n = this.#file.writeSync(src.subarray(done));
        if (n <= 0) break;
        done += n;
      }
      return done;
    });
  }
  truncate(size: number): void {
    wrap(() => this.#file.truncateSync(size));
  }
  sync(dataOnly: boolean): void {
    wrap(() => dataOnly ? this.#file.syncDataSync() : this.#file.syncSync());
  }
  stat(): FsStat {
    return wrap(() => fsStatOf(this.#file.statSync()));
  }
  close(): void {
    try {
      this.#file.close();
    } catch {
      // already closed: nothing to release
    }
  }
}

/** A host directory exported to the guest. */
export class LocalFs implements FsBackend {
  readonly root: string;
  readonly readOnly: boolean;
  readonly securityModel: string;
  /** passthrough: chown failures are errors; none: ignored (QEMU SM_NONE). Mapped models: never chown. */
  readonly #chown: "strict" | "lenient" | "no";
  /** security_model=mapped-file: credentials, modes and special files live in .virtfs_metadata files. */
  readonly #mapped: boolean;

  constructor(o: LocalFsOptions) {
    this.root = o.path;
    this.readOnly = o.readOnly ?? false;
    this.securityModel = o.securityModel;
    this.#chown = o.securityModel === "passthrough"
      ? "strict"
      : o.securityModel === "none"
      ? "lenient"
      : "no";
    this.#mapped = o.securityModel === "mapped-file";
  }

  #isMetaName(c: string): boolean {
    return this.#mapped && (c === VIRTFS_META_DIR || c === VIRTFS_META_ROOT);
  }

  #metaFile(path: readonly string[]): string {
    if (path.length === 0) return `${this.root}/${VIRTFS_META_ROOT}`;
    return `${this.#full(path.slice(0, -1))}/${VIRTFS_META_DIR}/${path[path.length - 1]}`;
  }

  #readMeta(path: readonly string[]): Meta | null {
    if (!this.#mapped) return null;
    const file = this.#metaFile(path);
    try {
      if (path.length > 0 && !Deno.lstatSync(file.slice(0, file.lastIndexOf("/"))).isDirectory) return null;
      if (!Deno.lstatSync(file).isFile) return null;
      const m: Meta = {};
      for (const line of Deno.readTextFileSync(file).split("\n")) {
        const r = /^virtfs\.(uid|gid|mode|rdev)=(\d+)$/.exec(line.trim());
        if (r) m[r[1] as keyof Meta] = Number(r[2]);
      }
      return m;
    } catch {
      return null;
    }
  }

  #writeMeta(path: readonly string[], m: Meta): void {
    const file = this.#metaFile(path);
    const cur = this.#readMeta(path) ?? {};
    const all = { ...cur, ...m };
    wrap(() => {
      if (path.length > 0) {
        const dir = file.slice(0, file.lastIndexOf("/"));
        try {
          if (!Deno.lstatSync(dir).isDirectory) throw new FsError(Errno.EIO, "metadata directory is not one");
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
          Deno.mkdirSync(dir, { mode: 0o700 });
        }
      }
      try {
        if (!Deno.lstatSync(file).isFile) throw new FsError(Errno.EIO, "metadata file is not a regular file");
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      let text = "";
      for (const k of ["uid", "gid", "mode", "rdev"] as const) {
        if (all[k] !== undefined) text += `virtfs.${k}=${all[k]}\n`;
      }
      Deno.writeTextFileSync(file, text, { mode: 0o600 });
    });
  }

  #removeMeta(path: readonly string[]): void {
    if (!this.#mapped) return;
    try {
      const file = this.#metaFile(path);
      if (Deno.lstatSync(file).isFile) Deno.removeSync(file);
    } catch {
      // no metadata
    }
  }

  #overlay(st: FsStat, path: readonly string[]): FsStat {
    const m = this.#readMeta(path);
    if (m === null) return st;
    return {
      ...st,
      uid: m.uid ?? st.uid,
      gid: m.gid ?? st.gid,
      mode: m.mode ?? st.mode,
      rdev: m.rdev ?? st.rdev,
    };
  }

  /** After creating `path` (host file at `full`): guest credentials and mode, per security model. */
  #credentials(path: readonly string[], full: string, mode: number, cred: FsCred, rdev = 0): void {
    if (this.#mapped) {
      this.#writeMeta(path, { uid: cred.uid, gid: cred.gid, mode, rdev });
      return;
    }
    this.#setOwner(full, mode, cred, (mode & S_IFMT) === S_IFLNK);
  }

  #full(path: readonly string[]): string {
    return path.length === 0 ? this.root : `${this.root}/${path.join("/")}`;
  }

  /** lstat every directory from the root down to (excluding) the last `exclude` components. */
  #checkDirs(path: readonly string[], upTo: number): void {
    for (let i = 1; i <= upTo; i++) {
      const info = wrap(() => Deno.lstatSync(this.#full(path.slice(0, i))));
      if (info.isSymlink) throw new FsError(Errno.ELOOP, "symlink in path");
      if (!info.isDirectory) throw new FsError(Errno.ENOTDIR);
    }
  }

  #validate(path: readonly string[]): void {
    for (const c of path) {
      if (c === "" || c === "." || c === ".." || c.includes("/") || c.includes("\0") || this.#isMetaName(c)) {
        throw new FsError(Errno.ENOENT, "bad path component");
      }
    }
  }

  /** Host path of an object whose parents are checked; the object itself is not followed. */
  #object(path: readonly string[]): string {
    this.#validate(path);
    this.#checkDirs(path, path.length - 1);
    return this.#full(path);
  }

  /** Host path of `name` inside the checked directory `dir`. */
  #entry(dir: readonly string[], name: string): string {
    this.#validate(dir);
    checkName(name);
    if (this.#isMetaName(name)) throw new FsError(Errno.EINVAL, "reserved name");
    this.#checkDirs(dir, dir.length);
    return `${this.#full(dir)}/${name}`;
  }

  #ro(): void {
    if (this.readOnly) throw new FsError(Errno.EROFS);
  }

  #setOwner(full: string, mode: number, cred: FsCred, isSymlink: boolean): void {
    if (!isSymlink) wrap(() => Deno.chmodSync(full, mode & 0o7777));
    // No lchown in Deno: chown on a symlink would change its target, so symlinks keep the server's owner.
    if (this.#chown === "no" || isSymlink) return;
    try {
      Deno.chownSync(full, cred.uid, cred.gid);
    } catch (e) {
      if (this.#chown === "strict") throw toFsError(e);
    }
  }

  lstat(path: readonly string[]): FsStat {
    const full = this.#object(path);
    return this.#overlay(wrap(() => fsStatOf(Deno.lstatSync(full))), path);
  }

  open(path: readonly string[], flags: number): FsHandle {
    const full = this.#object(path);
    const acc = flags & O_ACCMODE;
    if (this.readOnly && (acc !== O_RDONLY || (flags & (O_TRUNC | O_APPEND)) !== 0)) {
      throw new FsError(Errno.EROFS);
    }
    const before = wrap(() => Deno.lstatSync(full));
    if (before.isSymlink) throw new FsError(Errno.ELOOP);
    if (before.isDirectory) throw new FsError(Errno.EISDIR);
    // FIFOs, sockets and device nodes are not opened on the host (a FIFO would block the VMM).
    if (!before.isFile) throw new FsError(Errno.ENXIO);
    const type = (this.#readMeta(path)?.mode ?? S_IFREG) & S_IFMT;
    if (type === S_IFLNK) throw new FsError(Errno.ELOOP);
    if (type !== S_IFREG) throw new FsError(Errno.ENXIO);
    const file = wrap(() =>
      Deno.openSync(full, {
        read: acc !== O_WRONLY,
        write: acc !== O_RDONLY,
        append: (flags & O_APPEND) !== 0,
        truncate: (flags & O_TRUNC) !== 0 && acc !== O_RDONLY,
      })
    );
    const after = wrap(() => file.statSync());
    if (after.ino !== before.ino || after.dev !== before.dev) {
      file.close();
      throw new FsError(Errno.ELOOP, "file changed while opening");
    }
    return new LocalHandle(file);
  }

  readdir(path: readonly string[]): FsDirEntry[] {
    const full = this.#object(path);
    const info = wrap(() => Deno.lstatSync(full));
    if (!info.isDirectory || info.isSymlink) throw new FsError(Errno.ENOTDIR);
    const out: FsDirEntry[] = [];
    for (const e of wrap(() => [...Deno.readDirSync(full)])) {
      if (this.#isMetaName(e.name)) continue;
      try {
        const st = fsStatOf(Deno.lstatSync(`${full}/${e.name}`));
        out.push({ name: e.name, stat: this.#overlay(st, [...path, e.name]) });
      } catch {
        // removed between readdir and lstat: not listed
      }
    }
    return out;
  }

  create(dir: readonly string[], name: string, flags: number, mode: number, cred: FsCred): FsHandle {
    this.#ro();
    const full = this.#entry(dir, name);
    let file: Deno.FsFile;
    try {
      // createNew is O_CREAT|O_EXCL: it never follows a symlink planted at `name`.
      file = Deno.openSync(full, { createNew: true, read: true, write: true, mode: 0o600 });
    } catch (e) {
      const err = toFsError(e);
      if (err.errno !== Errno.EEXIST || (flags & O_EXCL) !== 0) throw err;
      return this.open([...dir, name], flags & ~O_CREAT);
    }
    try {
      this.#credentials([...dir, name], full, S_IFREG | (mode & 0o7777), cred);
    } catch (e) {
      file.close();
      try {
        Deno.removeSync(full);
      } catch {
        // best effort: QEMU also unlinks on a failed chown
      }
      throw e;
    }
    return new LocalHandle(file);
  }

  mkdir(dir: readonly string[], name: string, mode: number, cred: FsCred): void {
    this.#ro();
    const full = this.#entry(dir, name);
    wrap(() => Deno.mkdirSync(full, { mode: 0o700 }));
    try {
      this.#credentials([...dir, name], full, S_IFDIR | (mode & 0o7777), cred);
    } catch (e) {
      try {
        Deno.removeSync(full);
      } catch {
        // best effort
      }
      throw e;
    }
  }

  symlink(dir: readonly string[], name: string, target: string, cred: FsCred): void {
    this.#ro();
    const full = this.#entry(dir, name);
    if (target.includes("\0")) throw new FsError(Errno.EINVAL);
    if (this.#mapped) {
      // mapped-file stores a symlink as a regular file holding the target (QEMU local_symlink).
      wrap(() => Deno.writeTextFileSync(full, target, { createNew: true, mode: 0o600 }));
      this.#credentials([...dir, name], full, S_IFLNK | 0o777, cred);
      return;
    }
    wrap(() => Deno.symlinkSync(target, full));
    this.#setOwner(full, 0o777, cred, true);
  }

  mknod(dir: readonly string[], name: string, mode: number, rdev: number, cred: FsCred): void {
    this.#ro();
    const full = this.#entry(dir, name);
    const type = (mode & S_IFMT) || S_IFREG;
    // Without mknod(2) (no FFI) only mapped-file can hold FIFOs, sockets and devices (as metadata).
    if (type !== S_IFREG && !this.#mapped) throw new FsError(Errno.EOPNOTSUPP);
    if (type === S_IFDIR || type === S_IFLNK) throw new FsError(Errno.EINVAL);
    const f = wrap(() => Deno.openSync(full, { createNew: true, write: true, mode: 0o600 }));
    f.close();
    this.#credentials([...dir, name], full, type | (mode & 0o7777), cred, rdev);
  }

  readlink(path: readonly string[]): string {
    const full = this.#object(path);
    const info = wrap(() => Deno.lstatSync(full));
    if (this.#mapped && info.isFile && ((this.#readMeta(path)?.mode ?? 0) & S_IFMT) === S_IFLNK) {
      return wrap(() => Deno.readTextFileSync(full));
    }
    if (!info.isSymlink) throw new FsError(Errno.EINVAL);
    return wrap(() => Deno.readLinkSync(full));
  }

  link(target: readonly string[], dir: readonly string[], name: string): void {
    this.#ro();
    const from = this.#object(target);
    const to = this.#entry(dir, name);
    const info = wrap(() => Deno.lstatSync(from));
    if (info.isDirectory) throw new FsError(Errno.EPERM);
    // link(2) does not dereference a final symlink: the new name is another link to the symlink itself.
    wrap(() => Deno.linkSync(from, to));
    const m = this.#readMeta(target);
    if (m !== null) this.#writeMeta([...dir, name], m);
  }

  rename(oldDir: readonly string[], oldName: string, newDir: readonly string[], newName: string): void {
    this.#ro();
    const from = this.#entry(oldDir, oldName);
    const to = this.#entry(newDir, newName);
    wrap(() => Deno.renameSync(from, to));
    if (this.#mapped) {
      const m = this.#readMeta([...oldDir, oldName]);
      this.#removeMeta([...newDir, newName]);
      if (m !== null) {
        this.#writeMeta([...newDir, newName], m);
        this.#removeMeta([...oldDir, oldName]);
      }
    }
  }

  unlink(dir: readonly string[], name: string, removeDir: boolean): void {
    this.#ro();
    const full = this.#entry(dir, name);
    const info = wrap(() => Deno.lstatSync(full));
    if (removeDir && !info.isDirectory) throw new FsError(Errno.ENOTDIR);
    if (!removeDir && info.isDirectory) throw new FsError(Errno.EISDIR);
    if (removeDir && this.#mapped) {
      // The directory's own metadata directory goes with it when that is all it holds.
      try {
        Deno.removeSync(`${full}/${VIRTFS_META_DIR}`);
      } catch {
        // absent, or not empty (then rmdir below fails with ENOTEMPTY as it should)
      }
    }
    wrap(() => Deno.removeSync(full));
    this.#removeMeta([...dir, name]);
  }

  setattr(path: readonly string[], a: FsSetattr): void {
    this.#ro();
    const full = this.#object(path);
    const info = wrap(() => Deno.lstatSync(full));
    if (info.isSymlink) {
      // Deno has no lchmod/lchown/lutimes; following the link would touch its target.
      if (a.mode !== undefined || a.uid !== undefined || a.gid !== undefined || a.size !== undefined) {
        throw new FsError(Errno.EOPNOTSUPP);
      }
      if (a.atime !== undefined || a.mtime !== undefined) throw new FsError(Errno.EOPNOTSUPP);
      return;
    }
    if (this.#mapped) {
      const cur = this.lstat(path);
      const m: Meta = {};
      if (a.mode !== undefined) m.mode = (cur.mode & S_IFMT) | (a.mode & 0o7777);
      if (a.uid !== undefined) m.uid = a.uid;
      if (a.gid !== undefined) m.gid = a.gid;
      if (Object.keys(m).length > 0) {
        this.#writeMeta(path, { uid: cur.uid, gid: cur.gid, mode: cur.mode, rdev: cur.rdev, ...m });
      }
    } else if (a.mode !== undefined) wrap(() => Deno.chmodSync(full, a.mode! & 0o7777));
    if (!this.#mapped && (a.uid !== undefined || a.gid !== undefined)) {
      if (this.#chown !== "no") {
        try {
          Deno.chownSync(full, a.uid ?? null, a.gid ?? null);
        } catch (e) {
          if (this.#chown === "strict") throw toFsError(e);
        }
      }
    }
    if (a.size !== undefined) {
      if (info.isDirectory) throw new FsError(Errno.EISDIR);
      if (!info.isFile) throw new FsError(Errno.EINVAL);
      const h = this.open(path, O_WRONLY) as LocalHandle;
      try {
        h.truncate(a.size);
      } finally {
        h.close();
      }
    }
    if (a.atime !== undefined || a.mtime !== undefined) {
      const now = Date.now() / 1000;
      const cur = fsStatOf(info);
      const t = (v: FsSetattr["atime"], sec: number, nsec: number) =>
        v === undefined ? sec + nsec / 1e9 : v === "now" ? now : v.sec + v.nsec / 1e9;
      wrap(() =>
        Deno.utimeSync(full, t(a.atime, cur.atimeSec, cur.atimeNsec), t(a.mtime, cur.mtimeSec, cur.mtimeNsec))
      );
    }
  }

  statfs(path: readonly string[]): FsStatfs {
    const full = this.#object(path);
    const s = wrap(() => statfsSync(full));
    return {
      type: Number(s.type),
      bsize: Number(s.bsize),
      blocks: Number(s.blocks),
      bfree: Number(s.bfree),
      bavail: Number(s.bavail),
      files: Number(s.files),
      ffree: Number(s.ffree),
      fsid: 0,
      namelen: 255,
    };
  }

  getxattr(path: readonly string[], _name: string): Uint8Array {
    this.#object(path);
    throw new FsError(Errno.ENODATA);
  }

  listxattr(path: readonly string[]): Uint8Array {
    this.#object(path);
    return new Uint8Array(0);
  }

  setxattr(_path: readonly string[], _name: string, _value: Uint8Array, _flags: number): void {
    this.#ro();
    throw new FsError(Errno.EOPNOTSUPP);
  }
}

/**
 * Open a `-fsdev local` export: the directory must exist. Returns the backend and warnings to print.
 * @throws UserError when the path is missing or not a directory
 */
export function openLocalFs(o: LocalFsOptions): { fs: LocalFs; warnings: string[] } {
  let root: string;
  try {
    root = Deno.realPathSync(o.path);
    if (!Deno.statSync(root).isDirectory) throw new Error("not a directory");
  } catch (_e) {
    throw new UserError(`cannot initialize fsdev: failed to open '${o.path}': No such file or directory`);
  }
  const warnings: string[] = [];
  if (o.securityModel === "mapped-xattr" || o.securityModel === "mapped") {
    warnings.push(
      `warning: fsdev: security_model=${o.securityModel}: guest credentials are not stored ` +
        "(no xattr API without FFI); files keep the server's owner and their guest mode (use mapped-file)",
    );
  }
  return { fs: new LocalFs({ ...o, path: root }), warnings };
}
