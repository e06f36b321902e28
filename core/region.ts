/**
 * QEMU's memory-region model (include/exec/memory.h, softmmu/memory.c): a tree of regions with priorities
 * and aliases, address spaces with a cached flat view, one dispatch function for PIO/MMIO with QEMU's
 * access-size rules, plugin hooks, and the `info mtree` renderers.
 *
 * Addresses are JS numbers: exact below 2^53, and the 2^64 end of a full-size container is exact too.
 * @module
 */
import type { PhysMap } from "./accel.ts";
import { GuestPhysMap, type GuestRam, type RamMapping } from "./memory.ts";
import { type AccessRule, type RegionOps, UserError } from "./types.ts";

/** Region kinds; `io` regions may have subregions too (QEMU's "io" port space and rtc/rtc-index do). */
export type RegionKind = "ram" | "rom" | "io" | "alias" | "container";

/** Options for region factories. */
export interface RegionOptions {
  /** Priority among siblings; giving one allows overlapping (memory_region_add_subregion_overlap). */
  priority?: number;
  /** Owner device id (hooks, errors, `info mtree -o`). */
  owner?: string;
}

/**
 * A memory region (QEMU MemoryRegion). Build with the static factories, place with `addSubregion`.
 * @example
 * ```ts
 * import { AddressSpace, MemoryRegion } from "./region.ts";
 * const io = MemoryRegion.io("io", 0x10000, null);
 * io.addSubregion(0x80, MemoryRegion.io("post", 1, { read: () => 0x42, write: () => {} }));
 * const space = new AddressSpace("I/O", io);
 * console.assert(space.read(0x80, 1) === 0x42 && space.read(0x81, 1) === 0xff);
 * ```
 */
export class MemoryRegion {
  readonly name: string;
  readonly size: number;
  readonly kind: RegionKind;
  readonly owner: string | undefined;
  /** Callbacks of an `io` region; null = unassigned behaviour (QEMU's unassigned_io_ops). */
  readonly ops: RegionOps | null;
  /** Alias target and offset into it. */
  readonly aliasTarget: MemoryRegion | null;
  readonly aliasOffset: number;
  /** RAM/ROM backing: the GuestRam and the byte offset of this region's first byte in `ram.u8`. */
  readonly ram: GuestRam | null;
  readonly ramOffset: number;
  #priority: number;
  #mayOverlap: boolean;
  #enabled = true;
  #addr = 0;
  #parent: MemoryRegion | null = null;
  /** Subregions ordered as QEMU keeps them: priority descending, later-added first among equals. */
  readonly #subs: MemoryRegion[] = [];
  /** Address spaces whose flat view was built through this region (invalidated on change). */
  readonly #spaces = new Set<AddressSpace>();

  private constructor(
    name: string,
    size: number,
    kind: RegionKind,
    init: {
      ops?: RegionOps | null;
      alias?: MemoryRegion;
      aliasOffset?: number;
      ram?: GuestRam;
      ramOffset?: number;
      opts?: RegionOptions | undefined;
    },
  ) {
    if (!(size >= 0) || (!Number.isSafeInteger(size) && size !== 2 ** 64)) {
      throw new UserError(`Cannot create region "${name}": bad size ${size}`);
    }
    this.name = name;
    this.size = size;
    this.kind = kind;
    this.owner = init.opts?.owner;
    this.ops = init.ops ?? null;
    this.aliasTarget = init.alias ?? null;
    this.aliasOffset = init.aliasOffset ?? 0;
    this.ram = init.ram ?? null;
    this.ramOffset = init.ramOffset ?? 0;
    this.#priority = init.opts?.priority ?? 0;
    this.#mayOverlap = init.opts?.priority !== undefined;
  }

  /** A pure container (QEMU memory_region_init): gaps are unassigned. */
  static container(name: string, size: number, opts?: RegionOptions): MemoryRegion {
    return new MemoryRegion(name, size, "container", { opts });
  }

  /** An I/O region (memory_region_init_io); `ops` null gives unassigned behaviour (reads all-ones). */
  static io(name: string, size: number, ops: RegionOps | null, opts?: RegionOptions): MemoryRegion {
    return new MemoryRegion(name, size, "io", { ops, opts });
  }

  /** RAM backed by `ram.u8[offset, offset+size)` (memory_region_init_ram). */
  static ram(name: string, size: number, ram: GuestRam, offset: number, opts?: RegionOptions): MemoryRegion {
    if (!(offset >= 0) || offset + size > ram.u8.length) {
      throw new UserError(`Cannot create RAM region "${name}": backing range out of bounds`);
    }
    return new MemoryRegion(name, size, "ram", { ram, ramOffset: offset, opts });
  }

