/**
 * `-netdev` backends from their parsed options (QEMU 7.2 net/net.c net_client_init_fun): tap, socket and
 * user (libslirp) open host resources.
 * @module
 */
import type { NetdevConfig } from "../config.ts";
import type { NetBackend } from "../types.ts";
import { UserError } from "../types.ts";
import { NetSocketBackend } from "./net_socket.ts";
import { SlirpBackend } from "./slirp.ts";
import { parseSlirpOptions } from "./slirp_config.ts";
import { TapBackend, type TapOptions } from "./tap.ts";

/** A parsed -netdev: core/config.ts NetdevConfig, or any type with string options. */
export type NetdevSpec = NetdevConfig | {
  id: string;
  type: string;
  props: Record<string, string>;
  lists?: Record<string, string[]>;
};

/** Run-time hooks of the opened backends. */
export interface NetdevHooks {
  /** libslirp's messages about guest misbehaviour (-d guest_errors). */
  onGuestError?: (msg: string) => void;
}

/** What `info network` needs from a backend (tap and socket backends provide both). */
export interface NetdevDescription {
  readonly netdevType?: string;
  readonly infoStr?: string;
}

function onOff(key: string, v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (/^(on|yes|true|y)$/.test(v)) return true;
  if (/^(off|no|false|n)$/.test(v)) return false;
  throw new UserError(`Parameter '${key}' expects 'on' or 'off'`);
}

/**
 * Open the backend of one -netdev.
 * @throws UserError on bad options, -netdev user, or a host failure (QEMU's wording where it has one)
 * @example
 * ```ts ignore
 * const be = openNetdev({ id: "net0", type: "tap", props: { ifname: "tap0", script: "no", downscript: "no" } });
 * ```
 */
export function openNetdev(spec: NetdevSpec, hooks: NetdevHooks = {}): NetBackend {
  const p = spec.props;
  switch (spec.type) {
    case "tap": {
      for (const k of ["helper", "br", "fds", "vhostfd", "vhostfds"]) {
        if (p[k] !== undefined) throw new UserError(`-netdev tap: '${k}' is not supported by microvm.ts`);
      }
      if (onOff("vhost", p.vhost) === true || onOff("vhostforce", p.vhostforce) === true) {
        throw new UserError("-netdev tap: vhost-net is not available in microvm.ts; use vhost=off");
      }
      if (p.queues !== undefined && p.queues !== "1") {
        throw new UserError("-netdev tap: multiqueue (queues=) is not supported by microvm.ts");
      }
      const o: TapOptions = {};
      if (p.ifname !== undefined) o.ifname = p.ifname;
      if (p.script !== undefined) o.script = p.script;
      if (p.downscript !== undefined) o.downscript = p.downscript;
      const vh = onOff("vnet_hdr", p.vnet_hdr);
      if (vh !== undefined) o.vnetHdr = vh;
      if (p.fd !== undefined) {
        if (!/^\d+$/.test(p.fd)) {
          throw new UserError(`-netdev tap: fd=${p.fd} is not a file descriptor number`);
        }
        o.fd = Number(p.fd);
      }
      return TapBackend.open(o);
    }
    case "socket": {
      if (p.fd !== undefined) {
        throw new UserError(
          "-netdev socket: fd= is not supported by microvm.ts; use listen=, connect=, udp= or mcast=",
        );
      }
      const o: Record<string, string> = {};
      for (const k of ["listen", "connect", "udp", "mcast", "localaddr"]) if (p[k] !== undefined) o[k] = p[k];
      return NetSocketBackend.open(o);
    }
    case "user":
      return SlirpBackend.open(
        parseSlirpOptions(p, spec.lists ?? {}),
        hooks.onGuestError ? { onGuestError: hooks.onGuestError } : {},
      );
  }
  throw new UserError(`network backend '${spec.type}' is not compiled into this binary`);
}

/** One `info network` line for a netdev (QEMU print_net_client): "net0: index=0,type=tap,ifname=…". */
export function netdevInfoLine(id: string, backend: NetdevDescription): string {
  return `${id}: index=0,type=${backend.netdevType ?? "tap"},${backend.infoStr ?? ""}`;
}
