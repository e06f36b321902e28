/**
 * P9Server over a real LocalFs in a temporary directory: the 9P2000.L requests the Linux client sends,
 * containment (host symlinks, `..`, absolute symlink targets), read-only exports, and hostile messages.
 */
import assert from "node:assert/strict";
import { P9, P9Server } from "./p9_server.ts";
import { openLocalFs } from "../../core/host/fs_local.ts";
import { Errno } from "../../core/fsdev.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Builds requests and parses replies. */
class Msg {
  b: number[] = [];
  u8(v: number) {
    this.b.push(v & 0xff);
    return this;
  }
  u16(v: number) {
    return this.u8(v).u8(v >> 8);
  }
  u32(v: number) {
    return this.u16(v & 0xffff).u16(v >>> 16);
  }
  u64(v: number) {
    return this.u32(v % 2 ** 32).u32(Math.floor(v / 2 ** 32));
  }
  str(s: string) {
    const e = enc.encode(s);
    this.u16(e.length);
    for (const x of e) this.u8(x);
    return this;
  }
  bytes(d: Uint8Array) {
    for (const x of d) this.u8(x);
    return this;
  }
  build(type: number, tag = 1): Uint8Array {
    const out = new Uint8Array(7 + this.b.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, out.length, true);
    out[4] = type;
    dv.setUint16(5, tag, true);
    out.set(this.b, 7);
    return out;
  }
}

class Reply {
  off = 7;
  dv: DataView;
  constructor(public b: Uint8Array) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  get type() {
    return this.b[4];
  }
  u8() {
    return this.b[this.off++];
  }
  u16() {
    const v = this.dv.getUint16(this.off, true);
    this.off += 2;
    return v;
  }
  u32() {
    const v = this.dv.getUint32(this.off, true);
    this.off += 4;
    return v;
  }
  u64() {
    const lo = this.u32();
    return this.u32() * 2 ** 32 + lo;
  }
  str() {
    const n = this.u16();
    const s = dec.decode(this.b.subarray(this.off, this.off + n));
    this.off += n;
    return s;
  }
  qid() {
    return { type: this.u8(), version: this.u32(), path: this.u64() };
  }
}

function setup(opts: { readOnly?: boolean } = {}) {
  const top = Deno.makeTempDirSync({ prefix: "p9-" });
  const share = `${top}/share`;
  Deno.mkdirSync(share);
  Deno.writeTextFileSync(`${top}/secret`, "TOP-SECRET");
  Deno.mkdirSync(`${top}/outside`);
  Deno.writeTextFileSync(`${top}/outside/x`, "OUTSIDE");
  Deno.writeTextFileSync(`${share}/hello.txt`, "hello world\n");
  Deno.mkdirSync(`${share}/sub`);
  Deno.writeTextFileSync(`${share}/sub/inner`, "inner");
  Deno.symlinkSync(`${top}/secret`, `${share}/abs-link`);
  Deno.symlinkSync("../secret", `${share}/rel-link`);
  Deno.symlinkSync(`${top}/outside`, `${share}/dirlink`);
  const { fs } = openLocalFs({ path: share, securityModel: "none", readOnly: opts.readOnly ?? false });
  const srv = new P9Server(fs);
  const call = (m: Msg, type: number, room = 1 << 20) => new Reply(srv.handle(m.build(type), room));
  const errno = (r: Reply) => {
    assert.equal(r.type, P9.RLERROR, `expected Rlerror, got type ${r.type}`);
    return r.u32();
  };
  const ok = (r: Reply, type: number) => {
    if (r.type === P9.RLERROR) assert.fail(`Rlerror ${r.u32()} for request ${type}`);
    assert.equal(r.type, type + 1);
    return r;
  };
  const attach = () => {
    ok(call(new Msg().u32(65536).str("9P2000.L"), P9.TVERSION), P9.TVERSION);
    ok(call(new Msg().u32(0).u32(0xffffffff).str("root").str("").u32(0), P9.TATTACH), P9.TATTACH);
  };
  const walk = (fid: number, nf: number, ...names: string[]) => {
    const m = new Msg().u32(fid).u32(nf).u16(names.length);
    for (const n of names) m.str(n);
    return call(m, P9.TWALK);
  };
  const cleanup = () => {
    srv.reset();
    Deno.removeSync(top, { recursive: true });
  };
  return { top, share, srv, call, errno, ok, attach, walk, cleanup };
}