  /**
   * A ROM blob allocated in `ram`'s backing store under `name`. Read-only (kind "rom") unless
   * `readonly: false`, which gives kind "ram" as QEMU's x86_bios_rom_init(isapc_ram_fw=true) does for
   * microvm's pc.bios (rendered "ram" in info mtree).
   */
  static rom(
    name: string,
    size: number,
    ram: GuestRam,
    opts?: RegionOptions & { readonly?: boolean },
  ): MemoryRegion {
    const blob = ram.rom(name) ?? ram.allocRom(name, size);
    const kind = opts?.readonly === false ? "ram" : "rom";
    return new MemoryRegion(name, size, kind, { ram, ramOffset: blob.offset, opts });
  }

  /** An alias of `target[offset, offset+size)` (memory_region_init_alias). */
  static alias(
    name: string,
    target: MemoryRegion,
    offset: number,
    size: number,
    opts?: RegionOptions,
  ): MemoryRegion {
    return new MemoryRegion(name, size, "alias", { alias: target, aliasOffset: offset, opts });
  }

  get priority(): number {
    return this.#priority;
  }
  /** Offset of this region in its container (0 when not mapped). */
  get addr(): number {
    return this.#addr;
  }
  get parent(): MemoryRegion | null {
    return this.#parent;
  }
  get enabled(): boolean {
    return this.#enabled;
  }
  /** Subregions in QEMU's list order (priority descending). */
  get subregions(): readonly MemoryRegion[] {
    return this.#subs;
  }

