/**
 * virtio-net ("virtio-net-device", virtio 1.2 §5.1) on one queue pair plus the control queue, following QEMU 7.2
 * hw/net/virtio-net.c: MAC/STATUS config, mergeable RX buffers, checksum/TSO/UFO offloads passed through to a
 * backend that speaks the vnet header (tap with vnet_hdr=on), the control queue's RX-mode, MAC, VLAN, announce and
 * guest-offload commands, and QEMU's receive filter.
 *
 * Header sizes (QEMU virtio_net_set_mrg_rx_bufs): 12 bytes (virtio_net_hdr_mrg_rxbuf) with MRG_RXBUF or
 * VERSION_1, else 10 (legacy virtio_net_hdr). A backend with `vnetHdr` exchanges frames that start with a
 * 12-byte header in the host's (little-endian) byte order; the device translates to the guest's size.
 *
 * RX is backpressured: frames that arrive while the driver has posted no buffers wait in a bounded FIFO and are
 * delivered when the driver kicks the RX queue; `canReceive()` turns false when that FIFO is full, so the backend
 * stops reading (the host socket/tap queue then holds the rest).
 * @module
 */
import { type DeviceState, type NetBackend, type PropDef, StateError, UserError } from "../../core/types.ts";
import {
  commonFeatures,
  commonPropertyValues,
  configRead,
  featureBit,
  VIRTIO_F_VERSION_1,
  VIRTIO_ID_NET,
  type VirtioCommon,
  virtioCommon,
  type VirtioContext,
  type VirtioDevice,
} from "./device.ts";
import { VirtqElement, type Virtqueue } from "./queue.ts";
import {
  completeChecksum,
  CTRL_QUEUE_SIZE,
  defaultNetMac,
  FEATURE_PROPS,
  formatMac,
  MAC_TABLE_ENTRIES,
  macEq,
  MAX_FRAME,
  type NetBackendExtras,
  netOptionsFromProps,
  parseMac,
  VIRTIO_NET_CTRL_ANNOUNCE,
  VIRTIO_NET_CTRL_ANNOUNCE_ACK,
  VIRTIO_NET_CTRL_GUEST_OFFLOADS,
  VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_ADDR_SET,
  VIRTIO_NET_CTRL_MAC_TABLE_SET,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_CTRL_RX_ALLMULTI,
  VIRTIO_NET_CTRL_RX_ALLUNI,
  VIRTIO_NET_CTRL_RX_NOBCAST,
  VIRTIO_NET_CTRL_RX_NOMULTI,
  VIRTIO_NET_CTRL_RX_NOUNI,
  VIRTIO_NET_CTRL_RX_PROMISC,
  VIRTIO_NET_CTRL_VLAN,
  VIRTIO_NET_ERR,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_CTRL_GUEST_OFFLOADS,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_RX_EXTRA,
  VIRTIO_NET_F_CTRL_VLAN,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GSO,
  VIRTIO_NET_F_GUEST_ANNOUNCE,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_ECN,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_GUEST_UFO,
  VIRTIO_NET_F_HOST_ECN,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_HOST_UFO,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_LEN,
  VIRTIO_NET_HDR_MRG_LEN,
  VIRTIO_NET_OK,
  VIRTIO_NET_PROPS,
  VIRTIO_NET_RX_BACKLOG,
  VIRTIO_NET_S_ANNOUNCE,
  VIRTIO_NET_S_LINK_UP,
  type VirtioNetOptions,
} from "./net_defs.ts";

// The definitions keep their old import path.
export * from "./net_defs.ts";

interface HeldElement {
  head: number;
  inAddr: number[];
  inLen: number[];
}

/** virtio-net-device. */
export class VirtioNet implements VirtioDevice {
  static readonly TYPE_NAME = "virtio-net-device";
  static readonly PROPS: readonly PropDef[] = VIRTIO_NET_PROPS;

  /** QEMU's default MAC for the NIC with this index (52:54:00:12:34:56, then …:57 …; qemu_macaddr_default_if_unset). */
  static defaultMac(nicIndex: number): string {
    return defaultNetMac(nicIndex);
  }

  /**
   * Build from -device string properties (the board's -device path).
   * @throws UserError on a malformed property
   */
  static fromProps(o: {
    id: string;
    netdev: NetBackend;
    netdevName: string;
    props: Record<string, string>;
    index: number;
  }): VirtioNet {
    return new VirtioNet(netOptionsFromProps(o));
  }

