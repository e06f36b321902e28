/**
 * Test fixtures for core/boot: tiny synthetic ELF and bzImage files, and the shipped guest kernels.
 * Holds no tests itself.
 * @module
 */
import { XEN_ELFNOTE_PHYS32_ENTRY } from "./elf.ts";

/** A tiny ELF64 x86-64 executable: PT_LOAD segments, then an optional PT_NOTE area. */
export function makeElf(
  segs: { paddr: number; data: Uint8Array; memsz?: number }[],
  notes?: Uint8Array,
): Uint8Array {
  const phnum = segs.length + (notes ? 1 : 0);
  let off = 64 + phnum * 56;
  const layout = segs.map((s) => {
    const o = off;
    off += s.data.length;
    return o;
  });
  const notesOff = off;
  off += notes?.length ?? 0;
  const out = new Uint8Array(off);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 62, true); // EM_X86_64
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, 0x1000000n, true);
  dv.setBigUint64(32, 64n, true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, phnum, true);
  segs.forEach((s, i) => {
    const p = 64 + i * 56;
    dv.setUint32(p, 1, true);
    dv.setBigUint64(p + 8, BigInt(layout[i]), true);
    dv.setBigUint64(p + 16, BigInt(s.paddr) | 0xffffffff80000000n, true);
    dv.setBigUint64(p + 24, BigInt(s.paddr), true);
    dv.setBigUint64(p + 32, BigInt(s.data.length), true);
    dv.setBigUint64(p + 40, BigInt(s.memsz ?? s.data.length), true);
    dv.setBigUint64(p + 48, 0x200000n, true);
    out.set(s.data, layout[i]);
  });
  if (notes) {
    const p = 64 + segs.length * 56;
    dv.setUint32(p, 4, true);
    dv.setBigUint64(p + 8, BigInt(notesOff), true);
    dv.setBigUint64(p + 32, BigInt(notes.length), true);
    dv.setBigUint64(p + 40, BigInt(notes.length), true);
    dv.setBigUint64(p + 48, 4n, true);
    out.set(notes, notesOff);
  }
  return out;
}

/** One ELF note with 4-byte padding. */
export function note(name: string, type: number, desc: Uint8Array): Uint8Array {
  const pad = (n: number) => (n + 3) & ~3;
  const nameBytes = new TextEncoder().encode(name + "\0");
  const out = new Uint8Array(12 + pad(nameBytes.length) + pad(desc.length));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, nameBytes.length, true);
  dv.setUint32(4, desc.length, true);
  dv.setUint32(8, type, true);
  out.set(nameBytes, 12);
  out.set(desc, 12 + pad(nameBytes.length));
  return out;
}

/** The Xen PHYS32_ENTRY note as Linux emits it (_ASM_PTR: 8 bytes on x86-64). */
export function pvhNote(entry: number): Uint8Array {
  const d = new Uint8Array(8);
  new DataView(d.buffer).setBigUint64(0, BigInt(entry), true);
  return note("Xen", XEN_ELFNOTE_PHYS32_ENTRY, d);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export async function gunzip(data: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** Bytes of a file in the repository's guest/ directory, gunzipped when `name` ends in .gz. */
export async function guestFile(name: string): Promise<Uint8Array> {
  const data = Deno.readFileSync(new URL(`../../guest/${name}`, import.meta.url));
  return name.endsWith(".gz") && name !== "initramfs.cpio.gz" ? await gunzip(data) : data;
}

/** Fields of a synthetic bzImage setup header. */
export interface BzFixture {
  setupSects?: number;
  version?: number;
  loadflags?: number;
  xloadflags?: number;
  cmdlineSize?: number;
  initrdAddrMax?: number;
  prefAddress?: number;
  initSize?: number;
  payload?: Uint8Array;
}

/** A tiny bzImage: boot sector + setup sectors with a 2.15 header, then `payload` as the kernel. */
export function makeBzImage(f: BzFixture = {}): Uint8Array {
  const sects = f.setupSects ?? 1;
  const setupSize = ((sects === 0 ? 4 : sects) + 1) * 512;
  const payload = f.payload ?? new Uint8Array(0x400).map((_, i) => i & 0xff);
  const out = new Uint8Array(setupSize + payload.length);
  const dv = new DataView(out.buffer);
  out[0x1f1] = sects;
  dv.setUint16(0x1f2, 1, true); // root_flags
  dv.setUint32(0x1f4, Math.ceil(payload.length / 16), true);
  dv.setUint16(0x1fa, 0xffff, true);
  dv.setUint16(0x1fe, 0xaa55, true);
  out[0x200] = 0xeb;
  out[0x201] = 0x6a; // header ends at 0x26c
  dv.setUint32(0x202, 0x53726448, true);
  dv.setUint16(0x206, f.version ?? 0x020f, true);
  out[0x211] = f.loadflags ?? 0x01;
  dv.setUint32(0x214, 0x100000, true);
  dv.setUint32(0x22c, f.initrdAddrMax ?? 0x7fffffff, true);
  dv.setUint32(0x230, 0x200000, true);
  out[0x234] = 1;
  dv.setUint16(0x236, f.xloadflags ?? 0x01, true);
  dv.setUint32(0x238, f.cmdlineSize ?? 2047, true);
  dv.setBigUint64(0x258, BigInt(f.prefAddress ?? 0x1000000), true);
  dv.setUint32(0x260, f.initSize ?? 0x100000, true);
  out.set(payload, setupSize);
  return out;
}
