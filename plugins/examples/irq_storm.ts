/**
 * Example plugin: pulse a GSI every `period` ns of virtual time (to test interrupt handling under load).
 * `-plugin plugins/examples/irq_storm.ts,gsi=10,period=1000000`
 * @module
 */
import type { Plugin } from "../api.ts";

/** The irq-storm example plugin. */
export const plugin: Plugin = {
  name: "irq-storm",
  description: "pulse a GSI periodically on the virtual clock (example)",
  args: {
    gsi: { type: "number", default: 10, help: "GSI to pulse" },
    period: { type: "number", default: 1_000_000, help: "period in virtual ns" },
  },
  setup(ctx) {
    const gsi = Number(ctx.args.gsi);
    const period = Math.max(1000, Number(ctx.args.period));
    let pulses = 0;
    const t = ctx.timer(() => {
      ctx.pulseIrq(gsi);
      pulses++;
      t.armAfter(period);
    });
    ctx.on("start", () => t.armAfter(period));
    ctx.addMonitorCommand("irq-storm", "pulses so far", () => `irq-storm: ${pulses} pulses on GSI ${gsi}\n`);
  },
};
