/**
 * A 9P2000.L file server (the protocol half of QEMU 7.2 hw/9pfs/9p.c) over an FsBackend. It parses one
 * request at a time and returns the reply bytes; it never throws for guest input: an unknown fid, a
 * truncated message, a bad string or a count beyond the message answers Rlerror with the errno QEMU uses
 * (ENOENT for an unknown fid, ENOBUFS for a truncated message, EROFS for a modifying request on a
 * read-only export, EOPNOTSUPP for an unknown or legacy request). `..` is resolved here, clamped at the
 * export root, so the backend only ever sees names below the root.
 * @module
 */
import { Errno, type FsBackend, FsError, type FsHandle, type FsStat } from "../../core/fsdev.ts";

/** 9P2000.L message types (Linux include/net/9p/9p.h). */
export const P9 = {
  TLERROR: 6,
  RLERROR: 7,
  TSTATFS: 8,
  TLOPEN: 12,
  TLCREATE: 14,
  TSYMLINK: 16,
  TMKNOD: 18,
  TRENAME: 20,
  TREADLINK: 22,
  TGETATTR: 24,
  TSETATTR: 26,
  TXATTRWALK: 30,
  TXATTRCREATE: 32,
  TREADDIR: 40,
  TFSYNC: 50,
  TLOCK: 52,
  TGETLOCK: 54,
  TLINK: 70,
  TMKDIR: 72,
  TRENAMEAT: 74,
  TUNLINKAT: 76,
  TVERSION: 100,
  TAUTH: 102,
  TATTACH: 104,
  TFLUSH: 108,
  TWALK: 110,
  TREAD: 116,
  TWRITE: 118,
  TCLUNK: 120,
  TREMOVE: 122,
} as const;

/** No fid (Tattach afid). */
export const P9_NOFID = 0xffffffff;
/** Header bytes of Rread/Twrite that iounit leaves room for (QEMU P9_IOHDRSZ). */
export const P9_IOHDRSZ = 24;
/** Smallest msize a session may use (QEMU P9_MIN_MSIZE). */
export const P9_MIN_MSIZE = 4096;
/** Names per Twalk (P9_MAXWELEM). */
export const P9_MAXWELEM = 16;
/** Largest extended attribute a guest may create (Linux XATTR_SIZE_MAX). */
const XATTR_SIZE_MAX = 65536;
/** Host files a session may hold open at once (QEMU reclaims fds instead; we refuse with ENFILE). */
const MAX_OPEN_FILES = 1024;
const O_ACCMODE = 3;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
const O_CREAT = 0o100;
const AT_REMOVEDIR = 0x200;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
/** Requests a read-only export still serves (QEMU is_read_only_op). */
const READ_ONLY_OPS = new Set<number>([
  P9.TREADDIR,
  P9.TSTATFS,
  P9.TGETATTR,
  P9.TXATTRWALK,
  P9.TLOCK,
  P9.TGETLOCK,
  P9.TREADLINK,
  P9.TVERSION,
  P9.TLOPEN,
  P9.TATTACH,
  P9.TWALK,
  P9.TCLUNK,
  P9.TFSYNC,
  P9.TREAD,
  P9.TAUTH,
  P9.TFLUSH,
]);

const dec = new TextDecoder("utf-8", { fatal: true });
const enc = new TextEncoder();

