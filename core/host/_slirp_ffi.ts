/**
 * libslirp's C interface for Deno FFI (libslirp.h 4.7): the symbols, the SlirpConfig/SlirpCb layouts
 * (x86-64 SysV; checked against the C header with gcc in core/host/slirp_test.ts) and their encoders.
 * `struct in_addr` arguments passed by value are one u32 whose little-endian bytes are the address.
 * @module
 */
import type { SlirpSettings } from "./slirp_config.ts";

/** The library file (Debian package libslirp0). */
export const LIBSLIRP_SONAME = "libslirp.so.0";

/** libslirp entry points used here. */
export const SLIRP_SYMBOLS = {
  slirp_new: { parameters: ["buffer", "buffer", "pointer"], result: "pointer" },
  slirp_cleanup: { parameters: ["pointer"], result: "void" },
  slirp_pollfds_fill: { parameters: ["pointer", "buffer", "function", "pointer"], result: "void" },
  slirp_pollfds_poll: { parameters: ["pointer", "i32", "function", "pointer"], result: "void" },
  slirp_input: { parameters: ["pointer", "buffer", "i32"], result: "void" },
  slirp_add_hostfwd: { parameters: ["pointer", "i32", "u32", "i32", "u32", "i32"], result: "i32" },
  slirp_remove_hostfwd: { parameters: ["pointer", "i32", "u32", "i32"], result: "i32" },
  slirp_add_exec: { parameters: ["pointer", "buffer", "buffer", "i32"], result: "i32" },
  slirp_add_guestfwd: { parameters: ["pointer", "function", "pointer", "buffer", "i32"], result: "i32" },
  slirp_socket_can_recv: { parameters: ["pointer", "u32", "i32"], result: "usize" },
  slirp_socket_recv: { parameters: ["pointer", "u32", "i32", "buffer", "i32"], result: "void" },
  slirp_remove_guestfwd: { parameters: ["pointer", "u32", "i32"], result: "i32" },
  slirp_connection_info: { parameters: ["pointer"], result: "pointer" },
  slirp_version_string: { parameters: [], result: "pointer" },
} as const;

/** libc entry points the poll loop needs. */
export const LIBC_SYMBOLS = {
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  /** poll(2) with timeout 0 on the calling thread. */
  pollNow: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  free: { parameters: ["pointer"], result: "void" },
} as const;

export type SlirpLib = Deno.DynamicLibrary<typeof SLIRP_SYMBOLS>;
export type LibcLib = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

/** Byte offsets of struct SlirpConfig (libslirp.h, x86-64). */
export const SLIRP_CONFIG = {
  size: 184,
  version: 0,
  restricted: 4,
  in_enabled: 8,
  vnetwork: 12,
  vnetmask: 16,
  vhost: 20,
  in6_enabled: 24,
  vprefix_addr6: 28,
  vprefix_len: 44,
  vhost6: 48,
  vhostname: 64,
  tftp_server_name: 72,
  tftp_path: 80,
  bootfile: 88,
  vdhcp_start: 96,
  vnameserver: 100,
  vnameserver6: 104,
  vdnssearch: 120,
  vdomainname: 128,
  if_mtu: 136,
  if_mru: 144,
  disable_host_loopback: 152,
  enable_emu: 153,
  outbound_addr: 160,
  outbound_addr6: 168,
  disable_dns: 176,
  disable_dhcp: 177,
} as const;

/** Byte offsets of struct SlirpCb (libslirp.h, x86-64): one function pointer each. */
export const SLIRP_CB = {
  size: 88,
  send_packet: 0,
  guest_error: 8,
  clock_get_ns: 16,
  timer_new: 24,
  timer_free: 32,
  timer_mod: 40,
  register_poll_fd: 48,
  unregister_poll_fd: 56,
  notify: 64,
  init_completed: 72,
  timer_new_opaque: 80,
} as const;

/** SLIRP_POLL_* flags and their poll(2) equivalents. */
export const SLIRP_POLL_IN = 1;
export const SLIRP_POLL_OUT = 2;
export const SLIRP_POLL_PRI = 4;
export const SLIRP_POLL_ERR = 8;
export const SLIRP_POLL_HUP = 16;
const POLLIN = 0x1;
const POLLPRI = 0x2;
const POLLOUT = 0x4;
const POLLERR = 0x8;
const POLLHUP = 0x10;

