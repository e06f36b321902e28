/**
 * Guest page-table walks for the monitor, over guest-physical reads only: virtual → physical translation for
 * `x` and `memsave` (4-level long-mode paging, PAE and 32-bit paging), and `info mem` / `info tlb` in the
 * layout of QEMU 7.2 target/i386/monitor.c (mem_info_la48, tlb_info_64, mem_info_32, tlb_info_32).
 * @module
 */
import type { CpuRegisters } from "../core/accel.ts";

// Page-table entry bits (Intel SDM vol. 3 §4.5).
const PG_PRESENT = 1n;
const PG_RW = 2n;
const PG_USER = 4n;
const PG_PWT = 8n;
const PG_PCD = 0x10n;
const PG_ACCESSED = 0x20n;
const PG_DIRTY = 0x40n;
const PG_PSE = 0x80n;
const PG_GLOBAL = 0x100n;
const PG_NX = 1n << 63n;
const ADDR_MASK = 0x3fffffffff000n;
const CR0_PG = 1n << 31n;
const CR4_PSE = 0x10n;
const CR4_PAE = 0x20n;
const EFER_LMA = 1n << 10n;

/** Reads guest-physical bytes (RAM or MMIO), null when not readable. */
export type PhysReader = (addr: number, len: number) => Uint8Array | null;

/** A page-table reader that fetches each 4 KiB table once per walk. */
class TableCache {
  readonly #read: PhysReader;
  readonly #pages = new Map<number, DataView | null>();
  constructor(read: PhysReader) {
    this.#read = read;
  }
  entry(tableAddr: bigint, index: number, wide = true): bigint {
    const base = Number(tableAddr & ~0xfffn);
    let dv = this.#pages.get(base);
    if (dv === undefined) {
      const b = this.#read(base, 4096);
      dv = b ? new DataView(b.buffer, b.byteOffset, b.byteLength) : null;
      this.#pages.set(base, dv);
    }
    if (!dv) return 0n;
    const off = Number(tableAddr & 0xfffn) + index * (wide ? 8 : 4);
    return wide ? dv.getBigUint64(off, true) : BigInt(dv.getUint32(off, true));
  }
}

function canonical(a: bigint): bigint {
  return BigInt.asUintN(64, BigInt.asIntN(48, a));
}

function hx(v: bigint): string {
  return BigInt.asUintN(64, v).toString(16).padStart(16, "0");
}

/** Translate a virtual address with the CPU's paging mode; returns the physical address or null (not mapped). */
export function translate(r: CpuRegisters, vaddr: bigint, read: PhysReader): bigint | null {
  const cr0 = r.cr.cr0;
  const cr4 = r.cr.cr4;
  vaddr = BigInt.asUintN(64, vaddr);
  if ((cr0 & CR0_PG) === 0n) return vaddr & 0xffffffffn;
  const t = new TableCache(read);
  if ((r.efer & EFER_LMA) !== 0n) {
    let table = r.cr.cr3 & ADDR_MASK;
    const shifts = [39n, 30n, 21n, 12n];
    for (let lvl = 0; lvl < 4; lvl++) {
      const idx = Number((vaddr >> shifts[lvl]) & 0x1ffn);
      const e = t.entry(table, idx);
      if ((e & PG_PRESENT) === 0n) return null;
      if (lvl === 1 && (e & PG_PSE)) return (e & 0x3ffffc0000000n) | (vaddr & 0x3fffffffn);
      if (lvl === 2 && (e & PG_PSE)) return (e & 0x3ffffffe00000n) | (vaddr & 0x1fffffn);
      table = e & ADDR_MASK;
      if (lvl === 3) return table | (vaddr & 0xfffn);
    }
    return null;
  }
  vaddr &= 0xffffffffn;
  if (cr4 & CR4_PAE) {
    const pdpte = t.entry(r.cr.cr3 & 0xffffffe0n, Number(vaddr >> 30n));
    if ((pdpte & PG_PRESENT) === 0n) return null;
    const pde = t.entry(pdpte & ADDR_MASK, Number((vaddr >> 21n) & 0x1ffn));
    if ((pde & PG_PRESENT) === 0n) return null;
    if (pde & PG_PSE) return (pde & 0x3ffffffe00000n) | (vaddr & 0x1fffffn);
    const pte = t.entry(pde & ADDR_MASK, Number((vaddr >> 12n) & 0x1ffn));
    if ((pte & PG_PRESENT) === 0n) return null;
    return (pte & ADDR_MASK) | (vaddr & 0xfffn);
  }
  const pde = t.entry(r.cr.cr3 & 0xfffff000n, Number(vaddr >> 22n), false);
  if ((pde & PG_PRESENT) === 0n) return null;
  if ((pde & PG_PSE) && (cr4 & CR4_PSE)) return (pde & 0xffc00000n) | (vaddr & 0x3fffffn);
  const pte = t.entry(pde & 0xfffff000n, Number((vaddr >> 12n) & 0x3ffn), false);
  if ((pte & PG_PRESENT) === 0n) return null;
  return (pte & 0xfffff000n) | (vaddr & 0xfffn);
}

