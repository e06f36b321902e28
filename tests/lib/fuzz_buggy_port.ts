/**
 * A deliberately buggy I/O port for fuzzer tests, loadable by a fuzz worker (`prepareModule`): port 0x80
 * throws when 0xff is written right after 0x01.
 * @module
 */
import { MemoryRegion } from "../../core/region.ts";
import type { FuzzMachine } from "../../plugins/fuzz/machine.ts";

/** Add the buggy port "buggy0" at I/O 0x80. */
export function prepare(fm: FuzzMachine): void {
  let armed = false;
  fm.vm.ioRoot.addSubregion(
    0x80,
    MemoryRegion.io("buggy", 1, {
      read: () => 0,
      write: (_o, _s, v) => {
        if (armed && v === 0xff) throw new RangeError("index out of range");
        armed = v === 0x01;
      },
    }, { owner: "buggy0" }),
  );
}
