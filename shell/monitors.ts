/**
 * Starts the monitors a VmConfig asks for (HMP on -monitor / mon:, QMP on -qmp, qtest on -qtest) on
 * their chardevs, over a MachineView of the runner.
 * @module
 */
import { MachineView } from "./machine_view.ts";
import { type MonitorHandle, startMonitor } from "./monitor_server.ts";
import type { VmRunner } from "./vm.ts";

/** Start every configured monitor; returns their handles (close them on exit). */
export function startMonitors(runner: VmRunner): MonitorHandle[] {
  const view = new MachineView(runner);
  const cfg = runner.config;
  const handles: MonitorHandle[] = [];
  for (const mon of cfg.monitors) {
    const chr = runner.chardevs.get(mon.chardev);
    if (!chr) continue;
    const mux = cfg.chardevs.find((c) => c.id === mon.chardev)?.mux ?? false;
    const kind = mon.mode === "control" ? (mon.pretty ? "qmp-pretty" : "qmp") : "hmp";
    handles.push(startMonitor(kind, view, chr, { mux }));
  }
  if (cfg.qtest) {
    const chr = runner.chardevs.get(cfg.qtest.chardev);
    if (chr) handles.push(startMonitor("qtest", view, chr, {}));
  }
  return handles;
}
