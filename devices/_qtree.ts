/**
 * `info qtree` rendering in QEMU 7.2's format (qdev_print / qdev_print_props): property values as
 * QEMU's property printers show them (numbers with their hex, sizes with a unit, strings quoted).
 * @module
 */
import type { PropDef } from "../core/types.ts";

/** QEMU's size_to_str: the largest binary unit that keeps at least 1, three significant digits. */
export function sizeToStr(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  if (n < 1024) return `${n} B`;
  let i = Math.floor(Math.log2(n) / 10);
  if (i >= units.length) i = units.length - 1;
  const v = n / 2 ** (10 * i);
  const s = v.toPrecision(3);
  return `${parseFloat(s) === Math.floor(v) && !s.includes(".") ? s : String(parseFloat(s))} ${units[i]}`;
}

/** One `name = value` line for a property. */
export function propLine(name: string, value: string | number | boolean, def?: PropDef): string {
  if (typeof value === "boolean") return `${name} = ${value}`;
  if (typeof value === "string") return `${name} = "${value}"`;
  if (def?.type === "size") return `${name} = ${value} (${sizeToStr(value)})`;
  const hex = value < 0 ? BigInt.asUintN(64, BigInt(value)).toString(16) : value.toString(16);
  return `${name} = ${value} (0x${hex})`;
}

/** A node of the qtree: a device with lines and child buses. */
export interface QNode {
  type: string;
  id: string;
  lines: string[];
  buses: QBus[];
}

/** A bus with its devices. */
export interface QBus {
  name: string;
  type: string;
  devices: QNode[];
}

/** Render the tree starting at a bus, as `info qtree` does. */
export function renderQtree(root: QBus): string {
  const out: string[] = [];
  const bus = (b: QBus, ind: string) => {
    out.push(`${ind}bus: ${b.name}`);
    out.push(`${ind}  type ${b.type}`);
    for (const d of b.devices) dev(d, ind + "  ");
  };
  const dev = (d: QNode, ind: string) => {
    out.push(`${ind}dev: ${d.type}, id "${d.id}"`);
    for (const l of d.lines) out.push(`${ind}  ${l}`);
    for (const b of d.buses) bus(b, ind + "  ");
  };
  bus(root, "");
  return out.join("\n") + "\n";
}

/** Property lines for values in table order (unknown names keep their order after). */
export function propLines(
  values: Record<string, string | number | boolean>,
  defs: readonly PropDef[],
): string[] {
  const byName = new Map(defs.map((d) => [d.name, d]));
  return Object.entries(values).map(([k, v]) => propLine(k, v, byName.get(k)));
}
