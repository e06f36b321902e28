/**
 * QEMU's firmware configuration device, I/O-port variant with DMA ("fw_cfg_io"), as hw/nvram/fw_cfg.c
 * (QEMU 7.2) and docs/specs/fw_cfg.txt describe it: a 16-bit selector and 8-bit data port ("fwcfg", 2 bytes
 * at 0x510) and the DMA address register ("fwcfg.dma", 8 bytes at 0x514, big-endian, written as two 32-bit
 * halves; the low half triggers). Items are what QEMU 7.2's microvm_memory_init, fw_cfg_common_realize and
 * x86_load_linux add; files are sorted by name as on non-legacy machines.
 * @module
 */
import type { Device, DeviceState, GuestLog, GuestMemory, RegionOps } from "../core/types.ts";
import { StateError, UserError } from "../core/types.ts";

/** Selector keys (docs/specs/fw_cfg.txt, include/standard-headers/linux/qemu_fw_cfg.h). */
export const FW_CFG_SIGNATURE = 0x00;
export const FW_CFG_ID = 0x01;
export const FW_CFG_UUID = 0x02;
export const FW_CFG_RAM_SIZE = 0x03;
export const FW_CFG_NOGRAPHIC = 0x04;
export const FW_CFG_NB_CPUS = 0x05;
export const FW_CFG_MACHINE_ID = 0x06;
export const FW_CFG_KERNEL_ADDR = 0x07;
export const FW_CFG_KERNEL_SIZE = 0x08;
export const FW_CFG_KERNEL_CMDLINE = 0x09;
export const FW_CFG_INITRD_ADDR = 0x0a;
export const FW_CFG_INITRD_SIZE = 0x0b;
export const FW_CFG_BOOT_DEVICE = 0x0c;
export const FW_CFG_NUMA = 0x0d;
export const FW_CFG_BOOT_MENU = 0x0e;
export const FW_CFG_MAX_CPUS = 0x0f;
export const FW_CFG_KERNEL_ENTRY = 0x10;
export const FW_CFG_KERNEL_DATA = 0x11;
export const FW_CFG_INITRD_DATA = 0x12;
export const FW_CFG_CMDLINE_ADDR = 0x13;
export const FW_CFG_CMDLINE_SIZE = 0x14;
export const FW_CFG_CMDLINE_DATA = 0x15;
export const FW_CFG_SETUP_ADDR = 0x16;
export const FW_CFG_SETUP_SIZE = 0x17;
export const FW_CFG_SETUP_DATA = 0x18;
export const FW_CFG_FILE_DIR = 0x19;
export const FW_CFG_FILE_FIRST = 0x20;
/** Default number of file slots (fw_cfg "x-file-slots" on current machine types). */
export const FW_CFG_FILE_SLOTS = 0x20;
export const FW_CFG_WRITE_CHANNEL = 0x4000;
export const FW_CFG_ARCH_LOCAL = 0x8000;
export const FW_CFG_ENTRY_MASK = 0x3fff;
/** x86 arch-local keys (hw/i386/fw_cfg.h). */
export const FW_CFG_IRQ0_OVERRIDE = FW_CFG_ARCH_LOCAL + 2;

/** FW_CFG_ID bits. */
export const FW_CFG_VERSION = 0x01;
export const FW_CFG_VERSION_DMA = 0x02;

/** DMA control bits (FWCfgDmaAccess.control). */
export const FW_CFG_DMA_CTL_ERROR = 0x01;
export const FW_CFG_DMA_CTL_READ = 0x02;
export const FW_CFG_DMA_CTL_SKIP = 0x04;
export const FW_CFG_DMA_CTL_SELECT = 0x08;
export const FW_CFG_DMA_CTL_WRITE = 0x10;
/** "QEMU CFG" read back from the DMA register. */
export const FW_CFG_DMA_SIGNATURE = 0x51454d5520434647n;

