/**
 * Host signals as QEMU treats them: SIGTERM, SIGINT and SIGHUP print `<prog>: terminating on signal N`
 * and shut the VM down (exit 0); SIGUSR1 never opens Deno's inspector (core/host/sigusr1.ts).
 * @module
 */
import { ignoreSigusr1 } from "../core/host/sigusr1.ts";

const NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** Install the handlers; returns a function that removes them. */
export function handleTerminationSignals(
  prog: string,
  print: (line: string) => void,
  quit: () => void,
): () => void {
  const installed: [Deno.Signal, () => void][] = [];
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    const h = () => {
      print(`${prog}: terminating on signal ${NUMBERS[sig]}`);
      quit();
    };
    try {
      Deno.addSignalListener(sig, h);
      installed.push([sig, h]);
    } catch {
      // not supported on this platform
    }
  }
  return () => {
    for (const [sig, h] of installed) Deno.removeSignalListener(sig, h);
  };
}

/**
 * Keep SIGUSR1 from opening an unauthenticated debugger (needs --allow-ffi, as with -A; returns false
 * when it could not be done).
 */
export function refuseInspectorSignal(): boolean {
  return ignoreSigusr1();
}
