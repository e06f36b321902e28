/**
 * Post-loop phases for host backends and devices: chardevs (with the -serial/-monitor/-qmp/-qtest
 * sugar), -netdev/-nic, -drive and -device, each error prefixed with the location it was written at.
 * @module
 */
import {
  type ChardevBackendConfig,
  type ChardevConfig,
  type DeviceConfig,
  type DeviceInfo,
  type DeviceRegistry,
  type DriveConfig,
  type NetdevConfig,
  type VmConfig,
} from "../../core/config.ts";
import type { PropDef } from "../../core/types.ts";
import { parseSlirpOptions } from "../../core/host/slirp_config.ts";
import {
  CliError,
  type OptPair,
  parseBool,
  parseI64,
  parseOnOffAuto,
  parseQemuOpts,
  parseSize,
  parseU64,
  validateOpts,
  withLocation,
} from "../options.ts";
import { CHARDEV_OPTS, last, type Located, MON_OPTS, type Pending } from "./common.ts";
/** -drive keys we honour (QEMU accepts many more block-layer options). */
export const DRIVE_KEYS = (
  "id file format if readonly read-only snapshot cache cache.direct cache.no-flush aio " +
  "discard detect-zeroes serial index media werror rerror"
).split(" ");

/** Per-type -netdev keys (QEMU 7.2 qapi/net.json), `id`/`type` excluded. */
export const NETDEV_KEYS: Record<NetdevConfig["type"], readonly string[]> = {
  tap: (
    "ifname fd fds script downscript br helper sndbuf vnet_hdr vhost vhostfd vhostfds " +
    "vhostforce queues poll-us"
  ).split(" "),
  socket: ["fd", "listen", "connect", "mcast", "localaddr", "udp"],
  user: (
    "hostname restrict ipv4 ipv6 ip net host tftp bootfile dhcpstart dns dnssearch domainname " +
    "ipv6-net ipv6-prefix ipv6-prefixlen ipv6-host ipv6-dns smb smbserver hostfwd guestfwd " +
    "tftp-server-name"
  ).split(" "),
};
/** -netdev user keys that may be given several times (QEMU's StringList members). */
export const NETDEV_USER_LISTS = ["hostfwd", "guestfwd", "dnssearch"];
/** QEMU 7.2 netdev types we do not build. */
export const NETDEV_OTHER_TYPES = (
  "none nic l2tpv3 vde bridge hubport netmap vhost-user vhost-vdpa vmnet-host vmnet-shared " +
  "vmnet-bridged stream dgram"
).split(" ");