  /** Enable or disable (memory_region_set_enabled); flat views are recomputed. */
  setEnabled(on: boolean): void {
    if (this.#enabled === on) return;
    this.#enabled = on;
    this.#changed();
  }

  /**
   * Map `sub` at `offset` (memory_region_add_subregion[_overlap]). `priority` here overrides the region's.
   * Throws UserError if `sub` is already mapped, or overlaps a sibling while neither has an explicit priority.
   */
  addSubregion(offset: number, sub: MemoryRegion, priority?: number): void {
    if (sub.#parent !== null) {
      throw new UserError(`Cannot map region "${sub.name}": already mapped in "${sub.#parent.name}"`);
    }
    if (!(offset >= 0) || !Number.isSafeInteger(offset)) {
      throw new UserError(`Cannot map region "${sub.name}" at ${offset}: bad offset`);
    }
    if (priority !== undefined) {
      sub.#priority = priority;
      sub.#mayOverlap = true;
    }
    if (!sub.#mayOverlap) {
      for (const o of this.#subs) {
        if (o.#mayOverlap || !o.#enabled) continue;
        if (offset < o.#addr + o.size && o.#addr < offset + sub.size) {
          throw new UserError(
            `Cannot map region "${sub.name}" at 0x${offset.toString(16)}: overlaps "${o.name}" at 0x${
              o.#addr.toString(16)
            }`,
          );
        }
      }
    }
    sub.#addr = offset;
    sub.#parent = this;
    // QEMU: insert before the first sibling with priority <= ours.
    let i = 0;
    while (i < this.#subs.length && this.#subs[i].#priority > sub.#priority) i++;
    this.#subs.splice(i, 0, sub);
    this.#changed();
  }

  /** Unmap `sub` (memory_region_del_subregion). */
  removeSubregion(sub: MemoryRegion): void {
    const i = this.#subs.indexOf(sub);
    if (i < 0) return;
    this.#subs.splice(i, 1);
    sub.#parent = null;
    sub.#addr = 0;
    this.#changed();
  }

  /** QEMU's memory_region_type(): "ram", "rom" or "i/o" (aliases report their target's). */
  typeName(): string {
    if (this.aliasTarget) return this.aliasTarget.typeName();
    return this.kind === "ram" ? "ram" : this.kind === "rom" ? "rom" : "i/o";
  }

  /** QEMU's mr->terminates: the region itself fills the gaps between its subregions. */
  get terminates(): boolean {
    return this.kind === "ram" || this.kind === "rom" || this.kind === "io";
  }

  /** @internal Register an address space to be told about topology changes below this region. */
  _watch(space: AddressSpace): void {
    this.#spaces.add(space);
  }

  #changed(): void {
    for (const s of this.#spaces) s._invalidate();
  }
}

/** One range of a flat view. */
export interface FlatRange {
  readonly start: number;
  readonly size: number;
  /** The terminal region (never an alias or container). */
  readonly region: MemoryRegion;
  readonly offsetInRegion: number;
  readonly readOnly: boolean;
}

/** Direction of an access. */
export type AccessDir = "read" | "write";

/** What a hook sees (STYLE.md §2.4). Mutable: a hook may set `value` (replace a read, change a write) or `drop`. */
export interface AccessEvent {
  space: string;
  addr: number;
  size: 1 | 2 | 4;
  dir: AccessDir;
  value: number;
  /** Region name, or "unassigned". */
  region: string;
  owner: string | undefined;
  offset: number;
  /** Writes only: set true to drop the write. */
  drop: boolean;
}

/** An access hook; `ranges` limits it to [addr, addr+size) windows of the address space. */
export interface AccessHook {
  ranges?: ReadonlyArray<{ addr: number; size: number }>;
  onAccess(ev: AccessEvent): void;
}

/** The access passed to `onDeviceError`. */
export interface AccessInfo {
  space: string;
  addr: number;
  size: number;
  dir: AccessDir;
  value: number;
  region: string;
  owner: string | undefined;
}

/** Counters of an address space. */
export interface DispatchStats {
  unassignedReads: number;
  unassignedWrites: number;
  deviceErrors: number;
}

/** Options of `new AddressSpace`. */
export interface AddressSpaceOptions {
  /** Called when a device handler or hook throws; the access then behaves as unassigned. */
  onDeviceError?: (err: unknown, access: AccessInfo) => void;
  /** Value unassigned reads return: "ones" (default, as port I/O does) or "zeros" (QEMU's unassigned_mem_read). */
  unassigned?: "ones" | "zeros";
}

function ruleMin(r: AccessRule | undefined): number {
  return r?.min ?? 1;
}
function ruleMax(r: AccessRule | undefined): number {
  return r?.max ?? 4;
}
function maskOf(size: number): number {
  return size >= 4 ? 0xffffffff : (1 << (size * 8)) - 1;
}
function pow2floor(n: number): number {
  return n >= 8 ? 8 : n >= 4 ? 4 : n >= 2 ? 2 : 1;
}

/**
 * An address space (QEMU AddressSpace): a root region, a cached flat view and the dispatcher every PIO/MMIO
 * access goes through (software CPU, KVM exits, qtest, fuzzer).
 */
export class AddressSpace {
  readonly name: string;
  readonly root: MemoryRegion;
  /** Counters: unassigned accesses and caught device errors. */
  readonly stats: DispatchStats = { unassignedReads: 0, unassignedWrites: 0, deviceErrors: 0 };
  /** Device/hook exception reporter (settable). */
  onDeviceError: (err: unknown, access: AccessInfo) => void;
  /** Read 1, 2 or 4 bytes (little endian); swapped to the hooked variant while hooks exist. */
  read: (addr: number, size: 1 | 2 | 4) => number;
  /** Write 1, 2 or 4 bytes (little endian). */
  write: (addr: number, size: 1 | 2 | 4, value: number) => void;

  readonly #onesValue: number;
  #flat: FlatRange[] | null = null;
  #starts: Float64Array = new Float64Array(0);
  #ends: Float64Array = new Float64Array(0);
  /** Per flat range: bit mask of access sizes (1|2|4) its ops take directly (valid and impl both allow). */
  #direct: Uint8Array = new Uint8Array(0);
  readonly #hooks: AccessHook[] = [];
  #phys: GuestPhysMap | null = null;
  readonly #ev: AccessEvent = {
    space: "",
    addr: 0,
    size: 1,
    dir: "read",
    value: 0,
    region: "",
    owner: undefined,
    offset: 0,
    drop: false,
  };

  constructor(name: string, root: MemoryRegion, opts: AddressSpaceOptions = {}) {
    this.name = name;
    this.root = root;
    this.onDeviceError = opts.onDeviceError ?? (() => {});
    this.#onesValue = opts.unassigned === "zeros" ? 0 : 0xffffffff;
    this.#ev.space = name;
    this.read = this.#readPlain;
    this.write = this.#writePlain;
  }

  /** @internal Topology below the root changed. */
  _invalidate(): void {
    this.#flat = null;
    if (this.#phys) this.#phys.update(this.ramMappings());
  }

  /** The flat view (sorted, non-overlapping, after priorities and aliases); cached until the topology changes. */
  flatView(): readonly FlatRange[] {
    if (this.#flat === null) this.#rebuild();
    return this.#flat!;
  }

  /** RAM/ROM-backed ranges of the flat view as GuestRam backing offsets (for PhysMap). */
  ramMappings(): RamMapping[] {
    const out: RamMapping[] = [];
    for (const r of this.flatView()) {
      const ram = r.region.ram;
      if (ram === null) continue;
      out.push({
        gpa: r.start,
        size: r.size,
        offset: r.region.ramOffset + r.offsetInRegion,
        readOnly: r.readOnly,
      });
    }
    return out;
  }

  /** The CPU's PhysMap over this space's RAM, kept up to date on topology changes (create once, reuse). */
  physMap(): PhysMap {
    if (this.#phys === null) {
      const fv = this.flatView();
      const ram = fv.find((r) => r.region.ram !== null)?.region.ram;
      if (!ram) throw new UserError(`Cannot build a PhysMap for address space "${this.name}": no RAM mapped`);
      this.#phys = new GuestPhysMap(ram, this.ramMappings());
    }
    return this.#phys;
  }

  /** Install a hook; returns a function that removes it. */
  addHook(hook: AccessHook): () => void {
    this.#hooks.push(hook);
    this.read = this.#readHooked;
    this.write = this.#writeHooked;
    return () => {
      const i = this.#hooks.indexOf(hook);
      if (i >= 0) this.#hooks.splice(i, 1);
      if (this.#hooks.length === 0) {
        this.read = this.#readPlain;
        this.write = this.#writePlain;
      }
    };
  }

  /** 8-byte read as two 4-byte accesses (low first). */
  read64(addr: number): bigint {
    const lo = this.read(addr, 4);
    const hi = this.read(addr + 4, 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** 8-byte write as two 4-byte accesses (low first). */
  write64(addr: number, value: bigint): void {
    const v = BigInt.asUintN(64, value);
    this.write(addr, 4, Number(v & 0xffffffffn));
    this.write(addr + 4, 4, Number(v >> 32n));
  }

  /** Index of the flat range containing `addr`, or -(insertion point)-1. */
  #find(addr: number): number {
    if (this.#flat === null) this.#rebuild();
    const starts = this.#starts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid] <= addr) lo = mid + 1;
      else hi = mid - 1;
    }
    // hi = last range with start <= addr
    if (hi >= 0 && addr < this.#ends[hi]) return hi;
    return -(hi + 1) - 1;
  }

  readonly #readPlain = (addr: number, size: 1 | 2 | 4): number => this.#access(addr, size, false, 0, false);
  readonly #writePlain = (addr: number, size: 1 | 2 | 4, value: number): void => {
    this.#access(addr, size, true, value, false);
  };
  readonly #readHooked = (addr: number, size: 1 | 2 | 4): number =>
    this.#access(addr, size, false, 0, this.#hookApplies(addr, size));
  readonly #writeHooked = (addr: number, size: 1 | 2 | 4, value: number): void => {
    this.#access(addr, size, true, value, this.#hookApplies(addr, size));
  };

  /** Some hook covers [a, a+l): only then does the access leave the fast path. */
  #hookApplies(a: number, l: number): boolean {
    for (const h of this.#hooks) {
      if (!h.ranges) return true;
      for (const r of h.ranges) if (a < r.addr + r.size && r.addr < a + l) return true;
    }
    return false;
  }

  /** Split an access over flat ranges (QEMU flatview_read/write_continue + memory_access_size). */
  #access(addr: number, size: number, isWrite: boolean, value: number, hooked: boolean): number {
    // Fast path: one aligned access wholly inside one io range, a size the handlers take as is.
    if (!hooked) {
      const i = this.#find(addr);
      if (i >= 0 && addr + size <= this.#ends[i] && (this.#direct[i] & size) !== 0) {
        const fr = this.#flat![i];
        const off = fr.offsetInRegion + (addr - fr.start);
        if ((off & (size - 1)) === 0) {
          const ops = fr.region.ops!;
          try {
            if (isWrite) {
              ops.write(off, size as 1 | 2 | 4, size === 4 ? value >>> 0 : value & maskOf(size));
              return 0;
            }
            return (ops.read(off, size as 1 | 2 | 4) & maskOf(size)) >>> 0;
          } catch (err) {
            this.#report(err, addr, size, isWrite, value, fr.region.name, fr.region.owner);
            return this.#unassigned(size, isWrite);
          }
        }
      }
    }
    let result = 0;
    let done = 0;
    if (isWrite) value = value >>> 0;
    while (done < size) {
      const a = addr + done;
      let l = size - done;
      const i = this.#find(a);
      let v: number;
      if (i < 0) {
        const next = -i - 1;
        if (next < this.#starts.length) l = Math.min(l, this.#starts[next] - a);
        l = pow2floor(l);
        const piece = isWrite ? Math.floor(value / 2 ** (done * 8)) % 2 ** (l * 8) : 0;
        v = hooked
          ? this.#hookedPiece(null, a, 0, l as 1 | 2 | 4, isWrite, piece)
          : this.#unassigned(l, isWrite);
      } else {
        const fr = this.#flat![i];
        l = Math.min(l, this.#ends[i] - a);
        const off = fr.offsetInRegion + (a - fr.start);
        const r = fr.region;
        if (r.ram === null) {
          // memory_access_size: limit to valid.max and, unless impl.unaligned, to the address alignment.
          const ops = r.ops;
          let max = ruleMax(ops?.valid);
          if (!ops?.impl?.unaligned) {
            const align = off & -off;
            if (align !== 0 && align < max) max = align;
          }
          if (l > max) l = max;
          l = pow2floor(l);
        } else {
          l = pow2floor(l);
        }
        const piece = isWrite ? Math.floor(value / 2 ** (done * 8)) % 2 ** (l * 8) : 0;
        v = hooked
          ? this.#hookedPiece(fr, a, off, l as 1 | 2 | 4, isWrite, piece)
          : this.#piece(fr, a, off, l as 1 | 2 | 4, isWrite, piece);
      }
      if (!isWrite) result += v * 2 ** (done * 8);
      done += l;
    }
    return result;
  }

  #unassigned(size: number, isWrite: boolean): number {
    if (isWrite) {
      this.stats.unassignedWrites++;
      return 0;
    }
    this.stats.unassignedReads++;
    return (this.#onesValue & maskOf(size)) >>> 0;
  }

  #hookedPiece(
    fr: FlatRange | null,
    a: number,
    off: number,
    l: 1 | 2 | 4,
    isWrite: boolean,
    value: number,
  ): number {
    let hit = false;
    for (const h of this.#hooks) {
      if (!h.ranges) {
        hit = true;
        break;
      }
      for (const r of h.ranges) {
        if (a < r.addr + r.size && r.addr < a + l) {
          hit = true;
          break;
        }
      }
      if (hit) break;
    }
    if (!hit) return fr ? this.#piece(fr, a, off, l, isWrite, value) : this.#unassigned(l, isWrite);
    const ev = this.#ev;
    const region = fr ? fr.region.name : "unassigned";
    const owner = fr ? fr.region.owner : undefined;
    const fire = (): boolean => {
      for (const h of this.#hooks) {
        if (h.ranges && !h.ranges.some((r) => a < r.addr + r.size && r.addr < a + l)) continue;
        ev.addr = a;
        ev.size = l;
        ev.dir = isWrite ? "write" : "read";
        ev.region = region;
        ev.owner = owner;
        ev.offset = off;
        try {
          h.onAccess(ev);
        } catch (err) {
          this.#report(err, a, l, isWrite, ev.value, region, owner);
          return false;
        }
      }
      return true;
    };
    if (isWrite) {
      ev.value = value;
      ev.drop = false;
      if (!fire()) return this.#unassigned(l, true);
      if (ev.drop) return 0;
      const v = ev.value;
      return fr ? this.#piece(fr, a, off, l, true, (v & maskOf(l)) >>> 0) : this.#unassigned(l, true);
    }
    ev.value = fr ? this.#piece(fr, a, off, l, false, 0) : this.#unassigned(l, false);
    ev.drop = false;
    if (!fire()) return this.#unassigned(l, false);
    return (ev.value & maskOf(l)) >>> 0;
  }

  #report(
    err: unknown,
    a: number,
    l: number,
    isWrite: boolean,
    value: number,
    region: string,
    owner?: string,
  ): void {
    this.stats.deviceErrors++;
    try {
      this.onDeviceError(err, {
        space: this.name,
        addr: a,
        size: l,
        dir: isWrite ? "write" : "read",
        value,
        region,
        owner,
      });
    } catch (_inner) {
      // The reporter itself failed: the access is already counted; never propagate to the CPU.
    }
  }

  /** One access wholly inside one flat range. */
  #piece(fr: FlatRange, a: number, off: number, l: 1 | 2 | 4, isWrite: boolean, value: number): number {
    const r = fr.region;
    const ram = r.ram;
    if (ram !== null) {
      const u8 = ram.u8;
      const base = r.ramOffset + off;
      if (isWrite) {
        if (fr.readOnly) return 0;
        for (let k = 0; k < l; k++) u8[base + k] = (value >>> (k * 8)) & 0xff;
        const d = ram.dirty; // live migration / fuzzer resets: pages written since the last look
        if (d !== null) d[base >>> 12] = d[(base + l - 1) >>> 12] = 1;
        return 0;
      }
      let v = 0;
      for (let k = l - 1; k >= 0; k--) v = v * 256 + u8[base + k];
      return v;
    }
    const ops = r.ops;
    if (ops === null) return this.#unassigned(l, isWrite);
    // memory_region_access_valid
    const valid = ops.valid;
    if (l < ruleMin(valid) || l > ruleMax(valid) || (!valid?.unaligned && (off & (l - 1)) !== 0)) {
      return this.#unassigned(l, isWrite);
    }
    // access_with_adjusted_size (little endian)
    const impl = ops.impl;
    const asz = Math.max(Math.min(l, ruleMax(impl)), ruleMin(impl)) as 1 | 2 | 4;
    try {
      if (asz === l) {
        if (isWrite) {
          ops.write(off, l, value);
          return 0;
        }
        return (ops.read(off, l) & maskOf(l)) >>> 0;
      }
      const mask = maskOf(asz);
      if (isWrite) {
        for (let k = 0; k < l; k += asz) ops.write(off + k, asz, Math.floor(value / 2 ** (k * 8)) & mask);
        return 0;
      }
      let v = 0;
      for (let k = 0; k < l; k += asz) v += ((ops.read(off + k, asz) & mask) >>> 0) * 2 ** (k * 8);
      return v % 2 ** (l * 8);
    } catch (err) {
      this.#report(err, a, l, isWrite, value, r.name, r.owner);
      return this.#unassigned(l, isWrite);
    }
  }

  #rebuild(): void {
    const view: MutRange[] = [];
    const watched = new Set<MemoryRegion>();
    renderRegion(view, this.root, 0, 0, 2 ** 64, false, watched);
    const flat = simplify(view);
    for (const r of watched) r._watch(this);
    this.#flat = flat;
    this.#starts = Float64Array.from(flat, (r) => r.start);
    this.#ends = Float64Array.from(flat, (r) => r.start + r.size);
    this.#direct = Uint8Array.from(flat, (r) => directSizes(r.region));
  }
}

