/**
 * microvm.ts: QEMU's microvm machine as a Deno program. Entry only: parse, build, run (shell/vm.ts).
 * @module
 */
import { main } from "./shell/vm.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
