/**
 * `-netdev user` options as QEMU 7.2 checks them (net/slirp.c net_init_slirp, net_slirp_init, slirp_hostfwd,
 * slirp_guestfwd; net/net.c for the legacy `ipv6-net=`), turned into the addresses libslirp takes. Pure: no
 * library is needed, so every error message is testable on any host. Errors are QEMU's one-line texts.
 * @module
 */
import { UserError } from "../types.ts";

/** A forwarding rule from the host into the guest (hostfwd=). */
export interface HostFwd {
  udp: boolean;
  /** Host address in dotted form ("" = INADDR_ANY). */
  hostAddr: string;
  hostPort: number;
  /** Guest address ("" = the first DHCP address, as libslirp does). */
  guestAddr: string;
  guestPort: number;
  /** The rule as written. */
  text: string;
}

/** A guest-initiated forwarding rule (guestfwd=tcp:ADDR:PORT-cmd:COMMAND or -tcp:HOST:PORT). */
export interface GuestFwd {
  server: string;
  port: number;
  /** `cmd:` rules: the command libslirp runs per connection. */
  cmd?: string;
  /** Chardev-style `tcp:HOST:PORT` target the connection is relayed to. */
  connect?: { host: string; port: number };
  text: string;
}

/** The parsed configuration of one user-mode network (QEMU's defaults filled in). */
export interface SlirpSettings {
  restricted: boolean;
  ipv4: boolean;
  ipv6: boolean;
  /** IPv4 addresses as 4 bytes each. */
  net: Uint8Array;
  mask: Uint8Array;
  host: Uint8Array;
  dhcpStart: Uint8Array;
  dns: Uint8Array;
  /** IPv6 addresses as 16 bytes each. */
  prefix6: Uint8Array;
  prefixLen6: number;
  host6: Uint8Array;
  dns6: Uint8Array;
  hostname?: string;
  domainname?: string;
  dnssearch: string[];
  tftp?: string;
  bootfile?: string;
  tftpServerName?: string;
  hostfwd: HostFwd[];
  guestfwd: GuestFwd[];
  /** QEMU's info_str: "net=10.0.2.0,restrict=off". */
  infoStr: string;
}

/** inet_aton as glibc accepts it (a, a.b, a.b.c, a.b.c.d; decimal, 0x hex, 0 octal). Null when invalid. */
export function inetAton(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length < 1 || parts.length > 4) return null;
  const vals: number[] = [];
  for (const p of parts) {
    let v: number;
    if (/^0[xX][0-9a-fA-F]*$/.test(p)) v = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) v = parseInt(p, 8);
    else if (/^[1-9][0-9]*$/.test(p)) v = parseInt(p, 10);
    else return null;
    if (!Number.isFinite(v)) return null;
    vals.push(v);
  }
  const last = vals[vals.length - 1];
  const lastMax = [0xffffffff, 0xffffff, 0xffff, 0xff][vals.length - 1];
  if (last > lastMax) return null;
  for (let i = 0; i < vals.length - 1; i++) if (vals[i] > 0xff) return null;
  let n = last;
  for (let i = 0; i < vals.length - 1; i++) n += vals[i] * 2 ** (8 * (3 - i));
  return u32Bytes(n);
}

/** inet_pton(AF_INET6) for the usual textual forms. Null when invalid. */
export function inetPton6(s: string): Uint8Array | null {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || s.length < 2) return null;
  const out = new Uint8Array(16);
  const dbl = s.indexOf("::");
  if (dbl !== s.lastIndexOf("::")) return null;
  const parseGroups = (t: string): number[] | null => {
    if (t === "") return [];
    const g = t.split(":");
    const words: number[] = [];
    for (let i = 0; i < g.length; i++) {
      const x = g[i];
      if (i === g.length - 1 && x.includes(".")) {
        const v4 = /^\d+\.\d+\.\d+\.\d+$/.test(x) ? x.split(".").map(Number) : null;
        if (!v4 || v4.some((b) => b > 255)) return null;
        words.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(x)) return null;
        words.push(parseInt(x, 16));
      }
    }
    return words;
  };
  let words: number[];
  if (dbl >= 0) {
    const a = parseGroups(s.slice(0, dbl));
    const b = parseGroups(s.slice(dbl + 2));
    if (!a || !b || a.length + b.length > 7) return null;
    words = [...a, ...new Array(8 - a.length - b.length).fill(0), ...b];
  } else {
    const a = parseGroups(s);
    if (!a || a.length !== 8) return null;
    words = a;
  }
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