/** Desugar -serial/-monitor/-qmp/-qtest specs into chardevs (qemu_chr_parse_compat) and check all chardevs. */
export function buildCharBackends(p: Pending): void {
  const cfg = p.cfg;
  // qemu_disable_default_devices / qemu_create_default_devices
  const explicitMonitor = p.monitors.length > 0 || p.monOpts.length > 0 ||
    p.serials.some((s) => s.value.startsWith("mon:"));
  const defaultSerial = !cfg.noDefaults && p.serials.length === 0;
  const defaultMonitor = !cfg.noDefaults && !explicitMonitor;
  // No graphical console exists here: only an explicit `-display none` sends the defaults to null (QEMU's vc).
  const toStdio = cfg.nographic || cfg.display === "default";
  if (toStdio) {
    if (defaultSerial && defaultMonitor) p.serials.push({ loc: "", value: "mon:stdio" });
    else {
      if (defaultSerial) p.serials.push({ loc: "", value: "stdio" });
      if (defaultMonitor) {
        p.monitors.push({ loc: "", value: { spec: "stdio", mode: "readline", pretty: false } });
      }
    }
  } else {
    if (defaultSerial) p.serials.push({ loc: "", value: "null" });
    if (defaultMonitor) {
      p.monitors.push({ loc: "", value: { spec: "null", mode: "readline", pretty: false } });
    }
  }

  // -chardev objects first (they were created before the sugar in QEMU too).
  for (const c of p.chardevs) {
    try {
      addChardev(cfg, chardevFromOpts(c.value, false));
    } catch (e) {
      throw withLocation(c.loc, e);
    }
  }
  let monIndex = 0;
  for (const m of p.monitors) {
    if (m.value.spec === "none") continue;
    try {
      let chardev: string;
      if (m.value.spec.startsWith("chardev:")) {
        chardev = m.value.spec.slice(8);
      } else {
        chardev = `compat_monitor${monIndex}`;
        addChardev(cfg, chardevFromOpts(compatSpec(m.value.spec, chardev), true));
      }
      monIndex++;
      cfg.monitors.push({ mode: m.value.mode, chardev, pretty: m.value.pretty });
    } catch (e) {
      throw m.loc ? withLocation(m.loc, e) : e;
    }
  }
  for (const m of p.monOpts) {
    try {
      const v = validateOpts(m.value, MON_OPTS);
      const chardev = v.get("chardev") as string | undefined;
      if (chardev === undefined) throw new CliError("Parameter 'chardev' is missing");
      const mode = (v.get("mode") as string | undefined) ?? "readline";
      if (mode !== "readline" && mode !== "control") {
        throw new CliError(`Parameter 'mode' does not accept value '${mode}'`);
      }
      cfg.monitors.push({ mode, chardev, pretty: (v.get("pretty") as boolean | undefined) ?? false });
    } catch (e) {
      throw withLocation(m.loc, e);
    }
  }
  p.serials.forEach((s, index) => {
    try {
      if (s.value === "none") {
        cfg.serials.push({ chardev: null });
        return;
      }
      if (s.value.startsWith("chardev:")) {
        cfg.serials.push({ chardev: s.value.slice(8) });
        return;
      }
      const label = `serial${index}`;
      let spec = s.value;
      let mux = false;
      if (spec.startsWith("mon:")) {
        spec = spec.slice(4);
        mux = true;
      }
      const c = chardevFromOpts(compatSpec(spec, label), true);
      if (mux) {
        c.mux = true;
        cfg.monitors.push({ mode: "readline", chardev: label, pretty: false });
      }
      addChardev(cfg, c);
      cfg.serials.push({ chardev: label });
    } catch (e) {
      throw s.loc ? withLocation(s.loc, e) : e;
    }
  });
  if (p.qtest !== undefined) {
    try {
      addChardev(cfg, chardevFromOpts(compatSpec(p.qtest, "qtest"), true));
    } catch (e) {
      throw withLocation(`-qtest ${p.qtest}`, e);
    }
    cfg.qtest = p.qtestLog !== undefined ? { chardev: "qtest", log: p.qtestLog } : { chardev: "qtest" };
  }
  // Front ends must name an existing chardev (qemu_chr_find / monitor_init_opts).
  const ids = new Set(cfg.chardevs.map((c) => c.id));
  for (const m of cfg.monitors) {
    if (!ids.has(m.chardev)) throw new CliError(`chardev "${m.chardev}" not found`);
  }
  for (const s of cfg.serials) {
    if (s.chardev !== null && !ids.has(s.chardev)) {
      throw new CliError(`could not connect serial device to character backend 'chardev:${s.chardev}'`);
    }
  }
}

/** Add a chardev, refusing a second stdio user (char-stdio.c) and duplicate ids (qemu_opts_create). */
export function addChardev(cfg: VmConfig, c: ChardevConfig): void {
  if (cfg.chardevs.some((x) => x.id === c.id)) throw new CliError(`Duplicate ID '${c.id}' for chardev`);
  if (c.backend.kind === "stdio" && cfg.chardevs.some((x) => x.backend.kind === "stdio")) {
    throw new CliError("cannot use stdio by multiple character devices");
  }
  cfg.chardevs.push(c);
}

