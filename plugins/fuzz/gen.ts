/**
 * Input generation and mutation. Targets come from the flat views of both address spaces (as QEMU's
 * generic-fuzz enumerates MemoryRegions); ops are register accesses with "interesting" values, clock steps,
 * and macros that build whole virtio-mmio queues (legacy layout: the board's default force-legacy=on) with
 * descriptor chains in guest RAM, and fw_cfg DMA requests.
 * @module
 */
import { UserError } from "../../core/types.ts";
import { Prng } from "../_prng.ts";
import type { Op } from "./input.ts";
import type { FuzzMachine } from "./machine.ts";

/** One fuzz target: a region of a flat view. */
export interface Target {
  space: "io" | "memory";
  start: number;
  size: number;
  region: string;
  /** Device id (region owner), or the region name when it has none. */
  device: string;
  /** For virtio transports: the plugged device's type name, or "" for an empty one. */
  virtio?: string;
}

/** Every I/O region of the machine (RAM, ROM and unassigned gaps left out). */
export function allTargets(fm: FuzzMachine): Target[] {
  const out: Target[] = [];
  const typeOf = new Map<string, string>();
  for (const t of fm.vm.transports) typeOf.set(t.id, t.device?.typeName ?? "");
  for (const [space, as] of [["memory", fm.vm.memory], ["io", fm.vm.io]] as const) {
    for (const fr of as.flatView()) {
      const r = fr.region;
      if (r.ram !== null || r.ops === null) continue;
      const device = r.owner ?? r.name;
      const t: Target = { space, start: fr.start, size: fr.size, region: r.name, device };
      const v = typeOf.get(device);
      if (v !== undefined) t.virtio = v;
      out.push(t);
    }
  }
  return out;
}

/**
 * Targets picked by `--target` names: a device id (`serial0`, `virtio-mmio@feb00e00`), a region name
 * (`virtio-mmio`, `fwcfg.dma`), a virtio device type (`virtio-blk-device`, or short `virtio-blk`), or `all`.
 */
export function selectTargets(fm: FuzzMachine, names: readonly string[]): Target[] {
  const all = allTargets(fm);
  if (names.length === 0 || names.includes("all")) return all;
  const out = new Set<Target>();
  for (const n of names) {
    const hits = all.filter((t) =>
      t.device === n || t.region === n ||
      (t.virtio !== undefined && (t.virtio === n || t.virtio === `${n}-device`))
    );
    if (hits.length === 0) {
      const known = [...new Set(all.map((t) => t.virtio || t.device))].join(", ");
      throw new UserError(`Unknown fuzz target "${n}" (known: ${known}, all)`);
    }
    for (const h of hits) out.add(h);
  }
  return [...out];
}

const INTERESTING = [
  0,
  1,
  2,
  3,
  4,
  7,
  8,
  0xf,
  0x10,
  0x1f,
  0x20,
  0x3f,
  0x40,
  0x7f,
  0x80,
  0x81,
  0xfe,
  0xff,
  0x100,
  0x200,
  0x1000,
  0x7fff,
  0x8000,
  0xffff,
  0x10000,
  0x7fffffff,
  0x80000000,
  0xfffffffe,
  0xffffffff,
];
/** Virtio-mmio register offsets (virtio spec §4.2.2 and §4.2.4 legacy). */
const VIRTIO_REGS = [
  0x000,
  0x004,
  0x008,
  0x00c,
  0x010,
  0x014,
  0x020,
  0x024,
  0x028,
  0x030,
  0x034,
  0x038,
  0x03c,
  0x040,
  0x044,
  0x050,
  0x060,
  0x064,
  0x070,
  0x080,
  0x084,
  0x090,
  0x094,
  0x0a0,
  0x0a4,
  0x0ac,
  0x0b0,
  0x0b4,
  0x0b8,
  0x0bc,
  0x0fc,
  0x100,
  0x104,
  0x108,
  0x10c,
  0x110,
  0x114,
];
/** fw_cfg keys worth selecting (docs/specs/fw_cfg.rst). */
const FW_CFG_KEYS = [
  0x00,
  0x01,
  0x02,
  0x03,
  0x04,
  0x05,
  0x07,
  0x0a,
  0x0e,
  0x0f,
  0x19,
  0x20,
  0x21,
  0x22,
  0x23,
  0x24,
  0x8000,
  0x4000,
  0xffff,
];
/** Register offsets of other windows larger than a few bytes (IOAPIC: IOREGSEL, IOWIN, EOI). */
const REG_HINTS: Record<string, readonly number[]> = {
  ioapic: [0x00, 0x10, 0x20, 0x40],
  "apic-msi": [0x0, 0x1000, 0xff000],
};
const RING_BASE = 0x40000;
const BUF_BASE = 0x80000;
const FWCFG_DMA_STRUCT = 0x3000;

