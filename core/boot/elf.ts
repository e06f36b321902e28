/**
 * ELF64 kernel images (vmlinux): header and program-header parsing, PT_LOAD placement at p_paddr and the
 * PVH entry point from the XEN_ELFNOTE_PHYS32_ENTRY note (QEMU hw/i386/x86.c load_elfboot; rust-vmm
 * linux-loader loader/x86_64/elf). Every header check has its own UserError naming the file.
 * @module
 */
import { UserError } from "../types.ts";
import type { GuestMemory } from "../types.ts";

/** ELF magic "\x7fELF" read as a little-endian u32. */
export const ELF_MAGIC = 0x464c457f;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const EM_X86_64 = 62;
const ET_EXEC = 2;
const ET_DYN = 3;
const PT_LOAD = 1;
const PT_NOTE = 4;
const ELF64_EHDR_SIZE = 64;
const ELF64_PHDR_SIZE = 56;

/** Xen ELF note type carrying the 32-bit PVH entry point (xen/include/public/elfnote.h). */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;

/** One loadable segment. */
export interface ElfSegment {
  /** File offset of the segment's bytes. */
  offset: number;
  /** Physical load address (p_paddr). */
  paddr: number;
  filesz: number;
  memsz: number;
}

/** What a vmlinux tells its loader. */
export interface ElfKernel {
  /** e_entry (the 64-bit virtual or physical entry; not used by PVH boot). */
  entry: number;
  /** PVH 32-bit entry from the Xen note, or null when the kernel has none. */
  pvhEntry: number | null;
  segments: ElfSegment[];
  /** Lowest p_paddr and highest p_paddr + p_memsz of the PT_LOAD segments (QEMU's elf_low / elf_high). */
  low: number;
  high: number;
}

/** True when `image` starts with the ELF magic. */
export function isElf(image: Uint8Array): boolean {
  return image.length >= 4 && image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c &&
    image[3] === 0x46;
}

function u64(dv: DataView, off: number): number {
  const v = dv.getBigUint64(off, true);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

/**
 * Parse an x86-64 ELF64 kernel.
 * @param name file name used in error messages
 * @throws UserError for a truncated or non-x86-64 ELF file
 */
export function parseElfKernel(image: Uint8Array, name: string): ElfKernel {
  const what = `Linux kernel image '${name}'`;
  if (!isElf(image)) throw new UserError(`${what} is not an ELF file`);
  if (image.length < ELF64_EHDR_SIZE) {
    throw new UserError(`${what} is truncated: the ELF header is incomplete`);
  }
  if (image[4] !== ELFCLASS64) throw new UserError(`${what} is not a 64-bit ELF file (EI_CLASS ${image[4]})`);
  if (image[5] !== ELFDATA2LSB) throw new UserError(`${what} is not a little-endian ELF file`);
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const type = dv.getUint16(16, true);
  if (type !== ET_EXEC && type !== ET_DYN) {
    throw new UserError(`${what} is not an executable ELF file (e_type ${type})`);
  }
  const machine = dv.getUint16(18, true);
  if (machine !== EM_X86_64) throw new UserError(`${what} is not an x86-64 ELF file (e_machine ${machine})`);
  const entry = u64(dv, 24);
  const phoff = u64(dv, 32);
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  if (phentsize !== ELF64_PHDR_SIZE) {
    throw new UserError(`${what} has an invalid program header size ${phentsize}`);
  }
  if (phnum === 0) throw new UserError(`${what} has no program headers`);
  if (phoff > image.length || phoff + phnum * ELF64_PHDR_SIZE > image.length) {
    throw new UserError(`${what} is truncated: program headers end past the end of the file`);
  }

  const segments: ElfSegment[] = [];
  let pvhEntry: number | null = null;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * ELF64_PHDR_SIZE;
    const ptype = dv.getUint32(p, true);
    const offset = u64(dv, p + 8);
    const paddr = u64(dv, p + 24);
    const filesz = u64(dv, p + 32);
    const memsz = u64(dv, p + 40);
    const align = u64(dv, p + 48);
    if (ptype !== PT_LOAD && ptype !== PT_NOTE) continue;
    if (offset > image.length || filesz > image.length - offset) {
      throw new UserError(`${what} is truncated: segment ${i} ends past the end of the file`);
    }
    if (ptype === PT_LOAD) {
      if (memsz < filesz) throw new UserError(`${what} has a corrupt segment ${i} (p_memsz < p_filesz)`);
      if (memsz > 0) segments.push({ offset, paddr, filesz, memsz });
    } else if (pvhEntry === null) {
      pvhEntry = findPvhNote(image.subarray(offset, offset + filesz), align === 8 ? 8 : 4);
    }
  }
  if (segments.length === 0) throw new UserError(`${what} has no loadable segments`);
  let low = Infinity;
  let high = 0;
  for (const s of segments) {
    low = Math.min(low, s.paddr);
    high = Math.max(high, s.paddr + s.memsz);
  }
  return { entry, pvhEntry, segments, low, high };
}

/** Walk an ELF note area for the Xen PHYS32_ENTRY note; its descriptor is a 32- or 64-bit address. */
function findPvhNote(notes: Uint8Array, align: number): number | null {
  const dv = new DataView(notes.buffer, notes.byteOffset, notes.byteLength);
  const up = (v: number) => Math.ceil(v / align) * align;
  let o = 0;
  while (o + 12 <= notes.length) {
    const namesz = dv.getUint32(o, true);
    const descsz = dv.getUint32(o + 4, true);
    const type = dv.getUint32(o + 8, true);
    const nameAt = o + 12;
    const descAt = nameAt + up(namesz);
    if (descAt + descsz > notes.length) return null;
    const name = String.fromCharCode(...notes.subarray(nameAt, nameAt + Math.max(0, namesz - 1)));
    if (name === "Xen" && type === XEN_ELFNOTE_PHYS32_ENTRY) {
      if (descsz === 4) return dv.getUint32(descAt, true);
      if (descsz === 8) return Number(dv.getBigUint64(descAt, true) & 0xffffffffn);
      return null;
    }
    o = descAt + up(descsz);
  }
  return null;
}

/**
 * Copy every PT_LOAD segment to its p_paddr and zero the p_memsz - p_filesz tail (bss).
 * @param minAddr lowest address a segment may use (boot structures live below it)
 * @param limit end of the RAM the kernel may occupy (RAM below 4 GiB)
 * @throws UserError when a segment lies outside [minAddr, limit) or outside RAM
 */
export function loadElfSegments(
  ram: GuestMemory,
  image: Uint8Array,
  kernel: ElfKernel,
  opts: { name: string; minAddr: number; limit: number },
): void {
  const what = `Linux kernel image '${opts.name}'`;
  kernel.segments.forEach((s, i) => {
    const hex = `0x${s.paddr.toString(16)}`;
    if (s.paddr < opts.minAddr) {
      throw new UserError(`${what} loads segment ${i} at ${hex}, below 0x${opts.minAddr.toString(16)}`);
    }
    if (s.paddr + s.memsz > opts.limit || !ram.isRam(s.paddr, s.memsz)) {
      throw new UserError(
        `${what} does not fit in guest RAM: segment ${i} at ${hex} needs ${s.memsz} bytes`,
      );
    }
    ram.write(s.paddr, image.subarray(s.offset, s.offset + s.filesz));
    if (s.memsz > s.filesz) {
      const zeroAt = s.paddr + s.filesz;
      const len = s.memsz - s.filesz;
      const v = ram.view(zeroAt, len);
      if (v) v.fill(0);
      else ram.write(zeroAt, new Uint8Array(len));
    }
  });
}
