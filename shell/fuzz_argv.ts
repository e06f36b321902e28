/**
 * Gives the fuzzer (plugins/fuzz/machine.ts) the QEMU command-line parser: plugins/ may not import shell/,
 * so the shell injects it. Import this module for its effect before building fuzz machines.
 * @module
 */
import { setFuzzArgvParser } from "../plugins/fuzz/machine.ts";
import { isCliAction, parseCommandLine } from "./cli/mod.ts";

setFuzzArgvParser((argv, devices) => {
  const cfg = parseCommandLine(argv, "microvm.ts", { devices });
  if (isCliAction(cfg)) throw new Error("fuzz machine command line printed help");
  return cfg;
});
