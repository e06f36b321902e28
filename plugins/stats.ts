/**
 * stats: count accesses per region (reads, writes, bytes) in both address spaces; prints a table when
 * unloaded (VM exit) and answers the monitor command `stats`.
 * @module
 */
import type { IoEvent, Plugin, PluginContext, PluginSpace } from "./api.ts";

/** Counters of one region instance (keyed by its start address in its space). */
export interface RegionCounts {
  space: PluginSpace;
  region: string;
  owner: string;
  start: number;
  reads: number;
  writes: number;
  bytes: number;
}

/** Render counters as a table, busiest first. */
export function formatStats(rows: readonly RegionCounts[]): string {
  const sorted = [...rows].sort((a, b) => b.reads + b.writes - (a.reads + a.writes) || a.start - b.start);
  let s =
    "space   start              region           owner                       reads     writes      bytes\n";
  for (const r of sorted) {
    s += `${r.space.padEnd(7)} 0x${r.start.toString(16).padStart(16, "0")} ${r.region.padEnd(16)} ${
      r.owner.padEnd(24)
    } ${String(r.reads).padStart(10)} ${String(r.writes).padStart(10)} ${String(r.bytes).padStart(10)}\n`;
  }
  if (sorted.length === 0) s += "(no accesses)\n";
  return s;
}

/** The stats plugin. */
export const plugin: Plugin = {
  name: "stats",
  description: "count port/MMIO accesses per region",
  args: {
    quiet: { type: "bool", default: false, help: "do not print the table at exit" },
  },
  setup(ctx: PluginContext) {
    const tables: Record<PluginSpace, Map<number, RegionCounts>> = { io: new Map(), memory: new Map() };
    const count = (ev: IoEvent) => {
      const start = ev.addr - ev.offset;
      const t = tables[ev.space];
      let c = t.get(start);
      if (c === undefined || c.region !== ev.region) {
        c = {
          space: ev.space,
          region: ev.region,
          owner: ev.owner ?? "",
          start,
          reads: 0,
          writes: 0,
          bytes: 0,
        };
        t.set(start, c);
      }
      if (ev.dir === "read") c.reads++;
      else c.writes++;
      c.bytes += ev.size;
    };
    ctx.onIo({}, count);
    ctx.onMmio({}, count);
    const rows = () => [...tables.io.values(), ...tables.memory.values()];
    ctx.addMonitorCommand(
      "stats",
      "accesses per region since the plugin was loaded",
      () => formatStats(rows()),
    );
    ctx.onUnload(() => {
      if (!ctx.args.quiet) ctx.print(formatStats(rows()));
    });
  },
};