Deno.test("P9Server negotiates msize and version as QEMU 7.2 does", () => {
  const t = setup();
  try {
    const r = t.ok(t.call(new Msg().u32(131072).str("9P2000.L"), P9.TVERSION), P9.TVERSION);
    assert.equal(r.u32(), 131072);
    assert.equal(r.str(), "9P2000.L");
    const u = t.ok(t.call(new Msg().u32(8192).str("9P2000.u"), P9.TVERSION), P9.TVERSION);
    u.u32();
    assert.equal(u.str(), "unknown");
    assert.equal(t.errno(t.call(new Msg().u32(1024).str("9P2000.L"), P9.TVERSION)), Errno.EMSGSIZE);
  } finally {
    t.cleanup();
  }
});

Deno.test("P9Server walks, opens, reads, writes, lists and renames inside the export", () => {
  const t = setup();
  try {
    t.attach();
    const w = t.ok(t.walk(0, 1, "hello.txt"), P9.TWALK);
    assert.equal(w.u16(), 1);
    assert.equal(w.qid().type, 0);
    t.ok(t.call(new Msg().u32(1).u32(0), P9.TLOPEN), P9.TLOPEN);
    const rd = t.ok(t.call(new Msg().u32(1).u64(0).u32(100), P9.TREAD), P9.TREAD);
    const n = rd.u32();
    assert.equal(dec.decode(rd.b.subarray(rd.off, rd.off + n)), "hello world\n");
    // lcreate + write, seen by the host
    t.ok(t.walk(0, 2), P9.TWALK);
    t.ok(t.call(new Msg().u32(2).str("new.txt").u32(0o102).u32(0o640).u32(0), P9.TLCREATE), P9.TLCREATE);
    const wr = t.ok(t.call(new Msg().u32(2).u64(0).u32(5).bytes(enc.encode("abcde")), P9.TWRITE), P9.TWRITE);
    assert.equal(wr.u32(), 5);
    t.ok(t.call(new Msg().u32(2), P9.TCLUNK), P9.TCLUNK);
    assert.equal(Deno.readTextFileSync(`${t.share}/new.txt`), "abcde");
    assert.equal(Deno.statSync(`${t.share}/new.txt`).mode! & 0o777, 0o640);
    // mkdir, renameat, unlinkat
    t.ok(t.call(new Msg().u32(0).str("d").u32(0o755).u32(0), P9.TMKDIR), P9.TMKDIR);
    t.ok(t.call(new Msg().u32(0).str("new.txt").u32(0).str("moved.txt"), P9.TRENAMEAT), P9.TRENAMEAT);
    assert.equal(Deno.readTextFileSync(`${t.share}/moved.txt`), "abcde");
    t.ok(t.call(new Msg().u32(0).str("d").u32(0x200), P9.TUNLINKAT), P9.TUNLINKAT);
    assert.throws(() => Deno.statSync(`${t.share}/d`));
    // readdir of the root lists . .. and the entries
    t.ok(t.walk(0, 3), P9.TWALK);
    t.ok(t.call(new Msg().u32(3).u32(0), P9.TLOPEN), P9.TLOPEN);
    const rdd = t.ok(t.call(new Msg().u32(3).u64(0).u32(8192), P9.TREADDIR), P9.TREADDIR);
    const end = rdd.off + 4 + rdd.u32();
    const names: string[] = [];
    while (rdd.off < end) {
      rdd.qid();
      rdd.u64();
      rdd.u8();
      names.push(rdd.str());
    }
    assert.deepEqual(
      names.sort(),
      [".", "..", "abs-link", "dirlink", "hello.txt", "moved.txt", "rel-link", "sub"],
    );
    // symlink + readlink, getattr
    t.ok(t.call(new Msg().u32(0).str("ln").str("hello.txt").u32(0), P9.TSYMLINK), P9.TSYMLINK);
    assert.equal(Deno.readLinkSync(`${t.share}/ln`), "hello.txt");
    t.ok(t.walk(0, 4, "ln"), P9.TWALK);
    assert.equal(t.ok(t.call(new Msg().u32(4), P9.TREADLINK), P9.TREADLINK).str(), "hello.txt");
    const ga = t.ok(t.call(new Msg().u32(1).u64(0x7ff), P9.TGETATTR), P9.TGETATTR);
    ga.u64();
    ga.qid();
    assert.equal(ga.u32() & 0o170000, 0o100000);
    // statfs answers
    t.ok(t.call(new Msg().u32(0), P9.TSTATFS), P9.TSTATFS);
  } finally {
    t.cleanup();
  }
});