function maskOf(size: 1 | 2 | 4): number {
  return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
}

function le(bytes: number[], v: number, n: number): void {
  for (let i = 0; i < n; i++) bytes.push(Math.floor(v / 2 ** (8 * i)) & 0xff);
}
function be(bytes: number[], v: number, n: number): void {
  for (let i = n - 1; i >= 0; i--) bytes.push(Math.floor(v / 2 ** (8 * i)) & 0xff);
}

/** Makes random ops for a set of targets. */
export class OpGen {
  readonly targets: readonly Target[];
  readonly #rng: Prng;
  readonly #ramSize: number;
  readonly #virtio: Target[];
  readonly #fwDma: Target | undefined;
  readonly #pairs: Target[];

  constructor(targets: readonly Target[], rng: Prng, ramSize: number) {
    if (targets.length === 0) throw new UserError("No fuzz targets selected");
    this.targets = targets;
    this.#rng = rng;
    this.#ramSize = ramSize;
    this.#virtio = targets.filter((t) => t.region === "virtio-mmio");
    this.#fwDma = targets.find((t) => t.region === "fwcfg.dma");
    this.#pairs = targets.filter((t) =>
      t.region === "ioapic" || t.region === "rtc-index" || t.region === "fwcfg"
    );
  }

  /** A value for a `size`-byte access. */
  value(size: 1 | 2 | 4): number {
    const r = this.#rng;
    const v = r.chance(0.6) ? r.pick(INTERESTING) : r.u32();
    return (v & maskOf(size)) >>> 0;
  }

  #size(): 1 | 2 | 4 {
    return this.#rng.pick([1, 1, 2, 4, 4] as const);
  }

  /** One register access to a random target. */
  access(): Op {
    const r = this.#rng;
    const t = r.pick(this.targets);
    let off: number;
    const hints = REG_HINTS[t.region];
    if (t.region === "virtio-mmio" && r.chance(0.8)) off = r.pick(VIRTIO_REGS);
    else if (hints && r.chance(0.8)) off = r.pick(hints);
    else if (t.size > 0x100 && r.chance(0.7)) off = r.below(0x100) & ~3;
    else off = r.below(t.size);
    const size = this.#size();
    const addr = t.start + off;
    const write = r.chance(0.6);
    if (t.space === "io") {
      return write ? { op: "out", size, addr, value: this.value(size) } : { op: "in", size, addr };
    }
    return write ? { op: "write", size, addr, value: this.value(size) } : { op: "read", size, addr };
  }

  /** A clock step. */
  step(): Op {
    const r = this.#rng;
    return {
      op: "step",
      ns: r.pick([1000, 100_000, 1_000_000, 10_000_000, 1_000_000_000, r.below(0x10000000)]),
    };
  }

  /** A guest address: mostly in RAM, sometimes at its end, in MMIO or far away. */
  #gpa(): number {
    const r = this.#rng;
    const k = r.below(10);
    if (k < 7) return BUF_BASE + r.below(8) * 0x1000;
    if (k === 7) return this.#ramSize - r.pick([1, 2, 16, 512]);
    if (k === 8) return r.pick([0xfeb00000, 0xfec00000, 0xfee00000, 0xffff0000]);
    return r.u32() * r.pick([1, 1, 0x10000]);
  }

  /** Ops that set up virtio queue `q` of a transport and notify it with a fresh descriptor chain. */
  virtioMacro(t: Target): Op[] {
    const r = this.#rng;
    const ops: Op[] = [];
    const w = (off: number, value: number) =>
      ops.push({ op: "write", size: 4, addr: t.start + off, value: value >>> 0 });
    const q = r.chance(0.8) ? r.below(3) : r.below(8);
    const num = r.chance(0.8) ? r.pick([8, 16, 128]) : this.value(4) & 0x3ff;
    const n = num || 1;
    const pfn = (RING_BASE >> 12) + q * 4;
    const desc = pfn << 12;
    // Legacy (version 1: QueuePFN) or modern (version 2: QueueDesc/Avail/Used + QueueReady) setup; the
    // transport ignores the other layout's registers, so both are worth sending.
    const modern = r.chance(0.4);
    if (r.chance(0.7)) {
      w(0x070, 0);
      w(0x070, 1);
      w(0x070, 3);
      if (r.chance(0.5) || modern) {
        w(0x024, 0);
        w(0x020, this.value(4));
        w(0x024, 1);
        w(0x020, r.chance(0.8) ? 1 : this.value(4)); // VIRTIO_F_VERSION_1
      }
      if (modern) w(0x070, 0xb);
      else w(0x028, 4096);
    }
    w(0x030, q);
    w(0x038, num);
    if (modern) {
      const used = Math.ceil((desc + 16 * n + 6 + 2 * n) / 4096) * 4096;
      w(0x080, desc);
      w(0x084, 0);
      w(0x090, desc + 16 * n);
      w(0x094, 0);
      w(0x0a0, r.chance(0.9) ? used : this.value(4));
      w(0x0a4, r.chance(0.95) ? 0 : this.value(4));
      w(0x044, 1);
    } else {
      w(0x03c, r.chance(0.9) ? 4096 : this.value(4));
      w(0x040, pfn);
    }
    if (r.chance(0.8)) w(0x070, r.chance(0.9) ? (modern ? 0xf : 7) : this.value(1));
    // Descriptor chain.
    const count = 1 + r.below(4);
    const d: number[] = [];
    const payloads: Op[] = [];
    // Half the chains are well formed (virtio-blk shape: readable header, data, 1-byte writable status),
    // so requests get past validation into the device; the rest are noise.
    const wellFormed = r.chance(0.5);
    const type = r.pick([0, 1, 4, 8, 11, 13]);
    for (let i = 0; i < count; i++) {
      const last = i === count - 1;
      const addr = wellFormed ? BUF_BASE + i * 0x1000 : this.#gpa();
      const len = wellFormed
        ? (i === 0 ? 16 : last ? 1 : r.pick([512, 1024, 16, 4096]))
        : r.pick([16, 512, 1, 0, 8, 4096, r.below(0x20000), 0xffffffff]);
      let flags = wellFormed
        ? (last ? 2 : i === 0 ? 1 : 1 | (type === 0 || type === 8 ? 2 : 0))
        : last
        ? 2
        : 1 | (r.chance(0.5) ? 2 : 0);
      if (!wellFormed && r.chance(0.05)) flags = 4 | (r.chance(0.3) ? 1 : 0); // indirect
      if (!wellFormed && r.chance(0.05)) flags = this.value(2);
      const next = r.chance(0.9) ? (i + 1) % n : this.value(2);
      le(d, addr, 8);
      le(d, len, 4);
      le(d, flags, 2);
      le(d, next, 2);
      if (i === 0 && addr + 16 <= this.#ramSize) {
        // A request header: virtio-blk type/sector, console control message, or noise.
        const hdr: number[] = [];
        le(hdr, wellFormed ? type : r.pick([0, 1, 4, 8, 11, 13, r.below(32), r.u32()]), 4);
        le(hdr, 0, 4);
        le(hdr, r.chance(0.7) ? r.below(2048) : r.u32() * 0x10000, 8);
        payloads.push({ op: "mem", addr, data: Uint8Array.from(hdr) });
      }
      if (flags & 4 && addr + 64 <= this.#ramSize) {
        const ind: number[] = [];
        for (let k = 0; k < 3; k++) {
          le(ind, this.#gpa(), 8);
          le(ind, r.pick([16, 512, 1, 0]), 4);
          le(ind, k < 2 ? 1 : 2, 2);
          le(ind, k + 1, 2);
        }
        payloads.push({ op: "mem", addr, data: Uint8Array.from(ind) });
      }
    }
    ops.push({ op: "mem", addr: desc, data: Uint8Array.from(d) }, ...payloads);
    // Avail ring: flags, idx, ring[0..]
    const avail: number[] = [];
    const heads = 1 + (r.chance(0.2) ? r.below(4) : 0);
    le(avail, 0, 2);
    le(avail, r.chance(0.9) ? heads : this.value(2), 2);
    for (let i = 0; i < heads; i++) le(avail, r.chance(0.9) ? 0 : this.value(2), 2);
    ops.push({ op: "mem", addr: desc + 16 * n, data: Uint8Array.from(avail) });
    w(0x050, r.chance(0.9) ? q : this.value(4));
    if (r.chance(0.5)) ops.push({ op: "read", size: 4, addr: t.start + 0x060 });
    if (r.chance(0.5)) w(0x064, r.pick([1, 2, 3]));
    return ops;
  }

  /** A fw_cfg DMA request (docs/specs/fw_cfg.rst "FWCfgDmaAccess"), big-endian fields. */
  fwcfgMacro(t: Target): Op[] {
    const r = this.#rng;
    const s: number[] = [];
    const ctl = r.pick([0x02, 0x04, 0x08, 0x10, 0x01, 0x0a, 0x12]) |
      (r.chance(0.6) ? r.pick(FW_CFG_KEYS) << 16 : 0);
    be(s, r.chance(0.9) ? ctl : r.u32(), 4);
    be(s, r.pick([1, 4, 16, 64, 0x1000, r.u32()]), 4);
    be(s, this.#gpa(), 8);
    const at = r.chance(0.9) ? FWCFG_DMA_STRUCT : this.#gpa();
    const bswap = (v: number) => ((v & 0xff) << 24 | (v & 0xff00) << 8 | (v >>> 8) & 0xff00 | v >>> 24) >>> 0;
    return [
      { op: "mem", addr: FWCFG_DMA_STRUCT, data: Uint8Array.from(s) },
      { op: "out", size: 4, addr: t.start, value: bswap(Math.floor(at / 0x1_0000_0000)) },
      { op: "out", size: 4, addr: t.start + 4, value: bswap(at >>> 0) },
    ];
  }

  /** Select an indexed register, then read or write it a few times (IOAPIC, RTC/CMOS, fw_cfg, PIC OCW3). */
  pairMacro(): Op[] {
    const r = this.#rng;
    const t = r.pick(this.#pairs);
    const ops: Op[] = [];
    const io = t.space === "io";
    const acc = (off: number, size: 1 | 2 | 4, write: boolean, value: number): Op =>
      io
        ? (write ? { op: "out", size, addr: t.start + off, value } : { op: "in", size, addr: t.start + off })
        : (write
          ? { op: "write", size, addr: t.start + off, value }
          : { op: "read", size, addr: t.start + off });
    switch (t.region) {
      case "ioapic":
        ops.push(acc(0, 4, true, r.chance(0.9) ? r.below(0x40) : this.value(4)));
        for (let i = r.below(3); i >= 0; i--) ops.push(acc(0x10, 4, r.chance(0.5), this.value(4)));
        break;
      case "rtc-index":
        ops.push(
          acc(0, 1, true, (r.chance(0.3) ? 0x80 : 0) | (r.chance(0.9) ? r.below(0x40) : r.below(0x80))),
        );
        ops.push(
          {
            op: io ? (r.chance(0.5) ? "out" : "in") : "read",
            size: 1,
            addr: t.start + 1,
            value: this.value(1),
          } as Op,
        );
        break;
      case "fwcfg":
        ops.push(acc(0, 2, true, r.chance(0.9) ? r.pick(FW_CFG_KEYS) : this.value(2)));
        for (let i = r.below(8); i >= 0; i--) ops.push(acc(1, 1, r.chance(0.1), this.value(1)));
        break;
      default:
        ops.push(this.access());
    }
    return ops;
  }

  /** One random step of an input: an access, a clock step or a macro. */
  chunk(): Op[] {
    const r = this.#rng;
    const k = r.below(100);
    if (k < 12) return [this.step()];
    if (k < 22 && this.#pairs.length) return this.pairMacro();
    if (k < 32 && this.#virtio.length) return this.virtioMacro(r.pick(this.#virtio));
    if (k < 37 && this.#fwDma) return this.fwcfgMacro(this.#fwDma);
    return [this.access()];
  }

  /** A fresh input of about `n` ops. */
  input(n: number): Op[] {
    const ops: Op[] = [];
    while (ops.length < n) ops.push(...this.chunk());
    return ops;
  }

  /** A mutated copy of `parent` (`other` for crossover), at most `maxOps` long. */
  mutate(parent: readonly Op[], other: readonly Op[] | null, maxOps: number): Op[] {
    const r = this.#rng;
    const ops = parent.slice();
    const rounds = 1 + r.below(4);
    for (let i = 0; i < rounds; i++) {
      const at = r.below(ops.length + 1);
      switch (r.below(7)) {
        case 0:
        case 1:
          ops.splice(at, 0, ...this.chunk());
          break;
        case 2:
          if (ops.length > 1) ops.splice(at, 1 + r.below(Math.min(8, ops.length)));
          break;
        case 3: {
          const k = r.below(ops.length);
          const o = ops[k];
          if (o && (o.op === "out" || o.op === "write")) ops[k] = { ...o, value: this.value(o.size) };
          else if (o && o.op === "mem" && o.data.length) {
            const data = o.data.slice();
            data[r.below(data.length)] = r.chance(0.5) ? r.pick(INTERESTING) & 0xff : r.below(256);
            ops[k] = { ...o, data };
          } else if (o && o.op === "step") ops[k] = this.step();
          else ops.splice(at, 0, this.access());
          break;
        }
        case 4: {
          const s = r.below(ops.length);
          const len = 1 + r.below(Math.min(16, ops.length - s || 1));
          ops.splice(at, 0, ...ops.slice(s, s + len));
          break;
        }
        case 5:
          if (other && other.length) {
            const s = r.below(other.length);
            ops.splice(at, 0, ...other.slice(s, s + 1 + r.below(16)));
          }
          break;
        case 6:
          ops.splice(at, 0, this.step());
          break;
      }
    }
    return ops.length > maxOps ? ops.slice(0, maxOps) : ops;
  }
}
