/**
 * Test helper: drive the fuzz machine's virtio-blk (legacy virtio-mmio at 0xfeb00e00) through the memory
 * address space, as a guest would, so plugin hooks see every access.
 * @module
 */
import type { FuzzMachine } from "./fuzz/machine.ts";

/** Transport of the fuzz machine's virtio-blk. */
export const BLK_BASE = 0xfeb00e00;
const DESC = 0x40000;
const NUM = 8;
const STATUS_BUF = 0x82000;

/** Set up queue 0 (legacy layout) and leave the device DRIVER_OK. */
export function blkInit(fm: FuzzMachine): void {
  const w = (o: number, v: number) => fm.vm.memory.write(BLK_BASE + o, 4, v);
  w(0x70, 0);
  w(0x70, 1);
  w(0x70, 3);
  w(0x28, 4096);
  w(0x30, 0);
  w(0x38, NUM);
  w(0x3c, 4096);
  w(0x40, DESC >> 12);
  w(0x70, 7);
}

/** Submit request `n` (0-based) reading sector 0; returns the InterruptStatus the guest reads. */
export function blkRead(fm: FuzzMachine, n: number): number {
  const ram = fm.vm.ram;
  const desc = (i: number, addr: number, len: number, flags: number, next: number) => {
    ram.writeU64(DESC + 16 * i, addr);
    ram.writeU32(DESC + 16 * i + 8, len);
    ram.writeU16(DESC + 16 * i + 12, flags);
    ram.writeU16(DESC + 16 * i + 14, next);
  };
  ram.writeU32(0x80000, 0); // VIRTIO_BLK_T_IN
  ram.writeU64(0x80008, 0);
  ram.writeU8(STATUS_BUF, 0xff);
  desc(0, 0x80000, 16, 1, 1);
  desc(1, 0x81000, 512, 3, 2);
  desc(2, STATUS_BUF, 1, 2, 0);
  const avail = DESC + 16 * NUM;
  ram.writeU16(avail + 4 + 2 * (n % NUM), 0);
  ram.writeU16(avail + 2, n + 1);
  fm.vm.memory.write(BLK_BASE + 0x50, 4, 0);
  const isr = fm.vm.memory.read(BLK_BASE + 0x60, 4);
  fm.vm.memory.write(BLK_BASE + 0x64, 4, isr);
  return isr;
}

/** The status byte of the last request. */
export function blkStatus(fm: FuzzMachine): number {
  return fm.vm.ram.readU8(STATUS_BUF);
}

/** Used ring index of queue 0. */
export function blkUsedIdx(fm: FuzzMachine): number {
  return fm.vm.ram.readU16(0x41000 + 2);
}