Deno.test("P9Server never follows host symlinks and keeps `..` at the export root", () => {
  const t = setup();
  try {
    t.attach();
    // `..` from the root stays at the root: the qid is the root's.
    const root = t.ok(t.walk(0, 9), P9.TWALK);
    assert.equal(root.u16(), 0);
    const up = t.ok(t.walk(0, 1, "..", "..", "hello.txt"), P9.TWALK);
    assert.equal(up.u16(), 3);
    t.ok(t.call(new Msg().u32(1).u32(0), P9.TLOPEN), P9.TLOPEN);
    const rd = t.ok(t.call(new Msg().u32(1).u64(0).u32(100), P9.TREAD), P9.TREAD);
    assert.equal(dec.decode(rd.b.subarray(rd.off + 4, rd.off + 4 + rd.u32())), "hello world\n");
    // `..` then "secret" (a file beside the export) is not found: a partial walk, and no new fid.
    assert.equal(t.ok(t.walk(0, 2, "..", "secret"), P9.TWALK).u16(), 1);
    assert.equal(t.errno(t.call(new Msg().u32(2).u32(0), P9.TLOPEN)), Errno.ENOENT);
    // Walking through a symlinked directory stops at the link (partial walk, no new fid).
    const part = t.ok(t.walk(0, 3, "dirlink", "x"), P9.TWALK);
    assert.equal(part.u16(), 1);
    assert.equal(t.errno(t.call(new Msg().u32(3).u32(0), P9.TLOPEN)), Errno.ENOENT);
    // Opening a symlink (absolute or relative, pointing outside) is refused: it is never followed.
    for (const name of ["abs-link", "rel-link", "dirlink"]) {
      t.ok(t.walk(0, 4, name), P9.TWALK);
      const e = t.errno(t.call(new Msg().u32(4).u32(0), P9.TLOPEN));
      assert.equal(e, Errno.ELOOP, name);
      t.ok(t.call(new Msg().u32(4), P9.TCLUNK), P9.TCLUNK);
    }
    // lcreate over an existing symlink must not create or write the outside file.
    t.ok(t.walk(0, 5), P9.TWALK);
    assert.equal(
      t.errno(t.call(new Msg().u32(5).str("abs-link").u32(0o1101).u32(0o644).u32(0), P9.TLCREATE)),
      Errno.ELOOP,
    );
    assert.equal(Deno.readTextFileSync(`${t.top}/secret`), "TOP-SECRET");
    // setattr (truncate / chmod) on a symlink does not touch its target.
    t.ok(t.walk(0, 6, "abs-link"), P9.TWALK);
    const sa = new Msg().u32(6).u32(0x9).u32(0o777).u32(0).u32(0).u64(0).u64(0).u64(0).u64(0).u64(0);
    assert.equal(t.errno(t.call(sa, P9.TSETATTR)), Errno.EOPNOTSUPP);
    assert.equal(Deno.readTextFileSync(`${t.top}/secret`), "TOP-SECRET");
    // Names with '/' are refused (ENOENT, QEMU name_is_illegal).
    assert.equal(t.errno(t.walk(0, 7, "sub/inner")), Errno.ENOENT);
    assert.equal(
      t.errno(t.call(new Msg().u32(0).str("../escape").u32(0o755).u32(0), P9.TMKDIR)),
      Errno.ENOENT,
    );
    assert.equal(t.errno(t.call(new Msg().u32(0).str("..").u32(0o755).u32(0), P9.TMKDIR)), Errno.EEXIST);
    // A host directory swapped for a symlink after the fid was walked is not followed.
    t.ok(t.walk(0, 8, "sub", "inner"), P9.TWALK);
    Deno.renameSync(`${t.share}/sub`, `${t.share}/sub.real`);
    Deno.symlinkSync(`${t.top}/outside`, `${t.share}/sub`);
    Deno.writeTextFileSync(`${t.top}/outside/inner`, "OUTSIDE");
    assert.equal(t.errno(t.call(new Msg().u32(8).u32(0), P9.TLOPEN)), Errno.ELOOP);
    // Hard link made by the guest: both names inside the export.
    t.ok(t.walk(0, 10, "hello.txt"), P9.TWALK);
    t.ok(t.call(new Msg().u32(0).u32(10).str("hard"), P9.TLINK), P9.TLINK);
    assert.equal(Deno.readTextFileSync(`${t.share}/hard`), "hello world\n");
  } finally {
    t.cleanup();
  }
});

