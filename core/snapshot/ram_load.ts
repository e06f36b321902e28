/**
 * The destination's RAM loader: a RAM section's runs are read from the stream straight into guest memory
 * (one read per run of pages, no staging buffer, no per-page work or allocation) while the section's
 * checksum is folded in as the bytes land. Pages the stream does not name are never touched: a fresh
 * machine's RAM is already zero. A bad checksum is found at the section's end; the pages written before it
 * are then unverified, and the caller must not run the machine (loadMachine throws, the destination exits).
 * @module
 */
import { UserError } from "../types.ts";
import { checksumEnd, checksumStart, checksumUpdate, PAGE, type StreamReader } from "./stream.ts";

/**
 * Read the payload and checksum of a RAM section of `len` bytes (its header was just read by
 * `r.sectionHeader()`) into `u8`, the backing store. Returns the pages written. Throws UserError for runs
 * outside `u8`, a run overrunning the section, a truncated stream or a checksum mismatch.
 */
export async function readRamSection(r: StreamReader, u8: Uint8Array, len: number): Promise<number> {
  const total = Math.floor(u8.length / PAGE);
  const hdr = new Uint8Array(8);
  const dv = new DataView(hdr.buffer);
  let h = checksumStart(len), pos = 0, pages = 0;
  while (pos < len) {
    if (len - pos < 8) throw new UserError("Migration stream corrupted: trailing bytes in a RAM section");
    await r.readInto(hdr);
    h = checksumUpdate(h, hdr);
    pos += 8;
    const first = dv.getUint32(0, true), count = dv.getUint32(4, true);
    if (first + count > total || count === 0) {
      throw new UserError(
        `Migration stream corrupted: pages ${first}+${count} outside guest memory (${total})`,
      );
    }
    const bytes = count * PAGE;
    if (pos + bytes > len) throw new UserError("Migration stream corrupted: RAM run overruns its section");
    const dst = u8.subarray(first * PAGE, first * PAGE + bytes);
    await r.readInto(dst);
    h = checksumUpdate(h, dst);
    pos += bytes;
    pages += count;
  }
  await r.endSection(checksumEnd(h));
  return pages;
}
