/**
 * Example plugin: a POST-code port at 0x80 that remembers the last byte written and prints it; the
 * monitor command `post` shows the history. Load with `-plugin plugins/examples/port80.ts,echo=on`.
 * @module
 */
import type { Plugin } from "../api.ts";

/** The port80 example plugin. */
export const plugin: Plugin = {
  name: "port80",
  description: "POST-code port 0x80 (example)",
  args: { echo: { type: "bool", default: false, help: "print each code to the console" } },
  setup(ctx) {
    const codes: number[] = [];
    ctx.addDevice({
      name: "post",
      space: "io",
      base: 0x80,
      size: 1,
      ops: {
        read: () => codes.length ? codes[codes.length - 1] : 0xff,
        write: (_off, _size, v) => {
          codes.push(v & 0xff);
          if (codes.length > 256) codes.shift();
          if (ctx.args.echo) ctx.print(`POST 0x${(v & 0xff).toString(16).padStart(2, "0")}\n`);
        },
      },
    });
    ctx.addMonitorCommand(
      "post",
      "POST codes written to port 0x80",
      () => codes.map((c) => c.toString(16).padStart(2, "0")).join(" ") + "\n",
    );
  },
};
