/**
 * Answers the guest's A/AAAA queries to the virtual DNS server (10.0.2.3) with the host's resolver
 * (getaddrinfo through node:dns lookup: /etc/hosts, then the host's DNS), as a host application would see
 * the name. libslirp itself relays DNS packets to the first `nameserver` of /etc/resolv.conf, which skips
 * /etc/hosts and fails where that server is unreachable; other query types still take that path.
 * Only the DNS message is built here; the reply travels in a plain IPv4/UDP frame (no TCP/IP state).
 * @module
 */
import { lookup } from "node:dns/promises";

/** A DNS query the guest sent over IPv4/UDP to the virtual DNS server. */
export interface DnsQuery {
  /** The query frame's source and destination MACs, IPs and ports. */
  guestMac: Uint8Array;
  serverMac: Uint8Array;
  guestIp: Uint8Array;
  serverIp: Uint8Array;
  guestPort: number;
  id: number;
  rd: boolean;
  name: string;
  /** 1 (A) or 28 (AAAA). */
  qtype: number;
  /** The question section as sent (echoed in the reply). */
  question: Uint8Array;
}

const QTYPE_A = 1;
const QTYPE_AAAA = 28;
const TTL = 60;

/**
 * The A/AAAA query in `frame` to `dnsIp`:53, or null when the frame is anything else (which then goes to
 * libslirp unchanged). Every length is checked against the frame.
 */
export function parseDnsQuery(frame: Uint8Array, dnsIp: Uint8Array): DnsQuery | null {
  if (frame.length < 14 + 20 + 8 + 12) return null;
  if (frame[12] !== 0x08 || frame[13] !== 0x00) return null;
  const ip = 14;
  const vihl = frame[ip];
  if (vihl >> 4 !== 4) return null;
  const ihl = (vihl & 0xf) * 4;
  if (ihl < 20 || frame[ip + 9] !== 17) return null;
  if ((frame[ip + 6] & 0x3f) !== 0 || frame[ip + 7] !== 0) return null; // MF or fragment offset
  for (let i = 0; i < 4; i++) if (frame[ip + 16 + i] !== dnsIp[i]) return null;
  const totLen = (frame[ip + 2] << 8) | frame[ip + 3];
  if (totLen > frame.length - ip || totLen < ihl + 8) return null;
  const udp = ip + ihl;
  if (((frame[udp + 2] << 8) | frame[udp + 3]) !== 53) return null;
  const udpLen = (frame[udp + 4] << 8) | frame[udp + 5];
  if (udpLen < 8 + 12 || udp + udpLen > ip + totLen) return null;
  const d = udp + 8;
  const end = udp + udpLen;
  const flags = (frame[d + 2] << 8) | frame[d + 3];
  if (flags & 0x8000 || (flags >> 11) & 0xf) return null; // a response, or not a standard query
  if (((frame[d + 4] << 8) | frame[d + 5]) !== 1) return null; // exactly one question
  let p = d + 12;
  const labels: string[] = [];
  for (let hops = 0;; hops++) {
    if (p >= end || hops > 127) return null;
    const l = frame[p++];
    if (l === 0) break;
    if (l > 63 || p + l > end) return null;
    const label = new TextDecoder().decode(frame.subarray(p, p + l));
    if (!/^[A-Za-z0-9_-]+$/.test(label)) return null;
    labels.push(label);
    p += l;
  }
  if (p + 4 > end || labels.length === 0) return null;
  const qtype = (frame[p] << 8) | frame[p + 1];
  const qclass = (frame[p + 2] << 8) | frame[p + 3];
  if (qclass !== 1 || (qtype !== QTYPE_A && qtype !== QTYPE_AAAA)) return null;
  return {
    guestMac: frame.slice(6, 12),
    serverMac: frame.slice(0, 6),
    guestIp: frame.slice(ip + 12, ip + 16),
    serverIp: frame.slice(ip + 16, ip + 20),
    guestPort: (frame[udp] << 8) | frame[udp + 1],
    id: (frame[d] << 8) | frame[d + 1],
    rd: (flags & 0x0100) !== 0,
    name: labels.join("."),
    qtype,
    question: frame.slice(d + 12, p + 4),
  };
}

