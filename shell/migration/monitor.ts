/**
 * Monitor commands of migration, as QEMU 7.2 names and answers them: QMP `migrate`, `migrate_cancel`,
 * `query-migrate`, `migrate-set-parameters`, `query-migrate-parameters`, `migrate-set-capabilities`,
 * `query-migrate-capabilities`, `migrate-incoming`; HMP `migrate [-d] URI`, `migrate_cancel`,
 * `migrate_incoming URI`, `migrate_set_parameter NAME VALUE`, `info migrate`.
 * @module
 */
import { UserError } from "../../core/types.ts";
import type { MigrationController } from "./migrate.ts";

/** One QMP command: parameter types as shell/qmp.ts checks them, and the handler. */
export interface MigrationQmpCommand {
  params: Record<string, string>;
  run(args: Record<string, unknown>): unknown;
}

function need(mig: MigrationController | undefined): MigrationController {
  if (!mig) throw new UserError("Migration is not available in this monitor");
  return mig;
}

/** The QMP commands, by name. */
export function migrationQmpCommands(
  get: () => MigrationController | undefined,
): Record<string, MigrationQmpCommand> {
  return {
    "migrate": {
      params: { uri: "str", blk: "bool?", inc: "bool?", detach: "bool?", resume: "bool?" },
      run: (a) => {
        if (a.blk || a.inc) throw new UserError("Block migration is not supported by microvm.ts");
        need(get()).start(String(a.uri));
        return {};
      },
    },
    "migrate_cancel": { params: {}, run: () => (need(get()).cancel(), {}) },
    "query-migrate": { params: {}, run: () => need(get()).info() },
    "migrate-set-parameters": {
      params: { "downtime-limit": "int?", "max-bandwidth": "int?" },
      run: (a) => (need(get()).setParameters(a), {}),
    },
    "query-migrate-parameters": { params: {}, run: () => ({ ...need(get()).params }) },
    "migrate-set-capabilities": {
      params: { capabilities: "any" },
      run: (a) => (need(get()).setCapabilities(a.capabilities), {}),
    },
    "query-migrate-capabilities": {
      params: {},
      run: () => [...need(get()).caps].map(([capability, state]) => ({ capability, state })),
    },
    "migrate-incoming": {
      params: { uri: "str" },
      run: (a) => (need(get()).incoming(String(a.uri)), {}),
    },
  };
}

/** `info migrate` text in QEMU 7.2's layout (hmp_info_migrate). */
export function formatInfoMigrate(mig: MigrationController): string {
  const info = mig.info() as Record<string, unknown> & { ram?: Record<string, number> };
  let out = "";
  const caps = [...mig.caps].filter(([, on]) => on).map(([c]) => `${c}: on`);
  if (caps.length) out += "capabilities: " + caps.join(" ") + " \n";
  if (!info.status) return out;
  out += `Migration status: ${info.status}`;
  if (info["error-desc"]) out += ` (${info["error-desc"]})`;
  out += "\n";
  if (info["total-time"] !== undefined) out += `total time: ${info["total-time"]} ms\n`;
  if (info.downtime !== undefined) out += `downtime: ${info.downtime} ms\n`;
  if (info["setup-time"] !== undefined) out += `setup: ${info["setup-time"]} ms\n`;
  const r = info.ram;
  if (r) {
    const kb = (n: number) => `${Math.round(n / 1024)} kbytes`;
    out += `transferred ram: ${kb(r.transferred)}\n`;
    out += `throughput: ${r.mbps.toFixed(2)} mbps\n`;
    out += `remaining ram: ${kb(r.remaining)}\n`;
    out += `total ram: ${kb(r.total)}\n`;
    out += `duplicate: ${r.duplicate} pages\n`;
    out += `skipped: ${r.skipped} pages\n`;
    out += `normal: ${r.normal} pages\n`;
    out += `normal bytes: ${kb(r["normal-bytes"])}\n`;
    out += `dirty sync count: ${r["dirty-sync-count"]}\n`;
    out += `page size: ${r["page-size"] / 1024} kbytes\n`;
    out += `dirty pages rate: ${r["dirty-pages-rate"]} pages\n`;
  }
  return out;
}

/** HMP commands: name, params help, help, and a runner returning the text to print. */
export function migrationHmpCommands(
  get: () => MigrationController | undefined,
): { name: string; params: string; help: string; run: (args: string) => string }[] {
  return [
    {
      name: "migrate",
      params: "[-d] uri",
      help: "migrate to URI (using -d to not wait for completion)",
      run: (a) => {
        const words = a.trim().split(/\s+/).filter((w) => w);
        const uri = words.filter((w) => !/^-[dbi]$/.test(w))[0];
        if (!uri) throw new UserError("migrate: missing argument uri");
        if (words.includes("-b") || words.includes("-i")) {
          throw new UserError("Block migration is not supported by microvm.ts");
        }
        need(get()).start(uri);
        return "";
      },
    },
    {
      name: "migrate_cancel",
      params: "",
      help: "cancel the current VM migration",
      run: () => (need(get()).cancel(), ""),
    },
    {
      name: "migrate_incoming",
      params: "uri",
      help: "Continue an incoming migration from an -incoming defer",
      run: (a) => {
        if (!a.trim()) throw new UserError("migrate_incoming: missing argument uri");
        need(get()).incoming(a.trim());
        return "";
      },
    },
    {
      name: "migrate_set_parameter",
      params: "parameter value",
      help: "Set the parameter for migration",
      run: (a) => {
        const [name, value] = a.trim().split(/\s+/);
        if (!name || value === undefined) throw new UserError("migrate_set_parameter: missing argument");
        const n = name.replaceAll("_", "-");
        let v = Number(value);
        if (n === "max-bandwidth") {
          const m = value.match(/^(\d+(?:\.\d+)?)([kKmMgG]?)$/);
          if (!m) throw new UserError(`Parameter '${name}' expects a size`);
          // HMP sizes without a suffix are MiB/s for max-bandwidth (hmp_migrate_set_parameter).
          const mul = { "": 1 << 20, k: 1 << 10, m: 1 << 20, g: 1 << 30 }[m[2].toLowerCase()] ?? 1;
          v = Math.round(Number(m[1]) * mul);
        }
        need(get()).setParameters({ [n]: v });
        return "";
      },
    },
  ];
}
