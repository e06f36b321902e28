/**
 * Open every `-fsdev` of a configuration (QEMU opens them at start-up, used or not).
 * @module
 */
import type { VmConfig } from "../config.ts";
import type { FsBackend } from "../fsdev.ts";
import { openLocalFs } from "./fs_local.ts";

/** Open the exports; `warn` receives one line per warning. */
export function openFsdevs(cfg: VmConfig, warn: (line: string) => void): Map<string, FsBackend> {
  const out = new Map<string, FsBackend>();
  for (const f of cfg.fsdevs ?? []) {
    const { fs, warnings } = openLocalFs({
      path: f.path,
      securityModel: f.securityModel,
      readOnly: f.readOnly,
    });
    for (const w of warnings) warn(`-fsdev ${f.id}: ${w}`);
    out.set(f.id, fs);
  }
  return out;
}