/** qemu_chr_parse_compat: legacy chardev specs of -serial/-monitor/-qmp/-qtest → chardev option pairs. */
export function compatSpec(spec: string, id: string): OptPair[] {
  const pairs: OptPair[] = [{ key: "id", value: id, flag: false }];
  const set = (key: string, value: string) => pairs.push({ key, value, flag: false });
  if (["null", "pty", "stdio"].includes(spec)) {
    set("backend", spec);
    return pairs;
  }
  if (spec.startsWith("file:")) {
    set("backend", "file");
    set("path", spec.slice(5));
    return pairs;
  }
  if (spec.startsWith("pipe:")) {
    set("backend", "pipe");
    set("path", spec.slice(5));
    return pairs;
  }
  const tcp = /^(tcp|telnet):/.exec(spec);
  if (tcp) {
    const rest = spec.slice(tcp[0].length);
    const m = /^([^:]{0,64}):([^,]{1,32})/.exec(rest);
    if (!m) throw new CliError(`'${spec}' is not a valid char driver`);
    set("backend", "socket");
    set("host", m[1]);
    set("port", m[2]);
    const tail = rest.slice(m[0].length);
    if (tail.startsWith(",")) pairs.push(...parseQemuOpts(tail.slice(1)).pairs);
    if (tcp[1] === "telnet") set("telnet", "on");
    validateOpts(pairs, CHARDEV_OPTS);
    return pairs;
  }
  if (spec.startsWith("unix:")) {
    set("backend", "socket");
    pairs.push(...parseQemuOpts(spec.slice(5), "path").pairs);
    validateOpts(pairs, CHARDEV_OPTS);
    return pairs;
  }
  throw new CliError(`'${spec}' is not a valid char driver`);
}

/** Build a ChardevConfig from validated chardev options (qemu_chr_new_from_opts + the backends' parse). */
export function chardevFromOpts(pairs: readonly OptPair[], implicit: boolean): ChardevConfig {
  const v = validateOpts(pairs, CHARDEV_OPTS);
  const id = last(pairs, "id");
  const backendName = v.get("backend") as string | undefined;
  if (id === undefined) throw new CliError("chardev: no id specified");
  if (backendName === undefined) throw new CliError(`chardev: "${id}" missing backend`);
  const bool = (k: string, d: boolean) => (v.get(k) as boolean | undefined) ?? d;
  const str = (k: string) => v.get(k) as string | undefined;
  let backend: ChardevBackendConfig;
  switch (backendName) {
    case "stdio":
      backend = { kind: "stdio", signal: bool("signal", true) };
      break;
    case "null":
      backend = { kind: "null" };
      break;
    case "pty":
      backend = { kind: "pty" };
      break;
    case "file": {
      const path = str("path");
      if (path === undefined) throw new CliError("chardev: file: no filename given");
      backend = { kind: "file", path, append: bool("append", false) };
      break;
    }
    case "pipe": {
      const path = str("path");
      if (path === undefined) throw new CliError("chardev: pipe: no filename given");
      backend = { kind: "pipe", path };
      break;
    }
    case "socket": {
      const path = str("path");
      const host = str("host");
      const port = str("port");
      const fd = str("fd");
      const n = Number(path !== undefined) + Number(host !== undefined) + Number(fd !== undefined);
      if (n !== 1) throw new CliError("None or one of 'path', 'fd' or 'host' option required.");
      if (fd !== undefined) throw new CliError("chardev: socket: fd= is not supported");
      if (host !== undefined && port === undefined) throw new CliError("chardev: socket: no port given");
      if (v.has("delay") && v.has("nodelay")) {
        throw new CliError("'delay' and 'nodelay' are mutually exclusive");
      }
      const server = bool("server", false);
      const reconnect = Number((v.get("reconnect") as bigint | undefined) ?? 0n);
      if (server && v.has("reconnect")) {
        throw new CliError("'reconnect' option is incompatible with socket in server listen mode");
      }
      if (!server && v.has("wait")) {
        throw new CliError("'wait' option is incompatible with socket in client connect mode");
      }
      backend = {
        kind: "socket",
        ...(path !== undefined ? { path } : { host: host!, port: port! }),
        server,
        wait: bool("wait", true),
        nodelay: bool("nodelay", false) || !bool("delay", true),
        telnet: bool("telnet", false),
        reconnect,
      };
      break;
    }
    default:
      // QEMU's other backends (vc, udp, serial, ringbuf, ...) are not built here.
      throw new CliError(`'${backendName}' is not a valid char driver name`);
  }
  const c: ChardevConfig = {
    id,
    backend,
    mux: bool("mux", false),
    logappend: bool("logappend", false),
    implicit,
  };
  const logfile = str("logfile");
  if (logfile !== undefined) c.logfile = logfile;
  return c;
}

