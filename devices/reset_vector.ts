/**
 * The reset vector of a machine without firmware. QEMU's microvm runs qboot from `pc.bios`; Linux's
 * `reboot=b` path (and the fallback of `reboot=k` and of the default order, since microvm has no
 * keyboard controller) ends in a real-mode far jump to F000:FFF0, where re-entered firmware ends the
 * machine. With no firmware we put a 16-byte stub at the top of `pc.bios` that turns executing the
 * reset vector into a triple fault, which every accelerator already reports as a guest reset
 * (`-no-reboot` then exits 0, otherwise the machine resets and boots again).
 * @module
 */
import type { GuestRam } from "../core/memory.ts";

/**
 * `lidt cs:[0xfff8]` (a zero-limit IDT) then `int3`: #GP, #DF, shutdown. Bytes 0xfff8..0xfffd are the
 * pseudo-descriptor (limit 0, base 0).
 */
export const RESET_VECTOR_STUB: readonly number[] = [
  0x2e,
  0x0f,
  0x01,
  0x1e,
  0xf8,
  0xff, // lidt cs:[0xfff8]
  0xcc, // int3
  0xf4, // hlt (not reached)
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
];

/** Write the stub at offset 0xfff0 of the 64 KiB `pc.bios` ROM blob (system_reset rewrites it). */
export function writeResetVector(ram: GuestRam): void {
  const blob = ram.rom("pc.bios");
  if (!blob || blob.size < 0x10000) return;
  blob.bytes.set(RESET_VECTOR_STUB, 0xfff0);
}
