/**
 * `-d in_asm`-style disassembly of the instruction at a vCPU's rip (iced-x86, GNU/AT&T syntax as QEMU
 * prints). Loaded only when instruction logging is requested.
 * @module
 */
import { Decoder, DecoderOptions, Formatter, FormatterSyntax } from "iced-x86";
import { type Cpu, CpuFault, CS } from "./cpu.ts";

/** Formats the instruction at c.rip; reuses one formatter. */
export class Disassembler {
  readonly #fmt = Disassembler.#formatter();
  readonly #buf = new Uint8Array(15);
  static #formatter(): Formatter {
    const f = new Formatter(FormatterSyntax.Gas);
    f.uppercaseHex = false; // QEMU's (binutils') style: $0x3f8
    return f;
  }

  /** Length in bytes of the instruction last formatted by line() (0 when it could not be read). */
  length = 0;

  /** "0x<rip>:  <instruction>" for vCPU c, or a note when the bytes cannot be fetched. */
  line(c: Cpu): string {
    const bits = c.long64 ? 64 : c.csD ? 32 : 16;
    const lin = c.rip + c.segBase[CS];
    let n = 0;
    // Peeking past the instruction may walk into an unmapped page: keep the guest's CR2 intact.
    const cr2 = c.cr2;
    try {
      for (; n < 15; n++) this.#buf[n] = c.rd8(lin + n);
    } catch (e) {
      if (!(e instanceof CpuFault)) throw e;
    }
    c.cr2 = cr2;
    const ripText = "0x" + BigInt.asUintN(64, BigInt(c.rip)).toString(16).padStart(16, "0");
    this.length = 0;
    if (n === 0) return `${ripText}:  (not mapped)`;
    const dec = new Decoder(bits, this.#buf.subarray(0, n), DecoderOptions.None);
    dec.ip = BigInt.asUintN(64, BigInt(c.rip));
    const ins = dec.decode();
    const text = this.#fmt.format(ins);
    this.length = ins.length;
    ins.free();
    dec.free();
    return `${ripText}:  ${text}`;
  }
}