/** net_init_clients: -netdev and -nic (net/net.c). */
export function applyNetdevs(p: Pending): void {
  const cfg = p.cfg;
  const nets: Located<OptPair[]>[] = [...p.netdevs];
  p.nics.forEach((n, idx) => {
    const type = last(n.value, "type");
    if (type === "none") return;
    // QEMU net_param_nic: a -nic without a type is user-mode networking.
    if (type === undefined) {
      n = { loc: n.loc, value: [{ key: "type", value: "user", flag: false }, ...n.value] };
    }
    const id = `__org.qemu.nic${idx}`;
    const model = last(n.value, "model") ?? "virtio-net-device";
    const mac = last(n.value, "mac");
    nets.push({
      loc: n.loc,
      value: [...n.value.filter((x) => x.key !== "model" && x.key !== "mac"), {
        key: "id",
        value: id,
        flag: false,
      }],
    });
    const props: OptPair[] = [{ key: "driver", value: model, flag: false }, {
      key: "netdev",
      value: id,
      flag: false,
    }];
    if (mac !== undefined) props.push({ key: "mac", value: mac, flag: false });
    p.devices.push({ loc: n.loc, value: props });
  });
  for (const n of nets) {
    try {
      const type = last(n.value, "type");
      if (type === undefined) throw new CliError("Parameter 'type' is missing");
      if (type !== "tap" && type !== "socket" && type !== "user") {
        if (NETDEV_OTHER_TYPES.includes(type)) {
          throw new CliError(`network backend '${type}' is not compiled into this binary`);
        }
        throw new CliError(`Parameter 'type' does not accept value '${type}'`);
      }
      const id = last(n.value, "id");
      if (id === undefined) throw new CliError("Parameter 'id' is missing");
      const props: Record<string, string> = {};
      const lists: Record<string, string[]> = {};
      for (const x of n.value) {
        if (x.key === "id" || x.key === "type") continue;
        if (!NETDEV_KEYS[type].includes(x.key)) throw new CliError(`Invalid parameter '${x.key}'`);
        props[x.key] = x.value;
        if (type === "user" && NETDEV_USER_LISTS.includes(x.key)) (lists[x.key] ??= []).push(x.value);
      }
      if (type === "tap") {
        for (const k of ["vnet_hdr", "vhost", "vhostforce"]) if (k in props) parseBool(k, props[k]);
      }
      if (type === "socket") {
        const n2 = ["fd", "listen", "connect", "mcast", "udp"].filter((k) => k in props).length;
        if (n2 !== 1) {
          throw new CliError("exactly one of listen=, connect=, mcast= or udp= is required");
        }
      }
      if (type === "user") {
        // Options checked before anything opens, with QEMU's messages (net_slirp_init).
        parseSlirpOptions(props, lists);
        cfg.netdevs.push({ id, type, props, lists, loc: n.loc });
      } else cfg.netdevs.push({ id, type, props });
    } catch (e) {
      throw withLocation(n.loc, e);
    }
  }
}

export const CACHE_MODES: Record<string, DriveConfig["cache"]> = {
  writeback: { writeback: true, direct: false, noFlush: false },
  none: { writeback: true, direct: true, noFlush: false },
  off: { writeback: true, direct: true, noFlush: false },
  writethrough: { writeback: false, direct: false, noFlush: false },
  directsync: { writeback: false, direct: true, noFlush: false },
  unsafe: { writeback: true, direct: false, noFlush: true },
};

