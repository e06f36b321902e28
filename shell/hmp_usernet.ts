/**
 * The user-mode network's monitor commands as QEMU 7.2 prints them (net/slirp.c hmp_hostfwd_add,
 * hmp_hostfwd_remove, hmp_info_usernet; texts from hmp-commands.hx).
 * @module
 */
import { UserError } from "../core/types.ts";
import type { MachineIface } from "./machine_iface.ts";

/** One HMP command (shell/hmp.ts's table entry). */
export interface UsernetCmd {
  name: string;
  params: string;
  help: string;
  run: (args: string, name: string) => string;
}

/** QEMU slirp_lookup: the stack named by `id`, or the first one; a string is the line to print instead. */
function lookup(m: MachineIface, id: string | undefined) {
  const stacks = m.usernets?.() ?? [];
  if (id === undefined) return stacks[0] ?? "user mode network stack not in use\n";
  if (!m.netdevIds?.().includes(id)) return `unrecognized netdev id '${id}'\n`;
  return stacks.find((s) => s.id === id) ?? "invalid device specified\n";
}

function args(a: string): string[] {
  return a.trim().split(/\s+/).filter((x) => x !== "");
}

/** hostfwd_add and hostfwd_remove. */
export function usernetCommands(m: MachineIface): UsernetCmd[] {
  return [
    {
      name: "hostfwd_add",
      params: "[netdev_id] [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport",
      help: "redirect TCP or UDP connections from host to guest (requires -net user)",
      run: (a) => {
        const w = args(a);
        if (w.length === 0 || w.length > 2) return "hostfwd_add: invalid number of arguments\n";
        const s = lookup(m, w.length === 2 ? w[0] : undefined);
        if (typeof s === "string") return s;
        try {
          s.hostfwdAdd(w[w.length - 1]);
          return "";
        } catch (e) {
          if (e instanceof UserError) return `${e.message}\n`;
          throw e;
        }
      },
    },
    {
      name: "hostfwd_remove",
      params: "[netdev_id] [tcp|udp]:[hostaddr]:hostport",
      help: "remove host-to-guest TCP or UDP redirection",
      run: (a) => {
        const w = args(a);
        if (w.length === 0 || w.length > 2) return "hostfwd_remove: invalid number of arguments\n";
        const s = lookup(m, w.length === 2 ? w[0] : undefined);
        if (typeof s === "string") return s;
        return `${s.hostfwdRemove(w[w.length - 1])}\n`;
      },
    },
  ];
}

/** `info usernet`: "Hub -1 (id):" then libslirp's connection table, per stack. */
export function infoUsernet(m: MachineIface): string {
  return (m.usernets?.() ?? []).map((s) => `Hub -1 (${s.id}):\n${s.connectionInfo()}`).join("");
}
