/**
 * virtio-net's definitions (virtio 1.2 §5.1, QEMU 7.2 hw/net/virtio-net.c): feature bits, header and
 * control-queue constants, the backend extras, properties in qtree order, MAC parsing and the partial
 * checksum completion. devices/virtio/net.ts is the device.
 * @module
 */
import { type NetBackend, type PropDef, UserError } from "../../core/types.ts";
import { VIRTIO_COMMON_PROPS, type VirtioCommonOptions } from "./device.ts";

/** Feature bits (virtio 1.2 §5.1.3). */
export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_CTRL_GUEST_OFFLOADS = 2;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_MAC = 5;
/** Legacy "device handles packets with any GSO type". */
export const VIRTIO_NET_F_GSO = 6;
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
export const VIRTIO_NET_F_GUEST_ECN = 9;
export const VIRTIO_NET_F_GUEST_UFO = 10;
export const VIRTIO_NET_F_HOST_TSO4 = 11;
export const VIRTIO_NET_F_HOST_TSO6 = 12;
export const VIRTIO_NET_F_HOST_ECN = 13;
export const VIRTIO_NET_F_HOST_UFO = 14;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;
export const VIRTIO_NET_F_CTRL_RX = 18;
export const VIRTIO_NET_F_CTRL_VLAN = 19;
export const VIRTIO_NET_F_CTRL_RX_EXTRA = 20;
export const VIRTIO_NET_F_GUEST_ANNOUNCE = 21;
export const VIRTIO_NET_F_MQ = 22;
export const VIRTIO_NET_F_CTRL_MAC_ADDR = 23;

/** Config status bits. */
export const VIRTIO_NET_S_LINK_UP = 1;
export const VIRTIO_NET_S_ANNOUNCE = 2;

/** virtio_net_hdr.flags / gso_type. */
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;
/** Legacy header without num_buffers. */
export const VIRTIO_NET_HDR_LEN = 10;
/** virtio_net_hdr_mrg_rxbuf (also the VERSION_1 header, and what a vnet-header backend exchanges). */
export const VIRTIO_NET_HDR_MRG_LEN = 12;

/** Control queue classes and commands (virtio 1.2 §5.1.6.5). */
export const VIRTIO_NET_CTRL_RX = 0;
export const VIRTIO_NET_CTRL_RX_PROMISC = 0;
export const VIRTIO_NET_CTRL_RX_ALLMULTI = 1;
export const VIRTIO_NET_CTRL_RX_ALLUNI = 2;
export const VIRTIO_NET_CTRL_RX_NOMULTI = 3;
export const VIRTIO_NET_CTRL_RX_NOUNI = 4;
export const VIRTIO_NET_CTRL_RX_NOBCAST = 5;
export const VIRTIO_NET_CTRL_MAC = 1;
export const VIRTIO_NET_CTRL_MAC_TABLE_SET = 0;
export const VIRTIO_NET_CTRL_MAC_ADDR_SET = 1;
export const VIRTIO_NET_CTRL_VLAN = 2;
export const VIRTIO_NET_CTRL_ANNOUNCE = 3;
export const VIRTIO_NET_CTRL_ANNOUNCE_ACK = 0;
export const VIRTIO_NET_CTRL_GUEST_OFFLOADS = 5;
export const VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET = 0;
export const VIRTIO_NET_OK = 0;
export const VIRTIO_NET_ERR = 1;

/** QEMU MAC_TABLE_ENTRIES. */
export const MAC_TABLE_ENTRIES = 64;
/** Frames held while the RX ring is empty (a burst of this many is never dropped). */
export const VIRTIO_NET_RX_BACKLOG = 256;
/** Largest frame accepted either way: a 64 KiB GSO frame plus an Ethernet/VLAN header (QEMU NET_BUFSIZE-like). */
export const MAX_FRAME = 65536 + 18;
export const CTRL_QUEUE_SIZE = 64;
/** QEMU's qemu_macaddr_default_if_unset base. */
export const DEFAULT_MAC_PREFIX = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/** Guest-side offloads a vnet-header backend should produce on RX (tap TUNSETOFFLOAD). */
export interface NetOffloads {
  csum: boolean;
  tso4: boolean;
  tso6: boolean;
  ecn: boolean;
  ufo: boolean;
}

/**
 * Optional extras a backend may implement (structurally; core/host/tap.ts does): offload control, UFO support
 * and the text of `info network`.
 */