/** Read `len` bytes at a virtual address page by page (cpu_memory_rw_debug); null if any page is unmapped. */
export function virtRead(r: CpuRegisters, vaddr: bigint, len: number, read: PhysReader): Uint8Array | null {
  const out = new Uint8Array(len);
  let done = 0;
  while (done < len) {
    const va = BigInt.asUintN(64, vaddr + BigInt(done));
    const pa = translate(r, va, read);
    if (pa === null) return null;
    const n = Math.min(len - done, 4096 - Number(va & 0xfffn));
    const b = read(Number(pa), n);
    if (!b) return null;
    out.set(b, done);
    done += n;
  }
  return out;
}

/** `info mem`: mapped ranges with user/read/write attributes, as QEMU prints them. */
export function infoMem(r: CpuRegisters, read: PhysReader): string {
  if ((r.cr.cr0 & CR0_PG) === 0n) return "PG disabled\n";
  let out = "";
  let start = -1n;
  let lastProt = 0n;
  const lma = (r.efer & EFER_LMA) !== 0n;
  const pae = (r.cr.cr4 & CR4_PAE) !== 0n;
  const print = (end: bigint, prot: bigint) => {
    if (prot === lastProt) return;
    if (start !== -1n) {
      const a = lma ? canonical(start) : start;
      const b = lma ? canonical(end) : end;
      const len = lma ? canonical(end - start) : end - start;
      out += `${hx(a)}-${hx(b)} ${hx(len)} ${lastProt & PG_USER ? "u" : "-"}r${
        lastProt & PG_RW ? "w" : "-"
      }\n`;
    }
    start = prot !== 0n ? end : -1n;
    lastProt = prot;
  };
  const keep = PG_USER | PG_RW | PG_PRESENT;
  const t = new TableCache(read);
  if (lma) {
    const pml4 = r.cr.cr3 & ADDR_MASK;
    for (let l1 = 0n; l1 < 512n; l1++) {
      const e1 = t.entry(pml4, Number(l1));
      let end = l1 << 39n;
      if (!(e1 & PG_PRESENT)) {
        print(end, 0n);
        continue;
      }
      for (let l2 = 0n; l2 < 512n; l2++) {
        const e2 = t.entry(e1 & ADDR_MASK, Number(l2));
        end = (l1 << 39n) + (l2 << 30n);
        if (!(e2 & PG_PRESENT)) {
          print(end, 0n);
          continue;
        }
        if (e2 & PG_PSE) {
          print(end, e2 & keep & e1);
          continue;
        }
        for (let l3 = 0n; l3 < 512n; l3++) {
          const e3 = t.entry(e2 & ADDR_MASK, Number(l3));
          end = (l1 << 39n) + (l2 << 30n) + (l3 << 21n);
          if (!(e3 & PG_PRESENT)) {
            print(end, 0n);
            continue;
          }
          if (e3 & PG_PSE) {
            print(end, e3 & keep & e1 & e2);
            continue;
          }
          for (let l4 = 0n; l4 < 512n; l4++) {
            const e4 = t.entry(e3 & ADDR_MASK, Number(l4));
            end = (l1 << 39n) + (l2 << 30n) + (l3 << 21n) + (l4 << 12n);
            print(end, e4 & PG_PRESENT ? e4 & keep & e1 & e2 & e3 : 0n);
          }
        }
      }
    }
    print(1n << 48n, 0n);
    return out;
  }
  if (pae) {
    for (let l1 = 0n; l1 < 4n; l1++) {
      const e1 = t.entry(r.cr.cr3 & 0xffffffe0n, Number(l1));
      let end = l1 << 30n;
      if (!(e1 & PG_PRESENT)) {
        print(end, 0n);
        continue;
      }
      for (let l2 = 0n; l2 < 512n; l2++) {
        const e2 = t.entry(e1 & ADDR_MASK, Number(l2));
        end = (l1 << 30n) + (l2 << 21n);
        if (!(e2 & PG_PRESENT)) {
          print(end, 0n);
          continue;
        }
        if (e2 & PG_PSE) {
          print(end, e2 & keep);
          continue;
        }
        for (let l3 = 0n; l3 < 512n; l3++) {
          const e3 = t.entry(e2 & ADDR_MASK, Number(l3));
          end = (l1 << 30n) + (l2 << 21n) + (l3 << 12n);
          print(end, e3 & PG_PRESENT ? e3 & keep & e2 : 0n);
        }
      }
    }
    print(1n << 32n, 0n);
    return out;
  }
  const pse = (r.cr.cr4 & CR4_PSE) !== 0n;
  for (let l1 = 0n; l1 < 1024n; l1++) {
    const pde = t.entry(r.cr.cr3 & 0xfffff000n, Number(l1), false);
    let end = l1 << 22n;
    if (!(pde & PG_PRESENT)) {
      print(end, 0n);
      continue;
    }
    if ((pde & PG_PSE) && pse) {
      print(end, pde & keep);
      continue;
    }
    for (let l2 = 0n; l2 < 1024n; l2++) {
      const pte = t.entry(pde & 0xfffff000n, Number(l2), false);
      end = (l1 << 22n) + (l2 << 12n);
      print(end, pte & PG_PRESENT ? pte & keep & pde : 0n);
    }
  }
  print(1n << 32n, 0n);
  return out;
}

