/**
 * virtio-blk ("virtio-blk-device"): a block device over one (or more) request queues (virtio 1.2 §5.2).
 * Features, config layout and request checks follow QEMU 7.2 hw/block/virtio-blk.c. Requests complete
 * synchronously in the notify handler, in ring order, so nothing is ever reordered across a flush.
 * @module
 */
import {
  type BlockBackend,
  type DeviceState,
  type PropDef,
  StateError,
  UserError,
} from "../../core/types.ts";
import {
  commonFeatures,
  commonPropertyValues,
  configRead,
  featureBit,
  VIRTIO_COMMON_PROPS,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_F_ANY_LAYOUT,
  VIRTIO_ID_BLOCK,
  type VirtioCommon,
  virtioCommon,
  type VirtioCommonOptions,
  type VirtioContext,
  type VirtioDevice,
} from "./device.ts";
import type { VirtqElement } from "./queue.ts";

/** Feature bits (virtio 1.2 §5.2.3; legacy names in comments). */
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_GEOMETRY = 4;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
/** Legacy only: SCSI passthrough requests. */
export const VIRTIO_BLK_F_SCSI = 7;
/** Legacy name VIRTIO_BLK_F_WCE. */
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_TOPOLOGY = 10;
export const VIRTIO_BLK_F_CONFIG_WCE = 11;
export const VIRTIO_BLK_F_MQ = 12;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

/** Request types. */
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_SCSI_CMD = 2;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
export const VIRTIO_BLK_T_BARRIER = 0x80000000;

/** Status byte values. */
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;
/** GET_ID answers at most this many bytes. */
export const VIRTIO_BLK_ID_BYTES = 20;

/** Config space offsets (struct virtio_blk_config). */
export const VIRTIO_BLK_CFG_CAPACITY = 0x00;
export const VIRTIO_BLK_CFG_SIZE_MAX = 0x08;
export const VIRTIO_BLK_CFG_SEG_MAX = 0x0c;
export const VIRTIO_BLK_CFG_CYLINDERS = 0x10;
export const VIRTIO_BLK_CFG_HEADS = 0x12;
export const VIRTIO_BLK_CFG_SECTORS = 0x13;
export const VIRTIO_BLK_CFG_BLK_SIZE = 0x14;
export const VIRTIO_BLK_CFG_PHYSICAL_BLOCK_EXP = 0x18;
export const VIRTIO_BLK_CFG_ALIGNMENT_OFFSET = 0x19;
export const VIRTIO_BLK_CFG_MIN_IO_SIZE = 0x1a;
export const VIRTIO_BLK_CFG_OPT_IO_SIZE = 0x1c;
export const VIRTIO_BLK_CFG_WCE = 0x20;
export const VIRTIO_BLK_CFG_NUM_QUEUES = 0x22;
export const VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS = 0x24;
export const VIRTIO_BLK_CFG_MAX_DISCARD_SEG = 0x28;
export const VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT = 0x2c;
export const VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS = 0x30;
export const VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG = 0x34;
export const VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP = 0x38;

const SECTOR = 512;
/** QEMU BDRV_REQUEST_MAX_SECTORS (INT_MAX rounded down to a sector, in sectors). */
const BDRV_REQUEST_MAX_SECTORS = Math.floor(0x7fffffff / SECTOR);
const OUTHDR = 16;
const BOUNCE_SIZE = 1 << 20;