function directSizes(r: MemoryRegion): number {
  const ops = r.ops;
  if (r.ram !== null || ops === null) return 0;
  let m = 0;
  for (const sz of [1, 2, 4]) {
    if (
      sz >= ruleMin(ops.valid) && sz <= ruleMax(ops.valid) && sz >= ruleMin(ops.impl) &&
      sz <= ruleMax(ops.impl)
    ) m |= sz;
  }
  return m;
}

interface MutRange {
  start: number;
  size: number;
  region: MemoryRegion;
  offsetInRegion: number;
  readOnly: boolean;
}

/** QEMU render_memory_region: subregions in priority order, then the region itself into the gaps. */
function renderRegion(
  view: MutRange[],
  mr: MemoryRegion,
  baseIn: number,
  clipStart: number,
  clipEnd: number,
  readOnlyIn: boolean,
  watched: Set<MemoryRegion>,
): void {
  watched.add(mr);
  if (!mr.enabled) return;
  let base = baseIn + mr.addr;
  const readOnly = readOnlyIn || mr.kind === "rom";
  const s = Math.max(base, clipStart);
  const e = Math.min(base + mr.size, clipEnd);
  if (!(s < e)) return;
  if (mr.aliasTarget) {
    base -= mr.aliasTarget.addr;
    base -= mr.aliasOffset;
    renderRegion(view, mr.aliasTarget, base, s, e, readOnly, watched);
    return;
  }
  for (const sub of mr.subregions) renderRegion(view, sub, base, s, e, readOnly, watched);
  if (!mr.terminates) return;
  let offset = s - base;
  let at = s;
  let remain = e - s;
  let i = 0;
  for (; i < view.length && remain > 0; i++) {
    const r = view[i];
    const rEnd = r.start + r.size;
    if (at >= rEnd) continue;
    if (at < r.start) {
      const now = Math.min(remain, r.start - at);
      view.splice(i, 0, { start: at, size: now, region: mr, offsetInRegion: offset, readOnly });
      i++;
      at += now;
      offset += now;
      remain -= now;
    }
    const now = Math.min(at + remain, rEnd) - at;
    at += now;
    offset += now;
    remain -= now;
  }
  if (remain > 0) {
    view.splice(i, 0, { start: at, size: remain, region: mr, offsetInRegion: offset, readOnly });
  }
}