class Reader {
  readonly #b: Uint8Array;
  readonly #dv: DataView;
  off = 7;
  constructor(b: Uint8Array) {
    this.#b = b;
    this.#dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  #need(n: number): void {
    if (this.off + n > this.#b.length) throw new FsError(Errno.ENOBUFS, "truncated 9P message");
  }
  get remaining(): number {
    return this.#b.length - this.off;
  }
  u8(): number {
    this.#need(1);
    return this.#b[this.off++];
  }
  u16(): number {
    this.#need(2);
    const v = this.#dv.getUint16(this.off, true);
    this.off += 2;
    return v;
  }
  u32(): number {
    this.#need(4);
    const v = this.#dv.getUint32(this.off, true);
    this.off += 4;
    return v;
  }
  /** u64 as a number (values above 2^53 lose precision; callers that care check `safe`). */
  u64(): number {
    const lo = this.u32();
    const hi = this.u32();
    return hi * 0x1_0000_0000 + lo;
  }
  str(): string {
    const n = this.u16();
    this.#need(n);
    const bytes = this.#b.subarray(this.off, this.off + n);
    this.off += n;
    try {
      return dec.decode(bytes);
    } catch {
      throw new FsError(Errno.EILSEQ, "name is not UTF-8");
    }
  }
  bytes(n: number): Uint8Array {
    this.#need(n);
    const b = this.#b.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }
}

class Writer {
  #b = new Uint8Array(256);
  #dv = new DataView(this.#b.buffer);
  len = 7;
  #grow(n: number): void {
    if (this.len + n <= this.#b.length) return;
    let size = this.#b.length * 2;
    while (size < this.len + n) size *= 2;
    const nb = new Uint8Array(size);
    nb.set(this.#b.subarray(0, this.len));
    this.#b = nb;
    this.#dv = new DataView(nb.buffer);
  }
  u8(v: number): this {
    this.#grow(1);
    this.#b[this.len++] = v & 0xff;
    return this;
  }
  u16(v: number): this {
    this.#grow(2);
    this.#dv.setUint16(this.len, v & 0xffff, true);
    this.len += 2;
    return this;
  }
  u32(v: number): this {
    this.#grow(4);
    this.#dv.setUint32(this.len, v >>> 0, true);
    this.len += 4;
    return this;
  }
  u64(v: number): this {
    const n = v < 0 || !Number.isFinite(v) ? 0 : v;
    this.u32(n % 0x1_0000_0000);
    return this.u32(Math.floor(n / 0x1_0000_0000));
  }
  str(s: string): this {
    const b = enc.encode(s);
    this.u16(b.length);
    return this.bytes(b);
  }
  bytes(b: Uint8Array): this {
    this.#grow(b.length);
    this.#b.set(b, this.len);
    this.len += b.length;
    return this;
  }
  qid(st: FsStat): this {
    const fmt = st.mode & S_IFMT;
    this.u8(fmt === S_IFDIR ? 0x80 : fmt === S_IFLNK ? 0x02 : 0);
    // QEMU stat_to_qid: version = mtime ^ (size << 8), path = inode.
    this.u32((st.mtimeSec ^ (st.size * 256)) >>> 0);
    return this.u64(st.ino);
  }
  /** The bytes written so far (for a body built without a header). */
  data(): Uint8Array {
    return this.#b.subarray(0, this.len);
  }
  finish(type: number, tag: number): Uint8Array {
    this.#dv.setUint32(0, this.len, true);
    this.#b[4] = type;
    this.#dv.setUint16(5, tag, true);
    return this.#b.slice(0, this.len);
  }
}

/** One fid: a path below the root and, once opened, what it refers to. */
interface Fid {
  path: string[];
  uid: number;
  kind: "none" | "file" | "dir" | "xattr" | "xattr-create";
  handle: FsHandle | null;
  dir: { name: string; stat: FsStat }[] | null;
  xattr: Uint8Array | null;
  xattrName: string;
  xattrFlags: number;
  xattrLen: number;
}

function newFid(path: string[], uid: number): Fid {
  return {
    path,
    uid,
    kind: "none",
    handle: null,
    dir: null,
    xattr: null,
    xattrName: "",
    xattrFlags: 0,
    xattrLen: 0,
  };
}

/** QEMU name_is_illegal: empty, or containing '/'. A NUL cannot reach a host call either. */
function checkWalkName(name: string): void {
  if (name === "" || name.includes("/") || name.includes("\0")) throw new FsError(Errno.ENOENT);
}

/** A 9P2000.L server for one export; one instance per virtio-9p device. */
export class P9Server {
  readonly #fs: FsBackend;
  readonly #fids = new Map<number, Fid>();
  #msize = 8192;
  #openFiles = 0;
  /** Requests answered, errors returned (for tests and `info qtree`-style reporting). */
  requests = 0;
  errors = 0;

  constructor(fs: FsBackend) {
    this.#fs = fs;
  }

  /** Negotiated msize. */
  get msize(): number {
    return this.#msize;
  }

  /** Fids currently allocated. */
  get fidCount(): number {
    return this.#fids.size;
  }

  /** Host files currently open. */
  get openFiles(): number {
    return this.#openFiles;
  }

  /** Drop every fid and close every host file (device reset, Tversion). */
  reset(): void {
    for (const f of this.#fids.values()) this.#release(f);
    this.#fids.clear();
  }

  /**
   * Answer one request (`req` holds at least the 7-byte header). `room` is how many reply bytes the
   * guest's buffers hold: reads and directory listings are cut to fit it and the msize.
   */
  handle(req: Uint8Array, room: number): Uint8Array {
    const dv = new DataView(req.buffer, req.byteOffset, req.byteLength);
    const size = dv.getUint32(0, true);
    const type = req[4];
    const tag = dv.getUint16(5, true);
    const msg = req.subarray(0, Math.max(7, Math.min(size, req.length)));
    const r = new Reader(msg);
    const w = new Writer();
    this.requests++;
    try {
      if (this.#fs.readOnly && !READ_ONLY_OPS.has(type)) throw new FsError(Errno.EROFS);
      const rtype = this.#dispatch(type, r, w, room);
      return w.finish(rtype, tag);
    } catch (e) {
      this.errors++;
      const errno = e instanceof FsError ? e.errno : Errno.EIO;
      return new Writer().u32(errno).finish(P9.RLERROR, tag);
    }
  }

  #fid(id: number): Fid {
    const f = this.#fids.get(id);
    if (!f) throw new FsError(Errno.ENOENT, `unknown fid ${id}`);
    return f;
  }

  #release(f: Fid): void {
    if (f.handle) {
      f.handle.close();
      f.handle = null;
      this.#openFiles--;
    }
    f.dir = null;
  }

  /** Room for payload in a reply with `hdr` bytes before it. */
  #maxData(room: number, hdr: number): number {
    return Math.max(0, Math.min(this.#msize, room) - hdr);
  }

  #dispatch(type: number, r: Reader, w: Writer, room: number): number {
    const fs = this.#fs;
    switch (type) {
      case P9.TVERSION: {
        const msize = r.u32();
        const version = r.str();
        this.reset();
        this.#msize = msize;
        if (version !== "9P2000.L") {
          w.u32(msize).str("unknown");
          return P9.TVERSION + 1;
        }
        if (msize < P9_MIN_MSIZE) throw new FsError(Errno.EMSGSIZE);
        w.u32(msize).str(version);
        return P9.TVERSION + 1;
      }
      case P9.TAUTH:
        throw new FsError(Errno.EOPNOTSUPP);
      case P9.TATTACH: {
        const fid = r.u32();
        r.u32(); // afid: no authentication
        r.str(); // uname
        r.str(); // aname: QEMU serves the export root whatever it is
        const nUname = r.u32();
        if (this.#fids.has(fid)) throw new FsError(Errno.EINVAL);
        const st = fs.lstat([]);
        this.#fids.set(fid, newFid([], nUname === 0xffffffff ? 0 : nUname));
        w.qid(st);
        return P9.TATTACH + 1;
      }
      case P9.TFLUSH:
        // Requests complete synchronously, so there is never anything in flight to cancel.
        r.u16();
        return P9.TFLUSH + 1;
      case P9.TWALK:
        return this.#walk(r, w);
      case P9.TCLUNK: {
        const id = r.u32();
        const f = this.#fid(id);
        this.#fids.delete(id);
        this.#release(f);
        if (f.kind === "xattr-create") {
          const value = (f.xattr ?? new Uint8Array(0)).subarray(0, f.xattrLen);
          fs.setxattr(f.path, f.xattrName, value, f.xattrFlags);
        }
        return P9.TCLUNK + 1;
      }
      case P9.TREMOVE: {
        const id = r.u32();
        const f = this.#fid(id);
        // The fid is clunked whether or not the remove succeeds (9P remove(5)).
        this.#fids.delete(id);
        this.#release(f);
        if (f.path.length === 0) throw new FsError(Errno.EBUSY);
        const st = fs.lstat(f.path);
        fs.unlink(f.path.slice(0, -1), f.path[f.path.length - 1], (st.mode & S_IFMT) === S_IFDIR);
        return P9.TREMOVE + 1;
      }
      case P9.TLOPEN:
        return this.#lopen(r, w);
      case P9.TLCREATE: {
        const f = this.#fid(r.u32());
        const name = r.str();
        const flags = r.u32();
        const mode = r.u32();
        const gid = r.u32();
        if (f.kind !== "none") throw new FsError(Errno.EINVAL);
        this.#checkOpenLimit();
        const h = fs.create(f.path, name, flags & ~O_CREAT, mode, { uid: f.uid, gid });
        f.path = [...f.path, name];
        f.kind = "file";
        f.handle = h;
        this.#openFiles++;
        w.qid(h.stat()).u32(this.#iounit());
        return P9.TLCREATE + 1;
      }
      case P9.TSYMLINK: {
        const f = this.#fid(r.u32());
        const name = r.str();
        const target = r.str();
        const gid = r.u32();
        fs.symlink(f.path, name, target, { uid: f.uid, gid });
        w.qid(fs.lstat([...f.path, name]));
        return P9.TSYMLINK + 1;
      }
      case P9.TMKNOD: {
        const f = this.#fid(r.u32());
        const name = r.str();
        const mode = r.u32();
        const major = r.u32();
        const minor = r.u32();
        const gid = r.u32();
        fs.mknod(f.path, name, mode, (major << 8) | minor, { uid: f.uid, gid });
        w.qid(fs.lstat([...f.path, name]));
        return P9.TMKNOD + 1;
      }
      case P9.TMKDIR: {
        const f = this.#fid(r.u32());
        const name = r.str();
        const mode = r.u32();
        const gid = r.u32();
        fs.mkdir(f.path, name, mode, { uid: f.uid, gid });
        w.qid(fs.lstat([...f.path, name]));
        return P9.TMKDIR + 1;
      }
      case P9.TREADLINK: {
        const f = this.#fid(r.u32());
        w.str(fs.readlink(f.path));
        return P9.TREADLINK + 1;
      }
      case P9.TGETATTR:
        return this.#getattr(r, w);
      case P9.TSETATTR:
        return this.#setattr(r);
      case P9.TSTATFS: {
        const f = this.#fid(r.u32());
        const s = fs.statfs(f.path);
        w.u32(s.type).u32(s.bsize).u64(s.blocks).u64(s.bfree).u64(s.bavail).u64(s.files).u64(s.ffree)
          .u64(s.fsid).u32(s.namelen);
        return P9.TSTATFS + 1;
      }
      case P9.TREADDIR:
        return this.#readdir(r, w, room);
      case P9.TREAD:
        return this.#read(r, w, room);
      case P9.TWRITE:
        return this.#write(r, w);
      case P9.TFSYNC: {
        const f = this.#fid(r.u32());
        const datasync = r.u32();
        f.handle?.sync(datasync !== 0);
        return P9.TFSYNC + 1;
      }
      case P9.TLOCK: {
        // QEMU answers every lock request with success without taking a host lock (v9fs_lock).
        this.#fid(r.u32());
        r.u8();
        r.u32();
        r.u64();
        r.u64();
        r.u32();
        r.str();
        w.u8(0);
        return P9.TLOCK + 1;
      }
      case P9.TGETLOCK: {
        this.#fid(r.u32());
        r.u8();
        const start = r.u64();
        const length = r.u64();
        const procId = r.u32();
        const client = r.str();
        // F_UNLCK: nothing conflicts (v9fs_getlock).
        w.u8(2).u64(start).u64(length).u32(procId).str(client);
        return P9.TGETLOCK + 1;
      }
      case P9.TLINK: {
        const d = this.#fid(r.u32());
        const f = this.#fid(r.u32());
        const name = r.str();
        fs.link(f.path, d.path, name);
        return P9.TLINK + 1;
      }
      case P9.TRENAME: {
        const f = this.#fid(r.u32());
        const d = this.#fid(r.u32());
        const name = r.str();
        if (f.path.length === 0) throw new FsError(Errno.EBUSY);
        const oldPath = f.path;
        fs.rename(oldPath.slice(0, -1), oldPath[oldPath.length - 1], d.path, name);
        this.#movePaths(oldPath, [...d.path, name]);
        return P9.TRENAME + 1;
      }
      case P9.TRENAMEAT: {
        const od = this.#fid(r.u32());
        const oldName = r.str();
        const nd = this.#fid(r.u32());
        const newName = r.str();
        for (const n of [oldName, newName]) {
          checkWalkName(n);
          if (n === "." || n === "..") throw new FsError(Errno.EISDIR);
        }
        fs.rename(od.path, oldName, nd.path, newName);
        this.#movePaths([...od.path, oldName], [...nd.path, newName]);
        return P9.TRENAMEAT + 1;
      }
      case P9.TUNLINKAT: {
        const d = this.#fid(r.u32());
        const name = r.str();
        const flags = r.u32();
        checkWalkName(name);
        if (name === ".") throw new FsError(Errno.EINVAL);
        if (name === "..") throw new FsError(Errno.ENOTEMPTY);
        fs.unlink(d.path, name, (flags & AT_REMOVEDIR) !== 0);
        return P9.TUNLINKAT + 1;
      }
      case P9.TXATTRWALK: {
        const f = this.#fid(r.u32());
        const newId = r.u32();
        const name = r.str();
        if (this.#fids.has(newId)) throw new FsError(Errno.EINVAL);
        const value = name === "" ? fs.listxattr(f.path) : fs.getxattr(f.path, name);
        const nf = newFid(f.path.slice(), f.uid);
        nf.kind = "xattr";
        nf.xattr = value;
        this.#fids.set(newId, nf);
        w.u64(value.length);
        return P9.TXATTRWALK + 1;
      }
      case P9.TXATTRCREATE: {
        const f = this.#fid(r.u32());
        const name = r.str();
        const size = r.u64();
        const flags = r.u32();
        if (size > XATTR_SIZE_MAX) throw new FsError(Errno.E2BIG);
        if (f.kind !== "none") throw new FsError(Errno.EINVAL);
        f.kind = "xattr-create";
        f.xattrName = name;
        f.xattrFlags = flags;
        f.xattrLen = size;
        f.xattr = new Uint8Array(size);
        return P9.TXATTRCREATE + 1;
      }
      default:
        // Legacy 9P2000/9P2000.u requests and anything unknown (QEMU v9fs_op_not_supp).
        throw new FsError(Errno.EOPNOTSUPP);
    }
  }

  #iounit(): number {
    return Math.max(0, this.#msize - P9_IOHDRSZ);
  }

  #checkOpenLimit(): void {
    if (this.#openFiles >= MAX_OPEN_FILES) throw new FsError(Errno.ENFILE);
  }

  /** After a rename, every fid at or below `from` follows the object to `to` (QEMU v9fs_fix_path). */
  #movePaths(from: readonly string[], to: readonly string[]): void {
    for (const f of this.#fids.values()) {
      if (f.path.length < from.length) continue;
      let under = true;
      for (let i = 0; i < from.length; i++) {
        if (f.path[i] !== from[i]) {
          under = false;
          break;
        }
      }
      if (under) f.path = [...to, ...f.path.slice(from.length)];
    }
  }

  #walk(r: Reader, w: Writer): number {
    const fid = r.u32();
    const newId = r.u32();
    const n = r.u16();
    if (n > P9_MAXWELEM) throw new FsError(Errno.EINVAL);
    const names: string[] = [];
    for (let i = 0; i < n; i++) names.push(r.str());
    const f = this.#fid(fid);
    if (newId !== fid && this.#fids.has(newId)) throw new FsError(Errno.EINVAL);
    for (const name of names) checkWalkName(name);
    const path = f.path.slice();
    const qids: FsStat[] = [];
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      try {
        if (i > 0 && (qids[i - 1].mode & S_IFMT) !== S_IFDIR) throw new FsError(Errno.ENOTDIR);
        // `..` at the root stays at the root; `.` stays where it is.
        if (name === "..") path.pop();
        else if (name !== ".") path.push(name);
        qids.push(this.#fs.lstat(path));
      } catch (e) {
        if (i === 0) throw e;
        break;
      }
    }
    if (qids.length === names.length) {
      if (newId === fid) {
        f.path = path;
      } else {
        this.#fids.set(newId, newFid(path, f.uid));
      }
    }
    w.u16(qids.length);
    for (const q of qids) w.qid(q);
    return P9.TWALK + 1;
  }

  #lopen(r: Reader, w: Writer): number {
    const f = this.#fid(r.u32());
    const flags = r.u32();
    if (f.kind !== "none") throw new FsError(Errno.EINVAL);
    const acc = flags & O_ACCMODE;
    if (this.#fs.readOnly && (acc !== 0 || (flags & (O_TRUNC | O_APPEND)) !== 0)) {
      throw new FsError(Errno.EROFS);
    }
    const st = this.#fs.lstat(f.path);
    if ((st.mode & S_IFMT) === S_IFDIR) {
      if (acc !== 0) throw new FsError(Errno.EISDIR);
      f.kind = "dir";
      f.dir = null;
    } else {
      this.#checkOpenLimit();
      f.handle = this.#fs.open(f.path, flags & ~O_CREAT);
      this.#openFiles++;
      f.kind = "file";
    }
    w.qid(st).u32(this.#iounit());
    return P9.TLOPEN + 1;
  }

  #getattr(r: Reader, w: Writer): number {
    const f = this.#fid(r.u32());
    r.u64(); // request_mask: we always return the basic set, as QEMU does
    let st;
    try {
      st = this.#fs.lstat(f.path);
    } catch (e) {
      // An open file that was unlinked keeps its attributes (fstat), as QEMU answers.
      if (!f.handle) throw e;
      st = f.handle.stat();
    }
    w.u64(0x7ff).qid(st).u32(st.mode).u32(st.uid).u32(st.gid).u64(st.nlink).u64(st.rdev).u64(st.size)
      .u64(st.blksize).u64(st.blocks).u64(st.atimeSec).u64(st.atimeNsec).u64(st.mtimeSec).u64(st.mtimeNsec)
      .u64(st.ctimeSec).u64(st.ctimeNsec).u64(0).u64(0).u64(0).u64(0);
    return P9.TGETATTR + 1;
  }

  #setattr(r: Reader): number {
    const f = this.#fid(r.u32());
    const valid = r.u32();
    const mode = r.u32();
    const uid = r.u32();
    const gid = r.u32();
    const size = r.u64();
    const aSec = r.u64();
    const aNsec = r.u64();
    const mSec = r.u64();
    const mNsec = r.u64();
    const attr: Parameters<FsBackend["setattr"]>[1] = {};
    if (valid & 0x1) attr.mode = mode;
    if (valid & 0x2) attr.uid = uid;
    if (valid & 0x4) attr.gid = gid;
    if (valid & 0x8) {
      if (!Number.isSafeInteger(size)) throw new FsError(Errno.EFBIG);
      attr.size = size;
    }
    if (valid & 0x10) attr.atime = valid & 0x80 ? { sec: aSec, nsec: aNsec } : "now";
    if (valid & 0x20) attr.mtime = valid & 0x100 ? { sec: mSec, nsec: mNsec } : "now";
    if (Object.keys(attr).length > 0) this.#fs.setattr(f.path, attr);
    return P9.TSETATTR + 1;
  }

  #readdir(r: Reader, w: Writer, room: number): number {
    const f = this.#fid(r.u32());
    const offset = r.u64();
    const count = r.u32();
    if (f.kind !== "dir") throw new FsError(Errno.EINVAL);
    if (offset === 0 || f.dir === null) {
      const self = this.#fs.lstat(f.path);
      const parent = f.path.length === 0 ? self : this.#fs.lstat(f.path.slice(0, -1));
      f.dir = [{ name: ".", stat: self }, { name: "..", stat: parent }, ...this.#fs.readdir(f.path)];
    }
    const max = Math.min(count, this.#maxData(room, 11));
    const body = new Writer();
    body.len = 0;
    let used = 0;
    for (let i = offset; i < f.dir.length; i++) {
      const e = f.dir[i];
      const size = 13 + 8 + 1 + 2 + enc.encode(e.name).length;
      if (used + size > max) break;
      body.qid(e.stat).u64(i + 1).u8((e.stat.mode >> 12) & 0xf).str(e.name);
      used += size;
    }
    w.u32(used).bytes(body.data());
    return P9.TREADDIR + 1;
  }

  #read(r: Reader, w: Writer, room: number): number {
    const f = this.#fid(r.u32());
    const offset = r.u64();
    const count = Math.min(r.u32(), this.#maxData(room, 11));
    if (!Number.isSafeInteger(offset)) throw new FsError(Errno.EINVAL);
    if (f.kind === "xattr") {
      const x = f.xattr ?? new Uint8Array(0);
      const part = offset >= x.length ? new Uint8Array(0) : x.subarray(offset, offset + count);
      w.u32(part.length).bytes(part);
      return P9.TREAD + 1;
    }
    if (f.kind !== "file" || !f.handle) throw new FsError(Errno.EINVAL);
    const buf = new Uint8Array(count);
    const n = f.handle.read(offset, buf);
    w.u32(n).bytes(buf.subarray(0, n));
    return P9.TREAD + 1;
  }

  #write(r: Reader, w: Writer): number {
    const f = this.#fid(r.u32());
    const offset = r.u64();
    const count = r.u32();
    if (count > r.remaining) throw new FsError(Errno.ENOBUFS, "write count beyond the message");
    const data = r.bytes(count);
    if (!Number.isSafeInteger(offset)) throw new FsError(Errno.EINVAL);
    if (f.kind === "xattr-create") {
      const x = f.xattr!;
      if (offset > x.length) throw new FsError(Errno.ENOSPC);
      const n = Math.min(count, x.length - offset);
      x.set(data.subarray(0, n), offset);
      w.u32(n);
      return P9.TWRITE + 1;
    }
    if (f.kind !== "file" || !f.handle) throw new FsError(Errno.EBADF);
    w.u32(f.handle.write(offset, data));
    return P9.TWRITE + 1;
  }
}