/** Properties of virtio-blk-device in info qtree order (QEMU 7.2). */
export const VIRTIO_BLK_PROPS: readonly PropDef[] = [
  { name: "drive", type: "drive", help: "Node name or ID of a block device to use as a backend" },
  { name: "backend_defaults", type: "OnOffAuto", default: "auto" },
  { name: "logical_block_size", type: "size", default: 512, help: "A power of two between 512 B and 2 MiB" },
  { name: "physical_block_size", type: "size", default: 512 },
  { name: "min_io_size", type: "size", default: 0 },
  { name: "opt_io_size", type: "size", default: 0 },
  { name: "discard_granularity", type: "size", default: 4294967295 },
  { name: "write-cache", type: "OnOffAuto", default: "auto" },
  { name: "share-rw", type: "bool", default: false },
  { name: "account-invalid", type: "OnOffAuto", default: "auto" },
  { name: "account-failed", type: "OnOffAuto", default: "auto" },
  { name: "rerror", type: "str", default: "auto", help: "auto/report (accepted)" },
  { name: "werror", type: "str", default: "auto", help: "auto/report (accepted)" },
  { name: "cyls", type: "uint32", default: 0 },
  { name: "heads", type: "uint32", default: 0 },
  { name: "secs", type: "uint32", default: 0 },
  { name: "lcyls", type: "uint32", default: 0 },
  { name: "lheads", type: "uint32", default: 0 },
  { name: "lsecs", type: "uint32", default: 0 },
  { name: "serial", type: "str", default: "" },
  { name: "config-wce", type: "bool", default: true },
  { name: "scsi", type: "bool", default: false },
  { name: "request-merging", type: "bool", default: true },
  { name: "num-queues", type: "uint16", default: 1 },
  { name: "queue-size", type: "uint16", default: 256 },
  { name: "seg-max-adjust", type: "bool", default: true },
  { name: "discard", type: "bool", default: true },
  { name: "report-discard-granularity", type: "bool", default: true },
  { name: "write-zeroes", type: "bool", default: true },
  { name: "max-discard-sectors", type: "uint32", default: 0x3fffff },
  { name: "max-write-zeroes-sectors", type: "uint32", default: 0x3fffff },
  { name: "x-enable-wce-if-config-wce", type: "bool", default: true },
  ...VIRTIO_COMMON_PROPS,
];

/** Construction options (the -device properties, typed). */
export interface VirtioBlkOptions extends VirtioCommonOptions {
  id: string;
  drive: BlockBackend;
  /** The drive's id for info qtree ("drive" property). */
  driveName?: string;
  logicalBlockSize?: number;
  physicalBlockSize?: number;
  minIoSize?: number;
  optIoSize?: number;
  /** 0xffffffff (-1) = let the device pick (the block size). */
  discardGranularity?: number;
  writeCache?: "auto" | "on" | "off";
  /** The drive's cache mode caches writes (cache=writeback/none/unsafe); decides write-cache=auto. Default true. */
  driveWriteback?: boolean;
  cyls?: number;
  heads?: number;
  secs?: number;
  serial?: string;
  configWce?: boolean;
  discard?: boolean;
  writeZeroes?: boolean;
  maxDiscardSectors?: number;
  maxWriteZeroesSectors?: number;
  queueSize?: number;
  numQueues?: number;
  segMaxAdjust?: boolean;
  reportDiscardGranularity?: boolean;
  xEnableWceIfConfigWce?: boolean;
}

function isPow2(v: number): boolean {
  return Number.isInteger(v) && v > 0 && (v & (v - 1)) === 0;
}

/** virtio-blk-device. Plug into a VirtioMmio transport. */
export class VirtioBlk implements VirtioDevice {
  static readonly TYPE_NAME = "virtio-blk-device";
  static readonly PROPS: readonly PropDef[] = VIRTIO_BLK_PROPS;

  readonly id: string;
  readonly typeName: string = VirtioBlk.TYPE_NAME;
  readonly deviceId: number = VIRTIO_ID_BLOCK;
  readonly queueSizes: readonly number[];
  readonly configSize: number;

  readonly #drive: BlockBackend;
  readonly #o: Required<Omit<VirtioBlkOptions, keyof VirtioCommonOptions | "drive">>;
  readonly #common: VirtioCommon;
  readonly #sectorMask: number;
  readonly #cyls: number;
  readonly #heads: number;
  readonly #secs: number;
  readonly #initialWce: boolean;
  readonly #config: Uint8Array;
  #wce: boolean;
  #ctx: VirtioContext | null = null;
  /** Data moves through this (1 MiB) in order, so no request allocates its guest-chosen length. */
  readonly #bounce = new Uint8Array(BOUNCE_SIZE);