/** Maximum file name length including the NUL (FWCfgFile.name). */
export const FW_CFG_MAX_FILE_PATH = 56;

const INVALID = -1;

/** Machine-level items (microvm_memory_init). */
export interface FwCfgMachineItems {
  nbCpus: number;
  maxCpus: number;
  ramSize: number;
  /** -nographic: FW_CFG_NOGRAPHIC = 1 (default false). */
  nographic?: boolean;
  /** -boot menu=on (default false). */
  bootMenu?: boolean;
  /** "etc/e820" contents, if known before the kernel is loaded. */
  e820?: Uint8Array;
  /** -uuid as 16 bytes in string order (FW_CFG_UUID; default all zeros). */
  uuid?: Uint8Array;
  /** -boot splash-time= (file "etc/boot-menu-wait", u16 LE; absent: no file). */
  splashTime?: number;
  /** -boot reboot-timeout= ("etc/boot-fail-wait", u32 LE; default -1). */
  rebootTimeout?: number;
}

/**
 * Validate -boot's splash-time/reboot-timeout as fw_cfg_bootsplash/fw_cfg_reboot do (UserError with QEMU's
 * words) and return them as numbers.
 */
export function fwCfgBootTimes(
  props: Record<string, string>,
): { splashTime?: number; rebootTimeout?: number } {
  const out: { splashTime?: number; rebootTimeout?: number } = {};
  const st = props["splash-time"];
  if (st !== undefined) {
    const v = Number(BigInt.asIntN(64, BigInt(st.trim())));
    if (!(v >= 0 && v <= 0xffff)) {
      throw new UserError("splash-time is invalid,it should be a value between 0 and 65535");
    }
    out.splashTime = v;
  }
  const rt = props["reboot-timeout"];
  if (rt !== undefined) {
    const v = Number(BigInt.asIntN(64, BigInt(rt.trim())));
    if (!(v >= -1 && v <= 0xffff)) {
      throw new UserError("reboot timeout is invalid,it should be a value between -1 and 65535");
    }
    out.rebootTimeout = v;
  }
  return out;
}

/** A canonical UUID string as FW_CFG_UUID's 16 bytes (string order, as qemu_uuid_parse stores them). */
export function uuidBytes(uuid: string | undefined): Uint8Array {
  const b = new Uint8Array(16);
  const hex = (uuid ?? "").replaceAll("-", "");
  if (hex.length === 32) { for (let i = 0; i < 16; i++) b[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16); }
  return b;
}

/** The kernel items x86_load_linux sets (structurally core/boot's FwCfgKernelInfo; null = not set). */
export interface FwCfgKernelItems {
  kernelAddr: number;
  kernelSize: number;
  kernelEntry: number | null;
  kernelData: Uint8Array | null;
  setupAddr: number | null;
  setupSize: number;
  setupData: Uint8Array;
  cmdlineAddr: number | null;
  cmdlineSize: number;
  cmdlineData: Uint8Array;
  initrdAddr: number | null;
  initrdSize: number;
  initrdData: Uint8Array | null;
}

/** Saved fw_cfg state (version 1): selector, offset and DMA address; items are rebuilt by the board. */
export interface FwCfgState extends DeviceState {
  version: 1;
  curEntry: number;
  curOffset: number;
  dmaAddrHi: number;
}

/** Constructor options of {@link FwCfg}. */
export interface FwCfgOptions {
  id?: string;
  /** Guest RAM for DMA (bounds-checked). */
  mem: GuestMemory;
  log: GuestLog;
  /** Advertise and accept DMA (default true, as fw_cfg_init_io_dma). */
  dma?: boolean;
}