export interface NetBackendExtras {
  /** Tell the backend which offloaded frames the guest accepts (QEMU tap_set_offload). */
  setOffloads?(o: NetOffloads): void;
  /** The backend accepts/produces UDP fragmentation offload frames (QEMU tap_probe_has_ufo). */
  readonly hasUfo?: boolean;
  /** Netdev type for info network ("tap", "socket"). */
  readonly netdevType?: string;
  /** QEMU's info_str, e.g. "ifname=tap0,script=no,downscript=no". */
  readonly infoStr?: string;
}

/** Boolean feature properties in QEMU's qtree order, with the bit each one controls. */
export const FEATURE_PROPS: readonly (readonly [string, number])[] = [
  ["csum", VIRTIO_NET_F_CSUM],
  ["guest_csum", VIRTIO_NET_F_GUEST_CSUM],
  ["gso", VIRTIO_NET_F_GSO],
  ["guest_tso4", VIRTIO_NET_F_GUEST_TSO4],
  ["guest_tso6", VIRTIO_NET_F_GUEST_TSO6],
  ["guest_ecn", VIRTIO_NET_F_GUEST_ECN],
  ["guest_ufo", VIRTIO_NET_F_GUEST_UFO],
  ["guest_announce", VIRTIO_NET_F_GUEST_ANNOUNCE],
  ["host_tso4", VIRTIO_NET_F_HOST_TSO4],
  ["host_tso6", VIRTIO_NET_F_HOST_TSO6],
  ["host_ecn", VIRTIO_NET_F_HOST_ECN],
  ["host_ufo", VIRTIO_NET_F_HOST_UFO],
  ["mrg_rxbuf", VIRTIO_NET_F_MRG_RXBUF],
  ["status", VIRTIO_NET_F_STATUS],
  ["ctrl_vq", VIRTIO_NET_F_CTRL_VQ],
  ["ctrl_rx", VIRTIO_NET_F_CTRL_RX],
  ["ctrl_vlan", VIRTIO_NET_F_CTRL_VLAN],
  ["ctrl_rx_extra", VIRTIO_NET_F_CTRL_RX_EXTRA],
  ["ctrl_mac_addr", VIRTIO_NET_F_CTRL_MAC_ADDR],
  ["ctrl_guest_offloads", VIRTIO_NET_F_CTRL_GUEST_OFFLOADS],
];

/** Properties of virtio-net-device in QEMU 7.2's info qtree order. */
export const VIRTIO_NET_PROPS: readonly PropDef[] = [
  ...FEATURE_PROPS.map(([name]): PropDef => ({ name, type: "bool", default: true, help: "on/off" })),
  { name: "mq", type: "bool", default: false, help: "on/off (accepted, must be off)" },
  { name: "rss", type: "bool", default: false, help: "on/off (accepted, must be off)" },
  { name: "hash", type: "bool", default: false, help: "on/off (accepted, must be off)" },
  { name: "guest_rsc_ext", type: "bool", default: false, help: "on/off (accepted, must be off)" },
  { name: "rsc_interval", type: "uint32", default: 300000, help: "accepted, unused" },
  { name: "mac", type: "macaddr", help: "Ethernet 6-byte MAC Address, example: 52:54:00:12:34:56" },
  { name: "netdev", type: "netdev", help: "ID of a netdev to use as a backend" },
  { name: "x-txtimer", type: "uint32", default: 150000, help: "accepted, unused" },
  { name: "x-txburst", type: "int32", default: 256, help: "accepted, unused" },
  { name: "tx", type: "str", default: "", help: "accepted, unused" },
  { name: "rx_queue_size", type: "uint16", default: 256, help: "power of 2 between 256 and 1024" },
  { name: "tx_queue_size", type: "uint16", default: 256, help: "power of 2 between 256 and 1024" },
  { name: "host_mtu", type: "uint16", default: 0, help: "MTU advertised to the guest (0: none)" },
  { name: "x-mtu-bypass-backend", type: "bool", default: true, help: "on/off" },
  { name: "speed", type: "int32", default: -1, help: "accepted, unused" },
  { name: "duplex", type: "str", default: "", help: "accepted, unused" },
  { name: "failover", type: "bool", default: false, help: "on/off (accepted, must be off)" },
  ...VIRTIO_COMMON_PROPS,
];

/** Options of virtio-net-device. */
export interface VirtioNetOptions extends VirtioCommonOptions {
  id: string;
  backend: NetBackend & NetBackendExtras;
  /** "52:54:00:12:34:56" form; default VirtioNet.defaultMac(0). */
  mac?: string;
  /** Netdev id (qtree `netdev`, info network). */
  netdevName?: string;
  /** NIC client name for info network; default "virtio-net-device.0" style (QEMU assign_name). */
  nicName?: string;
  /** Feature properties by qtree name ("csum", "mrg_rxbuf", …); all default on. */
  features?: Partial<Record<string, boolean>>;
  rxQueueSize?: number;
  txQueueSize?: number;
  /** host_mtu: offer VIRTIO_NET_F_MTU with this MTU when non-zero. */
  hostMtu?: number;
}

