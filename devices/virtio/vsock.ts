/**
 * User-space virtio-vsock ("virtio-vsock-device", our extension; virtio 1.2 §5.10) with Firecracker's host
 * side: stream sockets only, the host is CID 2, the device speaks the vsock packet protocol itself (no
 * /dev/vhost-vsock) and forwards each connection to a Unix socket through a VsockBackend.
 *
 * Queues: rx (device → driver), tx (driver → device), event (never used: no migration). Credit-based flow
 * control both ways (§5.10.6.3): the device sends the guest at most `buf_alloc - (tx_cnt - fwd_cnt)` bytes as
 * the guest last advertised, and advertises its own buffer with `fwd_cnt` counting bytes that really reached
 * the host socket, sending CREDIT_UPDATE as that advances. A packet for an unknown connection gets RST.
 * @module
 */
import { type DeviceState, type PropDef, StateError, UserError } from "../../core/types.ts";
import type { VsockBackend, VsockReceiver } from "../../core/vsock.ts";
import {
  commonFeatures,
  commonPropertyValues,
  VIRTIO_COMMON_PROPS,
  VIRTIO_ID_VSOCK,
  type VirtioCommon,
  virtioCommon,
  type VirtioCommonOptions,
  type VirtioContext,
  type VirtioDevice,
} from "./device.ts";

/** The host's CID (VMADDR_CID_HOST). */
export const VSOCK_HOST_CID = 2;
export const VSOCK_HDR_SIZE = 44;
export const VSOCK_TYPE_STREAM = 1;
export const VSOCK_OP = {
  INVALID: 0,
  REQUEST: 1,
  RESPONSE: 2,
  RST: 3,
  SHUTDOWN: 4,
  RW: 5,
  CREDIT_UPDATE: 6,
  CREDIT_REQUEST: 7,
} as const;
export const VSOCK_SHUTDOWN_RCV = 1;
export const VSOCK_SHUTDOWN_SEND = 2;
/** Buffer the device advertises per connection (guest → host bytes not yet written to the host socket). */
export const VSOCK_BUF_ALLOC = 256 * 1024;
/** Host → guest bytes the device holds per connection before the backend pauses reading. */
const PENDING_LIMIT = 256 * 1024;
/** Largest payload accepted in one tx packet (Linux VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
const MAX_PKT = 64 * 1024;
/** First local port of host-initiated connections (Firecracker). */
const FIRST_LOCAL_PORT = 1 << 30;
const MAX_CONNS = 1024;
const QUEUE_SIZE = 128;

/** Properties of virtio-vsock-device. */
export const VIRTIO_VSOCK_PROPS: readonly PropDef[] = [
  { name: "guest-cid", type: "uint64", help: "the guest's context id (3 or more)" },
  {
    name: "uds-path",
    type: "str",
    help: "host Unix socket (host connects here; guest port P goes to PATH_P)",
  },
  ...VIRTIO_COMMON_PROPS,
];

/** QEMU's vhost-vsock-device properties (listed for -device help; the device itself is refused). */
export const VHOST_VSOCK_PROPS: readonly PropDef[] = [
  { name: "guest-cid", type: "uint64", help: "the guest's context id" },
  { name: "vhostfd", type: "str" },
  { name: "seqpacket", type: "OnOffAuto", default: "auto" },
  ...VIRTIO_COMMON_PROPS,
];

/** Options of virtio-vsock-device. */
export interface VirtioVsockOptions extends VirtioCommonOptions {
  id: string;
  guestCid: number;
  udsPath: string;
  backend: VsockBackend;
}

interface Conn {
  id: number;
  guestPort: number;
  hostPort: number;
  state: "host-connecting" | "guest-connecting" | "established";
  peerBufAlloc: number;
  peerFwdCnt: number;
  /** Bytes sent to the guest. */
  txCnt: number;
  /** Guest bytes written to the host socket. */
  fwdCnt: number;
  fwdReported: number;
  pending: Uint8Array[];
  pendingBytes: number;
  /** The host side reached EOF: send SHUTDOWN(SEND) once `pending` is delivered. */
  hostEof: boolean;
  eofSent: boolean;
  paused: boolean;
}