  readonly id: string;
  readonly typeName: string = VirtioNet.TYPE_NAME;
  readonly deviceId: number = VIRTIO_ID_NET;
  readonly queueSizes: readonly number[];
  readonly configSize: number;

  readonly #backend: NetBackend & NetBackendExtras;
  readonly #common: VirtioCommon;
  readonly #props: Record<string, boolean>;
  readonly #netdevName: string;
  readonly #nicName: string;
  readonly #hostMtu: number;
  readonly #rxSize: number;
  readonly #txSize: number;
  /** Feature bits offered (before the transport adds VERSION_1). */
  readonly #features: bigint;
  readonly #permMac: Uint8Array;
  #ctx: VirtioContext | null = null;

  #mac: Uint8Array = new Uint8Array(6);
  #linkUp = true;
  #announce = false;
  #promisc = true;
  #allmulti = false;
  #alluni = false;
  #nomulti = false;
  #nouni = false;
  #nobcast = false;
  #macTable: Uint8Array[] = [];
  #macTableMulti = 0;
  #uniOverflow = false;
  #multiOverflow = false;
  #guestOffloads = 0n;
  /** Frames waiting for RX buffers. */
  #backlog: Uint8Array[] = [];
  /** Popped RX buffers not yet used (a mergeable frame that did not fit waits for more). */
  #held: VirtqElement[] = [];
  #rxDropped = 0;
  #txDropped = 0;