function v4Bytes(a: string): Uint8Array {
  return new Uint8Array(a.split(".").map(Number));
}

function v6Bytes(a: string): Uint8Array | null {
  const out = new Uint8Array(16);
  const [h, t] = a.includes("::") ? a.split("::") : [a, null];
  const hw = h === "" ? [] : h.split(":");
  const tw = t === null || t === "" ? [] : t.split(":");
  if (hw.concat(tw).some((w) => !/^[0-9a-fA-F]{1,4}$/.test(w))) return null;
  const words = t === null ? hw : [...hw, ...new Array(8 - hw.length - tw.length).fill("0"), ...tw];
  if (words.length !== 8) return null;
  words.forEach((w, i) => {
    const n = parseInt(w, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 0xff;
  });
  return out;
}

/** Look the query's name up with the host resolver: the addresses of the asked family, or null (no such name). */
export async function resolveQuery(q: DnsQuery): Promise<Uint8Array[] | null> {
  let addrs: { address: string; family: number }[];
  try {
    addrs = await lookup(q.name, { all: true, verbatim: true });
  } catch {
    return null;
  }
  const out: Uint8Array[] = [];
  for (const a of addrs) {
    if (q.qtype === QTYPE_A && a.family === 4) out.push(v4Bytes(a.address));
    if (q.qtype === QTYPE_AAAA && a.family === 6) {
      const b = v6Bytes(a.address);
      if (b) out.push(b);
    }
  }
  return out;
}

function ipChecksum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (b[off + i] << 8) | b[off + i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** The Ethernet/IPv4/UDP frame answering `q` with `addrs` (null: NXDOMAIN). */
export function buildDnsReply(q: DnsQuery, addrs: Uint8Array[] | null): Uint8Array {
  const answers = addrs ?? [];
  const ansLen = answers.reduce((n, a) => n + 12 + a.length, 0);
  const dnsLen = 12 + q.question.length + ansLen;
  const total = 14 + 20 + 8 + dnsLen;
  const f = new Uint8Array(total);
  const v = new DataView(f.buffer);
  f.set(q.guestMac, 0);
  f.set(q.serverMac, 6);
  v.setUint16(12, 0x0800);
  const ip = 14;
  f[ip] = 0x45;
  v.setUint16(ip + 2, 20 + 8 + dnsLen);
  f[ip + 8] = 64;
  f[ip + 9] = 17;
  f.set(q.serverIp, ip + 12);
  f.set(q.guestIp, ip + 16);
  v.setUint16(ip + 10, ipChecksum(f, ip, 20));
  const udp = ip + 20;
  v.setUint16(udp, 53);
  v.setUint16(udp + 2, q.guestPort);
  v.setUint16(udp + 4, 8 + dnsLen); // checksum 0: none (RFC 768, IPv4)
  const d = udp + 8;
  v.setUint16(d, q.id);
  v.setUint16(d + 2, 0x8080 | (q.rd ? 0x0100 : 0) | (addrs === null ? 3 : 0));
  v.setUint16(d + 4, 1);
  v.setUint16(d + 6, answers.length);
  f.set(q.question, d + 12);
  let p = d + 12 + q.question.length;
  for (const a of answers) {
    v.setUint16(p, 0xc00c); // the name: a pointer to the question's
    v.setUint16(p + 2, q.qtype);
    v.setUint16(p + 4, 1);
    v.setUint32(p + 6, TTL);
    v.setUint16(p + 10, a.length);
    f.set(a, p + 12);
    p += 12 + a.length;
  }
  return f;
}