/**
 * The fw_cfg device ("fw_cfg_io"). Map `ops` as "fwcfg" (2 bytes at 0x510) and `dmaOps` as "fwcfg.dma"
 * (8 bytes at 0x514); call `setMachineItems` then (with a kernel) `setKernelItems`.
 *
 * @example
 * ```ts ignore
 * const fw = new FwCfg({ mem: ram, log });
 * fw.setMachineItems({ nbCpus: 1, maxCpus: 1, ramSize: 512 << 20 });
 * fw.setKernelItems(boot.fwCfg, boot.e820File);
 * io.write(0x510, 2, 0x0000); io.read(0x511, 1); // 'Q'
 * ```
 */
export class FwCfg implements Device {
  /** QEMU type name. */
  static readonly typeName = "fw_cfg_io";
  readonly typeName = FwCfg.typeName;
  readonly id: string;
  /** Selector (16-bit write) and data (8-bit read) port pair. */
  readonly ops: RegionOps;
  /** DMA address register: 4-byte accesses at 0 (high half, big-endian) and 4 (low half, triggers). */
  readonly dmaOps: RegionOps;

  readonly #mem: GuestMemory;
  readonly #log: GuestLog;
  readonly #dma: boolean;
  /** Numbered items: key → bytes ([0] standard, [1] arch-local). */
  readonly #entries: [Map<number, Uint8Array>, Map<number, Uint8Array>] = [new Map(), new Map()];
  /** Files sorted by name. */
  #files: { name: string; data: Uint8Array }[] = [];
  /** FILE_DIR bytes, rebuilt after addFile. */
  #dir: Uint8Array | null = null;
  #curEntry = INVALID;
  #curOffset = 0;
  #dmaAddrHi = 0;