function u32Bytes(n: number): Uint8Array {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

function bytesU32(b: Uint8Array): number {
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

/** Dotted form of 4 bytes. */
export function ipString(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

function in6SameNet(a: Uint8Array, b: Uint8Array, len: number): boolean {
  for (let bit = 0; bit < len; bit++) {
    const m = 0x80 >> (bit & 7);
    if ((a[bit >> 3] & m) !== (b[bit >> 3] & m)) return false;
  }
  return true;
}

function onOff(key: string, v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === "on" || v === "yes" || v === "true" || v === "y") return true;
  if (v === "off" || v === "no" || v === "false" || v === "n") return false;
  throw new UserError(`Parameter '${key}' expects 'on' or 'off'`);
}

/** qemu_strtoi(…, base 0) over the whole string. */
function strtoi0(s: string): number | null {
  const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) return null;
  const t = m[2];
  const v = /^0[xX]/.test(t)
    ? parseInt(t.slice(2), 16)
    : t.length > 1 && t[0] === "0"
    ? parseInt(t, 8)
    : Number(t);
  const r = m[1] === "-" ? -v : v;
  return r > 0x7fffffff || r < -0x80000000 ? null : r;
}

/** QEMU get_str_sep: text up to `sep`, or null when `sep` is absent. */
function take(s: { rest: string }, sep: string): string | null {
  const i = s.rest.indexOf(sep);
  if (i < 0) return null;
  const head = s.rest.slice(0, i);
  s.rest = s.rest.slice(i + 1);
  return head;
}

/**
 * Parse one hostfwd rule (QEMU slirp_hostfwd): `[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`.
 * @throws UserError "Invalid host forwarding rule '…' (reason)"
 */
export function parseHostFwd(text: string): HostFwd {
  const fail = (why: string): never => {
    throw new UserError(`Invalid host forwarding rule '${text}' (${why})`);
  };
  const s = { rest: text };
  const proto = take(s, ":");
  if (proto === null) fail("No : separators");
  let udp = false;
  if (proto === "udp") udp = true;
  else if (proto !== "tcp" && proto !== "") fail("Bad protocol name");
  const haddr = take(s, ":");
  if (haddr === null) fail("Missing : separator");
  if (haddr !== "" && inetAton(haddr!) === null) fail("Bad host address");
  const hport = take(s, "-");
  if (hport === null) fail("Bad host port separator");
  const hp = strtoi0(hport!);
  if (hp === null || hp < 0 || hp > 65535) fail("Bad host port");
  const gaddr = take(s, ":");
  if (gaddr === null) fail("Missing guest address");
  if (gaddr !== "" && inetAton(gaddr!) === null) fail("Bad guest address");
  const gp = strtoi0(s.rest);
  if (gp === null || gp < 1 || gp > 65535) fail("Bad guest port");
  return {
    udp,
    hostAddr: haddr === "" ? "" : ipString(inetAton(haddr!)!),
    hostPort: hp!,
    guestAddr: gaddr === "" ? "" : ipString(inetAton(gaddr!)!),
    guestPort: gp!,
    text,
  };
}

/**
 * Parse the argument of hostfwd_remove (QEMU hmp_hostfwd_remove): `[tcp|udp]:[HOSTADDR]:HOSTPORT`.
 * Null for QEMU's "invalid format".
 */
export function parseHostFwdKey(text: string): { udp: boolean; hostAddr: string; hostPort: number } | null {
  const s = { rest: text };
  const proto = take(s, ":");
  if (proto === null || (proto !== "tcp" && proto !== "udp" && proto !== "")) return null;
  const haddr = take(s, ":");
  if (haddr === null || (haddr !== "" && inetAton(haddr) === null)) return null;
  if (!/^[+-]?\d+$/.test(s.rest.trim()) || s.rest !== s.rest.trimEnd()) return null;
  const port = Number(s.rest);
  if (!Number.isSafeInteger(port) || port > 0x7fffffff || port < -0x80000000) return null;
  return {
    udp: proto === "udp",
    hostAddr: haddr === "" ? "" : ipString(inetAton(haddr)!),
    hostPort: port & 0xffff,
  };
}

/**
 * Parse one guestfwd rule (QEMU slirp_guestfwd): `[tcp]:[SERVER]:PORT-cmd:COMMAND` or `…-tcp:HOST:PORT`
 * (the chardev QEMU would open; only the tcp client form is built here).
 * @throws UserError "Invalid guest forwarding rule '…'"
 */
export function parseGuestFwd(text: string): GuestFwd {
  const fail = (): never => {
    throw new UserError(`Invalid guest forwarding rule '${text}'`);
  };
  const s = { rest: text };
  const proto = take(s, ":");
  if (proto === null || (proto !== "tcp" && proto !== "")) fail();
  const server = take(s, ":");
  if (server === null || (server !== "" && inetAton(server) === null)) fail();
  const port = take(s, "-");
  if (port === null || !/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) fail();
  const out: GuestFwd = {
    server: server === "" ? "" : ipString(inetAton(server!)!),
    port: Number(port),
    text,
  };
  if (s.rest.startsWith("cmd:")) {
    out.cmd = s.rest.slice(4);
    return out;
  }
  const m = /^tcp:(.*):(\d+)$/.exec(s.rest);
  if (!m || Number(m[2]) > 65535) {
    throw new UserError(`Could not open guest forwarding device 'guestfwd.tcp.${port}'`);
  }
  out.connect = { host: m[1] === "" ? "127.0.0.1" : m[1], port: Number(m[2]) };
  return out;
}

/**
 * The user-network settings from -netdev user options (QEMU 7.2 net_init_slirp + net_slirp_init).
 * `props` holds single-valued keys; `lists` the repeatable ones (hostfwd, guestfwd, dnssearch).
 * @throws UserError with QEMU's message
 */
export function parseSlirpOptions(
  props: Record<string, string>,
  lists: Record<string, string[]> = {},
): SlirpSettings {
  for (const k of ["smb", "smbserver"]) {
    if (props[k] !== undefined) throw new UserError(`-netdev user: '${k}' is not supported by microvm.ts`);
  }
  const restricted = onOff("restrict", props.restrict) ?? false;
  const has4 = onOff("ipv4", props.ipv4);
  const has6 = onOff("ipv6", props.ipv6);
  let ipv4 = true;
  let ipv6 = true;
  if ((has6 === true && has4 === undefined) || has4 === false) ipv4 = false;
  if ((has4 === true && has6 === undefined) || has6 === false) ipv6 = false;

  // net/net.c: legacy ipv6-net=PREFIX[/LEN] fills ipv6-prefix and ipv6-prefixlen.
  let prefix6Text = props["ipv6-prefix"];
  let prefixLenText = props["ipv6-prefixlen"];
  if (props["ipv6-net"] !== undefined) {
    const v = props["ipv6-net"];
    const i = v.indexOf("/");
    prefix6Text = i < 0 ? v : v.slice(0, i);
    if (i >= 0) {
      prefixLenText = v.slice(i + 1);
      if (!/^\d+$/.test(prefixLenText)) throw new UserError("Parameter 'ipv6-prefixlen' expects a number");
    }
  }
  let prefixLen = 0;
  if (prefixLenText !== undefined) {
    if (!/^[+-]?\d+$/.test(prefixLenText)) {
      throw new UserError("Parameter 'ipv6-prefixlen' expects an int64 value");
    }
    prefixLen = Number(prefixLenText);
  }

  const vnetwork = props.net ?? (props.ip !== undefined ? `${props.ip}/24` : undefined);
  const vhost = props.host;
  const vdns = props.dns;
  if (!ipv4 && (vnetwork !== undefined || vhost !== undefined || vdns !== undefined)) {
    throw new UserError("IPv4 disabled but netmask/host/dns provided");
  }
  if (
    !ipv6 &&
    (prefix6Text !== undefined || props["ipv6-host"] !== undefined || props["ipv6-dns"] !== undefined)
  ) {
    throw new UserError("IPv6 disabled but prefix/host6/dns6 provided");
  }
  if (!ipv4 && !ipv6) throw new UserError("IPv4 and IPv6 disabled");

  let net = 0x0a000200;
  let mask = 0xffffff00;
  let host = 0x0a000202;
  let dhcp = 0x0a00020f;
  let dns = 0x0a000203;
  if (vnetwork !== undefined) {
    const slash = vnetwork.indexOf("/");
    if (slash < 0) {
      const a = inetAton(vnetwork);
      if (a === null) throw new UserError("Failed to parse netmask");
      net = bytesU32(a);
      if (!(net & 0x80000000)) mask = 0xff000000;
      else if ((net & 0xfff00000) >>> 0 === 0xac100000) mask = 0xfff00000;
      else if ((net & 0xc0000000) >>> 0 === 0x80000000) mask = 0xffff0000;
      else if ((net & 0xffff0000) >>> 0 === 0xc0a80000) mask = 0xffff0000;
      else if ((net & 0xffff0000) >>> 0 === 0xc6120000) mask = 0xfffe0000;
      else if ((net & 0xe0000000) >>> 0 === 0xe0000000) mask = 0xffffff00;
      else mask = 0xfffffff0;
    } else {
      const a = inetAton(vnetwork.slice(0, slash));
      if (a === null) throw new UserError("Failed to parse netmask");
      net = bytesU32(a);
      const m = vnetwork.slice(slash + 1);
      if (!/^[+-]?\d+$/.test(m)) {
        const mb = inetAton(m);
        if (mb === null) throw new UserError("Failed to parse netmask (trailing chars)");
        mask = bytesU32(mb);
      } else {
        const shift = Number(m);
        if (shift < 4 || shift > 32) throw new UserError("Invalid netmask provided (must be in range 4-32)");
        mask = shift === 32 ? 0xffffffff : (0xffffffff << (32 - shift)) >>> 0;
      }
    }
    net = (net & mask) >>> 0;
    host = (net | (0x0202 & ~mask)) >>> 0;
    dhcp = (net | (0x020f & ~mask)) >>> 0;
    dns = (net | (0x0203 & ~mask)) >>> 0;
  }
  if (vhost !== undefined) {
    const a = inetAton(vhost);
    if (a === null) throw new UserError("Failed to parse host");
    host = bytesU32(a);
  }
  if (((host & mask) >>> 0) !== net) throw new UserError("Host doesn't belong to network");
  if (vdns !== undefined) {
    const a = inetAton(vdns);
    if (a === null) throw new UserError("Failed to parse DNS");
    dns = bytesU32(a);
  }
  if (restricted && ((dns & mask) >>> 0) !== net) throw new UserError("DNS doesn't belong to network");
  if (dns === host) throw new UserError("DNS must be different from host");
  if (props.dhcpstart !== undefined) {
    const a = inetAton(props.dhcpstart);
    if (a === null) throw new UserError("Failed to parse DHCP start address");
    dhcp = bytesU32(a);
  }
  if (((dhcp & mask) >>> 0) !== net) throw new UserError("DHCP doesn't belong to network");
  if (dhcp === host || dhcp === dns) throw new UserError("DHCP must be different from host and DNS");

  const prefix6 = inetPton6(prefix6Text ?? "fec0::");
  if (prefix6 === null) throw new UserError("Failed to parse IPv6 prefix");
  if (prefixLen === 0) prefixLen = 64;
  if (prefixLen < 0 || prefixLen > 126) {
    throw new UserError(
      "Invalid IPv6 prefix provided (IPv6 prefix length must be between 0 and 126)",
    );
  }
  let host6: Uint8Array;
  if (props["ipv6-host"] !== undefined) {
    const a = inetPton6(props["ipv6-host"]);
    if (a === null) throw new UserError("Failed to parse IPv6 host");
    if (!in6SameNet(prefix6, a, prefixLen)) throw new UserError("IPv6 Host doesn't belong to network");
    host6 = a;
  } else {
    host6 = prefix6.slice();
    host6[15] |= 2;
  }
  let dns6: Uint8Array;
  if (props["ipv6-dns"] !== undefined) {
    const a = inetPton6(props["ipv6-dns"]);
    if (a === null) throw new UserError("Failed to parse IPv6 DNS");
    if (restricted && !in6SameNet(prefix6, a, prefixLen)) {
      throw new UserError("IPv6 DNS doesn't belong to network");
    }
    dns6 = a;
  } else {
    dns6 = prefix6.slice();
    dns6[15] |= 3;
  }
  const enc = new TextEncoder();
  if (props.domainname !== undefined && props.domainname === "") {
    throw new UserError("'domainname' parameter cannot be empty");
  }
  if (props.domainname !== undefined && enc.encode(props.domainname).length > 255) {
    throw new UserError("'domainname' parameter cannot exceed 255 bytes");
  }
  if (props.hostname !== undefined && enc.encode(props.hostname).length > 255) {
    throw new UserError("'vhostname' parameter cannot exceed 255 bytes");
  }
  if (props["tftp-server-name"] !== undefined && enc.encode(props["tftp-server-name"]).length > 255) {
    throw new UserError("'tftp-server-name' parameter cannot exceed 255 bytes");
  }
  const listOf = (k: string): string[] => lists[k] ?? (props[k] !== undefined ? [props[k]] : []);
  // QEMU prepends each rule to a list, so rules are applied last-written first.
  const hostfwd = listOf("hostfwd").map(parseHostFwd).reverse();
  const guestfwd = listOf("guestfwd").map(parseGuestFwd).reverse();
  const s: SlirpSettings = {
    restricted,
    ipv4,
    ipv6,
    net: u32Bytes(net),
    mask: u32Bytes(mask),
    host: u32Bytes(host),
    dhcpStart: u32Bytes(dhcp),
    dns: u32Bytes(dns),
    prefix6,
    prefixLen6: prefixLen,
    host6,
    dns6,
    dnssearch: listOf("dnssearch"),
    hostfwd,
    guestfwd,
    infoStr: `net=${ipString(u32Bytes(net))},restrict=${restricted ? "on" : "off"}`,
  };
  if (props.hostname !== undefined) s.hostname = props.hostname;
  if (props.domainname !== undefined) s.domainname = props.domainname;
  if (props.tftp !== undefined) s.tftp = props.tftp;
  if (props.bootfile !== undefined) s.bootfile = props.bootfile;
  if (props["tftp-server-name"] !== undefined) s.tftpServerName = props["tftp-server-name"];
  return s;
}