interface Packet {
  srcPort: number;
  dstPort: number;
  op: number;
  flags: number;
  conn: Conn | null;
}

/** virtio-vsock-device. */
export class VirtioVsock implements VirtioDevice, VsockReceiver {
  static readonly TYPE_NAME = "virtio-vsock-device";
  static readonly PROPS: readonly PropDef[] = VIRTIO_VSOCK_PROPS;

  readonly id: string;
  readonly typeName: string = VirtioVsock.TYPE_NAME;
  readonly deviceId: number = VIRTIO_ID_VSOCK;
  readonly queueSizes: readonly number[] = [QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE];
  readonly configSize = 8;
  readonly guestCid: number;
  readonly udsPath: string;
  readonly #common: VirtioCommon;
  readonly #backend: VsockBackend;
  #ctx: VirtioContext | null = null;
  /** By backend connection number. */
  readonly #conns = new Map<number, Conn>();
  /** By "guestPort:hostPort". */
  readonly #byPorts = new Map<string, Conn>();
  readonly #ctrl: Packet[] = [];
  #nextLocalPort = FIRST_LOCAL_PORT;
  #rr = 0;
  /** RST packets sent for unknown connections (tests). */
  resets = 0;

  /** @throws UserError on a reserved CID or a missing path */
  constructor(o: VirtioVsockOptions) {
    this.id = o.id;
    if (!Number.isSafeInteger(o.guestCid) || o.guestCid < 3 || o.guestCid >= 0xffffffff) {
      throw new UserError("guest-cid property must be greater than 2");
    }
    if (!o.udsPath) throw new UserError("virtio-vsock-device: uds-path property not set");
    this.guestCid = o.guestCid;
    this.udsPath = o.udsPath;
    this.#common = virtioCommon(o);
    this.#backend = o.backend;
    this.#backend.setReceiver(this);
  }

  hostFeatures(_modern: boolean): bigint {
    return commonFeatures(this.#common);
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(this.guestCid), true);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | (b[offset + i] ?? 0xff);
    return v >>> 0;
  }

  writeConfig(): void {}

  attach(ctx: VirtioContext): void {
    this.#ctx = ctx;
  }

  /** Open connections (tests, monitor). */
  get connections(): number {
    return this.#conns.size;
  }

