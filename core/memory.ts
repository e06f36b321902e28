/**
 * Guest RAM: one SharedArrayBuffer holding all RAM and ROM blobs (zero-copy for KVM vCPU workers and the
 * software CPU), the bounds-checked GuestMemory API over it, and the CPU's PhysMap page table.
 *
 * Layout follows QEMU 7.2 hw/i386/microvm.c microvm_memory_init: ram-below-4g = min(size, 3 GiB) at GPA 0,
 * the rest (ram-above-4g) at GPA 4 GiB. ROM blobs (pc.bios) live after RAM in the same buffer.
 * @module
 */
import type { PhysMap } from "./accel.ts";
import { type GuestMemory, UserError } from "./types.ts";

/** QEMU 7.2 microvm: `ram_addr_t lowmem = 0xc0000000; /* 3G *\/` (hw/i386/microvm.c). */
export const MICROVM_LOWMEM = 0xc0000000;
/** GPA where RAM above the 32-bit hole starts. */
export const ABOVE_4G_BASE = 0x1_0000_0000;
/** Guest page size used by PhysMap. */
export const PAGE_SIZE = 0x1000;
/** Default backing space reserved after RAM for ROM blobs (x86 BIOS images are at most 16 MiB). */
export const DEFAULT_ROM_RESERVE = 0x100_0000;

const PAGES_BELOW_4G = 0x10_0000;

/** A contiguous guest-physical window backed by `u8[offset, offset+size)`. */
export interface RamMapping {
  gpa: number;
  size: number;
  /** Byte offset in GuestRam.u8. */
  offset: number;
  readOnly: boolean;
}

/** A ROM blob allocated in GuestRam's backing store. */
export interface RomBlob {
  readonly name: string;
  readonly size: number;
  /** Byte offset in GuestRam.u8. */
  readonly offset: number;
  /** Zero-copy view of the blob (load firmware into it). */
  readonly bytes: Uint8Array;
}

/** Options of `new GuestRam`. */
export interface GuestRamOptions {
  /** RAM bytes (`-m`). */
  size: number;
  /** Bytes of RAM mapped below 4 GiB; default min(size, MICROVM_LOWMEM). */
  below4g?: number;
  /** Backing bytes reserved for ROM blobs; default DEFAULT_ROM_RESERVE. */
  romReserve?: number;
  /**
   * Byte offset of the host address of a buffer's first byte within its 4 KiB page (KVM needs page-aligned
   * memory slots; a SharedArrayBuffer's data may start mid-page). Given by the KVM accelerator, which has
   * FFI; without it the data starts at offset 0.
   */
  hostPageOffset?: (buf: SharedArrayBuffer) => number;
}

