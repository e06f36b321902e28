/**
 * `-s`, `-gdb DEV` and HMP `gdbserver [DEV|none]`: QEMU's gdbserver_start. DEV is a chardev in QEMU's compat
 * syntax (`tcp:[HOST]:PORT` gets `,wait=off,nodelay=on,server=on` appended, `unix:PATH,server=on[,wait=off]`,
 * `stdio`, …); one gdb server at a time, a new one replaces the old.
 * @module
 */
import type { ChardevConfig } from "../../core/config.ts";
import { type HostChar, openChardev } from "../../core/host/chardev.ts";
import { DEFAULT_GDBSTUB_PORT, gdbChardevConfig } from "./device.ts";
import { GdbStub, type GdbTarget } from "./server.ts";

export { GdbSession, GdbStub, type GdbTarget } from "./server.ts";
export { DEFAULT_GDBSTUB_PORT, gdbChardevConfig } from "./device.ts";

async function openConfigured(c: ChardevConfig): Promise<HostChar> {
  const b = c.backend;
  const spec: Record<string, unknown> = { backend: b.kind, id: c.id, mux: false };
  if (b.kind === "file") Object.assign(spec, { path: b.path, append: b.append });
  if (b.kind === "pipe") Object.assign(spec, { path: b.path });
  if (b.kind === "stdio") Object.assign(spec, { signal: b.signal });
  if (b.kind === "socket") {
    Object.assign(spec, { server: b.server, wait: b.wait });
    if (b.path !== undefined) spec.path = b.path;
    if (b.host !== undefined) spec.host = b.host;
    if (b.port !== undefined) spec.port = b.port;
  }
  return await openChardev(spec as unknown as Parameters<typeof openChardev>[0]);
}

/** The one gdb server of a VM. */
export class GdbServer {
  readonly #target: GdbTarget;
  /** Where the opened chardev is registered (`info chardev` shows "gdb"); optional. */
  readonly #chardevs: Map<string, HostChar> | null;
  #stub: GdbStub | null = null;
  #chr: HostChar | null = null;

  constructor(target: GdbTarget, chardevs: Map<string, HostChar> | null = null) {
    this.#target = target;
    this.#chardevs = chardevs;
  }

  /** The current chardev (tests: the bound port of `tcp::0`). */
  get chardev(): HostChar | null {
    return this.#chr;
  }

  /** Start serving on DEV ("none" stops); throws UserError when the chardev cannot be opened. */
  async start(device: string): Promise<void> {
    if (device === "none") return this.stop();
    const cfg = gdbChardevConfig(device);
    const chr = await openConfigured(cfg);
    this.stop();
    this.#chr = chr;
    if (this.#chardevs && !this.#chardevs.has("gdb")) this.#chardevs.set("gdb", chr);
    this.#stub = new GdbStub(this.#target, chr);
  }

  /**
   * HMP `gdbserver [DEV]`: the line QEMU prints. The device is checked now; the chardev opens in the
   * background (a failure to open is reported on stderr as QEMU's "Could not open gdbserver" line).
   */
  monitorCommand(device: string | undefined): string {
    const dev = device ?? `tcp::${DEFAULT_GDBSTUB_PORT}`;
    if (dev === "none") {
      this.stop();
      return "Disabled gdbserver\n";
    }
    try {
      gdbChardevConfig(dev);
    } catch {
      return `Could not open gdbserver on device '${dev}'\n`;
    }
    this.start(dev).catch((e) => {
      console.error(`microvm.ts: ${e instanceof Error ? e.message : String(e)}`);
      console.error(`Could not open gdbserver on device '${dev}'`);
    });
    return `Waiting for gdb connection on device '${dev}'\n`;
  }

  /** Stop serving and release the chardev. */
  stop(): void {
    this.#stub?.close();
    this.#stub = null;
    if (this.#chr) {
      if (this.#chardevs?.get("gdb") === this.#chr) this.#chardevs.delete("gdb");
      try {
        this.#chr.close();
      } catch {
        // already closed
      }
    }
    this.#chr = null;
  }
}
