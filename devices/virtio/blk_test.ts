import assert from "node:assert/strict";
import { type BlockBackend, UserError } from "../../core/types.ts";
import { openBlockFile } from "../../core/host/block_file.ts";
import { FakeMemory, RecordingIrq } from "../../tests/fakes.ts";
import { TestDriver } from "./_driver_test_util.ts";
import {
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VirtioBlk,
  type VirtioBlkOptions,
} from "./blk.ts";
import { VIRTIO_MMIO_CONFIG, VirtioMmio } from "./mmio.ts";

/** In-memory disk recording the order of operations. */
class MemDisk implements BlockBackend {
  readonly bytes: Uint8Array;
  readonly ops: string[] = [];
  readonly id = "test";
  failReads = false;
  constructor(size: number, readonly readOnly = false) {
    this.bytes = new Uint8Array(size);
  }
  get size(): number {
    return this.bytes.length;
  }
  read(off: number, dst: Uint8Array): boolean {
    this.ops.push(`read ${off} ${dst.length}`);
    if (this.failReads) return false;
    dst.set(this.bytes.subarray(off, off + dst.length));
    return true;
  }
  write(off: number, src: Uint8Array): boolean {
    this.ops.push(`write ${off} ${src.length}`);
    this.bytes.set(src, off);
    return true;
  }
  flush(): boolean {
    this.ops.push("flush");
    return true;
  }
  close(): void {}
}

const HDR = 0x80000;
const DATA = 0x81000;
const STATUS = 0x8f000;

function rig(legacy: boolean, drive: BlockBackend, opts: Partial<VirtioBlkOptions> = {}) {
  const mem = new FakeMemory(0x100000);
  const irq = new RecordingIrq();
  const t = new VirtioMmio({ id: "virtio-mmio@feb00e00", irq, mem, forceLegacy: legacy });
  const blk = new VirtioBlk({ id: "blk0", drive, ...opts });
  t.plug(blk);
  const d = new TestDriver(t, mem);
  d.init({ queues: [0], size: 16 });
  /** Issue one request; returns the status byte and the used length. */
  const req = (type: number, sector: number, data: { out?: Uint8Array; inLen?: number } = {}) => {
    mem.writeU32(HDR, type);
    mem.writeU32(HDR + 4, 0);
    mem.writeU64(HDR + 8, sector);
    const bufs: { addr: number; len: number; write?: boolean }[] = [{ addr: HDR, len: 16 }];
    if (data.out) {
      mem.write(DATA, data.out);
      bufs.push({ addr: DATA, len: data.out.length });
    }
    if (data.inLen) bufs.push({ addr: DATA, len: data.inLen, write: true });
    bufs.push({ addr: STATUS, len: 1, write: true });
    mem.writeU8(STATUS, 0xee);
    const n = d.usedIdx(0);
    d.addChain(0, bufs);
    d.kick(0);
    assert.equal(d.usedIdx(0), (n + 1) & 0xffff, "request completed");
    return { status: mem.readU8(STATUS), len: d.used(0, n).len };
  };
  return { mem, irq, t, blk, d, req };
}

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

Deno.test("VirtioBlk config matches QEMU 7.2 for a 64 MiB raw disk", () => {
  const { t } = rig(true, new MemDisk(64 << 20));
  const c = (off: number, size: 1 | 2 | 4 = 4) => t.read(VIRTIO_MMIO_CONFIG + off, size);
  assert.equal(c(0), 131072); // capacity low
  assert.equal(c(4), 0); // capacity high
  assert.equal(c(0x08), 0); // size_max
  assert.equal(c(0x0c), 254); // seg_max = queue-size - 2
  assert.equal(c(0x10, 2), 130); // cylinders
  assert.equal(c(0x12, 1), 16); // heads
  assert.equal(c(0x13, 1), 63); // sectors
  assert.equal(c(0x14), 512); // blk_size
  assert.equal(c(0x18, 1), 0); // physical_block_exp
  assert.equal(c(0x20, 1), 1); // wce (cache=writeback)
  assert.equal(c(0x22, 2), 1); // num_queues
  assert.equal(c(0x24), 0x3fffff); // max_discard_sectors
  assert.equal(c(0x28), 1); // max_discard_seg
  assert.equal(c(0x2c), 1); // discard_sector_alignment
  assert.equal(c(0x30), 0x3fffff); // max_write_zeroes_sectors
  assert.equal(c(0x34), 1);
  assert.equal(c(0x38, 1), 1); // write_zeroes_may_unmap
  assert.equal(c(0x39, 1), 0xff); // past config size 0x39
});

Deno.test("VirtioBlk validates properties at realize", () => {
  const disk = new MemDisk(1 << 20);
  assert.throws(() => new VirtioBlk({ id: "b", drive: disk, logicalBlockSize: 1000 }), UserError);
  assert.throws(() => new VirtioBlk({ id: "b", drive: disk, queueSize: 2 }), UserError);
  assert.throws(() => new VirtioBlk({ id: "b", drive: disk, queueSize: 100 }), UserError);
  assert.throws(() => new VirtioBlk({ id: "b", drive: disk, queueSize: 2048 }), UserError);
});

