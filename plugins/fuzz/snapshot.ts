/**
 * Fuzzer resets through an in-memory snapshot (what Firecracker and QEMU's generic-fuzz fork server give
 * a fuzzer): take the machine's state once after it is built and prepared, then after each input put back
 * only what the input changed: the RAM pages and disk bytes it wrote (dirty-tracked) and the device tree
 * through the board's registry (`loadBoardState`), with the virtual clock rewound.
 * @module
 */
import { type BoardState, loadBoardState, saveBoardState } from "../../devices/microvm_state.ts";
import type { FuzzMachine, MemDisk } from "./machine.ts";

/** A fuzz machine's state at one point. */
export interface FuzzSnapshot {
  readonly board: BoardState;
  readonly clockNs: number;
  /** Copy of the whole backing store (RAM is small in the fuzz machine). */
  readonly ram: Uint8Array;
  readonly disks: Uint8Array[];
}

/** Take a snapshot and start dirty tracking of RAM and disks. */
export function takeFuzzSnapshot(fm: FuzzMachine): FuzzSnapshot {
  const ram = fm.vm.ram;
  ram.dirty = new Uint8Array(Math.ceil(ram.u8.length / 4096));
  for (const d of fm.disks) d.trackWrites();
  return {
    board: structuredClone(saveBoardState(fm.vm)),
    clockNs: fm.clock.now(),
    ram: ram.u8.slice(),
    disks: fm.disks.map((d) => d.data.slice()),
  };
}

/** Put `fm` back to `snap`: dirty RAM pages, written disk ranges, every device, the clock and IRQ counts. */
export function restoreFuzzSnapshot(fm: FuzzMachine, snap: FuzzSnapshot): void {
  const ram = fm.vm.ram;
  const d = ram.dirty;
  if (d === null) ram.u8.set(snap.ram);
  else {
    for (let p = 0; p < d.length; p++) {
      if (d[p]) {
        d[p] = 0;
        ram.u8.set(snap.ram.subarray(p * 4096, p * 4096 + 4096), p * 4096);
      }
    }
  }
  fm.disks.forEach((disk: MemDisk, i) => disk.restoreFrom(snap.disks[i]));
  fm.vm.gsi.reset();
  fm.clock.restore(snap.clockNs);
  loadBoardState(fm.vm, snap.board, { rollback: false });
  fm.findings.length = 0;
  fm.opIndex = 0;
}