  queueNotify(index: number): void {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk) return;
    if (index === 1) this.#processTx();
    this.#fillRx();
  }

  statusChanged(): void {
    this.#fillRx();
  }

  // --- guest → device -----------------------------------------------------------------------------

  #processTx(): void {
    const ctx = this.#ctx!;
    const q = ctx.queues[1];
    let done = 0;
    const hdr = new Uint8Array(VSOCK_HDR_SIZE);
    const dv = new DataView(hdr.buffer);
    for (;;) {
      const e = q.pop();
      if (e === null) break;
      done++;
      if (e.readOut(ctx.mem, 0, hdr) !== VSOCK_HDR_SIZE) {
        ctx.log.guestError(this.id, "vsock: tx packet shorter than its header");
        q.push(e, 0);
        continue;
      }
      const srcCid = Number(dv.getBigUint64(0, true));
      const dstCid = Number(dv.getBigUint64(8, true));
      const srcPort = dv.getUint32(16, true);
      const dstPort = dv.getUint32(20, true);
      const len = dv.getUint32(24, true);
      const type = dv.getUint16(28, true);
      const op = dv.getUint16(30, true);
      const flags = dv.getUint32(32, true);
      const bufAlloc = dv.getUint32(36, true);
      const fwdCnt = dv.getUint32(40, true);
      const payloadLen = Math.min(len, e.outBytes - VSOCK_HDR_SIZE, MAX_PKT);
      let payload = new Uint8Array(0);
      if (op === VSOCK_OP.RW && payloadLen > 0) {
        payload = new Uint8Array(payloadLen);
        e.readOut(ctx.mem, VSOCK_HDR_SIZE, payload);
      }
      q.push(e, 0);
      // Packets not from this guest or not for the host are dropped (Firecracker does the same).
      if (srcCid !== this.guestCid || dstCid !== VSOCK_HOST_CID) {
        ctx.log.guestError(this.id, `vsock: dropped packet ${srcCid}->${dstCid}`);
        continue;
      }
      if (type !== VSOCK_TYPE_STREAM) {
        if (op !== VSOCK_OP.RST) this.#rst(srcPort, dstPort);
        continue;
      }
      this.#guestPacket({ srcPort, dstPort, op, flags, bufAlloc, fwdCnt, payload });
    }
    if (done > 0) ctx.notify(q);
  }

  #guestPacket(p: {
    srcPort: number;
    dstPort: number;
    op: number;
    flags: number;
    bufAlloc: number;
    fwdCnt: number;
    payload: Uint8Array;
  }): void {
    const key = `${p.srcPort}:${p.dstPort}`;
    let c = this.#byPorts.get(key) ?? null;
    if (c) {
      c.peerBufAlloc = p.bufAlloc;
      c.peerFwdCnt = p.fwdCnt;
    }
    switch (p.op) {
      case VSOCK_OP.REQUEST: {
        if (c !== null || this.#conns.size >= MAX_CONNS) {
          this.#rst(p.srcPort, p.dstPort);
          return;
        }
        const id = this.#backend.connect(p.dstPort);
        c = this.#newConn(id, p.srcPort, p.dstPort, "host-connecting");
        c.peerBufAlloc = p.bufAlloc;
        c.peerFwdCnt = p.fwdCnt;
        return;
      }
      case VSOCK_OP.RST:
        if (c) this.#drop(c, false);
        return;
    }
    if (c === null) {
      this.#rst(p.srcPort, p.dstPort);
      return;
    }
    switch (p.op) {
      case VSOCK_OP.RESPONSE:
        if (c.state !== "guest-connecting") {
          this.#drop(c, true);
          return;
        }
        c.state = "established";
        this.#backend.accepted(c.id, c.hostPort);
        return;
      case VSOCK_OP.RW:
        if (c.state !== "established") {
          this.#drop(c, true);
          return;
        }
        if (p.payload.length > 0) this.#backend.send(c.id, p.payload);
        return;
      case VSOCK_OP.CREDIT_UPDATE:
        return;
      case VSOCK_OP.CREDIT_REQUEST:
        this.#queueCtrl(c, VSOCK_OP.CREDIT_UPDATE, 0);
        return;
      case VSOCK_OP.SHUTDOWN:
        if (p.flags & VSOCK_SHUTDOWN_SEND) this.#backend.shutdownWrite(c.id);
        // Both directions shut: the connection is over; RST completes the close (virtio 1.2 §5.10.6.4).
        if (
          (p.flags & (VSOCK_SHUTDOWN_SEND | VSOCK_SHUTDOWN_RCV)) ===
            (VSOCK_SHUTDOWN_SEND | VSOCK_SHUTDOWN_RCV)
        ) {
          this.#drop(c, true);
        }
        return;
      default:
        this.#drop(c, true);
    }
  }

  #newConn(id: number, guestPort: number, hostPort: number, state: Conn["state"]): Conn {
    const c: Conn = {
      id,
      guestPort,
      hostPort,
      state,
      peerBufAlloc: 0,
      peerFwdCnt: 0,
      txCnt: 0,
      fwdCnt: 0,
      fwdReported: 0,
      pending: [],
      pendingBytes: 0,
      hostEof: false,
      eofSent: false,
      paused: false,
    };
    this.#conns.set(id, c);
    this.#byPorts.set(`${guestPort}:${hostPort}`, c);
    return c;
  }

  /** Forget a connection; `rst` tells the guest. */
  #drop(c: Conn, rst: boolean): void {
    this.#conns.delete(c.id);
    this.#byPorts.delete(`${c.guestPort}:${c.hostPort}`);
    this.#backend.close(c.id);
    if (rst) this.#rst(c.guestPort, c.hostPort);
  }

  #rst(guestPort: number, hostPort: number): void {
    this.resets++;
    this.#ctrl.push({ srcPort: hostPort, dstPort: guestPort, op: VSOCK_OP.RST, flags: 0, conn: null });
    this.#fillRx();
  }

  #queueCtrl(c: Conn, op: number, flags: number): void {
    this.#ctrl.push({ srcPort: c.hostPort, dstPort: c.guestPort, op, flags, conn: c });
    this.#fillRx();
  }

  // --- host → device (VsockReceiver) ------------------------------------------------------------------

  incoming(conn: number, port: number): void {
    if (this.#conns.size >= MAX_CONNS || this.#ctx === null || !this.#ctx.driverOk) {
      this.#backend.close(conn);
      return;
    }
    let local = this.#nextLocalPort;
    while (this.#byPorts.has(`${port}:${local}`)) local = local + 1 >>> 0 || FIRST_LOCAL_PORT;
    this.#nextLocalPort = (local + 1) >>> 0 || FIRST_LOCAL_PORT;
    const c = this.#newConn(conn, port, local, "guest-connecting");
    this.#queueCtrl(c, VSOCK_OP.REQUEST, 0);
  }

  connected(conn: number): void {
    const c = this.#conns.get(conn);
    if (!c || c.state !== "host-connecting") return;
    c.state = "established";
    this.#queueCtrl(c, VSOCK_OP.RESPONSE, 0);
  }

  refused(conn: number): void {
    const c = this.#conns.get(conn);
    if (c) this.#drop(c, true);
  }

  data(conn: number, bytes: Uint8Array): void {
    const c = this.#conns.get(conn);
    if (!c || c.state !== "established" || bytes.length === 0) return;
    c.pending.push(bytes);
    c.pendingBytes += bytes.length;
    this.#fillRx();
  }

  closed(conn: number, error: boolean): void {
    const c = this.#conns.get(conn);
    if (!c) return;
    if (error || c.state !== "established") {
      this.#drop(c, true);
      return;
    }
    c.hostEof = true;
    this.#fillRx();
  }

  written(conn: number, n: number): void {
    const c = this.#conns.get(conn);
    if (!c) return;
    c.fwdCnt = (c.fwdCnt + n) >>> 0;
    // Tell the guest about the freed buffer once a quarter of it is free again.
    if (((c.fwdCnt - c.fwdReported) >>> 0) >= VSOCK_BUF_ALLOC / 4) {
      this.#queueCtrl(c, VSOCK_OP.CREDIT_UPDATE, 0);
    }
  }

  wantMore(conn: number): boolean {
    const c = this.#conns.get(conn);
    if (!c) return false;
    if (c.pendingBytes >= PENDING_LIMIT) {
      c.paused = true;
      return false;
    }
    return true;
  }

  // --- device → guest ---------------------------------------------------------------------------------

  #credit(c: Conn): number {
    return Math.max(0, c.peerBufAlloc - ((c.txCnt - c.peerFwdCnt) >>> 0));
  }

  #fillRx(): void {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk) return;
    const q = ctx.queues[0];
    let done = 0;
    for (;;) {
      if (q.isEmpty()) break;
      let pkt: Packet | null = this.#ctrl.shift() ?? null;
      let payload: Uint8Array | null = null;
      let conn: Conn | null = pkt?.conn ?? null;
      if (pkt === null) {
        conn = this.#pickData();
        if (conn === null) break;
        if (conn.pendingBytes === 0) {
          // Host EOF with everything delivered: the host sends no more (the guest may still write).
          conn.eofSent = true;
          pkt = {
            srcPort: conn.hostPort,
            dstPort: conn.guestPort,
            op: VSOCK_OP.SHUTDOWN,
            flags: VSOCK_SHUTDOWN_SEND,
            conn,
          };
        } else {
          pkt = { srcPort: conn.hostPort, dstPort: conn.guestPort, op: VSOCK_OP.RW, flags: 0, conn };
        }
      }
      const e = q.pop();
      if (e === null) {
        if (pkt.op !== VSOCK_OP.RW) this.#ctrl.unshift(pkt);
        break;
      }
      if (e.inBytes < VSOCK_HDR_SIZE) {
        ctx.fail("vsock: rx buffer smaller than a packet header");
        return;
      }
      if (pkt.op === VSOCK_OP.RW && conn !== null) {
        const n = Math.min(conn.pendingBytes, this.#credit(conn), e.inBytes - VSOCK_HDR_SIZE, MAX_PKT);
        payload = this.#take(conn, n);
        conn.txCnt = (conn.txCnt + n) >>> 0;
      }
      const hdr = new Uint8Array(VSOCK_HDR_SIZE);
      const dv = new DataView(hdr.buffer);
      dv.setBigUint64(0, BigInt(VSOCK_HOST_CID), true);
      dv.setBigUint64(8, BigInt(this.guestCid), true);
      dv.setUint32(16, pkt.srcPort, true);
      dv.setUint32(20, pkt.dstPort, true);
      dv.setUint32(24, payload?.length ?? 0, true);
      dv.setUint16(28, VSOCK_TYPE_STREAM, true);
      dv.setUint16(30, pkt.op, true);
      dv.setUint32(32, pkt.flags, true);
      dv.setUint32(36, VSOCK_BUF_ALLOC, true);
      dv.setUint32(40, conn?.fwdCnt ?? 0, true);
      if (conn) conn.fwdReported = conn.fwdCnt;
      let w = e.writeIn(ctx.mem, 0, hdr);
      if (payload) w += e.writeIn(ctx.mem, VSOCK_HDR_SIZE, payload);
      q.push(e, w);
      done++;
      if (conn && conn.paused && conn.pendingBytes < PENDING_LIMIT / 2) {
        conn.paused = false;
        this.#backend.resume(conn.id);
      }
    }
    if (done > 0) ctx.notify(q);
  }

  /** A connection with data the guest has credit for (round robin), or one whose EOF is due. */
  #pickData(): Conn | null {
    const list = [...this.#conns.values()];
    for (let k = 0; k < list.length; k++) {
      const c = list[(this.#rr + k) % list.length];
      if (c.state !== "established") continue;
      if ((c.pendingBytes > 0 && this.#credit(c) > 0) || (c.hostEof && !c.eofSent && c.pendingBytes === 0)) {
        this.#rr = (this.#rr + k + 1) % list.length;
        return c;
      }
    }
    return null;
  }

  #take(c: Conn, n: number): Uint8Array {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const head = c.pending[0];
      const k = Math.min(head.length, n - off);
      out.set(head.subarray(0, k), off);
      off += k;
      if (k === head.length) c.pending.shift();
      else c.pending[0] = head.subarray(k);
    }
    c.pendingBytes -= n;
    return out;
  }

  reset(): void {
    for (const c of [...this.#conns.values()]) this.#drop(c, false);
    this.#ctrl.length = 0;
  }

  saveState(): DeviceState {
    // Host sockets cannot be saved; connections are dropped on restore (the guest sees them reset).
    return { version: 1, guestCid: this.guestCid };
  }

  loadState(s: DeviceState): void {
    if (s.version !== 1 || s.guestCid !== this.guestCid) throw new StateError(`${this.id}: bad vsock state`);
    this.reset();
  }

  propertyValues(): Record<string, string | number | boolean> {
    return {
      "guest-cid": this.guestCid,
      "uds-path": this.udsPath,
      ...commonPropertyValues(this.hostFeatures(!(this.#ctx?.legacy ?? true))),
    };
  }
}