function pageAlign(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

/**
 * All guest RAM and ROM in one SharedArrayBuffer: implements GuestMemory (RAM layout only, never MMIO or ROM)
 * and owns the backing store the PhysMap points into.
 * @example
 * ```ts
 * import { GuestRam } from "./memory.ts";
 * const ram = new GuestRam({ size: 512 * 1024 * 1024 });
 * ram.writeU32(0x1000, 0xdeadbeef);
 * console.assert(ram.readU32(0x1000) === 0xdeadbeef);
 * console.assert(ram.readU8(0x2000_0000) === 0xff); // past the end: all-ones, no throw
 * ```
 */
export class GuestRam implements GuestMemory {
  /** RAM bytes. */
  readonly size: number;
  /** RAM bytes mapped at GPA 0. */
  readonly below4g: number;
  /** RAM bytes mapped at GPA 4 GiB. */
  readonly above4g: number;
  /** The shared backing store (RAM at offset 0, then ROM blobs). */
  readonly buffer: SharedArrayBuffer;
  /** Byte view of the whole backing store. */
  readonly u8: Uint8Array;
  readonly #dv: DataView;
  readonly #romBase: number;
  #romNext: number;
  readonly #roms = new Map<string, RomBlob>();
  /**
   * Called with (backing offset, bytes) before every write through this API and for every `view` (which
   * may be written): the software CPU's JIT drops translated code there (DMA into code). Null: no cost.
   */
  onWrite: ((off: number, len: number) => void) | null = null;
  /** Live migration's dirty log (one byte per backing page), or null: device writes set it. */
  dirty: Uint8Array | null = null;

  constructor(opts: GuestRamOptions) {
    const size = opts.size;
    if (!Number.isSafeInteger(size) || size <= 0) throw new UserError(`Invalid RAM size "${size}"`);
    const below = opts.below4g ?? Math.min(size, MICROVM_LOWMEM);
    if (!Number.isSafeInteger(below) || below < 0 || below > size || below > ABOVE_4G_BASE) {
      throw new UserError(`Invalid below-4G RAM size "${below}" for RAM size "${size}"`);
    }
    const reserve = opts.romReserve ?? DEFAULT_ROM_RESERVE;
    if (!Number.isSafeInteger(reserve) || reserve < 0) {
      throw new UserError(`Invalid ROM reserve "${reserve}"`);
    }
    this.size = size;
    this.below4g = below;
    this.above4g = size - below;
    this.#romBase = pageAlign(size);
    this.#romNext = this.#romBase;
    const total = this.#romBase + pageAlign(reserve);
    const slack = opts.hostPageOffset ? PAGE_SIZE : 0;
    try {
      this.buffer = new SharedArrayBuffer(total + slack);
    } catch (e) {
      throw new UserError(
        `Cannot allocate ${size} bytes of guest RAM: ${e instanceof Error ? e.message : e}`,
      );
    }
    const off = opts.hostPageOffset ? (PAGE_SIZE - opts.hostPageOffset(this.buffer)) % PAGE_SIZE : 0;
    this.u8 = new Uint8Array(this.buffer, off, total);
    this.#dv = new DataView(this.buffer, off, total);
  }

  /** The RAM layout as mappings (below-4G at 0, above-4G at 4 GiB). */
  ramMappings(): RamMapping[] {
    const out: RamMapping[] = [{ gpa: 0, size: this.below4g, offset: 0, readOnly: false }];
    if (this.above4g > 0) {
      out.push({ gpa: ABOVE_4G_BASE, size: this.above4g, offset: this.below4g, readOnly: false });
    }
    return out;
  }

  /** Allocate a ROM blob in the backing store (page aligned); throws UserError when the reserve is full. */
  allocRom(name: string, size: number): RomBlob {
    if (this.#roms.has(name)) throw new UserError(`Cannot allocate ROM "${name}": name already in use`);
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new UserError(`Cannot allocate ROM "${name}": bad size ${size}`);
    }
    const offset = this.#romNext;
    if (offset + size > this.u8.length) {
      throw new UserError(`Cannot allocate ROM "${name}" of ${size} bytes: ROM space exhausted`);
    }
    this.#romNext = offset + pageAlign(size);
    const blob: RomBlob = { name, size, offset, bytes: this.u8.subarray(offset, offset + size) };
    this.#roms.set(name, blob);
    return blob;
  }

  /** A ROM blob by name, or undefined. */
  rom(name: string): RomBlob | undefined {
    return this.#roms.get(name);
  }

  /** Zero all RAM (system_reset); ROM blobs are kept. */
  clear(): void {
    this.onWrite?.(0, this.size);
    this.u8.fill(0, 0, this.size);
    this.dirty?.fill(1);
  }

  /** Backing offset of [gpa, gpa+len) if wholly inside one RAM window, else -1. Overflow-safe. */
  translate(gpa: number, len: number): number {
    if (!(gpa >= 0 && len >= 0) || !Number.isSafeInteger(gpa) || !Number.isSafeInteger(len)) return -1;
    if (gpa < this.below4g) return len <= this.below4g - gpa ? gpa : -1;
    const rel = gpa - ABOVE_4G_BASE;
    if (rel >= 0 && rel < this.above4g) return len <= this.above4g - rel ? this.below4g + rel : -1;
    // Zero-length accesses at the very end of a window are in RAM.
    if (len === 0 && (gpa === this.below4g || (this.above4g > 0 && rel === this.above4g))) return 0;
    return -1;
  }

  isRam(gpa: number, len: number): boolean {
    return this.translate(gpa, len) >= 0;
  }
  read(gpa: number, len: number): Uint8Array | null {
    const o = this.translate(gpa, len);
    return o < 0 ? null : this.u8.slice(o, o + len);
  }
  readInto(gpa: number, dst: Uint8Array): boolean {
    const o = this.translate(gpa, dst.length);
    if (o < 0) return false;
    dst.set(this.u8.subarray(o, o + dst.length));
    return true;
  }
  write(gpa: number, data: Uint8Array): boolean {
    const o = this.translate(gpa, data.length);
    if (o < 0) return false;
    this.onWrite?.(o, data.length);
    this.u8.set(data, o);
    if (this.dirty !== null) this.#mark(o, data.length);
    return true;
  }
  view(gpa: number, len: number): Uint8Array | null {
    const o = this.translate(gpa, len);
    if (o < 0) return null;
    this.onWrite?.(o, len);
    // A view may be written through: count it as written (conservative).
    if (this.dirty !== null) this.#mark(o, len);
    return this.u8.subarray(o, o + len);
  }
  #mark(o: number, len: number): void {
    const d = this.dirty!;
    const e = Math.min(d.length, (o + Math.max(len, 1) + 4095) >>> 12);
    for (let p = o >>> 12; p < e; p++) d[p] = 1;
  }
  readU8(gpa: number): number {
    const o = this.translate(gpa, 1);
    return o < 0 ? 0xff : this.u8[o];
  }
  readU16(gpa: number): number {
    const o = this.translate(gpa, 2);
    return o < 0 ? 0xffff : this.#dv.getUint16(o, true);
  }
  readU32(gpa: number): number {
    const o = this.translate(gpa, 4);
    return o < 0 ? 0xffffffff : this.#dv.getUint32(o, true);
  }
  readU64(gpa: number): number {
    const o = this.translate(gpa, 8);
    return o < 0 ? -1 : this.#dv.getUint32(o, true) + this.#dv.getUint32(o + 4, true) * 0x1_0000_0000;
  }
  writeU8(gpa: number, v: number): boolean {
    const o = this.translate(gpa, 1);
    if (o < 0) return false;
    this.onWrite?.(o, 1);
    this.u8[o] = v;
    if (this.dirty !== null) this.dirty[o >>> 12] = 1;
    return true;
  }
  writeU16(gpa: number, v: number): boolean {
    const o = this.translate(gpa, 2);
    if (o < 0) return false;
    this.onWrite?.(o, 2);
    this.#dv.setUint16(o, v, true);
    if (this.dirty !== null) this.#mark(o, 2);
    return true;
  }
  writeU32(gpa: number, v: number): boolean {
    const o = this.translate(gpa, 4);
    if (o < 0) return false;
    this.onWrite?.(o, 4);
    this.#dv.setUint32(o, v >>> 0, true);
    if (this.dirty !== null) this.#mark(o, 4);
    return true;
  }
  writeU64(gpa: number, v: number | bigint): boolean {
    const o = this.translate(gpa, 8);
    if (o < 0) return false;
    this.onWrite?.(o, 8);
    this.#dv.setBigUint64(o, BigInt.asUintN(64, typeof v === "bigint" ? v : BigInt(Math.trunc(v))), true);
    if (this.dirty !== null) this.#mark(o, 8);
    return true;
  }
}