  constructor(opts: FwCfgOptions) {
    this.id = opts.id ?? "fw_cfg";
    this.#mem = opts.mem;
    this.#log = opts.log;
    this.#dma = opts.dma ?? true;
    this.ops = {
      read: (_offset, size) => (size === 1 ? this.#readData() : 0xffff),
      // QEMU fw_cfg_comb_write: a 16-bit write selects; 8-bit data writes are ignored since QEMU 2.4.
      write: (_offset, size, value) => {
        if (size === 2) this.#select(value & 0xffff);
      },
      valid: { min: 1, max: 2 },
      impl: { min: 1, max: 2 },
    };
    this.dmaOps = {
      read: (offset, size) => this.#dmaRead(offset, size),
      write: (offset, size, value) => this.#dmaWrite(offset, size, value),
      valid: { min: 4, max: 4 },
      impl: { min: 4, max: 4 },
    };
    // fw_cfg_common_realize
    this.addBytes(FW_CFG_SIGNATURE, new TextEncoder().encode("QEMU"));
    this.addBytes(FW_CFG_UUID, new Uint8Array(16));
    this.addI16(FW_CFG_NOGRAPHIC, 0);
    this.addI16(FW_CFG_BOOT_MENU, 0);
    this.addI32(FW_CFG_ID, FW_CFG_VERSION | (this.#dma ? FW_CFG_VERSION_DMA : 0));
    // fw_cfg_reboot: reboot-timeout -1 unless -boot reboot-timeout= is given.
    this.addFile("etc/boot-fail-wait", le(4, 0xffffffff));
    // fw_cfg_machine_reset: boot order lists (empty without bootindex properties).
    this.addFile("bootorder", new Uint8Array(0));
    this.addFile("bios-geometry", new Uint8Array(0));
  }

  /** Items from microvm_memory_init: NB_CPUS, MAX_CPUS, RAM_SIZE, IRQ0_OVERRIDE (+ NOGRAPHIC, BOOT_MENU, etc/e820). */
  setMachineItems(m: FwCfgMachineItems): void {
    this.addI16(FW_CFG_NB_CPUS, m.nbCpus);
    this.addI16(FW_CFG_MAX_CPUS, m.maxCpus);
    this.addI64(FW_CFG_RAM_SIZE, m.ramSize);
    this.addI32(FW_CFG_IRQ0_OVERRIDE, 1);
    this.addI16(FW_CFG_NOGRAPHIC, m.nographic ? 1 : 0);
    this.addI16(FW_CFG_BOOT_MENU, m.bootMenu ? 1 : 0);
    if (m.uuid) this.addBytes(FW_CFG_UUID, m.uuid);
    if (m.splashTime !== undefined) this.addFile("etc/boot-menu-wait", le(2, m.splashTime));
    if (m.rebootTimeout !== undefined) this.addFile("etc/boot-fail-wait", le(4, m.rebootTimeout >>> 0));
    if (m.e820) this.addFile("etc/e820", m.e820);
  }

  /** Items from x86_load_linux and the "etc/e820" file. Null fields leave the item unset, as QEMU does. */
  setKernelItems(k: FwCfgKernelItems, e820File?: Uint8Array): void {
    for (
      const key of [
        FW_CFG_KERNEL_ENTRY,
        FW_CFG_KERNEL_ADDR,
        FW_CFG_KERNEL_SIZE,
        FW_CFG_KERNEL_DATA,
        FW_CFG_SETUP_ADDR,
        FW_CFG_SETUP_SIZE,
        FW_CFG_SETUP_DATA,
        FW_CFG_CMDLINE_ADDR,
        FW_CFG_CMDLINE_SIZE,
        FW_CFG_CMDLINE_DATA,
        FW_CFG_INITRD_ADDR,
        FW_CFG_INITRD_SIZE,
        FW_CFG_INITRD_DATA,
      ]
    ) this.#entries[0].delete(key);
    if (k.kernelEntry !== null) this.addI32(FW_CFG_KERNEL_ENTRY, k.kernelEntry);
    this.addI32(FW_CFG_KERNEL_ADDR, k.kernelAddr);
    this.addI32(FW_CFG_KERNEL_SIZE, k.kernelSize);
    if (k.kernelData) this.addBytes(FW_CFG_KERNEL_DATA, k.kernelData);
    if (k.setupAddr !== null) this.addI32(FW_CFG_SETUP_ADDR, k.setupAddr);
    this.addI32(FW_CFG_SETUP_SIZE, k.setupSize);
    this.addBytes(FW_CFG_SETUP_DATA, k.setupData);
    if (k.cmdlineAddr !== null) this.addI32(FW_CFG_CMDLINE_ADDR, k.cmdlineAddr);
    this.addI32(FW_CFG_CMDLINE_SIZE, k.cmdlineSize);
    this.addBytes(FW_CFG_CMDLINE_DATA, k.cmdlineData);
    if (k.initrdAddr !== null) this.addI32(FW_CFG_INITRD_ADDR, k.initrdAddr);
    if (k.initrdData) {
      this.addI32(FW_CFG_INITRD_SIZE, k.initrdSize);
      this.addBytes(FW_CFG_INITRD_DATA, k.initrdData);
    }
    if (e820File) this.addFile("etc/e820", e820File);
  }

  /** Set a numbered item (key may carry FW_CFG_ARCH_LOCAL). Replaces an existing one. */
  addBytes(key: number, data: Uint8Array): void {
    this.#entries[key & FW_CFG_ARCH_LOCAL ? 1 : 0].set(key & FW_CFG_ENTRY_MASK, data);
  }

  /** Little-endian 16-bit item (fw_cfg_add_i16). */
  addI16(key: number, v: number): void {
    this.addBytes(key, le(2, v));
  }

  /** Little-endian 32-bit item (fw_cfg_add_i32). */
  addI32(key: number, v: number): void {
    this.addBytes(key, le(4, v));
  }

  /** Little-endian 64-bit item (fw_cfg_add_i64). */
  addI64(key: number, v: number | bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
    this.addBytes(key, b);
  }

  /**
   * Add or replace a named file (fw_cfg_add_file / fw_cfg_modify_file). Files stay sorted by name and take
   * selectors FW_CFG_FILE_FIRST + index, as QEMU's sorted insertion gives. Throws RangeError on a bad name or
   * when the slots are full (board bug, not guest input).
   */
  addFile(name: string, data: Uint8Array): void {
    const bytes = new TextEncoder().encode(name);
    if (bytes.length === 0 || bytes.length >= FW_CFG_MAX_FILE_PATH) {
      throw new RangeError(`fw_cfg: file name "${name}" must be 1..55 bytes`);
    }
    this.#dir = null;
    const i = this.#files.findIndex((f) => f.name === name);
    if (i >= 0) {
      this.#files[i] = { name, data };
      return;
    }
    if (this.#files.length >= FW_CFG_FILE_SLOTS) {
      throw new RangeError(`fw_cfg: no free file slot for "${name}"`);
    }
    this.#files.push({ name, data });
    // QEMU compares names with strcmp: byte order, which is code-unit order for ASCII names.
    this.#files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** File names in directory order (for tests and `info`). */
  fileNames(): string[] {
    return this.#files.map((f) => f.name);
  }

  reset(): void {
    this.#curEntry = INVALID;
    this.#curOffset = 0;
    this.#dmaAddrHi = 0;
  }

  saveState(): FwCfgState {
    return { version: 1, curEntry: this.#curEntry, curOffset: this.#curOffset, dmaAddrHi: this.#dmaAddrHi };
  }

  loadState(state: DeviceState): void {
    const s = state as Partial<FwCfgState>;
    if (s.version !== 1) {
      throw new StateError(`Invalid fw_cfg state: unsupported version "${String(s.version)}"`);
    }
    const ok = (v: unknown, lo: number, hi: number) =>
      typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi;
    if (!ok(s.curEntry, -1, 0xffff) || !ok(s.curOffset, 0, 0xffffffff) || !ok(s.dmaAddrHi, 0, 0xffffffff)) {
      throw new StateError(`Invalid fw_cfg state: "curEntry", "curOffset" or "dmaAddrHi" out of range`);
    }
    this.#curEntry = s.curEntry as number;
    this.#curOffset = s.curOffset as number;
    this.#dmaAddrHi = s.dmaAddrHi as number;
  }

  // ---- internals ----

  #select(key: number): void {
    this.#curOffset = 0;
    this.#curEntry = (key & FW_CFG_ENTRY_MASK) >= FW_CFG_FILE_FIRST + FW_CFG_FILE_SLOTS ? INVALID : key;
  }

  /** Contents of the current item, or null (no such item). */
  #current(): Uint8Array | null {
    if (this.#curEntry === INVALID) return null;
    const key = this.#curEntry & FW_CFG_ENTRY_MASK;
    if (this.#curEntry & FW_CFG_ARCH_LOCAL) return this.#entries[1].get(key) ?? null;
    if (key === FW_CFG_FILE_DIR) return this.#dir ??= this.#fileDir();
    if (key >= FW_CFG_FILE_FIRST) return this.#files[key - FW_CFG_FILE_FIRST]?.data ?? null;
    return this.#entries[0].get(key) ?? null;
  }

  /** FW_CFG_FILE_DIR: BE32 count, then { BE32 size, BE16 select, BE16 reserved, char name[56] }. */
  #fileDir(): Uint8Array {
    const out = new Uint8Array(4 + 64 * this.#files.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, this.#files.length, false);
    const enc = new TextEncoder();
    this.#files.forEach((f, i) => {
      const o = 4 + 64 * i;
      dv.setUint32(o, f.data.length, false);
      dv.setUint16(o + 4, FW_CFG_FILE_FIRST + i, false);
      out.set(enc.encode(f.name), o + 8);
    });
    return out;
  }

  #readData(): number {
    const e = this.#current();
    if (!e || this.#curOffset >= e.length) return 0;
    return e[this.#curOffset++];
  }

  #dmaRead(offset: number, size: number): number {
    if (size !== 4 || (offset !== 0 && offset !== 4)) return 0xffffffff;
    // The register reads back "QEMU CFG" big-endian; the guest's LE inl sees the bytes in order.
    const sig = offset === 0 ? 0x51454d55 : 0x20434647;
    return bswap32(sig);
  }

  #dmaWrite(offset: number, size: number, value: number): void {
    if (size !== 4 || !this.#dma) return;
    // DEVICE_BIG_ENDIAN: the guest writes cpu_to_be32 halves; undo the LE port-I/O byte order.
    const v = bswap32(value >>> 0);
    if (offset === 0) {
      this.#dmaAddrHi = v;
    } else if (offset === 4) {
      const addr = this.#dmaAddrHi * 0x1_0000_0000 + v;
      this.#dmaAddrHi = 0;
      this.#dmaTransfer(addr);
    }
  }

  /** QEMU fw_cfg_dma_transfer: FWCfgDmaAccess { BE32 control, BE32 length, BE64 address } at `descAddr`. */
  #dmaTransfer(descAddr: number): void {
    const mem = this.#mem;
    const desc = mem.read(descAddr, 16);
    if (!desc) {
      this.#log.guestError(this.id, `DMA descriptor at 0x${descAddr.toString(16)} is outside RAM`);
      this.#writeControl(descAddr, FW_CFG_DMA_CTL_ERROR);
      return;
    }
    const dv = new DataView(desc.buffer);
    let control = dv.getUint32(0, false);
    let length = dv.getUint32(4, false);
    let address = Number(dv.getBigUint64(8, false));
    if (control & FW_CFG_DMA_CTL_SELECT) this.#select(control >>> 16);
    let read = false;
    let write = false;
    if (control & FW_CFG_DMA_CTL_READ) read = true;
    else if (control & FW_CFG_DMA_CTL_WRITE) write = true;
    else if (!(control & FW_CFG_DMA_CTL_SKIP)) length = 0;
    control = 0;
    const e = this.#current();
    while (length > 0 && !(control & FW_CFG_DMA_CTL_ERROR)) {
      let len: number;
      if (!e || this.#curOffset >= e.length) {
        // Past the end: reads give zeros, skips succeed, writes fail.
        len = length;
        if (read && !this.#fill(address, len)) control |= FW_CFG_DMA_CTL_ERROR;
        if (write) control |= FW_CFG_DMA_CTL_ERROR;
      } else {
        len = Math.min(length, e.length - this.#curOffset);
        if (read && !mem.write(address, e.subarray(this.#curOffset, this.#curOffset + len))) {
          control |= FW_CFG_DMA_CTL_ERROR;
        }
        // No item on microvm is writable (no ACPI linker files): a write is an error, as for a read-only item.
        if (write) control |= FW_CFG_DMA_CTL_ERROR;
        this.#curOffset += len;
      }
      address += len;
      length -= len;
    }
    if (control & FW_CFG_DMA_CTL_ERROR) {
      this.#log.guestError(this.id, `DMA transfer failed (address 0x${address.toString(16)})`);
    }
    this.#writeControl(descAddr, control);
  }

  #fill(address: number, len: number): boolean {
    if (!this.#mem.isRam(address, len)) return false;
    const v = this.#mem.view(address, len);
    if (v) {
      v.fill(0);
      return true;
    }
    return this.#mem.write(address, new Uint8Array(len));
  }

  #writeControl(descAddr: number, control: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, control >>> 0, false);
    if (!this.#mem.write(descAddr, b)) this.#log.guestError(this.id, "DMA status write outside RAM dropped");
  }
}

function le(n: 2 | 4, v: number): Uint8Array {
  const b = new Uint8Array(n);
  const dv = new DataView(b.buffer);
  if (n === 2) dv.setUint16(0, v & 0xffff, true);
  else dv.setUint32(0, v >>> 0, true);
  return b;
}

function bswap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}
