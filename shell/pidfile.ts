/**
 * -pidfile as QEMU's qemu_write_pidfile: created (or rewritten) at start-up with the PID and a newline,
 * failures are `cannot create PID file: Could not create 'F': <reason>` (exit 1), and the file is removed
 * at exit.
 * @module
 */
import { UserError } from "../core/types.ts";
import { osErrorText } from "../core/host/chardev.ts";

/** Write the PID file; returns the function that removes it. */
export function writePidfile(path: string): () => void {
  try {
    Deno.writeTextFileSync(path, `${Deno.pid}\n`);
  } catch (e) {
    throw new UserError(`cannot create PID file: Could not create '${path}': ${osErrorText(e)}`);
  }
  let done = false;
  const remove = () => {
    if (done) return;
    done = true;
    try {
      Deno.removeSync(path);
    } catch {
      // already gone
    }
  };
  globalThis.addEventListener("unload", remove);
  return remove;
}
