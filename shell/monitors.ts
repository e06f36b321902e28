/**
 * Starts the monitors a VmConfig asks for (HMP on -monitor / mon:, QMP on -qmp, qtest on -qtest) on
 * their chardevs, over a MachineView of the runner.
 * @module
 */
import { UserError } from "../core/types.ts";
import { followMachineEvents } from "../plugins/loader.ts";
import { MachineView } from "./machine_view.ts";
import { type MonitorHandle, startConfiguredMonitors } from "./monitor_server.ts";
import type { VmRunner } from "./vm.ts";
import { GdbServer, type GdbTarget } from "./gdbstub/mod.ts";

/** Start every configured monitor; returns their handles (close them on exit). */
export function startMonitors(runner: VmRunner): MonitorHandle[] {
  const view = new MachineView(runner);
  const gdb = new GdbServer(gdbTarget(runner, view), runner.chardevs);
  runner.gdb = gdb;
  view.gdbserver = (dev) => gdb.monitorCommand(dev);
  if (runner.plugins) followMachineEvents(runner.plugins, view);
  return startConfiguredMonitors(view, runner.config, (id) => {
    const chr = runner.chardevs.get(id);
    if (!chr) throw new UserError(`Chardev '${id}' not found`);
    return chr;
  });
}

/** The gdbstub's view of the runner. */
function gdbTarget(runner: VmRunner, view: MachineView): GdbTarget {
  const accel = runner.accel;
  return {
    machine: view,
    accel,
    ncpus: accel ? Math.max(1, runner.config.smp.cpus) : 0,
    get lastDebug() {
      return runner.lastDebug;
    },
    stop: () => runner.stop(),
    resume: () => runner.cont(),
    kill: () => {
      Deno.stderr.writeSync(new TextEncoder().encode("microvm.ts: QEMU: Terminated via GDBstub\n"));
      // Let the reply ("OK" to vKill) reach gdb before the process exits.
      setTimeout(() => runner.quit(0), 100);
    },
  };
}