/** SLIRP_POLL_* → poll(2) events. */
export function slirpToPoll(e: number): number {
  return (e & SLIRP_POLL_IN ? POLLIN : 0) | (e & SLIRP_POLL_OUT ? POLLOUT : 0) |
    (e & SLIRP_POLL_PRI ? POLLPRI : 0) | (e & SLIRP_POLL_ERR ? POLLERR : 0) |
    (e & SLIRP_POLL_HUP ? POLLHUP : 0);
}

/** poll(2) revents → SLIRP_POLL_*. */
export function pollToSlirp(e: number): number {
  return (e & POLLIN ? SLIRP_POLL_IN : 0) | (e & POLLOUT ? SLIRP_POLL_OUT : 0) |
    (e & POLLPRI ? SLIRP_POLL_PRI : 0) | (e & POLLERR ? SLIRP_POLL_ERR : 0) |
    (e & POLLHUP ? SLIRP_POLL_HUP : 0);
}

/** An IPv4 address (4 bytes, network order) as the u32 a by-value `struct in_addr` is passed as. */
export function inAddrArg(b: Uint8Array): number {
  return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
}

/**
 * The SlirpConfig version to hand a library (its slirp_version_string): 4 from libslirp 4.7 (the last fields
 * this layout has), else 1, the layout every 4.x reads.
 */
export function configVersionFor(version: string): number {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) return 1;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return major > 4 || (major === 4 && minor >= 7) ? 4 : 1;
}

/** A SlirpConfig in memory plus the C strings it points at (keep it alive until slirp_new returns). */
export interface EncodedConfig {
  bytes: Uint8Array;
  keep: unknown[];
}

function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}

function ptrOf(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** Encode a SlirpConfig for `settings` at `version` (1 or 4). */
export function encodeSlirpConfig(s: SlirpSettings, version: number): EncodedConfig {
  const C = SLIRP_CONFIG;
  const bytes = new Uint8Array(C.size);
  const v = new DataView(bytes.buffer);
  const keep: unknown[] = [];
  const str = (off: number, x: string | undefined) => {
    if (x === undefined) return;
    const b = cstr(x);
    keep.push(b);
    v.setBigUint64(off, ptrOf(b), true);
  };
  v.setUint32(C.version, version, true);
  v.setInt32(C.restricted, s.restricted ? 1 : 0, true);
  bytes[C.in_enabled] = s.ipv4 ? 1 : 0;
  bytes.set(s.net, C.vnetwork);
  bytes.set(s.mask, C.vnetmask);
  bytes.set(s.host, C.vhost);
  bytes[C.in6_enabled] = s.ipv6 ? 1 : 0;
  bytes.set(s.prefix6, C.vprefix_addr6);
  bytes[C.vprefix_len] = s.prefixLen6;
  bytes.set(s.host6, C.vhost6);
  str(C.vhostname, s.hostname);
  str(C.tftp_server_name, s.tftpServerName);
  str(C.tftp_path, s.tftp);
  str(C.bootfile, s.bootfile);
  bytes.set(s.dhcpStart, C.vdhcp_start);
  bytes.set(s.dns, C.vnameserver);
  bytes.set(s.dns6, C.vnameserver6);
  if (s.dnssearch.length > 0) {
    const arr = new BigUint64Array(s.dnssearch.length + 1);
    s.dnssearch.forEach((d, i) => {
      const b = cstr(d);
      keep.push(b);
      arr[i] = ptrOf(b);
    });
    const ab = new Uint8Array(arr.buffer);
    keep.push(ab);
    v.setBigUint64(C.vdnssearch, ptrOf(ab), true);
  }
  str(C.vdomainname, s.domainname);
  // if_mtu/if_mru 0: libslirp's defaults (1500). The v2-v4 fields stay zero (no outbound binding,
  // DNS and DHCP served), which is what QEMU 7.2 passes too.
  return { bytes, keep };
}
