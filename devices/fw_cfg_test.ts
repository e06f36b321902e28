import assert from "node:assert/strict";
import { CountingLog } from "../core/types.ts";
import { FakeMemory } from "../tests/fakes.ts";
import {
  FW_CFG_CMDLINE_DATA,
  FW_CFG_DMA_CTL_ERROR,
  FW_CFG_DMA_CTL_READ,
  FW_CFG_DMA_CTL_SELECT,
  FW_CFG_DMA_CTL_SKIP,
  FW_CFG_DMA_CTL_WRITE,
  FW_CFG_FILE_DIR,
  FW_CFG_ID,
  FW_CFG_IRQ0_OVERRIDE,
  FW_CFG_KERNEL_ENTRY,
  FW_CFG_NB_CPUS,
  FW_CFG_RAM_SIZE,
  FW_CFG_SIGNATURE,
  FwCfg,
} from "./fw_cfg.ts";

function bswap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

function setup() {
  const mem = new FakeMemory(0x10000);
  const log = new CountingLog();
  const fw = new FwCfg({ mem, log });
  fw.setMachineItems({ nbCpus: 2, maxCpus: 4, ramSize: 0x20000000 });
  const select = (key: number) => fw.ops.write(0, 2, key);
  const bytes = (n: number) => Array.from({ length: n }, () => fw.ops.read(1, 1));
  /** Write a DMA descriptor at `at` and trigger it as the guest does (two BE halves). */
  const dma = (at: number, control: number, length: number, address: number) => {
    const dv = new DataView(mem.bytes.buffer);
    dv.setUint32(at, control, false);
    dv.setUint32(at + 4, length, false);
    dv.setBigUint64(at + 8, BigInt(address), false);
    fw.dmaOps.write(0, 4, bswap32(0));
    fw.dmaOps.write(4, 4, bswap32(at));
    return dv.getUint32(at, false);
  };
  return { mem, log, fw, select, bytes, dma };
}

Deno.test("FwCfg answers the QEMU signature and the ID with the DMA bit", () => {
  const { select, bytes } = setup();
  select(FW_CFG_SIGNATURE);
  assert.equal(String.fromCharCode(...bytes(4)), "QEMU");
  assert.deepEqual(bytes(2), [0, 0]); // past the end reads 0
  select(FW_CFG_ID);
  assert.deepEqual(bytes(4), [3, 0, 0, 0]);
});

Deno.test("FwCfg holds microvm's machine items in little-endian", () => {
  const { select, bytes } = setup();
  select(FW_CFG_NB_CPUS);
  assert.deepEqual(bytes(2), [2, 0]);
  select(FW_CFG_RAM_SIZE);
  assert.deepEqual(bytes(8), [0, 0, 0, 0x20, 0, 0, 0, 0]);
  select(FW_CFG_IRQ0_OVERRIDE);
  assert.deepEqual(bytes(4), [1, 0, 0, 0]);
  select(0x7fff); // beyond the file slots: invalid, reads 0
  assert.deepEqual(bytes(2), [0, 0]);
});

Deno.test("FwCfg lists files sorted in a big-endian FILE_DIR", () => {
  const { fw, select, bytes } = setup();
  fw.addFile("etc/e820", new Uint8Array(40));
  assert.deepEqual(fw.fileNames(), ["bios-geometry", "bootorder", "etc/boot-fail-wait", "etc/e820"]);
  select(FW_CFG_FILE_DIR);
  const dir = new Uint8Array(bytes(4 + 64 * 4));
  const dv = new DataView(dir.buffer);
  assert.equal(dv.getUint32(0, false), 4);
  const e = 4 + 64 * 3;
  assert.equal(dv.getUint32(e, false), 40);
  assert.equal(dv.getUint16(e + 4, false), 0x23);
  assert.equal(new TextDecoder().decode(dir.subarray(e + 8, e + 16)), "etc/e820");
  assert.equal(dir[e + 16], 0);
  select(0x22);
  assert.deepEqual(bytes(4), [0xff, 0xff, 0xff, 0xff]); // etc/boot-fail-wait = -1
});