/** QEMU flatview_simplify: merge adjacent ranges of the same region with contiguous offsets. */
function simplify(view: MutRange[]): FlatRange[] {
  const out: MutRange[] = [];
  for (const r of view) {
    const p = out[out.length - 1];
    if (
      p && p.region === r.region && p.start + p.size === r.start &&
      p.offsetInRegion + p.size === r.offsetInRegion &&
      p.readOnly === r.readOnly
    ) {
      p.size += r.size;
    } else {
      out.push({ ...r });
    }
  }
  return out;
}

/**
 * QEMU's per-CPU address spaces: "cpu-memory-N" rooted at `system`, and with `smm` a "cpu-smm-N" rooted at a
 * per-CPU "memory" container holding an alias "memory" of `system` (target/i386/tcg/sysemu/tcg-cpu.c).
 * Returned in QEMU's creation order: cpu-memory-0, cpu-smm-0, cpu-memory-1, ...
 */
export function createCpuAddressSpaces(
  system: MemoryRegion,
  opts: { ncpus: number; smm: boolean; onDeviceError?: (err: unknown, access: AccessInfo) => void },
): AddressSpace[] {
  const out: AddressSpace[] = [];
  const spaceOpts: AddressSpaceOptions = opts.onDeviceError ? { onDeviceError: opts.onDeviceError } : {};
  for (let i = 0; i < opts.ncpus; i++) {
    out.push(new AddressSpace(`cpu-memory-${i}`, system, spaceOpts));
    if (opts.smm) {
      const root = MemoryRegion.container("memory", 2 ** 64);
      root.addSubregion(0, MemoryRegion.alias("memory", system, 0, 2 ** 64), 0);
      out.push(new AddressSpace(`cpu-smm-${i}`, root, spaceOpts));
    }
  }
  return out;
}