/** drive_new / blockdev_init for the keys we honour (blockdev.c). */
export function applyDrives(p: Pending): void {
  const cfg = p.cfg;
  p.drives.forEach((d, index) => {
    try {
      const format = last(d.value, "format");
      for (const x of d.value) {
        if (!DRIVE_KEYS.includes(x.key)) {
          throw new CliError(`Block format '${format ?? "raw"}' does not support the option '${x.key}'`);
        }
      }
      const iface = last(d.value, "if") ?? "ide";
      if (!["none", "virtio", "ide", "scsi", "floppy", "pflash", "mtd", "sd", "xen"].includes(iface)) {
        throw new CliError(`unsupported bus type '${iface}'`);
      }
      if (iface !== "none" && iface !== "virtio") {
        throw new CliError(`machine type does not support if=${iface},bus=0,unit=0`);
      }
      if (format !== undefined && format !== "raw" && format !== "qcow2") {
        throw new CliError(`Unknown driver '${format}'`);
      }
      const ro = last(d.value, "read-only") ?? last(d.value, "readonly");
      const snapshot = last(d.value, "snapshot");
      const cache = last(d.value, "cache") ?? "writeback";
      const aio = last(d.value, "aio") ?? "threads";
      const discard = last(d.value, "discard") ?? "ignore";
      const dz = last(d.value, "detect-zeroes") ?? "off";
      const cacheMode = CACHE_MODES[cache];
      if (!cacheMode) throw new CliError("invalid cache option");
      const c = { ...cacheMode };
      const cd = last(d.value, "cache.direct");
      if (cd !== undefined) c.direct = parseBool("cache.direct", cd);
      const cn = last(d.value, "cache.no-flush");
      if (cn !== undefined) c.noFlush = parseBool("cache.no-flush", cn);
      if (aio !== "threads" && aio !== "native" && aio !== "io_uring") {
        throw new CliError("invalid aio option");
      }
      if (aio === "native" && !c.direct) {
        throw new CliError(
          "aio=native was specified, but it requires cache.direct=on, which was not specified.",
        );
      }
      let disc: DriveConfig["discard"];
      if (discard === "ignore" || discard === "off") disc = "ignore";
      else if (discard === "unmap" || discard === "on") disc = "unmap";
      else throw new CliError("Invalid discard option");
      if (dz !== "off" && dz !== "on" && dz !== "unmap") {
        throw new CliError(`Parameter 'detect-zeroes' does not accept value '${dz}'`);
      }
      if (dz === "unmap" && disc !== "unmap") {
        throw new CliError(
          "setting detect-zeroes to unmap is not allowed without setting discard operation to unmap",
        );
      }
      const id = last(d.value, "id") ?? `${iface}${index}`;
      const props: Record<string, string> = {};
      for (const x of d.value) if (x.key !== "id") props[x.key] = x.value;
      const drive: DriveConfig = {
        id,
        file: last(d.value, "file") ?? "",
        interface: iface,
        readOnly: ro !== undefined ? parseBool("read-only", ro) : false,
        snapshot: snapshot !== undefined ? parseBool("snapshot", snapshot) : p.snapshot,
        cache: c,
        aio,
        discard: disc,
        detectZeroes: dz,
        props,
      };
      if (format !== undefined) drive.format = format;
      const serial = last(d.value, "serial");
      if (serial !== undefined) drive.serial = serial;
      cfg.drives.push(drive);
      if (iface === "virtio") {
        p.devices.push({
          loc: d.loc,
          value: [{ key: "driver", value: "virtio-blk-device", flag: false }, {
            key: "drive",
            value: id,
            flag: false,
          }],
        });
      }
    } catch (e) {
      throw withLocation(d.loc, e);
    }
  });
}

