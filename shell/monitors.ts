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

/** Start every configured monitor; returns their handles (close them on exit). */
export function startMonitors(runner: VmRunner): MonitorHandle[] {
  const view = new MachineView(runner);
  if (runner.plugins) followMachineEvents(runner.plugins, view);
  return startConfiguredMonitors(view, runner.config, (id) => {
    const chr = runner.chardevs.get(id);
    if (!chr) throw new UserError(`Chardev '${id}' not found`);
    return chr;
  });
}