/** Options of `renderMtree`. */
export interface MtreeOptions {
  /** `info mtree -f`. */
  flat?: boolean;
  /**
   * Order of the blocks: names of address spaces, one per group (QEMU iterates a hash table, so the order
   * varies between runs; pass the order of the capture to compare with). Unlisted groups follow in
   * first-appearance order.
   */
  order?: readonly string[];
  /** Flat view: accelerator name printed after RAM ranges of the spaces it registered ("KVM"). */
  accel?: { name: string; spaces: readonly string[] };
}

function hex16(n: number | bigint): string {
  return BigInt(n).toString(16).padStart(16, "0");
}
function endOf(start: number | bigint, size: number): bigint {
  return size === 0 ? BigInt(start) : BigInt(start) + BigInt(size) - 1n;
}

function orderGroups<T>(groups: T[], names: (g: T) => string[], order: readonly string[] | undefined): T[] {
  if (!order) return groups;
  const rank = (g: T): number => {
    let best = Infinity;
    for (const n of names(g)) {
      const k = order.indexOf(n);
      if (k >= 0 && k < best) best = k;
    }
    return best;
  };
  return groups.map((g, i) => ({ g, i, r: rank(g) })).sort((x, y) => x.r - y.r || x.i - y.i).map((x) => x.g);
}