/** Check one -device property value against its PropDef (keyval input visitor messages). */
export function checkPropValue(def: PropDef, value: string): void {
  const name = def.name;
  const uint = (max: bigint, type: string) => {
    const r = parseU64(value);
    if (!r.ok) throw new CliError(`Parameter '${name}' expects integer`);
    if (r.value > max) throw new CliError(`Parameter '${name}' expects ${type}`);
  };
  switch (def.type) {
    case "bool":
      parseBool(name, value);
      return;
    case "uint8":
      return uint(0xffn, "uint8_t");
    case "uint16":
      return uint(0xffffn, "uint16_t");
    case "uint32":
      return uint(0xffffffffn, "uint32_t");
    case "uint64":
      return uint((1n << 64n) - 1n, "uint64_t");
    case "int32": {
      const r = parseI64(value);
      if (!r.ok) throw new CliError(`Parameter '${name}' expects integer`);
      if (r.value > 0x7fffffffn || r.value < -0x80000000n) {
        throw new CliError(`Parameter '${name}' expects int32_t`);
      }
      return;
    }
    case "size":
      if (!parseSize(value).ok) throw new CliError(`Parameter '${name}' expects size`);
      return;
    case "OnOffAuto":
      parseOnOffAuto(name, value);
      return;
    default:
      return;
  }
}

/** qemu_create_cli_devices → qdev_device_add for each -device (and -nic / if=virtio sugar). */
export function applyDevices(p: Pending, registry: DeviceRegistry | undefined): void {
  const cfg = p.cfg;
  const driveUsers = new Set<string>();
  const netdevUsers = new Set<string>();
  const chardevIds = new Set(cfg.chardevs.map((c) => c.id));
  for (const d of p.devices) {
    try {
      const driver = last(d.value, "driver");
      if (driver === undefined) throw new CliError("Parameter 'driver' is missing");
      let info: DeviceInfo | undefined;
      if (registry) {
        info = registry.find((x) => x.driver === driver);
        if (!info) throw new CliError(`'${driver}' is not a valid device model name`);
      }
      const dev: DeviceConfig = { driver, props: {} };
      for (const x of d.value) {
        if (x.key === "driver") continue;
        if (x.key === "id") {
          dev.id = x.value;
          continue;
        }
        let def: PropDef | undefined;
        if (info) {
          def = info.props.find((pd) => pd.name === x.key);
          if (!def) throw new CliError(`Property '${driver}.${x.key}' not found`);
          if (def.type === "macaddr" && !/^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}$/.test(x.value)) {
            throw new CliError(`Property '${driver}.${x.key}' doesn't take value '${x.value}'`);
          }
          checkPropValue(def, x.value);
        }
        const kind = def?.type ?? (["drive", "netdev", "chardev"].includes(x.key) ? x.key : undefined);
        if (kind === "drive") {
          const drive = cfg.drives.find((dr) => dr.id === x.value);
          if (!drive) throw new CliError(`Property '${driver}.${x.key}' can't find value '${x.value}'`);
          if (driveUsers.has(x.value)) {
            throw new CliError(`Drive '${x.value}' is already in use by another device`);
          }
          if (drive.file === "") throw new CliError("Device needs media, but drive is empty");
          driveUsers.add(x.value);
        } else if (kind === "netdev") {
          if (!cfg.netdevs.some((n) => n.id === x.value)) {
            throw new CliError(`Property '${driver}.${x.key}' can't find value '${x.value}'`);
          }
          if (netdevUsers.has(x.value)) {
            throw new CliError(`Property '${driver}.${x.key}' can't take value '${x.value}', it's in use`);
          }
          netdevUsers.add(x.value);
        } else if (kind === "chr" || kind === "chardev") {
          if (!chardevIds.has(x.value)) {
            throw new CliError(`Property '${driver}.${x.key}' can't find value '${x.value}'`);
          }
        }
        dev.props[x.key] = x.value;
      }
      cfg.devices.push(dev);
    } catch (e) {
      throw withLocation(d.loc, e);
    }
  }
}
