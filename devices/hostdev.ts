/**
 * Host-integration devices of the board: virtio-9p (a host directory), virtio-balloon and virtio-vsock.
 * Their `-device` registry entries and the factory the board calls for them, kept out of microvm.ts so the
 * board's wiring stays one switch plus one call.
 * @module
 */
import type { DeviceRegistry } from "../core/config.ts";
import type { FsBackend } from "../core/fsdev.ts";
import { type Clock, UserError } from "../core/types.ts";
import type { VirtioDevice } from "./virtio/device.ts";
import { VirtioP9 } from "./virtio/p9.ts";
import { type BalloonRam, VirtioBalloon } from "./virtio/balloon.ts";
import { VHOST_VSOCK_PROPS, VirtioVsock } from "./virtio/vsock.ts";
import type { VsockBackend } from "../core/vsock.ts";

/** What the host-integration devices need from the board's host. */
export interface HostDevHost {
  fsdev?(id: string): FsBackend;
  /** Open the Unix-socket vsock backend listening at `udsPath`. */
  vsock?(udsPath: string): VsockBackend;
}

/** The board's resources a host-integration device may use. */
export interface HostDevEnv {
  host: HostDevHost;
  clock: Clock;
  ram: BalloonRam;
  common: { indirectDesc: boolean; eventIdx: boolean };
}

/** `-device` registry entries (QEMU type names, bus and help category). */
export const HOSTDEV_DEVICES: DeviceRegistry = [
  {
    driver: "virtio-9p-device",
    desc: "",
    bus: "virtio-bus",
    category: "Storage",
    props: [...VirtioP9.PROPS],
  },
  {
    driver: "virtio-balloon-device",
    desc: "",
    bus: "virtio-bus",
    category: "Misc",
    props: [...VirtioBalloon.PROPS],
  },
  {
    driver: "virtio-vsock-device",
    desc: "user-space vsock over Unix sockets (microvm.ts extension, Firecracker semantics)",
    bus: "virtio-bus",
    qomParent: "vhost-vsock-common",
    category: "Misc",
    props: [...VirtioVsock.PROPS],
  },
  {
    driver: "vhost-vsock-device",
    desc: "",
    bus: "virtio-bus",
    qomParent: "vhost-vsock-common",
    category: "Misc",
    props: [...VHOST_VSOCK_PROPS],
  },
];

/** QOM properties a host-integration device adds to its object (qom-get/qom-set), beyond its -device ones. */
export interface HostDevQomProp {
  name: string;
  type: string;
  value?: unknown;
  set?(value: unknown): void;
}

/** The extra QOM properties of `dev` (balloon: guest-stats, guest-stats-polling-interval). */
export function hostDevQomProps(dev: VirtioDevice): HostDevQomProp[] {
  if (!(dev instanceof VirtioBalloon)) return [];
  return [
    { name: "guest-stats", type: "guest statistics", value: dev.guestStats() },
    {
      name: "guest-stats-polling-interval",
      type: "int",
      value: dev.pollInterval,
      set: (v: unknown) => {
        if (typeof v !== "number" || !Number.isInteger(v)) {
          throw new UserError("Invalid parameter type for 'value', expected: integer");
        }
        // QEMU balloon_stats_set_poll_interval
        if (v < 0) throw new UserError("timer value must be greater than zero");
        if (v > 0xffffffff) throw new UserError("timer value is too big");
        dev.setPollInterval(v);
      },
    },
  ];
}

/** The balloon among `devices`, or null (QMP balloon/query-balloon: "No balloon device has been activated"). */
export function findBalloon(devices: Iterable<VirtioDevice>): VirtioBalloon | null {
  for (const d of devices) if (d instanceof VirtioBalloon) return d;
  return null;
}

/** Build the device for `driver`, or null when it is not one of these. */
export function makeHostDevice(
  driver: string,
  id: string,
  p: Record<string, string>,
  env: HostDevEnv,
): VirtioDevice | null {
  switch (driver) {
    case "virtio-9p-device": {
      const fsdevId = p.fsdev;
      if (!fsdevId) throw new UserError("9pfs device couldn't find fsdev with the id = NULL");
      if (!env.host.fsdev) throw new UserError(`9pfs device couldn't find fsdev with the id = ${fsdevId}`);
      const fs = env.host.fsdev(fsdevId);
      return new VirtioP9({ id, fs, fsdevName: fsdevId, mountTag: p.mount_tag ?? "", ...env.common });
    }
    case "virtio-balloon-device": {
      const b = (k: string, dflt: boolean) => p[k] === undefined ? dflt : /^(on|yes|true)$/.test(p[k]);
      if (b("free-page-hint", false)) {
        throw new UserError(
          "virtio-balloon-device: free-page-hint=on is not supported (use free-page-reporting=on)",
        );
      }
      return new VirtioBalloon({
        id,
        ram: env.ram,
        clock: env.clock,
        deflateOnOom: b("deflate-on-oom", false),
        freePageReporting: b("free-page-reporting", false),
        pagePoison: b("page-poison", true),
        qemu40ConfigSize: b("qemu-4-0-config-size", false),
        ...env.common,
      });
    }
    case "virtio-vsock-device": {
      const cid = Number(p["guest-cid"] ?? "0");
      const path = p["uds-path"] ?? "";
      if (!path) throw new UserError("virtio-vsock-device: uds-path property not set");
      if (!Number.isSafeInteger(cid) || cid < 3) {
        throw new UserError("guest-cid property must be greater than 2");
      }
      if (!env.host.vsock) throw new UserError("virtio-vsock-device: no host vsock backend in this build");
      return new VirtioVsock({
        id,
        guestCid: cid,
        udsPath: path,
        backend: env.host.vsock(path),
        ...env.common,
      });
    }
    case "vhost-vsock-device":
      // Driving /dev/vhost-vsock needs its ioctls (FFI), which this build does not do.
      throw new UserError(
        "vhost-vsock-device: kernel vhost is not supported by microvm.ts; " +
          "use -device virtio-vsock-device,guest-cid=N,uds-path=PATH",
      );
    default:
      return null;
  }
}
