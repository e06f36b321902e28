/**
 * trace: log accesses of chosen regions as QEMU-trace-like lines (trace-events memory_region_ops_read /
 * memory_region_ops_write, "log" backend), to a file or the console.
 *
 * `-plugin trace,regions=serial0:rtc,file=io.trace` — `regions` are region names or device ids separated
 * by ':' (default: every I/O and MMIO access); `space` is io, memory or both.
 * Line: `@<virtual ns>:memory_region_ops_write cpu 0 addr 0x3 value 0x80 size 1 name 'serial' space io`
 * @module
 */
import { UserError } from "../core/types.ts";
import type { IoEvent, Plugin, PluginContext, PluginSpace } from "./api.ts";

/** Lines buffered before a write to the file. */
const FLUSH_LINES = 256;

/** Format one access as a QEMU trace line. */
export function traceLine(ev: IoEvent): string {
  const op = ev.dir === "read" ? "memory_region_ops_read" : "memory_region_ops_write";
  return `@${ev.timeNs}:${op} cpu ${ev.vcpu} addr 0x${ev.offset.toString(16)} value 0x${
    ev.value.toString(16)
  } size ${ev.size} name '${ev.region}' space ${ev.space} at 0x${ev.addr.toString(16)}\n`;
}

/** The trace plugin. */
export const plugin: Plugin = {
  name: "trace",
  description: "log accesses of chosen regions as QEMU trace lines",
  args: {
    regions: { type: "string", default: "", help: "region names or device ids, ':'-separated (default all)" },
    space: { type: "string", default: "both", help: "io, memory or both" },
    file: { type: "string", default: "", help: "output file (default: the console)" },
  },
  setup(ctx: PluginContext) {
    const space = String(ctx.args.space);
    if (!["io", "memory", "both"].includes(space)) {
      throw new UserError(`Plugin "trace": argument "space" must be io, memory or both, got "${space}"`);
    }
    const names = String(ctx.args.regions).split(":").filter((s) => s);
    const path = String(ctx.args.file);
    const file = path ? Deno.openSync(path, { write: true, create: true, truncate: true }) : null;
    const enc = new TextEncoder();
    let buf: string[] = [];
    const flush = () => {
      if (buf.length === 0) return;
      const text = buf.join("");
      buf = [];
      if (file) file.writeSync(enc.encode(text));
      else ctx.print(text);
    };
    const onEv = (ev: IoEvent) => {
      buf.push(traceLine(ev));
      if (buf.length >= FLUSH_LINES) flush();
    };
    const spaces: PluginSpace[] = space === "both" ? ["io", "memory"] : [space as PluginSpace];
    for (const sp of spaces) {
      let regions = names;
      if (names.length && space === "both") {
        // A name may exist in one space only: keep those that resolve here.
        const present = ctx.regions(sp);
        regions = names.filter((n) => present.some((r) => r.name === n || r.owner === n));
        if (regions.length === 0) continue;
      }
      const filter = regions.length ? { regions } : {};
      if (sp === "io") ctx.onIo(filter, onEv);
      else ctx.onMmio(filter, onEv);
    }
    ctx.addMonitorCommand("trace-flush", "flush the trace plugin's buffer", () => {
      flush();
      return "";
    });
    ctx.on("stop", flush);
    ctx.on("shutdown", flush);
    ctx.onUnload(() => {
      flush();
      file?.close();
    });
  },
};