/**
 * The CPU fast path (core/accel.ts PhysMap) over a GuestRam: an Int32Array page table for GPAs below 4 GiB
 * (backing page index, -1 = MMIO/unassigned) and range math above. Rebuilt with `update` on topology change.
 */
export class GuestPhysMap implements PhysMap {
  readonly u8: Uint8Array;
  readonly #pages = new Int32Array(PAGES_BELOW_4G);
  readonly #ro = new Uint8Array(PAGES_BELOW_4G);
  #high: RamMapping[] = [];
  #generation = 0;

  constructor(ram: GuestRam, mappings: readonly RamMapping[] = ram.ramMappings()) {
    this.u8 = ram.u8;
    this.update(mappings);
  }

  get generation(): number {
    return this.#generation;
  }

  /**
   * Replace the mapping (flat-view order: later entries win where they overlap). Pages only partly covered
   * by a mapping stay unmapped (-1) so the CPU takes the MMIO path for them.
   */
  update(mappings: readonly RamMapping[]): void {
    this.#pages.fill(-1);
    this.#ro.fill(0);
    const high: RamMapping[] = [];
    for (const m of mappings) {
      if (m.size <= 0) continue;
      const end = m.gpa + m.size;
      if (m.gpa < ABOVE_4G_BASE) {
        const first = Math.ceil(m.gpa / PAGE_SIZE);
        const last = Math.min(Math.floor(end / PAGE_SIZE), PAGES_BELOW_4G);
        // Every page of a mapping shares one GPA-to-backing delta: unaligned ones map nothing, aligned ones
        // are a run of consecutive backing pages up to the end of the store.
        const delta = m.offset - m.gpa;
        if (delta % PAGE_SIZE !== 0) continue;
        const d = delta / PAGE_SIZE;
        const stop = Math.min(last, Math.floor(this.u8.length / PAGE_SIZE) - d);
        const pages = this.#pages;
        const start = Math.max(first, -d);
        for (let p = start; p < stop; p++) pages[p] = p + d;
        if (stop > start) this.#ro.fill(m.readOnly ? 1 : 0, start, stop);
      }
      if (end > ABOVE_4G_BASE) {
        const gpa = Math.max(m.gpa, ABOVE_4G_BASE);
        high.push({ gpa, size: end - gpa, offset: m.offset + (gpa - m.gpa), readOnly: m.readOnly });
      }
    }
    this.#high = high.reverse(); // later mappings win
    this.#generation++;
  }