for (const legacy of [true, false]) {
  const layout = legacy ? "legacy" : "modern";

  Deno.test(`VirtioBlk (${layout}) writes, reads back, flushes and answers GET_ID`, () => {
    const disk = new MemDisk(1 << 20);
    const { req, mem, irq } = rig(legacy, disk, { serial: "SERIAL-123" });
    const data = pattern(1024, 3);
    assert.deepEqual(req(VIRTIO_BLK_T_OUT, 4, { out: data }), { status: VIRTIO_BLK_S_OK, len: 1 });
    assert.deepEqual(disk.bytes.subarray(2048, 3072), data);
    mem.write(DATA, new Uint8Array(1024));
    assert.deepEqual(req(VIRTIO_BLK_T_IN, 4, { inLen: 1024 }), { status: VIRTIO_BLK_S_OK, len: 1025 });
    assert.deepEqual(mem.read(DATA, 1024), data);
    assert.equal(req(VIRTIO_BLK_T_FLUSH, 0).status, VIRTIO_BLK_S_OK);
    assert.equal(disk.ops.at(-1), "flush");
    mem.write(DATA, new Uint8Array(32).fill(0x55));
    assert.deepEqual(req(VIRTIO_BLK_T_GET_ID, 0, { inLen: 32 }), { status: VIRTIO_BLK_S_OK, len: 33 });
    assert.equal(new TextDecoder().decode(mem.read(DATA, 10)!), "SERIAL-123");
    assert.equal(mem.readU8(DATA + 10), 0);
    assert.equal(irq.level, true);
  });

  Deno.test(`VirtioBlk (${layout}) GET_ID truncates to 20 bytes without a terminator`, () => {
    const { req, mem } = rig(legacy, new MemDisk(1 << 20), { serial: "ABCDEFGHIJKLMNOPQRSTUVWXYZ" });
    mem.write(DATA, new Uint8Array(32).fill(0x55));
    req(VIRTIO_BLK_T_GET_ID, 0, { inLen: 32 });
    assert.equal(new TextDecoder().decode(mem.read(DATA, 20)!), "ABCDEFGHIJKLMNOPQRST");
    assert.equal(mem.readU8(DATA + 20), 0x55);
  });

  Deno.test(`VirtioBlk (${layout}) answers IOERR out of range and UNSUPP for unknown types`, () => {
    const disk = new MemDisk(1 << 20);
    const { req } = rig(legacy, disk);
    assert.equal(req(VIRTIO_BLK_T_IN, 2048, { inLen: 512 }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(req(VIRTIO_BLK_T_IN, 2047, { inLen: 1024 }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(req(VIRTIO_BLK_T_IN, 0, { inLen: 100 }).status, VIRTIO_BLK_S_IOERR, "not a block multiple");
    assert.equal(req(VIRTIO_BLK_T_IN, 2 ** 52, { inLen: 512 }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(req(42, 0, { inLen: 512 }).status, VIRTIO_BLK_S_UNSUPP);
    assert.equal(req(2, 0, { inLen: 512 }).status, VIRTIO_BLK_S_IOERR, "SCSI_CMD without scsi headers");
    disk.failReads = true;
    assert.equal(req(VIRTIO_BLK_T_IN, 0, { inLen: 512 }).status, VIRTIO_BLK_S_IOERR);
  });

  Deno.test(`VirtioBlk (${layout}) read-only drive offers RO and fails writes with IOERR`, () => {
    const disk = new MemDisk(1 << 20, true);
    const { req, blk } = rig(legacy, disk);
    assert.ok(blk.hostFeatures(!legacy) & (1n << BigInt(VIRTIO_BLK_F_RO)));
    assert.equal(req(VIRTIO_BLK_T_OUT, 0, { out: pattern(512, 1) }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(disk.bytes[1], 0);
    assert.equal(req(VIRTIO_BLK_T_IN, 0, { inLen: 512 }).status, VIRTIO_BLK_S_OK);
  });

  Deno.test(`VirtioBlk (${layout}) handles DISCARD and WRITE_ZEROES`, () => {
    const disk = new MemDisk(1 << 20);
    disk.bytes.fill(0x77);
    const { req } = rig(legacy, disk);
    const seg = (sector: number, num: number, flags: number) => {
      const b = new Uint8Array(16);
      const dv = new DataView(b.buffer);
      dv.setBigUint64(0, BigInt(sector), true);
      dv.setUint32(8, num, true);
      dv.setUint32(12, flags, true);
      return b;
    };
    assert.equal(req(VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: seg(2, 2, 0) }).status, VIRTIO_BLK_S_OK);
    assert.equal(disk.bytes[1023], 0x77);
    assert.equal(disk.bytes[1024], 0);
    assert.equal(disk.bytes[2047], 0);
    assert.equal(disk.bytes[2048], 0x77);
    assert.equal(req(VIRTIO_BLK_T_DISCARD, 0, { out: seg(0, 8, 0) }).status, VIRTIO_BLK_S_OK);
    assert.equal(req(VIRTIO_BLK_T_DISCARD, 0, { out: seg(0, 8, 1) }).status, VIRTIO_BLK_S_UNSUPP);
    assert.equal(req(VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: seg(0, 1, 2) }).status, VIRTIO_BLK_S_UNSUPP);
    assert.equal(req(VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: seg(2047, 2, 0) }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(req(VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: seg(0, 0x400000, 0) }).status, VIRTIO_BLK_S_IOERR);
  });

  Deno.test(`VirtioBlk (${layout}) keeps requests in ring order around a flush`, () => {
    const disk = new MemDisk(1 << 20);
    const { mem, d } = rig(legacy, disk);
    // Three chains published before one kick: write, flush, write.
    const hdr = (at: number, type: number, sector: number) => {
      mem.writeU32(at, type);
      mem.writeU64(at + 8, sector);
    };
    hdr(0x80000, VIRTIO_BLK_T_OUT, 0);
    hdr(0x80100, VIRTIO_BLK_T_FLUSH, 0);
    hdr(0x80200, VIRTIO_BLK_T_OUT, 1);
    d.addChain(0, [{ addr: 0x80000, len: 16 }, { addr: DATA, len: 512 }, {
      addr: 0x8f000,
      len: 1,
      write: true,
    }]);
    d.addChain(0, [{ addr: 0x80100, len: 16 }, { addr: 0x8f001, len: 1, write: true }]);
    d.addChain(0, [{ addr: 0x80200, len: 16 }, { addr: DATA, len: 512 }, {
      addr: 0x8f002,
      len: 1,
      write: true,
    }]);
    d.kick(0);
    assert.deepEqual(disk.ops, ["write 0 512", "flush", "write 512 512"]);
    assert.equal(d.usedIdx(0), 3);
    assert.deepEqual([0, 1, 2].map((i) => d.used(0, i).id), [0, 3, 5]);
  });

  Deno.test(`VirtioBlk (${layout}) fails the device on a request without headers`, () => {
    const { d, t } = rig(legacy, new MemDisk(1 << 20));
    d.addChain(0, [{ addr: HDR, len: 8 }, { addr: STATUS, len: 1, write: true }]);
    d.kick(0);
    assert.equal(t.broken, true);
    assert.equal(t.status & 0x40, 0x40);
  });
}

Deno.test("VirtioBlk without CONFIG_WCE follows the negotiated FLUSH bit; writethrough flushes each write", () => {
  const disk = new MemDisk(1 << 20);
  const { req, blk } = rig(true, disk, { writeCache: "off", configWce: false, xEnableWceIfConfigWce: false });
  assert.equal(blk.writeCacheEnabled, false);
  req(VIRTIO_BLK_T_OUT, 0, { out: pattern(512, 9) });
  assert.deepEqual(disk.ops, ["write 0 512", "flush"]);
});

Deno.test("VirtioBlk reads and writes a raw image file; snapshot=on leaves it untouched", () => {
  const path = Deno.makeTempFileSync({ suffix: ".img" });
  try {
    Deno.writeFileSync(path, pattern(1 << 16, 5));
    const snap = openBlockFile(path, { snapshot: true, id: "test" });
    const r1 = rig(false, snap);
    assert.equal(
      r1.req(VIRTIO_BLK_T_OUT, 1, { out: new Uint8Array(512).fill(0xaa) }).status,
      VIRTIO_BLK_S_OK,
    );
    assert.equal(r1.req(VIRTIO_BLK_T_IN, 0, { inLen: 1536 }).status, VIRTIO_BLK_S_OK);
    assert.deepEqual(r1.mem.read(DATA, 512), pattern(1 << 16, 5).subarray(0, 512));
    assert.equal(r1.mem.readU8(DATA + 512), 0xaa);
    assert.equal(r1.req(VIRTIO_BLK_T_FLUSH, 0).status, VIRTIO_BLK_S_OK);
    snap.close();
    assert.deepEqual(Deno.readFileSync(path), pattern(1 << 16, 5));

    const rw = openBlockFile(path, { id: "test" });
    const r2 = rig(true, rw);
    assert.equal(
      r2.req(VIRTIO_BLK_T_OUT, 2, { out: new Uint8Array(1024).fill(0xbb) }).status,
      VIRTIO_BLK_S_OK,
    );
    assert.equal(r2.req(VIRTIO_BLK_T_FLUSH, 0).status, VIRTIO_BLK_S_OK);
    rw.close();
    const after = Deno.readFileSync(path);
    assert.equal(after[1023], pattern(1 << 16, 5)[1023]);
    assert.equal(after[1024], 0xbb);
    assert.equal(after[2047], 0xbb);
    assert.equal(after[2048], pattern(1 << 16, 5)[2048]);
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("VirtioBlk property table lists QEMU's qtree names in order", () => {
  const blk = new VirtioBlk({ id: "b", drive: new MemDisk(64 << 20), driveName: "test" });
  const v = blk.propertyValues();
  assert.deepEqual(Object.keys(v), VirtioBlk.PROPS.map((p) => p.name));
  assert.equal(v.drive, "test");
  assert.equal(v.cyls, 130);
  assert.equal(v.any_layout, false);
  assert.equal(v.event_idx, true);
});