Deno.test("P9Server on a readonly=on export refuses every modification with EROFS", () => {
  const t = setup({ readOnly: true });
  try {
    t.attach();
    t.ok(t.walk(0, 1, "hello.txt"), P9.TWALK);
    assert.equal(t.errno(t.call(new Msg().u32(1).u32(1), P9.TLOPEN)), Errno.EROFS);
    assert.equal(t.errno(t.call(new Msg().u32(1).u32(0o1000), P9.TLOPEN)), Errno.EROFS);
    t.ok(t.call(new Msg().u32(1).u32(0), P9.TLOPEN), P9.TLOPEN);
    assert.equal(t.errno(t.call(new Msg().u32(1).u64(0).u32(1).u8(0x41), P9.TWRITE)), Errno.EROFS);
    assert.equal(t.errno(t.call(new Msg().u32(0).str("x").u32(0o755).u32(0), P9.TMKDIR)), Errno.EROFS);
    assert.equal(t.errno(t.call(new Msg().u32(0).str("hello.txt").u32(0), P9.TUNLINKAT)), Errno.EROFS);
    assert.equal(t.errno(t.call(new Msg().u32(0).str("l").str("x").u32(0), P9.TSYMLINK)), Errno.EROFS);
    const sa = new Msg().u32(1).u32(0x8).u32(0).u32(0).u32(0).u64(0).u64(0).u64(0).u64(0).u64(0);
    assert.equal(t.errno(t.call(sa, P9.TSETATTR)), Errno.EROFS);
    assert.equal(Deno.readTextFileSync(`${t.share}/hello.txt`), "hello world\n");
  } finally {
    t.cleanup();
  }
});

Deno.test("P9Server answers hostile messages with Rlerror and keeps serving", () => {
  const t = setup();
  try {
    t.attach();
    // Unknown fid.
    assert.equal(t.errno(t.call(new Msg().u32(77).u32(0), P9.TLOPEN)), Errno.ENOENT);
    assert.equal(t.errno(t.call(new Msg().u32(77), P9.TCLUNK)), Errno.ENOENT);
    // Truncated message (string length beyond the message).
    const trunc = new Msg().u32(0).u32(1).u16(1).u16(500).build(P9.TWALK);
    assert.equal(t.errno(new Reply(t.srv.handle(trunc, 4096))), Errno.ENOBUFS);
    // Size field larger than the buffer, or smaller than the header.
    const big = new Msg().u32(99).build(P9.TCLUNK);
    new DataView(big.buffer).setUint32(0, 0xffffffff, true);
    assert.equal(t.errno(new Reply(t.srv.handle(big, 4096))), Errno.ENOENT);
    const tiny = new Msg().u32(5).build(P9.TCLUNK);
    new DataView(tiny.buffer).setUint32(0, 3, true);
    assert.equal(t.errno(new Reply(t.srv.handle(tiny, 4096))), Errno.ENOBUFS);
    // Write count beyond the data carried.
    t.ok(t.walk(0, 1, "hello.txt"), P9.TWALK);
    t.ok(t.call(new Msg().u32(1).u32(2), P9.TLOPEN), P9.TLOPEN);
    assert.equal(
      t.errno(t.call(new Msg().u32(1).u64(0).u32(0xffffffff).u8(1), P9.TWRITE)),
      Errno.ENOBUFS,
    );
    // Oversize read count is cut to the room in the reply buffer.
    const r = t.call(new Msg().u32(1).u64(0).u32(0xffffffff), P9.TREAD, 20);
    assert.equal(r.type, P9.TREAD + 1);
    assert.ok(r.b.length <= 20);
    // Invalid UTF-8 name, too many walk elements, duplicate fid, unknown and legacy message types.
    const bad = new Msg().u32(0).u32(5).u16(1).u16(2).u8(0xff).u8(0xfe).build(P9.TWALK);
    assert.equal(t.errno(new Reply(t.srv.handle(bad, 4096))), Errno.EILSEQ);
    const many = new Msg().u32(0).u32(5).u16(17);
    for (let i = 0; i < 17; i++) many.str("a");
    assert.equal(t.errno(t.call(many, P9.TWALK)), Errno.EINVAL);
    assert.equal(t.errno(t.walk(0, 1, "sub")), Errno.EINVAL);
    assert.equal(t.errno(t.call(new Msg(), 200)), Errno.EOPNOTSUPP);
    assert.equal(t.errno(t.call(new Msg().u32(0).u8(0), 112)), Errno.EOPNOTSUPP);
    // Random garbage never throws.
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
    for (let i = 0; i < 2000; i++) {
      const len = 7 + (rnd() % 64);
      const m = new Uint8Array(len);
      for (let j = 0; j < len; j++) m[j] = rnd() & 0xff;
      new DataView(m.buffer).setUint32(0, len, true);
      if (m[4] === P9.TVERSION) m[4] = 0; // keep the session
      t.srv.handle(m, 4096);
    }
    // Still serving.
    const st = t.ok(t.walk(0, 40, "sub", "inner"), P9.TWALK);
    assert.equal(st.u16(), 2);
    assert.equal(Deno.readTextFileSync(`${t.top}/secret`), "TOP-SECRET");
  } finally {
    t.cleanup();
  }
});