/** QEMU memory_region_get_flatview_root. */
function flatviewRoot(start: MemoryRegion): MemoryRegion | null {
  let mr = start;
  while (mr.enabled) {
    if (mr.aliasTarget) {
      if (mr.aliasOffset === 0 && mr.size >= mr.aliasTarget.size) {
        mr = mr.aliasTarget;
        continue;
      }
    } else if (!mr.terminates) {
      let found = 0;
      let next: MemoryRegion | null = null;
      for (const c of mr.subregions) {
        if (!c.enabled) continue;
        if (++found > 1) {
          next = null;
          break;
        }
        if (c.addr === 0 && mr.size >= c.size) next = c;
      }
      if (found === 0) return null;
      if (next) {
        mr = next;
        continue;
      }
    }
    return mr;
  }
  return null;
}

/** QEMU mtree_print_mr. */
function printRegion(
  out: string[],
  mr: MemoryRegion,
  level: number,
  base: number,
  queue: MemoryRegion[],
): void {
  const start = BigInt(base) + BigInt(mr.addr);
  const indent = "  ".repeat(level);
  const head = `${indent}${hex16(start)}-${
    hex16(endOf(start, mr.size))
  } (prio ${mr.priority}, ${mr.typeName()}): `;
  const dis = mr.enabled ? "" : " [disabled]";
  if (mr.aliasTarget) {
    if (!queue.includes(mr.aliasTarget)) queue.push(mr.aliasTarget);
    out.push(
      `${head}alias ${mr.name} @${mr.aliasTarget.name} ${hex16(mr.aliasOffset)}-${
        hex16(endOf(mr.aliasOffset, mr.size))
      }${dis}\n`,
    );
  } else {
    out.push(`${head}${mr.name}${dis}\n`);
  }
  if (!mr.enabled) return;
  // Print order: address ascending, then priority descending, else list order.
  const subs = mr.subregions.map((s, i) => ({ s, i }));
  subs.sort((x, y) => x.s.addr - y.s.addr || y.s.priority - x.s.priority || x.i - y.i);
  for (const { s } of subs) printRegion(out, s, level + 1, Number(start), queue);
}

