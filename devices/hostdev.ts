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

/** What the host-integration devices need from the board's host. */
export interface HostDevHost {
  fsdev?(id: string): FsBackend;
}

/** The board's resources a host-integration device may use. */
export interface HostDevEnv {
  host: HostDevHost;
  clock: Clock;
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
];

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
    default:
      return null;
  }
}
