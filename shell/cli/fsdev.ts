/**
 * -fsdev and -virtfs (QEMU 7.2 fsdev/qemu-fsdev.c, hw/9pfs/9p-local.c local_parse_opts, softmmu/vl.c).
 * `-virtfs` is sugar for an fsdev plus a 9p device; QEMU makes that device `virtio-9p-pci`, which microvm
 * cannot hold, so here it is `virtio-9p-device` (the transport microvm has).
 * @module
 */
import type { FsdevConfig } from "../../core/config.ts";
import { CliError, parseBool, parseQemuOpts } from "../options.ts";
import { last, type Pending } from "./common.ts";

const FSDEV_KEYS = [
  "fsdriver",
  "id",
  "path",
  "security_model",
  "readonly",
  "writeout",
  "fmode",
  "dmode",
  "multidevs",
  "throttling.bps-total",
  "socket",
  "sock_fd",
];
const VIRTFS_KEYS = [...FSDEV_KEYS, "mount_tag"];
const SECURITY_HINT = "Valid options are: security_model=[passthrough|mapped-xattr|mapped-file|none]\n";

function fsdevFrom(pairs: ReturnType<typeof parseQemuOpts>["pairs"], id: string | undefined): FsdevConfig {
  const driver = last(pairs, "fsdriver");
  if (id === undefined || id === "") throw new CliError("fsdev: No id specified");
  if (driver === undefined) throw new CliError("fsdev: No fsdriver specified");
  if (driver !== "local") {
    if (driver === "proxy" || driver === "synth") {
      throw new CliError(`fsdev: fsdriver ${driver} is not supported by microvm.ts (use local)`);
    }
    throw new CliError(`fsdev: fsdriver ${driver} not found`);
  }
  const sm = last(pairs, "security_model");
  if (sm === undefined) throw new CliError("security_model property not set", SECURITY_HINT);
  let model: FsdevConfig["securityModel"];
  if (sm === "passthrough" || sm === "none" || sm === "mapped-file" || sm === "mapped-xattr") model = sm;
  else if (sm === "mapped") model = "mapped-xattr";
  else throw new CliError(`invalid security_model property '${sm}'`, SECURITY_HINT);
  const path = last(pairs, "path");
  if (path === undefined || path === "") throw new CliError("path property not set");
  const ro = last(pairs, "readonly");
  return {
    id,
    driver: "local",
    path,
    securityModel: model,
    readOnly: ro === undefined ? false : parseBool("readonly", ro),
  };
}

function checkKeys(pairs: ReturnType<typeof parseQemuOpts>["pairs"], keys: readonly string[]): void {
  for (const x of pairs) if (!keys.includes(x.key)) throw new CliError(`Invalid parameter '${x.key}'`);
}

function addFsdev(p: Pending, f: FsdevConfig): void {
  const list = p.cfg.fsdevs ??= [];
  if (list.some((x) => x.id === f.id)) throw new CliError(`Duplicate ID '${f.id}' for fsdev`);
  list.push(f);
}

/** `-fsdev local,id=ID,path=DIR,security_model=MODEL[,readonly=on]`. */
export function parseFsdevOption(p: Pending, arg: string): void {
  const o = parseQemuOpts(arg, "fsdriver");
  checkKeys(o.pairs, FSDEV_KEYS);
  addFsdev(p, fsdevFrom(o.pairs, last(o.pairs, "id")));
}

/** `-virtfs local,path=DIR,mount_tag=TAG,security_model=MODEL[,id=ID][,readonly=on]`. */
export function parseVirtfsOption(p: Pending, arg: string, loc: string): void {
  const o = parseQemuOpts(arg, "fsdriver");
  checkKeys(o.pairs, VIRTFS_KEYS);
  const tag = last(o.pairs, "mount_tag");
  if (last(o.pairs, "fsdriver") === undefined || tag === undefined) {
    throw new CliError("Usage: -virtfs fsdriver,mount_tag=tag");
  }
  const id = last(o.pairs, "id") ?? tag;
  addFsdev(p, fsdevFrom(o.pairs, id));
  p.devices.push({
    loc,
    value: [
      { key: "driver", value: "virtio-9p-device", flag: false },
      { key: "fsdev", value: id, flag: false },
      { key: "mount_tag", value: tag, flag: false },
    ],
  });
}