/**
 * Render QEMU 7.2's `info mtree` (or `info mtree -f` with `flat`) for `spaces` given in creation order.
 * @example
 * ```ts
 * import { AddressSpace, MemoryRegion, renderMtree } from "./region.ts";
 * const io = MemoryRegion.io("io", 0x10000, null);
 * const text = renderMtree([new AddressSpace("I/O", io)]);
 * console.assert(text.startsWith("address-space: I/O\n  0000000000000000-000000000000ffff (prio 0, i/o): io\n"));
 * ```
 */
export function renderMtree(spaces: readonly AddressSpace[], opts: MtreeOptions = {}): string {
  return opts.flat ? renderFlat(spaces, opts) : renderTree(spaces, opts);
}

function renderTree(spaces: readonly AddressSpace[], opts: MtreeOptions): string {
  const groups: { root: MemoryRegion; names: string[] }[] = [];
  for (const s of spaces) {
    let g = groups.find((x) => x.root === s.root);
    if (!g) groups.push(g = { root: s.root, names: [] });
    g.names.push(s.name);
  }
  for (const g of groups) g.names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out: string[] = [];
  const queue: MemoryRegion[] = [];
  for (const g of orderGroups(groups, (x) => x.names, opts.order)) {
    for (const n of g.names) out.push(`address-space: ${n}\n`);
    printRegion(out, g.root, 1, 0, queue);
    out.push("\n");
  }
  for (let i = 0; i < queue.length; i++) {
    out.push(`memory-region: ${queue[i].name}\n`);
    printRegion(out, queue[i], 1, 0, queue);
    out.push("\n");
  }
  return out.join("");
}

function renderFlat(spaces: readonly AddressSpace[], opts: MtreeOptions): string {
  const groups: { root: MemoryRegion | null; spaces: AddressSpace[] }[] = [];
  for (const s of spaces) {
    const root = flatviewRoot(s.root);
    let g = groups.find((x) => x.root === root);
    if (!g) groups.push(g = { root, spaces: [] });
    g.spaces.push(s);
  }
  const out: string[] = [];
  let n = 0;
  for (const g of orderGroups(groups, (x) => x.spaces.map((s) => s.name), opts.order)) {
    out.push(`FlatView #${n++}\n`);
    for (const s of g.spaces) {
      const alias = s.root.aliasTarget ? `, alias ${s.root.aliasTarget.name}` : "";
      out.push(` AS "${s.name}", root: ${s.root.name}${alias}\n`);
    }
    out.push(` Root memory region: ${g.root ? g.root.name : "(none)"}\n`);
    const ranges = g.spaces[0].flatView();
    if (ranges.length === 0) {
      out.push("  No rendered FlatView\n\n");
      continue;
    }
    const accelHits = opts.accel ? g.spaces.filter((s) => opts.accel!.spaces.includes(s.name)).length : 0;
    for (const r of ranges) {
      const type = r.readOnly ? "rom" : r.region.typeName();
      const at = r.offsetInRegion ? ` @${hex16(r.offsetInRegion)}` : "";
      let line = `  ${hex16(r.start)}-${
        hex16(endOf(r.start, r.size))
      } (prio ${r.region.priority}, ${type}): ${r.region.name}${at}`;
      if (r.region.ram !== null) { for (let k = 0; k < accelHits; k++) line += ` ${opts.accel!.name}`; }
      out.push(line + "\n");
    }
    out.push("\n");
  }
  return out.join("");
}
