/**
 * Symbol addresses from an ELF64 file's .symtab (the guest's vmlinux), for tests that set breakpoints.
 * @module
 */

/** Map of symbol name → address (bigint) for every named symbol in .symtab. */
export function elfSymbols(file: Uint8Array): Map<string, bigint> {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (dv.getUint32(0) !== 0x7f454c46 || file[4] !== 2) throw new Error("not an ELF64 file");
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const sec = (i: number) => {
    const o = shoff + i * shentsize;
    return {
      type: dv.getUint32(o + 4, true),
      offset: Number(dv.getBigUint64(o + 0x18, true)),
      size: Number(dv.getBigUint64(o + 0x20, true)),
      link: dv.getUint32(o + 0x28, true),
      entsize: Number(dv.getBigUint64(o + 0x38, true)),
    };
  };
  const out = new Map<string, bigint>();
  const dec = new TextDecoder();
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    if (s.type !== 2) continue; // SHT_SYMTAB
    const str = sec(s.link);
    for (let o = s.offset; o + 24 <= s.offset + s.size; o += s.entsize || 24) {
      const nameOff = dv.getUint32(o, true);
      if (nameOff === 0) continue;
      let end = str.offset + nameOff;
      while (file[end] !== 0) end++;
      const name = dec.decode(file.subarray(str.offset + nameOff, end));
      out.set(name, dv.getBigUint64(o + 8, true));
    }
  }
  return out;
}
