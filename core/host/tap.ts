/**
 * `-netdev tap`: a Linux TAP interface through Deno FFI on /dev/net/tun (QEMU 7.2 net/tap.c, net/tap-linux.c).
 * TUNSETIFF with IFF_TAP|IFF_NO_PI (|IFF_VNET_HDR, then TUNSETVNETHDRSZ 12), ifname= or a kernel-chosen tapN,
 * fd=N for an inherited descriptor, script=/downscript= run with the interface name as QEMU does.
 *
 * Reading never blocks the JS thread: the fd is O_NONBLOCK and a poll(2) on it (plus an eventfd to wake it at
 * close) runs as a nonblocking FFI call on Deno's blocking pool; when it says readable, frames are drained with
 * nonblocking read(2) while the receiver can take them. While the receiver cannot, nothing is read (the kernel's
 * tap queue holds the rest) and the pump retries after INPUT_RETRY_MS. Writes are synchronous write(2).
 * @module
 */
import type { NetBackend, NetReceiver } from "../types.ts";
import { UserError } from "../types.ts";

const O_RDWR = 0x2;
const O_NONBLOCK = 0x800;
const O_CLOEXEC = 0x80000;
const F_GETFL = 3;
const F_SETFL = 4;
const EFD_NONBLOCK = 0x800;
const EFD_CLOEXEC = 0x80000;
const POLLIN = 0x1;
const EAGAIN = 11;
const EINTR = 4;

/** <linux/if_tun.h> ioctls and flags. */
export const TUNSETIFF = 0x400454ca;
export const TUNSETOFFLOAD = 0x400454d0;
export const TUNGETIFF = 0x800454d2;
export const TUNSETVNETHDRSZ = 0x400454d8;
export const TUNGETFEATURES = 0x800454cf;
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const TUN_F_UFO = 0x10;

