/**
 * The contract between a 9P file server (devices/virtio/p9_server.ts) and the host directory that backs it
 * (core/host/fs_local.ts, QEMU's `-fsdev local`). Paths are arrays of name components relative to the
 * export root; the backend resolves them without following host symlinks and refuses anything that would
 * leave the root. Every failure is an `FsError` carrying a Linux errno, which the server returns as Rlerror.
 * @module
 */

/** Linux errno values used by 9P2000.L (Rlerror carries them as they are). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EPROTO: 71,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EILSEQ: 84,
  ENFILE: 23,
  E2BIG: 7,
  ENOBUFS: 105,
} as const;

/** A file-system failure with the errno the guest should see. */
export class FsError extends Error {
  readonly errno: number;
  constructor(errno: number, message = `errno ${errno}`) {
    super(message);
    this.name = "FsError";
    this.errno = errno;
  }
}

/** File attributes as 9P2000.L Rgetattr reports them (times split into seconds and nanoseconds). */
export interface FsStat {
  /** st_mode: file type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  dev: number;
  ino: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
}

/** statfs(2) fields of Rstatfs. */
export interface FsStatfs {
  type: number;
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  fsid: number;
  namelen: number;
}

/** One directory entry (already lstat'ed: `stat` describes the entry itself, never a symlink's target). */
export interface FsDirEntry {
  name: string;
  stat: FsStat;
}

/** An open regular file. */
export interface FsHandle {
  /** Read at `offset` into `dst`; returns bytes read (0 at end of file). */
  read(offset: number, dst: Uint8Array): number;
  /** Write `src` at `offset` (or at the end with O_APPEND); returns bytes written. */
  write(offset: number, src: Uint8Array): number;
  sync(dataOnly: boolean): void;
  stat(): FsStat;
  close(): void;
}

/** Attribute changes of Tsetattr (absent = unchanged; `"now"` = the host's current time). */
export interface FsSetattr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: { sec: number; nsec: number } | "now";
  mtime?: { sec: number; nsec: number } | "now";
}

/** Credentials of the guest user a request is made for (from Tattach n_uname and the request's gid). */
export interface FsCred {
  uid: number;
  gid: number;
}

/** The host side of a `-fsdev`: one exported directory. All methods are synchronous and throw FsError. */
export interface FsBackend {
  /** True for `readonly=on`: every modifying call fails with EROFS. */
  readonly readOnly: boolean;
  /** The security model name (`passthrough`, `mapped-xattr`, `mapped-file`, `none`). */
  readonly securityModel: string;
  /** Attributes of the object at `path` (never following a final symlink). */
  lstat(path: readonly string[]): FsStat;
  /** Open a regular file (Linux open flags; O_CREAT is refused here, use create). */
  open(path: readonly string[], flags: number): FsHandle;
  /** The entries of a directory, without `.` and `..`. */
  readdir(path: readonly string[]): FsDirEntry[];
  /** Create and open a regular file `name` in directory `dir`. */
  create(dir: readonly string[], name: string, flags: number, mode: number, cred: FsCred): FsHandle;
  mkdir(dir: readonly string[], name: string, mode: number, cred: FsCred): void;
  symlink(dir: readonly string[], name: string, target: string, cred: FsCred): void;
  mknod(dir: readonly string[], name: string, mode: number, rdev: number, cred: FsCred): void;
  readlink(path: readonly string[]): string;
  /** Hard link: a new name `name` in `dir` for the object at `target`. */
  link(target: readonly string[], dir: readonly string[], name: string): void;
  rename(oldDir: readonly string[], oldName: string, newDir: readonly string[], newName: string): void;
  /** Remove `name` from `dir`; `dir_ok` (AT_REMOVEDIR) removes an empty directory instead of a file. */
  unlink(dir: readonly string[], name: string, removeDir: boolean): void;
  setattr(path: readonly string[], attr: FsSetattr): void;
  statfs(path: readonly string[]): FsStatfs;
  /** Extended attribute value (ENODATA when absent, EOPNOTSUPP when the backend has none). */
  getxattr(path: readonly string[], name: string): Uint8Array;
  /** NUL-separated attribute names. */
  listxattr(path: readonly string[]): Uint8Array;
  setxattr(path: readonly string[], name: string, value: Uint8Array, flags: number): void;
}
