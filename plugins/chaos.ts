/**
 * chaos: perturb values a guest reads from chosen devices (seeded), to check that guest drivers and our
 * devices survive odd hardware answers. Each selected read has one random bit flipped, or is replaced by
 * all-ones / zero.
 *
 * `-plugin chaos,devices=rtc:pit,rate=0.01,seed=7`
 * @module
 */
import { UserError } from "../core/types.ts";
import type { IoEvent, Plugin, PluginContext } from "./api.ts";
import { Prng } from "./_prng.ts";

/** The chaos plugin. */
export const plugin: Plugin = {
  name: "chaos",
  description: "perturb values read from chosen devices (seeded)",
  args: {
    devices: { type: "string", default: "rtc:pit", help: "region names or device ids, ':'-separated" },
    rate: { type: "number", default: 0.01, help: "probability a read is perturbed" },
    seed: { type: "number", default: 1, help: "PRNG seed" },
    after: { type: "number", default: 0, help: "perturb only after this virtual time (ns)" },
  },
  setup(ctx: PluginContext) {
    const rng = new Prng(Number(ctx.args.seed));
    const rate = Number(ctx.args.rate);
    const after = Number(ctx.args.after);
    let perturbed = 0;
    const names = String(ctx.args.devices).split(":").filter((s) => s);
    const onEv = (ev: IoEvent) => {
      if (ev.dir !== "read" || ev.timeNs < after || !rng.chance(rate)) return;
      perturbed++;
      const how = rng.below(4);
      const mask = ev.size === 4 ? 0xffffffff : (1 << (ev.size * 8)) - 1;
      if (how === 0) ev.value = mask;
      else if (how === 1) ev.value = 0;
      else ev.value = (ev.value ^ (1 << rng.below(ev.size * 8))) & mask;
    };
    const missing = names.filter((n) =>
      !ctx.regions("io").concat(ctx.regions("memory")).some((r) => r.name === n || r.owner === n)
    );
    if (missing.length) throw new UserError(`Plugin "chaos": no region or device "${missing[0]}"`);
    for (const sp of ["io", "memory"] as const) {
      const present = ctx.regions(sp);
      const here = names.filter((n) => present.some((r) => r.name === n || r.owner === n));
      if (here.length === 0) continue;
      if (sp === "io") ctx.onIo({ regions: here }, onEv);
      else ctx.onMmio({ regions: here }, onEv);
    }
    ctx.addMonitorCommand("chaos", "reads perturbed so far", () => `chaos: ${perturbed} reads perturbed\n`);
  },
};