/** Parse "aa:bb:cc:dd:ee:ff" (QEMU's macaddr property). Returns null when malformed. */
export function parseMac(s: string): Uint8Array | null {
  const m =
    /^([0-9a-fA-F]{1,2})[:-]([0-9a-fA-F]{1,2})[:-]([0-9a-fA-F]{1,2})[:-]([0-9a-fA-F]{1,2})[:-]([0-9a-fA-F]{1,2})[:-]([0-9a-fA-F]{1,2})$/
      .exec(s);
  if (m === null) return null;
  return Uint8Array.from(m.slice(1).map((x) => parseInt(x, 16)));
}

/** Format 6 bytes as "52:54:00:12:34:56". */
export function formatMac(mac: Uint8Array): string {
  return [...mac.subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * Complete a partial checksum in place (the NEEDS_CSUM contract: the field at csumStart+csumOffset holds the
 * pseudo-header sum; fold the one's-complement sum from csumStart to the end into it). Returns false when the
 * offsets lie outside the frame.
 */
export function completeChecksum(frame: Uint8Array, csumStart: number, csumOffset: number): boolean {
  const at = csumStart + csumOffset;
  if (csumStart >= frame.length || at + 2 > frame.length) return false;
  let sum = 0;
  let i = csumStart;
  for (; i + 1 < frame.length; i += 2) sum += (frame[i] << 8) | frame[i + 1];
  if (i < frame.length) sum += frame[i] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  // 0 and 0xffff are the same one's-complement zero; 0xffff also stays valid for UDP (RFC 768).
  const c = (~sum & 0xffff) || 0xffff;
  frame[at] = c >> 8;
  frame[at + 1] = c & 0xff;
  return true;
}

/** Two MAC addresses (6 bytes) are equal. */
export function macEq(a: Uint8Array, b: Uint8Array): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3] && a[4] === b[4] && a[5] === b[5];
}

/** QEMU's default NIC MAC: 52:54:00:12:34:56 plus the NIC index in the last byte. */
export function defaultNetMac(nicIndex: number): string {
  const m = Uint8Array.from(DEFAULT_MAC_PREFIX);
  m[5] = (0x56 + nicIndex) & 0xff;
  return formatMac(m);
}

/**
 * VirtioNetOptions from -device string properties (the board's -device path).
 * @throws UserError on a malformed property
 */
export function netOptionsFromProps(o: {
  id: string;
  netdev: NetBackend;
  netdevName: string;
  props: Record<string, string>;
  index: number;
}): VirtioNetOptions {
  const p = o.props;
  const bool = (k: string): boolean | undefined => {
    const v = p[k];
    if (v === undefined) return undefined;
    if (/^(on|yes|true|y)$/.test(v)) return true;
    if (/^(off|no|false|n)$/.test(v)) return false;
    throw new UserError(`Parameter '${k}' expects 'on' or 'off'`);
  };
  const int = (k: string): number | undefined => {
    const v = p[k];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) {
      throw new UserError(`Parameter '${k}' expects a non-negative integer`);
    }
    return n;
  };
  const features: Record<string, boolean> = {};
  for (const [name] of FEATURE_PROPS) {
    const b = bool(name);
    if (b !== undefined) features[name] = b;
  }
  for (const k of ["mq", "rss", "hash", "guest_rsc_ext", "failover"]) {
    if (bool(k) === true) throw new UserError(`virtio-net-device: '${k}' is not supported by microvm.ts`);
  }
  const opts: VirtioNetOptions = {
    id: o.id,
    backend: o.netdev,
    netdevName: o.netdevName,
    mac: p.mac ?? defaultNetMac(o.index),
    nicName: o.id !== "" ? o.id : `virtio-net-device.${o.index}`,
    features,
  };
  const rx = int("rx_queue_size");
  if (rx !== undefined) opts.rxQueueSize = rx;
  const tx = int("tx_queue_size");
  if (tx !== undefined) opts.txQueueSize = tx;
  const mtu = int("host_mtu");
  if (mtu !== undefined) opts.hostMtu = mtu;
  const common: Record<string, keyof VirtioCommonOptions> = {
    indirect_desc: "indirectDesc",
    event_idx: "eventIdx",
    notify_on_empty: "notifyOnEmpty",
    any_layout: "anyLayout",
    queue_reset: "queueReset",
  };
  for (const [k, f] of Object.entries(common)) {
    const b = bool(k);
    if (b !== undefined) opts[f] = b;
  }
  return opts;
}