  /** @throws UserError on invalid properties (as QEMU's realize does) */
  constructor(o: VirtioBlkOptions) {
    this.id = o.id;
    this.#drive = o.drive;
    this.#common = virtioCommon(o);
    this.#o = {
      id: o.id,
      driveName: o.driveName ?? o.drive.id,
      logicalBlockSize: o.logicalBlockSize ?? 512,
      physicalBlockSize: o.physicalBlockSize ?? 512,
      minIoSize: o.minIoSize ?? 0,
      optIoSize: o.optIoSize ?? 0,
      discardGranularity: o.discardGranularity ?? 0xffffffff,
      writeCache: o.writeCache ?? "auto",
      driveWriteback: o.driveWriteback ?? true,
      cyls: o.cyls ?? 0,
      heads: o.heads ?? 0,
      secs: o.secs ?? 0,
      serial: o.serial ?? "",
      configWce: o.configWce ?? true,
      discard: o.discard ?? true,
      writeZeroes: o.writeZeroes ?? true,
      maxDiscardSectors: o.maxDiscardSectors ?? 0x3fffff,
      maxWriteZeroesSectors: o.maxWriteZeroesSectors ?? 0x3fffff,
      queueSize: o.queueSize ?? 256,
      numQueues: o.numQueues ?? 1,
      segMaxAdjust: o.segMaxAdjust ?? true,
      reportDiscardGranularity: o.reportDiscardGranularity ?? true,
      xEnableWceIfConfigWce: o.xEnableWceIfConfigWce ?? true,
    };
    const c = this.#o;
    const lbs = c.logicalBlockSize;
    if (!isPow2(lbs) || lbs < 512 || lbs > 2 * 1024 * 1024) {
      throw new UserError(
        `Property ${VirtioBlk.TYPE_NAME}.logical_block_size doesn't take value ${lbs}: must be a power of 2 between 512 and 2097152`,
      );
    }
    if (!isPow2(c.physicalBlockSize) || c.physicalBlockSize < lbs) {
      throw new UserError(
        `physical_block_size ${c.physicalBlockSize} must be a power of 2 not below logical_block_size`,
      );
    }
    if (c.queueSize <= 2) throw new UserError(`invalid queue-size property (${c.queueSize}), must be > 2`);
    if (!isPow2(c.queueSize)) {
      throw new UserError(`invalid queue-size property (${c.queueSize}), must be a power of 2`);
    }
    if (c.queueSize > 1024) {
      throw new UserError(`invalid queue-size property (${c.queueSize}), must be <= 1024`);
    }
    if (!Number.isInteger(c.numQueues) || c.numQueues < 1 || c.numQueues > 1024) {
      throw new UserError("num-queues property must be larger than 0");
    }
    if (c.maxDiscardSectors < 1 || c.maxDiscardSectors > 0xffffffff) {
      throw new UserError("invalid max-discard-sectors property, must be within 1..4294967295");
    }
    if (c.maxWriteZeroesSectors < 1 || c.maxWriteZeroesSectors > 0xffffffff) {
      throw new UserError("invalid max-write-zeroes-sectors property, must be within 1..4294967295");
    }
    this.#sectorMask = lbs / SECTOR - 1;
    // Geometry guess for disks without a partition table (QEMU hd_geometry_guess → guess_chs_for_size).
    if (c.cyls === 0 || c.heads === 0 || c.secs === 0) {
      const sectors = Math.floor(o.drive.size / SECTOR);
      this.#cyls = Math.min(16383, Math.max(2, Math.floor(sectors / (16 * 63))));
      this.#heads = 16;
      this.#secs = 63;
    } else {
      this.#cyls = c.cyls;
      this.#heads = c.heads;
      this.#secs = c.secs;
    }
    this.#initialWce = c.writeCache === "on" ? true : c.writeCache === "off" ? false : c.driveWriteback;
    this.#wce = this.#initialWce;
    this.queueSizes = Array.from({ length: c.numQueues }, () => c.queueSize);
    // Config size depends on offered features (QEMU virtio_get_config_size with feature_sizes[]).
    this.configSize = c.writeZeroes ? 0x39 : c.discard ? 0x30 : 0x24;
    this.#config = new Uint8Array(this.configSize);
  }

  /** The write cache is on (config wce). */
  get writeCacheEnabled(): boolean {
    return this.#wce;
  }

  hostFeatures(modern: boolean): bigint {
    const c = this.#o;
    let f = commonFeatures(this.#common);
    f |= featureBit(VIRTIO_BLK_F_SEG_MAX) | featureBit(VIRTIO_BLK_F_GEOMETRY) |
      featureBit(VIRTIO_BLK_F_TOPOLOGY) |
      featureBit(VIRTIO_BLK_F_BLK_SIZE);
    if (c.configWce) f |= featureBit(VIRTIO_BLK_F_CONFIG_WCE);
    if (c.discard) f |= featureBit(VIRTIO_BLK_F_DISCARD);
    if (c.writeZeroes) f |= featureBit(VIRTIO_BLK_F_WRITE_ZEROES);
    if (!modern) {
      // Legacy: QEMU offers SCSI (then fails those requests with UNSUPP) and never ANY_LAYOUT for blk.
      f &= ~featureBit(VIRTIO_F_ANY_LAYOUT);
      f |= featureBit(VIRTIO_BLK_F_SCSI);
    }
    if (this.#initialWce || (c.xEnableWceIfConfigWce && c.configWce)) f |= featureBit(VIRTIO_BLK_F_FLUSH);
    if (this.#drive.readOnly) f |= featureBit(VIRTIO_BLK_F_RO);
    if (c.numQueues > 1) f |= featureBit(VIRTIO_BLK_F_MQ);
    return f;
  }

  #refreshConfig(): void {
    const c = this.#o;
    const b = this.#config;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    b.fill(0);
    const lbs = c.logicalBlockSize;
    dv.setBigUint64(VIRTIO_BLK_CFG_CAPACITY, BigInt(Math.floor(this.#drive.size / SECTOR)), true);
    dv.setUint32(VIRTIO_BLK_CFG_SIZE_MAX, 0, true);
    dv.setUint32(VIRTIO_BLK_CFG_SEG_MAX, c.segMaxAdjust ? c.queueSize - 2 : 128 - 2, true);
    dv.setUint16(VIRTIO_BLK_CFG_CYLINDERS, this.#cyls & 0xffff, true);
    b[VIRTIO_BLK_CFG_HEADS] = this.#heads & 0xff;
    const length = this.#drive.size;
    b[VIRTIO_BLK_CFG_SECTORS] = (length > 0 && Math.floor(length / this.#heads / this.#secs) % lbs)
      ? (this.#secs & ~this.#sectorMask) & 0xff
      : this.#secs & 0xff;
    dv.setUint32(VIRTIO_BLK_CFG_BLK_SIZE, lbs, true);
    b[VIRTIO_BLK_CFG_PHYSICAL_BLOCK_EXP] = Math.log2(c.physicalBlockSize / lbs);
    b[VIRTIO_BLK_CFG_ALIGNMENT_OFFSET] = 0;
    dv.setUint16(VIRTIO_BLK_CFG_MIN_IO_SIZE, Math.floor(c.minIoSize / lbs), true);
    dv.setUint32(VIRTIO_BLK_CFG_OPT_IO_SIZE, Math.floor(c.optIoSize / lbs), true);
    b[VIRTIO_BLK_CFG_WCE] = this.#wce ? 1 : 0;
    dv.setUint16(VIRTIO_BLK_CFG_NUM_QUEUES, c.numQueues, true);
    if (c.discard) {
      let gran = c.discardGranularity;
      if (gran === 0xffffffff || !c.reportDiscardGranularity) gran = lbs;
      dv.setUint32(VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, c.maxDiscardSectors, true);
      dv.setUint32(VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT, Math.floor(gran / SECTOR), true);
      // One segment per request, as QEMU.
      dv.setUint32(VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 1, true);
    }
    if (c.writeZeroes) {
      dv.setUint32(VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, c.maxWriteZeroesSectors, true);
      b[VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP] = 1;
      dv.setUint32(VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, 1, true);
    }
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    this.#refreshConfig();
    return configRead(this.#config, offset, size);
  }

  /** Only the wce byte is writable (QEMU virtio_blk_set_config). */
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset <= VIRTIO_BLK_CFG_WCE && VIRTIO_BLK_CFG_WCE < offset + size) {
      this.#wce = ((value >>> (8 * (VIRTIO_BLK_CFG_WCE - offset))) & 0xff) !== 0;
    }
  }

  attach(ctx: VirtioContext): void {
    this.#ctx = ctx;
  }

  statusChanged(status: number): void {
    const ctx = this.#ctx;
    // A driver without CONFIG_WCE gets writeback exactly when it negotiated FLUSH (QEMU virtio_blk_set_status).
    if (ctx !== null && (status & VIRTIO_CONFIG_S_DRIVER_OK) && !ctx.hasFeature(VIRTIO_BLK_F_CONFIG_WCE)) {
      this.#wce = ctx.hasFeature(VIRTIO_BLK_F_FLUSH);
    }
  }

  queueNotify(index: number): void {
    const ctx = this.#ctx;
    if (ctx === null) return;
    const q = ctx.queues[index];
    let done = 0;
    for (;;) {
      const elem = q.pop();
      if (elem === null) break;
      const status = this.#handle(ctx, elem);
      if (status < 0) break; // device failed
      ctx.mem.writeU8(elem.inAddr[elem.inAddr.length - 1] + elem.inLen[elem.inLen.length - 1] - 1, status);
      q.push(elem, elem.inBytes);
      done++;
    }
    if (done > 0) ctx.notify(q);
  }

  /** Sector range check (QEMU virtio_blk_sect_range_ok). */
  #rangeOk(sector: number, bytes: number): boolean {
    const nb = Math.floor(bytes / SECTOR);
    if (nb > BDRV_REQUEST_MAX_SECTORS) return false;
    if (sector % (this.#sectorMask + 1) !== 0) return false;
    if (bytes % this.#o.logicalBlockSize !== 0) return false;
    const total = Math.floor(this.#drive.size / SECTOR);
    return sector <= total && nb <= total - sector;
  }

  /** Returns the status byte, or -1 after failing the device. */
  #handle(ctx: VirtioContext, e: VirtqElement): number {
    const mem = ctx.mem;
    if (e.outAddr.length < 1 || e.inAddr.length < 1) {
      ctx.fail("virtio-blk missing headers");
      return -1;
    }
    const hdr = new Uint8Array(OUTHDR);
    if (e.readOut(mem, 0, hdr) !== OUTHDR) {
      ctx.fail("virtio-blk request outhdr too short");
      return -1;
    }
    const dv = new DataView(hdr.buffer);
    const type = dv.getUint32(0, true);
    const sectorBig = dv.getBigUint64(8, true);
    const sector = sectorBig > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(sectorBig);
    const dataIn = e.inBytes - 1; // the status byte is the last in byte
    switch ((type & ~(VIRTIO_BLK_T_OUT | VIRTIO_BLK_T_BARRIER)) >>> 0) {
      case VIRTIO_BLK_T_IN:
        return (type & VIRTIO_BLK_T_OUT) ? this.#write(e, sector) : this.#read(e, sector, dataIn);
      case VIRTIO_BLK_T_FLUSH:
        return this.#drive.flush() ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
      case VIRTIO_BLK_T_GET_ID: {
        const serial = new TextEncoder().encode(this.#o.serial);
        const n = Math.min(serial.length + 1, dataIn, VIRTIO_BLK_ID_BYTES);
        const buf = new Uint8Array(serial.length + 1);
        buf.set(serial);
        e.writeIn(mem, 0, buf.subarray(0, Math.max(0, n)));
        return VIRTIO_BLK_S_OK;
      }
      case VIRTIO_BLK_T_DISCARD & ~VIRTIO_BLK_T_OUT:
      case VIRTIO_BLK_T_WRITE_ZEROES & ~VIRTIO_BLK_T_OUT:
        return this.#discardWriteZeroes(ctx, e, type);
      case VIRTIO_BLK_T_SCSI_CMD: {
        // scsi=off (QEMU virtio_blk_handle_scsi_req): malformed → IOERR, else UNSUPP with errors = 255.
        const nIn = e.inAddr.length;
        if (e.outAddr.length < 2 || nIn < 3) return VIRTIO_BLK_S_IOERR;
        if (e.inLen[nIn - 2] >= 4) mem.writeU32(e.inAddr[nIn - 2], 255);
        return VIRTIO_BLK_S_UNSUPP;
      }
      default:
        return VIRTIO_BLK_S_UNSUPP;
    }
  }

  #read(e: VirtqElement, sector: number, len: number): number {
    const ctx = this.#ctx!;
    if (!this.#rangeOk(sector, len)) return VIRTIO_BLK_S_IOERR;
    // Through a bounded bounce buffer: a hostile chain cannot make the host allocate its whole length.
    const bounce = this.#bounce;
    for (let off = 0; off < len; off += bounce.length) {
      const chunk = bounce.subarray(0, Math.min(bounce.length, len - off));
      if (!this.#drive.read(sector * SECTOR + off, chunk)) return VIRTIO_BLK_S_IOERR;
      e.writeIn(ctx.mem, off, chunk);
    }
    return VIRTIO_BLK_S_OK;
  }

  #write(e: VirtqElement, sector: number): number {
    const ctx = this.#ctx!;
    const len = e.outBytes - OUTHDR;
    if (!this.#rangeOk(sector, len)) return VIRTIO_BLK_S_IOERR;
    if (this.#drive.readOnly) return VIRTIO_BLK_S_IOERR;
    const bounce = this.#bounce;
    for (let off = 0; off < len; off += bounce.length) {
      const chunk = bounce.subarray(0, Math.min(bounce.length, len - off));
      if (e.readOut(ctx.mem, OUTHDR + off, chunk) !== chunk.length) return VIRTIO_BLK_S_IOERR;
      if (!this.#drive.write(sector * SECTOR + off, chunk)) return VIRTIO_BLK_S_IOERR;
    }
    // Write cache off (writethrough): the write is durable before completion.
    if (len > 0 && !this.#wce && !this.#drive.flush()) return VIRTIO_BLK_S_IOERR;
    return VIRTIO_BLK_S_OK;
  }

  #discardWriteZeroes(ctx: VirtioContext, e: VirtqElement, type: number): number {
    const isWz = ((type & ~VIRTIO_BLK_T_BARRIER) >>> 0) === VIRTIO_BLK_T_WRITE_ZEROES;
    // One 16-byte segment descriptor after the header and the OUT bit set; QEMU does not look at negotiation.
    if (!(type & VIRTIO_BLK_T_OUT) || e.outBytes - OUTHDR > 16) return VIRTIO_BLK_S_UNSUPP;
    const seg = new Uint8Array(16);
    if (e.readOut(ctx.mem, OUTHDR, seg) !== 16) {
      ctx.fail("virtio-blk discard/write_zeroes header too short");
      return -1;
    }
    const dv = new DataView(seg.buffer);
    const sBig = dv.getBigUint64(0, true);
    const sector = sBig > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(sBig);
    const num = dv.getUint32(8, true);
    const flags = dv.getUint32(12, true);
    const max = isWz ? this.#o.maxWriteZeroesSectors : this.#o.maxDiscardSectors;
    if (num > max) return VIRTIO_BLK_S_IOERR;
    const bytes = num * SECTOR;
    if (!this.#rangeOk(sector, bytes)) return VIRTIO_BLK_S_IOERR;
    // Unknown flags, and unmap on a discard, are UNSUPP (virtio 1.2 §5.2.6.2).
    if (flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) return VIRTIO_BLK_S_UNSUPP;
    if (!isWz && (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)) return VIRTIO_BLK_S_UNSUPP;
    if (this.#drive.readOnly) return VIRTIO_BLK_S_IOERR;
    if (isWz) {
      if (this.#drive.writeZeroes) {
        return this.#drive.writeZeroes(sector * SECTOR, bytes) ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
      }
      const zero = new Uint8Array(Math.min(bytes, 1 << 20));
      for (let off = 0; off < bytes; off += zero.length) {
        const n = Math.min(zero.length, bytes - off);
        if (!this.#drive.write(sector * SECTOR + off, zero.subarray(0, n))) return VIRTIO_BLK_S_IOERR;
      }
      return VIRTIO_BLK_S_OK;
    }
    // Discard is advisory: a backend that cannot punch holes completes it as a no-op (QEMU treats ENOTSUP so).
    if (this.#drive.discard) this.#drive.discard(sector * SECTOR, bytes);
    return VIRTIO_BLK_S_OK;
  }

  reset(): void {
    this.#wce = this.#initialWce;
  }

  saveState(): DeviceState {
    return { version: 1, wce: this.#wce };
  }

  loadState(s: DeviceState): void {
    if (s.version !== 1 || typeof s.wce !== "boolean") {
      throw new StateError(`${this.id}: bad virtio-blk state`);
    }
    this.#wce = s.wce;
  }

  propertyValues(): Record<string, string | number | boolean> {
    const c = this.#o;
    return {
      drive: c.driveName,
      backend_defaults: "auto",
      logical_block_size: c.logicalBlockSize,
      physical_block_size: c.physicalBlockSize,
      min_io_size: c.minIoSize,
      opt_io_size: c.optIoSize,
      discard_granularity: c.discardGranularity,
      "write-cache": c.writeCache,
      "share-rw": false,
      "account-invalid": "auto",
      "account-failed": "auto",
      rerror: "auto",
      werror: "auto",
      cyls: this.#cyls,
      heads: this.#heads,
      secs: this.#secs,
      lcyls: 0,
      lheads: 0,
      lsecs: 0,
      serial: c.serial,
      "config-wce": c.configWce,
      scsi: false,
      "request-merging": true,
      "num-queues": c.numQueues,
      "queue-size": c.queueSize,
      "seg-max-adjust": c.segMaxAdjust,
      discard: c.discard,
      "report-discard-granularity": c.reportDiscardGranularity,
      "write-zeroes": c.writeZeroes,
      "max-discard-sectors": c.maxDiscardSectors,
      "max-write-zeroes-sectors": c.maxWriteZeroesSectors,
      "x-enable-wce-if-config-wce": c.xEnableWceIfConfigWce,
      ...commonPropertyValues(this.hostFeatures(!(this.#ctx?.legacy ?? true))),
    };
  }
}
