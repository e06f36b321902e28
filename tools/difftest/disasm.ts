/**
 * Intel-syntax disassembly of byte strings for difftest reports (npm:iced-x86).
 * @module
 */
import { Decoder, DecoderOptions, Formatter, FormatterSyntax } from "iced-x86";

/** Disassemble every instruction in `bytes` (placed at `addr`), one string per instruction. */
export function disasm(bytes: Uint8Array, addr: number | bigint, bitness: 16 | 32 | 64 = 64): string[] {
  const out: string[] = [];
  const fmt = new Formatter(FormatterSyntax.Intel);
  const dec = new Decoder(bitness, bytes, DecoderOptions.None);
  dec.ip = BigInt.asUintN(64, BigInt(addr));
  try {
    while (dec.canDecode) {
      const ins = dec.decode();
      out.push(fmt.format(ins));
      ins.free();
    }
  } finally {
    dec.free();
    fmt.free();
  }
  return out;
}