  pageBase(gpn: number): number {
    if (gpn >= 0 && gpn < PAGES_BELOW_4G) {
      const p = this.#pages[gpn | 0];
      return p < 0 ? -1 : p * PAGE_SIZE;
    }
    const gpa = gpn * PAGE_SIZE;
    for (const m of this.#high) {
      if (gpa >= m.gpa && gpa + PAGE_SIZE <= m.gpa + m.size) {
        const off = m.offset + (gpa - m.gpa);
        return off % PAGE_SIZE === 0 ? off : -1;
      }
    }
    return -1;
  }

  isReadOnly(gpn: number): boolean {
    if (gpn >= 0 && gpn < PAGES_BELOW_4G) return this.#ro[gpn | 0] === 1;
    const gpa = gpn * PAGE_SIZE;
    for (const m of this.#high) if (gpa >= m.gpa && gpa < m.gpa + m.size) return m.readOnly;
    return false;
  }
}

/**
 * GuestMemory over one plain byte array at guest-physical 0 (no holes, no ROM): test boards, the CPU
 * harness and KVM test guests. Bounds-checked like GuestRam; out-of-range reads return all-ones.
 */
export class ByteMemory implements GuestMemory {
  readonly bytes: Uint8Array;
  readonly #dv: DataView;
  /** As GuestRam.onWrite (offsets are GPAs here). */
  onWrite: ((off: number, len: number) => void) | null = null;
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.#dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get size(): number {
    return this.bytes.length;
  }
  isRam(gpa: number, len: number): boolean {
    return Number.isInteger(gpa) && Number.isInteger(len) && gpa >= 0 && len >= 0 &&
      gpa + len <= this.bytes.length;
  }
  read(gpa: number, len: number): Uint8Array | null {
    return this.isRam(gpa, len) ? this.bytes.slice(gpa, gpa + len) : null;
  }
  readInto(gpa: number, dst: Uint8Array): boolean {
    if (!this.isRam(gpa, dst.length)) return false;
    dst.set(this.bytes.subarray(gpa, gpa + dst.length));
    return true;
  }
  write(gpa: number, data: Uint8Array): boolean {
    if (!this.isRam(gpa, data.length)) return false;
    this.onWrite?.(gpa, data.length);
    this.bytes.set(data, gpa);
    return true;
  }
  view(gpa: number, len: number): Uint8Array | null {
    if (!this.isRam(gpa, len)) return null;
    this.onWrite?.(gpa, len);
    return this.bytes.subarray(gpa, gpa + len);
  }
  readU8(gpa: number): number {
    return this.isRam(gpa, 1) ? this.bytes[gpa] : 0xff;
  }
  readU16(gpa: number): number {
    return this.isRam(gpa, 2) ? this.#dv.getUint16(gpa, true) : 0xffff;
  }
  readU32(gpa: number): number {
    return this.isRam(gpa, 4) ? this.#dv.getUint32(gpa, true) : 0xffffffff;
  }
  readU64(gpa: number): number {
    return this.isRam(gpa, 8) ? Number(this.#dv.getBigUint64(gpa, true)) : -1;
  }
  writeU8(gpa: number, v: number): boolean {
    if (!this.isRam(gpa, 1)) return false;
    this.onWrite?.(gpa, 1);
    this.bytes[gpa] = v;
    return true;
  }
  writeU16(gpa: number, v: number): boolean {
    if (!this.isRam(gpa, 2)) return false;
    this.onWrite?.(gpa, 2);
    this.#dv.setUint16(gpa, v, true);
    return true;
  }
  writeU32(gpa: number, v: number): boolean {
    if (!this.isRam(gpa, 4)) return false;
    this.onWrite?.(gpa, 4);
    this.#dv.setUint32(gpa, v >>> 0, true);
    return true;
  }
  writeU64(gpa: number, v: number | bigint): boolean {
    if (!this.isRam(gpa, 8)) return false;
    this.onWrite?.(gpa, 8);
    this.#dv.setBigUint64(gpa, BigInt.asUintN(64, BigInt(v)), true);
    return true;
  }
}
