/**
 * The board's snapshot: the machine configuration a stream names, and the device tree keyed by device id
 * (STYLE.md §2.2), saved and loaded through the one device registry (`Microvm.devices`). Loading checks the
 * set of ids first, loads devices that drive interrupt lines before the controllers that receive them
 * (so the controllers' saved state wins), and puts every device back as it was if one refuses its state.
 * @module
 */
import { type DeviceState, StateError } from "../core/types.ts";
import type { Microvm } from "./microvm.ts";

/** The device part of a machine snapshot. */
export interface BoardState {
  version: 1;
  devices: Record<string, DeviceState>;
}

/** Interrupt controllers and per-CPU state load last: their saved levels and pending bits win. */
const LOAD_LAST: Record<string, number> = { "isa-i8259": 1, ioapic: 2, apic: 3, kvmclock: 4 };

/**
 * What a destination must match: RAM layout, vCPUs, accelerator, CPU model, devices by id and type (with
 * each transport's device), machine options. Host backends (files, sockets, paths) may differ.
 */
export function machineConfigId(vm: Microvm): Record<string, unknown> {
  const c = vm.config;
  return {
    machine: "microvm",
    ram: vm.ram.size,
    backing: vm.ram.u8.length,
    cpus: vm.ncpus,
    accel: vm.host.accel,
    cpu: [c.cpu.model, ...c.cpu.features.map((f) => `${f.on ? "+" : "-"}${f.name}`)].join(","),
    devices: vm.devices.map((d) => {
      const inner = (d as { device?: { typeName: string } | null }).device;
      return `${d.id}:${d.typeName}${inner ? `(${inner.typeName})` : ""}`;
    }).join(" "),
  };
}

/** First difference between two machine configurations, as one line, or null when equal. */
export function configMismatch(
  stream: Record<string, unknown>,
  here: Record<string, unknown>,
): string | null {
  for (const k of new Set([...Object.keys(stream), ...Object.keys(here)])) {
    const a = JSON.stringify(stream[k]), b = JSON.stringify(here[k]);
    if (a !== b) return `${k} is ${a ?? "absent"} in the stream but ${b ?? "absent"} here`;
  }
  return null;
}

/** Every registered device's state, keyed by id. */
export function saveBoardState(vm: Microvm): BoardState {
  const devices: Record<string, DeviceState> = {};
  for (const d of vm.devices) devices[d.id] = d.saveState();
  return { version: 1, devices };
}

/**
 * Load a BoardState; throws StateError (the board is then as before) on unknown, missing or bad state.
 * `rollback: false` skips the copy that puts the board back on failure (the fuzzer's resets from a state it took itself).
 */
export function loadBoardState(vm: Microvm, state: unknown, opts: { rollback?: boolean } = {}): void {
  const s = state as Partial<BoardState> | null;
  if (!s || s.version !== 1 || !s.devices || typeof s.devices !== "object") {
    throw new StateError("Invalid machine state: unsupported version or no devices");
  }
  const ids = new Set(vm.devices.map((d) => d.id));
  for (const id of Object.keys(s.devices)) {
    if (!ids.has(id)) throw new StateError(`Invalid machine state: unknown device "${id}"`);
  }
  for (const id of ids) {
    if (!(id in s.devices)) throw new StateError(`Invalid machine state: no state for device "${id}"`);
  }
  const order = [...vm.devices].sort((a, b) => (LOAD_LAST[a.typeName] ?? 0) - (LOAD_LAST[b.typeName] ?? 0));
  const before = opts.rollback === false ? null : saveBoardState(vm);
  try {
    for (const d of order) d.loadState(s.devices[d.id]);
  } catch (e) {
    if (before) { for (const d of order) d.loadState(before.devices[d.id]); }
    throw e instanceof StateError ? e : new StateError(`Invalid machine state: ${(e as Error).message}`);
  }
}