Deno.test("FwCfg sets the kernel items x86_load_linux sets", () => {
  const { fw, select, bytes } = setup();
  const cmdline = new TextEncoder().encode("console=ttyS0\0");
  fw.setKernelItems({
    kernelAddr: 0x1000000,
    kernelSize: 0x1000,
    kernelEntry: 0x1000600,
    kernelData: null,
    setupAddr: null,
    setupSize: 4,
    setupData: new Uint8Array([1, 2, 3, 4]),
    cmdlineAddr: null,
    cmdlineSize: cmdline.length,
    cmdlineData: cmdline,
    initrdAddr: null,
    initrdSize: 0,
    initrdData: null,
  }, new Uint8Array(20));
  select(FW_CFG_KERNEL_ENTRY);
  assert.deepEqual(bytes(4), [0x00, 0x06, 0x00, 0x01]);
  select(FW_CFG_CMDLINE_DATA);
  assert.equal(new TextDecoder().decode(new Uint8Array(bytes(cmdline.length))), "console=ttyS0\0");
  assert.ok(fw.fileNames().includes("etc/e820"));
});

Deno.test("FwCfg DMA reads an item into guest memory and clears control", () => {
  const { mem, dma } = setup();
  const ctl = dma(0x100, (FW_CFG_SIGNATURE << 16) | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ, 6, 0x200);
  assert.equal(ctl, 0);
  assert.deepEqual(Array.from(mem.bytes.subarray(0x200, 0x206)), [0x51, 0x45, 0x4d, 0x55, 0, 0]);
});

Deno.test("FwCfg DMA skip advances the offset and write fails", () => {
  const { mem, dma, bytes } = setup();
  assert.equal(dma(0x100, (FW_CFG_SIGNATURE << 16) | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_SKIP, 2, 0), 0);
  assert.deepEqual(bytes(2), [0x4d, 0x55]);
  assert.equal(dma(0x100, FW_CFG_DMA_CTL_WRITE, 1, 0x200), FW_CFG_DMA_CTL_ERROR);
  assert.equal(mem.bytes[0x200], 0);
});

Deno.test("FwCfg DMA to an address outside RAM sets the error bit without throwing", () => {
  const { dma, log } = setup();
  const ctl = dma(
    0x100,
    (FW_CFG_SIGNATURE << 16) | FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ,
    4,
    0xfff0000,
  );
  assert.equal(ctl, FW_CFG_DMA_CTL_ERROR);
  assert.ok(log.errors > 0);
  // A descriptor outside RAM is simply dropped.
  const { fw } = setup();
  fw.dmaOps.write(0, 4, 0);
  fw.dmaOps.write(4, 4, bswap32(0xfffff000));
});

Deno.test("FwCfg DMA register reads back the 'QEMU CFG' signature", () => {
  const { fw } = setup();
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, fw.dmaOps.read(0, 4), true);
  dv.setUint32(4, fw.dmaOps.read(4, 4), true);
  assert.equal(new TextDecoder().decode(b), "QEMU CFG");
});

Deno.test("FwCfg survives seeded random port and DMA traffic", () => {
  const { fw, mem } = setup();
  let seed = 0xf00d;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < 5000; i++) {
    const r = rnd();
    switch (r & 3) {
      case 0:
        fw.ops.write(r & 1, ([1, 2] as const)[(r >>> 2) & 1], rnd());
        break;
      case 1:
        fw.ops.read(r & 1, ([1, 2] as const)[(r >>> 2) & 1]);
        break;
      case 2: {
        const at = rnd() & 0xfff0;
        const dv = new DataView(mem.bytes.buffer);
        if (at + 16 <= mem.size) {
          dv.setUint32(at, rnd(), false);
          dv.setUint32(at + 4, rnd() & 0x3ffff, false);
          dv.setUint32(at + 8, rnd() & 1, false);
          dv.setUint32(at + 12, rnd(), false);
        }
        fw.dmaOps.write(0, 4, 0);
        fw.dmaOps.write(4, 4, bswap32(at));
        break;
      }
      default:
        fw.dmaOps.write((r >>> 2) & 4, 4, rnd());
    }
  }
});
