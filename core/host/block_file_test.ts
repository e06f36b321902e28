import assert from "node:assert/strict";
import { UserError } from "../types.ts";
import { openBlockFile } from "./block_file.ts";

function withImage(bytes: Uint8Array, fn: (path: string) => void): void {
  const path = Deno.makeTempFileSync({ suffix: ".img" });
  try {
    Deno.writeFileSync(path, bytes);
    fn(path);
  } finally {
    Deno.removeSync(path);
  }
}

function fill(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 13 + 1) & 0xff);
}

Deno.test("openBlockFile reports a missing file in QEMU's words", () => {
  assert.throws(
    () => openBlockFile("/nonexistent/disk.img"),
    (e: unknown) =>
      e instanceof UserError &&
      e.message === "Could not open '/nonexistent/disk.img': No such file or directory",
  );
});

Deno.test("openBlockFile refuses a directory", () => {
  const dir = Deno.makeTempDirSync();
  try {
    assert.throws(() => openBlockFile(dir), UserError);
  } finally {
    Deno.removeSync(dir);
  }
});

Deno.test("openBlockFile refuses qcow2, explicit or probed, and unknown formats", () => {
  withImage(Uint8Array.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]), (path) => {
    assert.throws(() => openBlockFile(path), /Image format 'qcow2' is not supported/);
    assert.throws(() => openBlockFile(path, { format: "qcow2" }), /Image format 'qcow2' is not supported/);
    assert.throws(() => openBlockFile(path, { format: "bogus" }), /Unknown driver 'bogus'/);
    // format=raw takes the bytes as they are.
    openBlockFile(path, { format: "raw" }).close();
  });
});

Deno.test("openBlockFile takes a write lock that a second writer cannot get", () => {
  withImage(fill(4096), (path) => {
    const a = openBlockFile(path);
    try {
      assert.throws(() => openBlockFile(path), /Failed to get "write" lock/);
      assert.throws(() => openBlockFile(path, { snapshot: true }), /Failed to get shared "write" lock/);
    } finally {
      a.close();
    }
    // Readers share.
    const r1 = openBlockFile(path, { readOnly: true });
    const r2 = openBlockFile(path, { snapshot: true });
    assert.throws(() => openBlockFile(path), /Failed to get "write" lock/);
    r1.close();
    r2.close();
    openBlockFile(path).close();
  });
});

Deno.test("BlockFile reads and writes in place and flushes", () => {
  withImage(fill(200_000), (path) => {
    const f = openBlockFile(path, { id: "d0" });
    assert.equal(f.size, 200_000);
    assert.equal(f.id, "d0");
    assert.equal(f.writeback, true);
    const buf = new Uint8Array(1000);
    assert.ok(f.read(65000, buf));
    assert.deepEqual(buf, fill(200_000).subarray(65000, 66000));
    assert.ok(f.write(100, new Uint8Array(10).fill(9)));
    assert.ok(f.flush());
    assert.equal(f.read(199_999, new Uint8Array(2)), false, "past the end");
    assert.equal(f.write(-1, new Uint8Array(2)), false);
    assert.ok(f.writeZeroes!(0, 50));
    f.close();
    const after = Deno.readFileSync(path);
    assert.equal(after[49], 0);
    assert.equal(after[50], fill(200_000)[50]);
    assert.equal(after[105], 9);
  });
});

Deno.test("BlockFile snapshot=on keeps writes in memory across chunk boundaries", () => {
  const orig = fill(300_000);
  withImage(orig, (path) => {
    const f = openBlockFile(path, { snapshot: true });
    assert.equal(f.readOnly, false);
    const w = new Uint8Array(70_000).fill(0xcd);
    assert.ok(f.write(60_000, w));
    const r = new Uint8Array(80_000);
    assert.ok(f.read(55_000, r));
    assert.deepEqual(r.subarray(0, 5000), orig.subarray(55_000, 60_000));
    assert.ok(r.subarray(5000, 75_000).every((b) => b === 0xcd));
    assert.deepEqual(r.subarray(75_000), orig.subarray(130_000, 135_000));
    assert.ok(f.flush());
    f.close();
    assert.deepEqual(Deno.readFileSync(path), orig);
  });
});

Deno.test("BlockFile read-only refuses writes; cache=writethrough turns the write cache off", () => {
  withImage(fill(4096), (path) => {
    const f = openBlockFile(path, { readOnly: true });
    assert.equal(f.readOnly, true);
    assert.equal(f.write(0, new Uint8Array(1)), false);
    f.close();
    const g = openBlockFile(path, { cache: "writethrough" });
    assert.equal(g.writeback, false);
    g.close();
  });
});