function pteLine(addr: bigint, pte: bigint, mask: bigint, lma: boolean): string {
  const a = lma ? canonical(addr) : addr;
  return `${hx(a)}: ${hx(pte & mask)} ` +
    (pte & PG_NX ? "X" : "-") + (pte & PG_GLOBAL ? "G" : "-") + (pte & PG_PSE ? "P" : "-") +
    (pte & PG_DIRTY ? "D" : "-") + (pte & PG_ACCESSED ? "A" : "-") + (pte & PG_PCD ? "C" : "-") +
    (pte & PG_PWT ? "T" : "-") + (pte & PG_USER ? "U" : "-") + (pte & PG_RW ? "W" : "-") + "\n";
}

/** `info tlb`: every present leaf mapping, "vaddr: paddr flags", as QEMU's tlb_info_64 / tlb_info_32. */
export function infoTlb(r: CpuRegisters, read: PhysReader): string {
  if ((r.cr.cr0 & CR0_PG) === 0n) return "PG disabled\n";
  const t = new TableCache(read);
  let out = "";
  if ((r.efer & EFER_LMA) !== 0n) {
    const pml4 = r.cr.cr3 & ADDR_MASK;
    for (let l1 = 0n; l1 < 512n; l1++) {
      const e1 = t.entry(pml4, Number(l1));
      if (!(e1 & PG_PRESENT)) continue;
      for (let l2 = 0n; l2 < 512n; l2++) {
        const e2 = t.entry(e1 & ADDR_MASK, Number(l2));
        if (!(e2 & PG_PRESENT)) continue;
        if (e2 & PG_PSE) {
          out += pteLine((l1 << 39n) + (l2 << 30n), e2, 0x3ffffc0000000n, true);
          continue;
        }
        for (let l3 = 0n; l3 < 512n; l3++) {
          const e3 = t.entry(e2 & ADDR_MASK, Number(l3));
          if (!(e3 & PG_PRESENT)) continue;
          if (e3 & PG_PSE) {
            out += pteLine((l1 << 39n) + (l2 << 30n) + (l3 << 21n), e3, 0x3ffffffe00000n, true);
            continue;
          }
          for (let l4 = 0n; l4 < 512n; l4++) {
            const e4 = t.entry(e3 & ADDR_MASK, Number(l4));
            if (!(e4 & PG_PRESENT)) continue;
            out += pteLine(
              (l1 << 39n) + (l2 << 30n) + (l3 << 21n) + (l4 << 12n),
              e4 & ~PG_PSE,
              ADDR_MASK,
              true,
            );
          }
        }
      }
    }
    return out;
  }
  if ((r.cr.cr4 & CR4_PAE) !== 0n) {
    for (let l1 = 0n; l1 < 4n; l1++) {
      const e1 = t.entry(r.cr.cr3 & 0xffffffe0n, Number(l1));
      if (!(e1 & PG_PRESENT)) continue;
      for (let l2 = 0n; l2 < 512n; l2++) {
        const e2 = t.entry(e1 & ADDR_MASK, Number(l2));
        if (!(e2 & PG_PRESENT)) continue;
        if (e2 & PG_PSE) {
          out += pteLine((l1 << 30n) + (l2 << 21n), e2, 0x3ffffffe00000n, false);
          continue;
        }
        for (let l3 = 0n; l3 < 512n; l3++) {
          const e3 = t.entry(e2 & ADDR_MASK, Number(l3));
          if (e3 & PG_PRESENT) {
            out += pteLine((l1 << 30n) + (l2 << 21n) + (l3 << 12n), e3 & ~PG_PSE, ADDR_MASK, false);
          }
        }
      }
    }
    return out;
  }
  for (let l1 = 0n; l1 < 1024n; l1++) {
    const pde = t.entry(r.cr.cr3 & 0xfffff000n, Number(l1), false);
    if (!(pde & PG_PRESENT)) continue;
    if ((pde & PG_PSE) && (r.cr.cr4 & CR4_PSE)) {
      out += pteLine(l1 << 22n, pde, 0xffc00000n, false);
      continue;
    }
    for (let l2 = 0n; l2 < 1024n; l2++) {
      const pte = t.entry(pde & 0xfffff000n, Number(l2), false);
      if (pte & PG_PRESENT) out += pteLine((l1 << 22n) + (l2 << 12n), pte & ~PG_PSE, 0xfffff000n, false);
    }
  }
  return out;
}