Deno.test("P9Server over security_model=mapped-file keeps guest credentials and special files in .virtfs_metadata", () => {
  const top = Deno.makeTempDirSync({ prefix: "p9m-" });
  try {
    const { fs } = openLocalFs({ path: top, securityModel: "mapped-file" });
    const srv = new P9Server(fs);
    const call = (m: Msg, type: number) => new Reply(srv.handle(m.build(type), 1 << 20));
    const ok = (r: Reply, type: number) => {
      if (r.type === P9.RLERROR) assert.fail(`Rlerror ${r.u32()} for request ${type}`);
      return r;
    };
    ok(call(new Msg().u32(65536).str("9P2000.L"), P9.TVERSION), P9.TVERSION);
    ok(call(new Msg().u32(0).u32(0xffffffff).str("u").str("").u32(1000), P9.TATTACH), P9.TATTACH);
    ok(call(new Msg().u32(0).u32(1).u16(0), P9.TWALK), P9.TWALK);
    ok(call(new Msg().u32(1).str("f").u32(0o102).u32(0o640).u32(1001), P9.TLCREATE), P9.TLCREATE);
    ok(call(new Msg().u32(0).str("fifo").u32(0o010644).u32(0).u32(0).u32(1001), P9.TMKNOD), P9.TMKNOD);
    ok(call(new Msg().u32(0).str("ln").str("/etc/passwd").u32(1001), P9.TSYMLINK), P9.TSYMLINK);
    // Host side: plain files with server-only permissions; guest metadata beside them.
    assert.equal(Deno.statSync(`${top}/f`).mode! & 0o777, 0o600);
    assert.ok(Deno.lstatSync(`${top}/ln`).isFile);
    assert.match(
      Deno.readTextFileSync(`${top}/.virtfs_metadata/f`),
      /virtfs\.uid=1000\nvirtfs\.gid=1001\nvirtfs\.mode=33184/,
    );
    // Guest side: the stored attributes.
    const attr = (name: string) => {
      ok(call(new Msg().u32(0).u32(9).u16(1).str(name), P9.TWALK), P9.TWALK);
      const r = ok(call(new Msg().u32(9).u64(0x7ff), P9.TGETATTR), P9.TGETATTR);
      call(new Msg().u32(9), P9.TCLUNK);
      r.u64();
      r.qid();
      return { mode: r.u32(), uid: r.u32(), gid: r.u32() };
    };
    assert.deepEqual(attr("f"), { mode: 0o100640, uid: 1000, gid: 1001 });
    assert.equal(attr("fifo").mode, 0o010644);
    assert.equal(attr("ln").mode & 0o170000, 0o120000);
    ok(call(new Msg().u32(0).u32(3).u16(1).str("ln"), P9.TWALK), P9.TWALK);
    assert.equal(ok(call(new Msg().u32(3), P9.TREADLINK), P9.TREADLINK).str(), "/etc/passwd");
    // The metadata directory is invisible and unreachable.
    const w = call(new Msg().u32(0).u32(4).u16(1).str(".virtfs_metadata"), P9.TWALK);
    assert.equal(w.type, P9.RLERROR);
    ok(call(new Msg().u32(0).u32(5).u16(0), P9.TWALK), P9.TWALK);
    ok(call(new Msg().u32(5).u32(0), P9.TLOPEN), P9.TLOPEN);
    const rd = ok(call(new Msg().u32(5).u64(0).u32(8192), P9.TREADDIR), P9.TREADDIR);
    const end = rd.off + 4 + rd.u32();
    const names: string[] = [];
    while (rd.off < end) {
      rd.qid();
      rd.u64();
      rd.u8();
      names.push(rd.str());
    }
    assert.deepEqual(names.sort(), [".", "..", "f", "fifo", "ln"]);
    // chmod goes to the metadata, the host mode stays.
    const sa = new Msg().u32(1).u32(0x1).u32(0o604).u32(0).u32(0).u64(0).u64(0).u64(0).u64(0).u64(0);
    ok(call(sa, P9.TSETATTR), P9.TSETATTR);
    assert.equal(attr("f").mode, 0o100604);
    assert.equal(Deno.statSync(`${top}/f`).mode! & 0o777, 0o600);
    srv.reset();
  } finally {
    Deno.removeSync(top, { recursive: true });
  }
});
