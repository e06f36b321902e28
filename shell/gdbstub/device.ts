/**
 * The chardev behind `-gdb DEV` / HMP `gdbserver DEV` (QEMU's gdbserver_start): DEV in the compat syntax,
 * `tcp:` devices with `,wait=off,nodelay=on,server=on` appended.
 * @module
 */
import type { ChardevConfig } from "../../core/config.ts";
import { chardevFromOpts, compatSpec } from "../cli/backends.ts";

/** QEMU's DEFAULT_GDBSTUB_PORT. */
export const DEFAULT_GDBSTUB_PORT = "1234";

/** The chardev (id "gdb") a gdbserver DEV makes; throws CliError with QEMU's wording for a bad DEV. */
export function gdbChardevConfig(device: string): ChardevConfig {
  compatSpec(device, "gdb"); // errors name the device as the user wrote it
  const spec = device.startsWith("tcp:") ? `${device},wait=off,nodelay=on,server=on` : device;
  return chardevFromOpts(compatSpec(spec, "gdb"), true);
}