/** The vnet header size the backend exchanges (virtio_net_hdr_mrg_rxbuf; the device translates). */
export const TAP_VNET_HDR_LEN = 12;
/** QEMU's default network scripts. */
export const DEFAULT_NETWORK_SCRIPT = "/etc/qemu-ifup";
export const DEFAULT_NETWORK_DOWN_SCRIPT = "/etc/qemu-ifdown";
/** Milliseconds between retries while the receiver has no room. */
export const INPUT_RETRY_MS = 2;
/** Largest frame read: 64 KiB GSO frame, Ethernet header and vnet header. */
const READ_BUF = 65536 + 64;
/** Frames drained per poll wake-up before yielding to the event loop. */
const DRAIN_BUDGET = 256;
const IFNAMSIZ = 16;

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  ioctlPtr: { name: "ioctl", parameters: ["i32", "u32", "buffer"], result: "i32" },
  ioctlInt: { name: "ioctl", parameters: ["i32", "u32", "u64"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  errnoLocation: { name: "__errno_location", parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>;

/** Options of a tap backend (the -netdev tap properties). */
export interface TapOptions {
  /** Interface name; default: the kernel picks tapN. */
  ifname?: string;
  /** An already-open tap descriptor (fd=N); ifname/script are then ignored, as in QEMU. */
  fd?: number;
  /** Script run with the ifname after creation; "no" (or "") disables; default /etc/qemu-ifup when it exists. */
  script?: string;
  /** Script run at close; "no" disables; default /etc/qemu-ifdown when it exists. */
  downscript?: string;
  /** true: require IFF_VNET_HDR; false: never; undefined: use it when available (QEMU's default). */
  vnetHdr?: boolean;
}

/** Guest-side offloads (devices/virtio/net.ts NetOffloads, structurally). */
export interface TapOffloads {
  csum: boolean;
  tso4: boolean;
  tso6: boolean;
  ecn: boolean;
  ufo: boolean;
}

function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}

function errnoOf(lib: Lib): number {
  const p = lib.symbols.errnoLocation();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32(0);
}

function strerror(lib: Lib, e: number): string {
  const p = lib.symbols.strerror(e);
  return p === null ? `errno ${e}` : Deno.UnsafePointerView.getCString(p);
}

function scriptExists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Run a network script with the interface name (QEMU launch_script). @throws UserError on failure */
function runScript(path: string, ifname: string): void {
  let st: Deno.CommandOutput;
  try {
    st = new Deno.Command(path, { args: [ifname], stdin: "null", stdout: "inherit", stderr: "inherit" })
      .outputSync();
  } catch (e) {
    throw new UserError(`could not launch network script ${path}: ${e instanceof Error ? e.message : e}`);
  }
  if (!st.success) throw new UserError(`network script ${path} failed with status ${st.code}`);
}

/** A tap interface as a NetBackend (frames with a 12-byte vnet header first when `vnetHdr`). */
export class TapBackend implements NetBackend {
  /** Open /dev/net/tun (or adopt fd=N). @throws UserError with QEMU's wording on failure */
  static open(o: TapOptions = {}): TapBackend {
    const lib = Deno.dlopen("libc.so.6", SYMBOLS);
    try {
      return new TapBackend(lib, o);
    } catch (e) {
      lib.close();
      throw e;
    }
  }

  readonly vnetHdr: boolean;
  readonly hasUfo: boolean;
  readonly netdevType = "tap";
  readonly infoStr: string;
  /** The interface name ("tap0"). */
  readonly ifname: string;
  readonly #lib: Lib;
  readonly #fd: number;
  readonly #wakeFd: number;
  readonly #downscript: string | null;
  readonly #buf = new Uint8Array(READ_BUF);
  readonly #pollFds = new Uint8Array(16);
  #receiver: NetReceiver | null = null;
  #closed = false;
  #pumping: Promise<void> | null = null;
  #retry: ReturnType<typeof setTimeout> | null = null;
  #retryResolve: (() => void) | null = null;
  #sendErrors = 0;

  private constructor(lib: Lib, o: TapOptions) {
    this.#lib = lib;
    const s = lib.symbols;
    const ifr = new Uint8Array(40);
    const ifrView = new DataView(ifr.buffer);
    let fd: number;
    let vnet: boolean;
    if (o.fd !== undefined) {
      fd = o.fd;
      if (s.ioctlPtr(fd, TUNGETIFF, ifr) < 0) {
        throw new UserError(`tap: fd=${fd} is not a tap device: ${strerror(lib, errnoOf(lib))}`);
      }
      const flags = ifrView.getUint16(16, true);
      if (!(flags & IFF_TAP)) throw new UserError(`tap: fd=${fd} is not a tap device`);
      vnet = (flags & IFF_VNET_HDR) !== 0;
      if (o.vnetHdr === true && !vnet) {
        throw new UserError("vnet_hdr=1 requested, but no kernel support for IFF_VNET_HDR available");
      }
      if (o.vnetHdr === false && vnet) throw new UserError(`tap: fd=${fd} has IFF_VNET_HDR but vnet_hdr=off`);
    } else {
      fd = s.open(cstr("/dev/net/tun"), O_RDWR | O_CLOEXEC);
      if (fd < 0) throw new UserError(`could not open /dev/net/tun: ${strerror(lib, errnoOf(lib))}`);
      const feat = new Uint8Array(4);
      const haveVnet = s.ioctlPtr(fd, TUNGETFEATURES, feat) >= 0 &&
        (new DataView(feat.buffer).getUint32(0, true) & IFF_VNET_HDR) !== 0;
      if (o.vnetHdr === true && !haveVnet) {
        s.close(fd);
        throw new UserError("vnet_hdr=1 requested, but no kernel support for IFF_VNET_HDR available");
      }
      vnet = o.vnetHdr ?? haveVnet;
      const name = cstr(o.ifname ?? "");
      if (name.length > IFNAMSIZ) {
        s.close(fd);
        throw new UserError(
          `tap: interface name '${o.ifname}' is too long (at most ${IFNAMSIZ - 1} characters)`,
        );
      }
      ifr.set(name.subarray(0, name.length - 1), 0);
      ifrView.setUint16(16, IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0), true);
      if (s.ioctlPtr(fd, TUNSETIFF, ifr) < 0) {
        const e = errnoOf(lib);
        s.close(fd);
        const what = o.ifname ? o.ifname : "tap%d";
        throw new UserError(`could not configure /dev/net/tun (${what}): ${strerror(lib, e)}`);
      }
    }
    const nul = ifr.indexOf(0);
    this.ifname = new TextDecoder().decode(ifr.subarray(0, nul < 0 || nul > IFNAMSIZ ? IFNAMSIZ : nul));
    if (vnet) {
      const sz = new Uint8Array(4);
      new DataView(sz.buffer).setInt32(0, TAP_VNET_HDR_LEN, true);
      if (s.ioctlPtr(fd, TUNSETVNETHDRSZ, sz) < 0) {
        const e = errnoOf(lib);
        if (o.fd === undefined) s.close(fd);
        throw new UserError(`tap: TUNSETVNETHDRSZ failed: ${strerror(lib, e)}`);
      }
    }
    this.vnetHdr = vnet;
    // QEMU tap_probe_has_ufo: the kernel accepts TUN_F_UFO (newer kernels accept it as a compatibility no-op).
    this.hasUfo = vnet && s.ioctlInt(fd, TUNSETOFFLOAD, BigInt(TUN_F_CSUM | TUN_F_UFO)) >= 0;
    if (vnet) s.ioctlInt(fd, TUNSETOFFLOAD, 0n);
    const fl = s.fcntl(fd, F_GETFL, 0n);
    s.fcntl(fd, F_SETFL, BigInt((fl < 0 ? 0 : fl) | O_NONBLOCK));
    this.#fd = fd;
    this.#wakeFd = s.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.#wakeFd < 0) {
      if (o.fd === undefined) s.close(fd);
      throw new UserError(`tap: eventfd failed: ${strerror(lib, errnoOf(lib))}`);
    }
    if (o.fd !== undefined) {
      this.infoStr = `fd=${fd}`;
      this.#downscript = null;
    } else {
      const script = o.script ?? DEFAULT_NETWORK_SCRIPT;
      const down = o.downscript ?? DEFAULT_NETWORK_DOWN_SCRIPT;
      this.infoStr = `ifname=${this.ifname},script=${script},downscript=${down}`;
      const enabled = (p: string, dflt: string) =>
        p !== "" && p !== "no" && (p !== dflt || scriptExists(p)) ? p : null;
      const up = enabled(script, DEFAULT_NETWORK_SCRIPT);
      this.#downscript = enabled(down, DEFAULT_NETWORK_DOWN_SCRIPT);
      if (up !== null) {
        try {
          runScript(up, this.ifname);
        } catch (e) {
          s.close(this.#wakeFd);
          s.close(fd);
          throw e;
        }
      }
    }
  }

  /** Write one frame (with the vnet header first when `vnetHdr`). False when the kernel refused it. */
  send(frame: Uint8Array): boolean {
    if (this.#closed) return false;
    const n = Number(this.#lib.symbols.write(this.#fd, frame, BigInt(frame.length)));
    if (n !== frame.length) {
      this.#sendErrors++;
      return false;
    }
    return true;
  }

  /** Frames the kernel refused. */
  get sendErrors(): number {
    return this.#sendErrors;
  }

  /** Tell the kernel which offloaded frames the guest takes (QEMU tap_fd_set_offload). */
  setOffloads(o: TapOffloads): void {
    if (!this.vnetHdr || this.#closed) return;
    let f = 0;
    if (o.csum) {
      f |= TUN_F_CSUM;
      if (o.tso4) f |= TUN_F_TSO4;
      if (o.tso6) f |= TUN_F_TSO6;
      if (o.ecn) f |= TUN_F_TSO_ECN;
      if (o.ufo && this.hasUfo) f |= TUN_F_UFO;
    }
    this.#lib.symbols.ioctlInt(this.#fd, TUNSETOFFLOAD, BigInt(f));
  }

  setReceiver(r: NetReceiver | null): void {
    this.#receiver = r;
    if (r !== null && this.#pumping === null && !this.#closed) this.#pumping = this.#pump();
  }

  /** Resolves when the read loop has stopped (after close). */
  get stopped(): Promise<void> {
    return this.#pumping ?? Promise.resolve();
  }

  async #pump(): Promise<void> {
    const s = this.#lib.symbols;
    const pv = new DataView(this.#pollFds.buffer);
    while (!this.#closed) {
      const r = this.#receiver;
      if (r === null) break;
      if (!r.canReceive()) {
        await new Promise<void>((res) => {
          this.#retryResolve = res;
          this.#retry = setTimeout(() => {
            this.#retry = null;
            this.#retryResolve = null;
            res();
          }, INPUT_RETRY_MS);
        });
        continue;
      }
      pv.setInt32(0, this.#fd, true);
      pv.setInt16(4, POLLIN, true);
      pv.setInt16(6, 0, true);
      pv.setInt32(8, this.#wakeFd, true);
      pv.setInt16(12, POLLIN, true);
      pv.setInt16(14, 0, true);
      const n = await s.poll(this.#pollFds, 2n, 1000);
      if (this.#closed) break;
      if (n <= 0 || !(pv.getInt16(6, true) & POLLIN)) continue;
      for (let i = 0; i < DRAIN_BUDGET && !this.#closed && r.canReceive(); i++) {
        const got = Number(s.read(this.#fd, this.#buf, BigInt(READ_BUF)));
        if (got < 0) {
          const e = errnoOf(this.#lib);
          if (e === EINTR) continue;
          if (e !== EAGAIN) await new Promise<void>((res) => setTimeout(res, INPUT_RETRY_MS));
          break;
        }
        if (got === 0) break;
        r.receive(this.#buf.subarray(0, got));
      }
    }
  }

  /** Stop reading, run the downscript, close the descriptors. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const s = this.#lib.symbols;
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#retry = null;
    this.#retryResolve?.();
    this.#retryResolve = null;
    s.write(this.#wakeFd, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]), 8n);
    const fd = this.#fd;
    const wake = this.#wakeFd;
    const lib = this.#lib;
    const down = this.#downscript;
    const finish = () => {
      s.close(fd);
      s.close(wake);
      if (down !== null) {
        try {
          runScript(down, this.ifname);
        } catch {
          // QEMU only warns when the downscript fails at exit.
        }
      }
      lib.close();
    };
    // The poll in flight still uses the descriptors: close them once the pump has stopped.
    if (this.#pumping !== null) this.#pumping.then(finish, finish);
    else finish();
  }
}
