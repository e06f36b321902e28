/**
 * The QOM types this board implements, with QEMU 7.2's names, parents and abstract flags, as
 * `qom-list-types` reports them. Board-built types are listed here; `-device` types come from the device
 * registry (`DeviceInfo.qomParent`, default by bus), so a device that registers appears here too.
 * Abstract ancestors are listed only when something concrete descends from them.
 * @module
 */
import type { DeviceRegistry } from "../core/config.ts";

/** One qom-list-types entry (QAPI ObjectTypeInfo). */
export interface QomTypeInfo {
  name: string;
  parent?: string;
  abstract?: boolean;
}

const A = true;
/** Ancestors (abstract) and what the board builds itself, with QEMU 7.2's parents. */
const BOARD_TYPES: readonly (readonly [string, string | undefined, boolean?])[] = [
  ["object", undefined, A],
  ["device", "object", A],
  ["sys-bus-device", "device", A],
  ["isa-device", "device", A],
  ["virtio-device", "device", A],
  ["virtio-serial-port", "device", A],
  ["vhost-vsock-common", "virtio-device", A],
  ["cpu", "device", A],
  ["x86_64-cpu", "cpu", A],
  ["machine", "object", A],
  ["x86-machine", "machine", A],
  ["bus", "object", A],
  ["virtio-bus", "bus", A],
  ["pic-common", "isa-device", A],
  ["pit-common", "isa-device", A],
  ["ioapic-common", "sys-bus-device", A],
  ["apic-common", "device", A],
  ["fw_cfg", "sys-bus-device", A],
  ["container", "object"],
  ["microvm-machine", "x86-machine"],
  ["isa-serial", "isa-device"],
  ["mc146818rtc", "isa-device"],
  ["isa-i8259", "pic-common"],
  ["kvm-i8259", "pic-common"],
  ["isa-pit", "pit-common"],
  ["ioapic", "ioapic-common"],
  ["kvm-ioapic", "ioapic-common"],
  ["apic", "apic-common"],
  ["kvm-apic", "apic-common"],
  ["kvmclock", "sys-bus-device"],
  ["fw_cfg_io", "fw_cfg"],
  ["virtio-mmio", "sys-bus-device"],
  ["System", "bus"],
  ["ISA", "bus"],
  ["virtio-mmio-bus", "virtio-bus"],
  ["virtio-serial-bus", "bus"],
  // -cpu models (shell/cli/help.ts CPU_MODELS): <model>-x86_64-cpu.
  ["base-x86_64-cpu", "x86_64-cpu"],
  ["kvm64-x86_64-cpu", "x86_64-cpu"],
  ["max-x86_64-cpu", "x86_64-cpu"],
  ["qemu64-x86_64-cpu", "x86_64-cpu"],
  ["host-x86_64-cpu", "max-x86_64-cpu"],
];

/** Default QOM parent of a -device type by the bus it plugs into. */
function parentByBus(bus: string | undefined): string {
  if (bus === "virtio-bus") return "virtio-device";
  if (bus === "virtio-serial-bus") return "virtio-serial-port";
  if (bus === "System") return "sys-bus-device";
  if (bus === "ISA") return "isa-device";
  return "device";
}

/** Every implemented type (board + registry), abstract ancestors included, in name order. */
export function qomTypes(registry: DeviceRegistry): QomTypeInfo[] {
  const all = new Map<string, QomTypeInfo>();
  for (const [name, parent, abstract] of BOARD_TYPES) {
    all.set(name, { name, ...(parent ? { parent } : {}), ...(abstract ? { abstract: true } : {}) });
  }
  for (const d of registry) {
    all.set(d.driver, { name: d.driver, parent: d.qomParent ?? parentByBus(d.bus) });
  }
  // Keep abstract types only where a concrete type descends from them.
  const used = new Set<string>();
  for (const t of all.values()) {
    if (t.abstract) continue;
    for (let n: string | undefined = t.name; n && !used.has(n); n = all.get(n)?.parent) used.add(n);
  }
  return [...all.values()].filter((t) => used.has(t.name)).sort((a, b) => a.name < b.name ? -1 : 1);
}

/**
 * qmp_qom_list_types: `implements` keeps the types that are (or descend from) it; abstract types only with
 * `abstract: true`. QEMU answers "Class 'X' not found"-free: an unknown name gives an empty list.
 */
export function qomListTypes(
  registry: DeviceRegistry,
  opts: { implements?: string; abstract?: boolean } = {},
): QomTypeInfo[] {
  const types = qomTypes(registry);
  const byName = new Map(types.map((t) => [t.name, t]));
  const isA = (name: string, want: string): boolean => {
    for (let n: string | undefined = name; n; n = byName.get(n)?.parent) if (n === want) return true;
    return false;
  };
  return types.filter((t) =>
    (opts.abstract || !t.abstract) && (opts.implements === undefined || isA(t.name, opts.implements))
  );
}