  /** @throws UserError on invalid properties (QEMU virtio_net_device_realize) */
  constructor(o: VirtioNetOptions) {
    this.id = o.id;
    this.#backend = o.backend;
    this.#common = virtioCommon(o);
    this.#netdevName = o.netdevName ?? "";
    this.#nicName = o.nicName ?? `${VirtioNet.TYPE_NAME}.0`;
    const mac = parseMac(o.mac ?? VirtioNet.defaultMac(0));
    if (mac === null) {
      throw new UserError(`Property '${VirtioNet.TYPE_NAME}.mac' doesn't take value '${o.mac}'`);
    }
    this.#permMac = mac;
    this.#mac = mac.slice();
    this.#props = {};
    for (const [name] of FEATURE_PROPS) this.#props[name] = o.features?.[name] ?? true;
    this.#rxSize = o.rxQueueSize ?? 256;
    this.#txSize = o.txQueueSize ?? 256;
    for (const [name, v] of [["rx_queue_size", this.#rxSize], ["tx_queue_size", this.#txSize]] as const) {
      if (v < 256 || v > 1024 || (v & (v - 1)) !== 0) {
        throw new UserError(
          `Invalid ${name} (= ${v}), must be a power of 2 between 256 and 1024.`,
        );
      }
    }
    this.#hostMtu = o.hostMtu ?? 0;
    if (!Number.isInteger(this.#hostMtu) || this.#hostMtu < 0 || this.#hostMtu > 65535) {
      throw new UserError(`Property '${VirtioNet.TYPE_NAME}.host_mtu' doesn't take value ${this.#hostMtu}`);
    }
    this.#features = this.#computeFeatures();
    const ctrl = (this.#features & featureBit(VIRTIO_NET_F_CTRL_VQ)) !== 0n;
    this.queueSizes = ctrl ? [this.#rxSize, this.#txSize, CTRL_QUEUE_SIZE] : [this.#rxSize, this.#txSize];
    // QEMU feature_sizes[]: MAC → 6, STATUS → 8, MTU → 12 (MAC is always counted).
    this.configSize = this.#hostMtu > 0
      ? 12
      : (this.#features & featureBit(VIRTIO_NET_F_STATUS)) !== 0n
      ? 8
      : 6;
  }

  /** QEMU virtio_net_get_features: drop offloads the backend cannot carry. */
  #computeFeatures(): bigint {
    let f = commonFeatures(this.#common) | featureBit(VIRTIO_NET_F_MAC);
    for (const [name, bit] of FEATURE_PROPS) if (this.#props[name]) f |= featureBit(bit);
    if (this.#hostMtu > 0) f |= featureBit(VIRTIO_NET_F_MTU);
    const drop = (bits: number[]) => {
      for (const b of bits) f &= ~featureBit(b);
    };
    if (!this.#backend.vnetHdr) {
      drop([
        VIRTIO_NET_F_CSUM,
        VIRTIO_NET_F_GSO,
        VIRTIO_NET_F_HOST_TSO4,
        VIRTIO_NET_F_HOST_TSO6,
        VIRTIO_NET_F_HOST_ECN,
        VIRTIO_NET_F_GUEST_CSUM,
        VIRTIO_NET_F_GUEST_TSO4,
        VIRTIO_NET_F_GUEST_TSO6,
        VIRTIO_NET_F_GUEST_ECN,
        VIRTIO_NET_F_CTRL_GUEST_OFFLOADS,
      ]);
    }
    if (!this.#backend.vnetHdr || this.#backend.hasUfo !== true) {
      drop([VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_HOST_UFO]);
    }
    if (!(f & featureBit(VIRTIO_NET_F_CTRL_VQ))) {
      // Features that need the control queue (virtio 1.2 §5.1.3.1).
      drop([
        VIRTIO_NET_F_CTRL_RX,
        VIRTIO_NET_F_CTRL_VLAN,
        VIRTIO_NET_F_CTRL_RX_EXTRA,
        VIRTIO_NET_F_GUEST_ANNOUNCE,
        VIRTIO_NET_F_CTRL_MAC_ADDR,
        VIRTIO_NET_F_CTRL_GUEST_OFFLOADS,
      ]);
    }
    return f;
  }

  hostFeatures(_modern: boolean): bigint {
    return this.#features;
  }

  /** Current MAC address (config space; the driver may change it). */
  get mac(): string {
    return formatMac(this.#mac);
  }

  /** Link state as the guest sees it. */
  get linkUp(): boolean {
    return this.#linkUp;
  }

  /** Frames dropped on RX (filtered, link down, backlog full, buffers too small) and TX (malformed, link down). */
  get stats(): { rxDropped: number; txDropped: number; backlog: number } {
    return { rxDropped: this.#rxDropped, txDropped: this.#txDropped, backlog: this.#backlog.length };
  }

  /** Header size the guest uses (QEMU virtio_net_set_mrg_rx_bufs). */
  get guestHdrLen(): number {
    const ctx = this.#ctx;
    if (ctx === null) return VIRTIO_NET_HDR_LEN;
    return ctx.hasFeature(VIRTIO_NET_F_MRG_RXBUF) || ctx.hasFeature(VIRTIO_F_VERSION_1)
      ? VIRTIO_NET_HDR_MRG_LEN
      : VIRTIO_NET_HDR_LEN;
  }

  /** set_link: toggle the link; with STATUS negotiated the guest gets a config interrupt. */
  setLink(up: boolean): void {
    if (up === this.#linkUp) return;
    this.#linkUp = up;
    if (!up) this.#backlog = [];
    this.#ctx?.notifyConfig();
    if (up) this.#flushRx();
  }

  #config(): Uint8Array {
    const c = new Uint8Array(12);
    c.set(this.#mac, 0);
    let st = this.#linkUp ? VIRTIO_NET_S_LINK_UP : 0;
    if (this.#announce) st |= VIRTIO_NET_S_ANNOUNCE;
    c[6] = st;
    c[8] = 1; // max_virtqueue_pairs (QEMU fills it even without MQ)
    c[10] = this.#hostMtu & 0xff;
    c[11] = this.#hostMtu >> 8;
    return c.subarray(0, this.configSize);
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    return configRead(this.#config(), offset, size);
  }

  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    // Legacy drivers without CTRL_MAC_ADDR set the MAC by writing config (QEMU virtio_net_set_config).
    const ctx = this.#ctx;
    if (ctx === null || ctx.hasFeature(VIRTIO_NET_F_CTRL_MAC_ADDR) || ctx.hasFeature(VIRTIO_F_VERSION_1)) {
      return;
    }
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      if (o < 6) this.#mac[o] = (value >>> (8 * i)) & 0xff;
    }
  }

  attach(ctx: VirtioContext): void {
    this.#ctx = ctx;
    this.#backend.setReceiver({
      canReceive: () => this.canReceive(),
      receive: (frame) => this.receive(frame),
    });
  }

  setFeatures(features: bigint): void {
    // QEMU virtio_net_set_features: guest offloads follow the negotiated GUEST_* bits.
    this.#guestOffloads = features & this.#offloadMask();
    this.#applyOffloads();
  }

  #offloadMask(): bigint {
    return featureBit(VIRTIO_NET_F_GUEST_CSUM) | featureBit(VIRTIO_NET_F_GUEST_TSO4) |
      featureBit(VIRTIO_NET_F_GUEST_TSO6) | featureBit(VIRTIO_NET_F_GUEST_ECN) |
      featureBit(VIRTIO_NET_F_GUEST_UFO);
  }

  #applyOffloads(): void {
    if (!this.#backend.vnetHdr || this.#backend.setOffloads === undefined) return;
    const g = this.#guestOffloads;
    const has = (b: number) => (g & featureBit(b)) !== 0n;
    this.#backend.setOffloads({
      csum: has(VIRTIO_NET_F_GUEST_CSUM),
      tso4: has(VIRTIO_NET_F_GUEST_TSO4),
      tso6: has(VIRTIO_NET_F_GUEST_TSO6),
      ecn: has(VIRTIO_NET_F_GUEST_ECN),
      ufo: has(VIRTIO_NET_F_GUEST_UFO),
    });
  }

  statusChanged(_status: number): void {
    const ctx = this.#ctx;
    if (ctx === null) return;
    if (ctx.driverOk) this.#flushRx();
    else this.#backlog = [];
  }

  queueNotify(index: number): void {
    if (index === 0) this.#flushRx();
    else if (index === 1) this.#flushTx();
    else if (index === 2 && this.queueSizes.length === 3) this.#handleCtrl();
  }

  // ---------------------------------------------------------------------------------------------------- RX

  /** The backend may hand a frame now (QEMU virtio_net_can_receive plus the backlog bound). */
  canReceive(): boolean {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk || !ctx.queues[0].ready) return false;
    return this.#backlog.length < VIRTIO_NET_RX_BACKLOG;
  }

  /** A frame from the backend (with the 12-byte vnet header first when the backend has one). Never blocks. */
  receive(frame: Uint8Array): void {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk || !this.#linkUp) {
      this.#rxDropped++;
      return;
    }
    const hostHdr = this.#backend.vnetHdr ? VIRTIO_NET_HDR_MRG_LEN : 0;
    if (frame.length < hostHdr + 14 || frame.length > hostHdr + MAX_FRAME) {
      this.#rxDropped++;
      return;
    }
    if (!this.#filter(frame.subarray(hostHdr))) {
      this.#rxDropped++;
      return;
    }
    if (this.#backlog.length === 0 && this.#deliver(frame)) {
      ctx.notify(ctx.queues[0]);
      return;
    }
    if (this.#backlog.length >= VIRTIO_NET_RX_BACKLOG) {
      this.#rxDropped++;
      return;
    }
    this.#backlog.push(frame.slice());
  }

  #flushRx(): void {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk || this.#backlog.length === 0) return;
    let n = 0;
    while (this.#backlog.length > 0 && this.#deliver(this.#backlog[0])) {
      this.#backlog.shift();
      n++;
    }
    if (n > 0) ctx.notify(ctx.queues[0]);
  }

  /** QEMU receive_filter: promiscuous, broadcast, multicast and unicast rules plus the MAC table. */
  #filter(eth: Uint8Array): boolean {
    if (this.#promisc) return true;
    const d0 = eth[0];
    if (d0 & 1) {
      const bcast = eth[0] === 0xff && eth[1] === 0xff && eth[2] === 0xff && eth[3] === 0xff &&
        eth[4] === 0xff && eth[5] === 0xff;
      if (bcast) return !this.#nobcast;
      if (this.#nomulti) return false;
      if (this.#allmulti || this.#multiOverflow) return true;
      for (let i = this.#macTableMulti; i < this.#macTable.length; i++) {
        if (macEq(this.#macTable[i], eth)) return true;
      }
      return false;
    }
    if (this.#nouni) return false;
    if (this.#alluni || this.#uniOverflow) return true;
    if (macEq(this.#mac, eth)) return true;
    for (let i = 0; i < this.#macTableMulti; i++) if (macEq(this.#macTable[i], eth)) return true;
    return false;
  }

  /** Build the guest header for `frame`; null to drop (an offload the guest did not accept and we cannot undo). */
  #rxPayload(frame: Uint8Array): { hdr: Uint8Array; payload: Uint8Array } | null {
    const hdr = new Uint8Array(VIRTIO_NET_HDR_MRG_LEN);
    if (!this.#backend.vnetHdr) return { hdr, payload: frame };
    hdr.set(frame.subarray(0, VIRTIO_NET_HDR_LEN));
    hdr[10] = hdr[11] = 0;
    let payload = frame.subarray(VIRTIO_NET_HDR_MRG_LEN);
    const g = this.#guestOffloads;
    const gso = hdr[1] & ~VIRTIO_NET_HDR_GSO_ECN;
    if (gso !== VIRTIO_NET_HDR_GSO_NONE) {
      const need = gso === VIRTIO_NET_HDR_GSO_TCPV4
        ? VIRTIO_NET_F_GUEST_TSO4
        : gso === VIRTIO_NET_HDR_GSO_TCPV6
        ? VIRTIO_NET_F_GUEST_TSO6
        : VIRTIO_NET_F_GUEST_UFO;
      if ((g & featureBit(need)) === 0n) return null;
    }
    if ((hdr[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) && (g & featureBit(VIRTIO_NET_F_GUEST_CSUM)) === 0n) {
      payload = payload.slice();
      if (!completeChecksum(payload, hdr[6] | (hdr[7] << 8), hdr[8] | (hdr[9] << 8))) return null;
      hdr[0] &= ~VIRTIO_NET_HDR_F_NEEDS_CSUM;
    }
    if ((g & featureBit(VIRTIO_NET_F_GUEST_CSUM)) === 0n) hdr[0] &= ~VIRTIO_NET_HDR_F_DATA_VALID;
    return { hdr, payload };
  }

  #popRx(q: Virtqueue): VirtqElement | null {
    return this.#held.shift() ?? q.pop();
  }

  /** Write one frame into the RX ring; false when buffers are missing (the frame stays queued). */
  #deliver(frame: Uint8Array): boolean {
    const ctx = this.#ctx!;
    const q = ctx.queues[0];
    if (!q.ready) return false;
    const r = this.#rxPayload(frame);
    if (r === null) {
      this.#rxDropped++;
      return true;
    }
    const hdrLen = this.guestHdrLen;
    const total = hdrLen + r.payload.length;
    const mem = ctx.mem;
    if (!ctx.hasFeature(VIRTIO_NET_F_MRG_RXBUF)) {
      const e = this.#popRx(q);
      if (e === null) return false;
      if (e.inBytes < total) {
        // A buffer too small for the frame: drop the frame and return the buffer unused.
        ctx.log.guestError(this.id, `rx buffer of ${e.inBytes} bytes too small for a ${total}-byte frame`);
        q.push(e, 0);
        this.#rxDropped++;
        return true;
      }
      // VERSION_1 without MRG_RXBUF still has num_buffers: one buffer (virtio 1.2 §5.1.6.4.2).
      r.hdr[10] = 1;
      e.writeIn(mem, 0, r.hdr.subarray(0, hdrLen));
      e.writeIn(mem, hdrLen, r.payload);
      q.push(e, total);
      return true;
    }
    // Mergeable: take buffers until the frame fits; num_buffers goes in the first one (virtio 1.2 §5.1.6.4).
    const elems: VirtqElement[] = [];
    let room = 0;
    while (room < total) {
      const e = this.#popRx(q);
      if (e === null) {
        this.#held = elems.concat(this.#held);
        return false;
      }
      elems.push(e);
      room += e.inBytes;
    }
    r.hdr[10] = elems.length & 0xff;
    r.hdr[11] = elems.length >> 8;
    const whole = new Uint8Array(total);
    whole.set(r.hdr.subarray(0, hdrLen));
    whole.set(r.payload, hdrLen);
    let off = 0;
    for (const e of elems) {
      const n = e.writeIn(mem, 0, whole.subarray(off, Math.min(total, off + e.inBytes)));
      q.push(e, n);
      off += n;
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------------- TX

  #flushTx(): void {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk) return;
    const q = ctx.queues[1];
    const hdrLen = this.guestHdrLen;
    let done = 0;
    for (;;) {
      const e = q.pop();
      if (e === null) break;
      done++;
      if (e.outBytes < hdrLen) {
        q.push(e, 0);
        ctx.fail("virtio-net header incorrect");
        break;
      }
      const len = e.outBytes - hdrLen;
      if (len > MAX_FRAME) {
        ctx.log.guestError(this.id, `tx frame of ${len} bytes dropped`);
        this.#txDropped++;
        q.push(e, 0);
        continue;
      }
      const frame = this.#txFrame(e, hdrLen, len);
      if (frame === null || !this.#linkUp) this.#txDropped++;
      else this.#backend.send(frame);
      q.push(e, 0);
    }
    if (done > 0) ctx.notify(q);
  }

  /** Gather a TX chain and translate the header for the backend; null to drop. */
  #txFrame(e: VirtqElement, hdrLen: number, len: number): Uint8Array | null {
    const mem = this.#ctx!.mem;
    if (this.#backend.vnetHdr) {
      const out = new Uint8Array(VIRTIO_NET_HDR_MRG_LEN + len);
      e.readOut(mem, 0, out.subarray(0, VIRTIO_NET_HDR_LEN));
      e.readOut(mem, hdrLen, out.subarray(VIRTIO_NET_HDR_MRG_LEN));
      out[10] = out[11] = 0;
      return out;
    }
    const hdr = new Uint8Array(VIRTIO_NET_HDR_LEN);
    e.readOut(mem, 0, hdr);
    const out = new Uint8Array(len);
    e.readOut(mem, hdrLen, out);
    if ((hdr[1] & ~VIRTIO_NET_HDR_GSO_ECN) !== VIRTIO_NET_HDR_GSO_NONE) {
      // GSO was never offered without a vnet header: a guest bug; the frame cannot be segmented here.
      this.#ctx!.log.guestError(this.id, "tx GSO frame without negotiated offload dropped");
      return null;
    }
    if (hdr[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      completeChecksum(out, hdr[6] | (hdr[7] << 8), hdr[8] | (hdr[9] << 8));
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------------- ctrl

  #handleCtrl(): void {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk) return;
    const q = ctx.queues[2];
    let done = 0;
    for (;;) {
      const e = q.pop();
      if (e === null) break;
      done++;
      if (e.outBytes < 2 || e.inBytes < 1 || e.outBytes > 2 + 8 + 2 * (4 + 6 * 4096)) {
        q.push(e, 0);
        ctx.fail("virtio-net ctrl missing headers");
        break;
      }
      const out = new Uint8Array(e.outBytes);
      e.readOut(ctx.mem, 0, out);
      const ack = this.#ctrlCommand(out[0], out[1], out.subarray(2));
      e.writeIn(ctx.mem, 0, Uint8Array.of(ack));
      q.push(e, 1);
    }
    if (done > 0) ctx.notify(q);
  }

  #ctrlCommand(cls: number, cmd: number, data: Uint8Array): number {
    const ctx = this.#ctx!;
    switch (cls) {
      case VIRTIO_NET_CTRL_RX: {
        if (data.length !== 1) return VIRTIO_NET_ERR;
        const on = data[0] !== 0;
        switch (cmd) {
          case VIRTIO_NET_CTRL_RX_PROMISC:
            this.#promisc = on;
            return VIRTIO_NET_OK;
          case VIRTIO_NET_CTRL_RX_ALLMULTI:
            this.#allmulti = on;
            return VIRTIO_NET_OK;
          case VIRTIO_NET_CTRL_RX_ALLUNI:
            this.#alluni = on;
            return VIRTIO_NET_OK;
          case VIRTIO_NET_CTRL_RX_NOMULTI:
            this.#nomulti = on;
            return VIRTIO_NET_OK;
          case VIRTIO_NET_CTRL_RX_NOUNI:
            this.#nouni = on;
            return VIRTIO_NET_OK;
          case VIRTIO_NET_CTRL_RX_NOBCAST:
            this.#nobcast = on;
            return VIRTIO_NET_OK;
        }
        return VIRTIO_NET_ERR;
      }
      case VIRTIO_NET_CTRL_MAC:
        if (cmd === VIRTIO_NET_CTRL_MAC_ADDR_SET) {
          if (data.length !== 6) return VIRTIO_NET_ERR;
          this.#mac = data.slice();
          return VIRTIO_NET_OK;
        }
        if (cmd === VIRTIO_NET_CTRL_MAC_TABLE_SET) return this.#macTableSet(data);
        return VIRTIO_NET_ERR;
      case VIRTIO_NET_CTRL_VLAN:
        // VLAN filtering is accepted and not applied (every VLAN passes, as with an empty QEMU vlan table + promisc).
        return data.length === 2 && (cmd === 0 || cmd === 1) ? VIRTIO_NET_OK : VIRTIO_NET_ERR;
      case VIRTIO_NET_CTRL_ANNOUNCE:
        if (cmd !== VIRTIO_NET_CTRL_ANNOUNCE_ACK || !ctx.hasFeature(VIRTIO_NET_F_GUEST_ANNOUNCE)) {
          return VIRTIO_NET_ERR;
        }
        this.#announce = false;
        return VIRTIO_NET_OK;
      case VIRTIO_NET_CTRL_GUEST_OFFLOADS: {
        if (cmd !== VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET || data.length !== 8) return VIRTIO_NET_ERR;
        if (!ctx.hasFeature(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS)) return VIRTIO_NET_ERR;
        let v = 0n;
        for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(data[i]);
        let negotiated = 0n;
        for (let b = 0; b < 64; b++) if (ctx.hasFeature(b)) negotiated |= featureBit(b);
        if ((v & ~(negotiated & this.#offloadMask())) !== 0n) return VIRTIO_NET_ERR;
        this.#guestOffloads = v;
        this.#applyOffloads();
        return VIRTIO_NET_OK;
      }
    }
    return VIRTIO_NET_ERR;
  }

  /** VIRTIO_NET_CTRL_MAC_TABLE_SET: a unicast then a multicast table, each { le32 entries; u8 macs[entries][6] }. */
  #macTableSet(d: Uint8Array): number {
    const rd32 = (o: number) => (d[o] | (d[o + 1] << 8) | (d[o + 2] << 16) | (d[o + 3] << 24)) >>> 0;
    if (d.length < 4) return VIRTIO_NET_ERR;
    const nUni = rd32(0);
    const uniEnd = 4 + 6 * nUni;
    if (nUni > 4096 || uniEnd + 4 > d.length) return VIRTIO_NET_ERR;
    const nMulti = rd32(uniEnd);
    if (nMulti > 4096 || uniEnd + 4 + 6 * nMulti !== d.length) return VIRTIO_NET_ERR;
    const table: Uint8Array[] = [];
    this.#uniOverflow = nUni > MAC_TABLE_ENTRIES;
    if (!this.#uniOverflow) { for (let i = 0; i < nUni; i++) table.push(d.slice(4 + 6 * i, 10 + 6 * i)); }
    const multiStart = table.length;
    this.#multiOverflow = table.length + nMulti > MAC_TABLE_ENTRIES;
    if (!this.#multiOverflow) {
      for (let i = 0; i < nMulti; i++) table.push(d.slice(uniEnd + 4 + 6 * i, uniEnd + 10 + 6 * i));
    }
    this.#macTable = table;
    this.#macTableMulti = multiStart;
    return VIRTIO_NET_OK;
  }

  // ---------------------------------------------------------------------------------------------------- misc

  /** `info network` lines for this NIC and its peer (QEMU print_net_client). */
  infoNetwork(): string {
    const b = this.#backend;
    let s = `${this.#nicName}: index=0,type=nic,model=${VirtioNet.TYPE_NAME},macaddr=${
      formatMac(this.#mac)
    }\n`;
    if (this.#netdevName !== "") {
      s += ` \\ ${this.#netdevName}: index=0,type=${b.netdevType ?? "tap"},${b.infoStr ?? ""}\n`;
    }
    return s;
  }

  reset(): void {
    // QEMU virtio_net_reset: rx mode back to promiscuous, MAC table cleared, MAC restored.
    this.#promisc = true;
    this.#allmulti =
      this.#alluni =
      this.#nomulti =
      this.#nouni =
      this.#nobcast =
        false;
    this.#macTable = [];
    this.#macTableMulti = 0;
    this.#uniOverflow = this.#multiOverflow = false;
    this.#mac = this.#permMac.slice();
    this.#announce = false;
    this.#backlog = [];
    this.#held = [];
    this.#guestOffloads = 0n;
    this.#applyOffloads();
  }

  saveState(): DeviceState {
    return {
      version: 1,
      mac: formatMac(this.#mac),
      linkUp: this.#linkUp,
      announce: this.#announce,
      rxMode: [this.#promisc, this.#allmulti, this.#alluni, this.#nomulti, this.#nouni, this.#nobcast].map(
        Number,
      )
        .join(""),
      macTable: this.#macTable.map(formatMac),
      macTableMulti: this.#macTableMulti,
      uniOverflow: this.#uniOverflow,
      multiOverflow: this.#multiOverflow,
      guestOffloads: this.#guestOffloads.toString(),
      held: this.#held.map((e): HeldElement => ({
        head: e.head,
        inAddr: [...e.inAddr],
        inLen: [...e.inLen],
      })),
    };
  }

  loadState(s: DeviceState): void {
    const bad = (what: string): never => {
      throw new StateError(`${this.id}: bad virtio-net state (${what})`);
    };
    if (s.version !== 1) bad("version");
    const mac = typeof s.mac === "string" ? parseMac(s.mac) : null;
    if (mac === null) bad("mac");
    if (typeof s.linkUp !== "boolean" || typeof s.announce !== "boolean") bad("status");
    if (typeof s.rxMode !== "string" || !/^[01]{6}$/.test(s.rxMode)) bad("rxMode");
    if (!Array.isArray(s.macTable) || s.macTable.length > MAC_TABLE_ENTRIES) bad("macTable");
    const table = (s.macTable as unknown[]).map((m) => (typeof m === "string" ? parseMac(m) : null));
    if (table.some((m) => m === null)) bad("macTable");
    const tm = s.macTableMulti;
    if (typeof tm !== "number" || !Number.isInteger(tm) || tm < 0 || tm > table.length) bad("macTableMulti");
    if (typeof s.uniOverflow !== "boolean" || typeof s.multiOverflow !== "boolean") bad("overflow");
    if (typeof s.guestOffloads !== "string" || !/^\d+$/.test(s.guestOffloads)) bad("guestOffloads");
    const held: VirtqElement[] = [];
    if (!Array.isArray(s.held)) bad("held");
    for (const h of s.held as HeldElement[]) {
      const ok = typeof h === "object" && h !== null && Number.isInteger(h.head) && Array.isArray(h.inAddr) &&
        Array.isArray(h.inLen) && h.inAddr.length === h.inLen.length &&
        h.inAddr.every((x) => Number.isSafeInteger(x) && x >= 0) &&
        h.inLen.every((x) => Number.isInteger(x) && x > 0 && x <= 0xffffffff);
      if (!ok) bad("held");
      const e = new VirtqElement(h.head);
      h.inAddr.forEach((a, i) => {
        e.inAddr.push(a);
        e.inLen.push(h.inLen[i]);
        e.inBytes += h.inLen[i];
      });
      held.push(e);
    }
    this.#mac = mac!;
    this.#linkUp = s.linkUp as boolean;
    this.#announce = s.announce as boolean;
    const m = (s.rxMode as string).split("").map((c) => c === "1");
    [this.#promisc, this.#allmulti, this.#alluni, this.#nomulti, this.#nouni, this.#nobcast] = m;
    this.#macTable = table as Uint8Array[];
    this.#macTableMulti = tm as number;
    this.#uniOverflow = s.uniOverflow as boolean;
    this.#multiOverflow = s.multiOverflow as boolean;
    this.#guestOffloads = BigInt(s.guestOffloads as string);
    this.#held = held;
    this.#backlog = [];
    this.#applyOffloads();
  }

  propertyValues(): Record<string, string | number | boolean> {
    const v: Record<string, string | number | boolean> = {};
    for (const [name] of FEATURE_PROPS) v[name] = this.#props[name];
    return {
      ...v,
      mq: false,
      rss: false,
      hash: false,
      guest_rsc_ext: false,
      rsc_interval: 300000,
      mac: formatMac(this.#permMac),
      netdev: this.#netdevName,
      "x-txtimer": 150000,
      "x-txburst": 256,
      tx: "",
      rx_queue_size: this.#rxSize,
      tx_queue_size: this.#txSize,
      host_mtu: this.#hostMtu,
      "x-mtu-bypass-backend": true,
      speed: -1,
      duplex: "",
      failover: false,
      ...commonPropertyValues(this.hostFeatures(!(this.#ctx?.legacy ?? true))),
    };
  }
}
