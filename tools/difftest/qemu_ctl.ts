/**
 * Driving QEMU for difftest.ts: install Debian's qemu-system-x86 when missing, a minimal GDB remote-protocol
 * client (breakpoint, continue, detach) and an HMP client over a Unix socket (pmemsave, logfile, log).
 * @module
 */

/** Make sure qemu-system-x86_64 exists; apt-get install it otherwise (retrying while dpkg is locked). */
export async function ensureQemu(bin = "qemu-system-x86_64"): Promise<void> {
  if (await runs(bin, ["--version"])) return;
  for (let i = 0; i < 40; i++) {
    const o = await new Deno.Command("apt-get", {
      args: ["install", "-y", "qemu-system-x86"],
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (o.success && await runs(bin, ["--version"])) return;
    const err = new TextDecoder().decode(o.stderr);
    if (!/lock/i.test(err)) {
      throw new Error(`Cannot install qemu-system-x86: ${err.trim().split("\n").pop()}`);
    }
    await new Promise((r) => setTimeout(r, 5000)); // another engineer holds the dpkg lock
  }
  throw new Error("Cannot install qemu-system-x86: dpkg lock held for too long");
}

async function runs(bin: string, args: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command(bin, { args, stdout: "null", stderr: "null" }).output()).success;
  } catch (_e) {
    return false;
  }
}

/** A tiny GDB remote serial protocol client (enough for breakpoints). */
export class GdbClient {
  readonly #conn: Deno.Conn;
  #buf = "";
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Connect to host:port, retrying while QEMU starts. */
  static async connect(port: number, tries = 100): Promise<GdbClient> {
    for (let i = 0;; i++) {
      try {
        return new GdbClient(await Deno.connect({ hostname: "127.0.0.1", port }));
      } catch (e) {
        if (i >= tries) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Send a packet and return the reply payload. */
  async command(data: string): Promise<string> {
    let sum = 0;
    for (let i = 0; i < data.length; i++) sum = (sum + data.charCodeAt(i)) & 0xff;
    await this.#write(`$${data}#${sum.toString(16).padStart(2, "0")}`);
    return await this.#reply();
  }

  async #write(s: string): Promise<void> {
    const b = new TextEncoder().encode(s);
    let o = 0;
    while (o < b.length) o += await this.#conn.write(b.subarray(o));
  }

  async #reply(): Promise<string> {
    const chunk = new Uint8Array(4096);
    for (;;) {
      const m = /\$([^#]*)#[0-9a-fA-F]{2}/.exec(this.#buf);
      if (m) {
        this.#buf = this.#buf.slice(m.index + m[0].length);
        await this.#write("+");
        return m[1];
      }
      const n = await this.#conn.read(chunk);
      if (n === null) throw new Error("Cannot talk to the gdbstub: connection closed");
      this.#buf += new TextDecoder().decode(chunk.subarray(0, n));
    }
  }

  /** Close the connection. */
  close(): void {
    try {
      this.#conn.close();
    } catch (_e) {
      // already closed by QEMU
    }
  }
}

/** Human monitor over a Unix socket. */
export class HmpClient {
  readonly #conn: Deno.Conn;
  #buf = "";
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Connect and wait for the first prompt. */
  static async connect(path: string, tries = 100): Promise<HmpClient> {
    for (let i = 0;; i++) {
      try {
        const h = new HmpClient(await Deno.connect({ transport: "unix", path }));
        await h.#prompt();
        return h;
      } catch (e) {
        if (i >= tries) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async #prompt(): Promise<string> {
    const chunk = new Uint8Array(4096);
    for (;;) {
      const i = this.#buf.indexOf("(qemu) ");
      if (i >= 0) {
        const out = this.#buf.slice(0, i);
        this.#buf = this.#buf.slice(i + 7);
        return out;
      }
      const n = await this.#conn.read(chunk);
      if (n === null) throw new Error("Cannot talk to the monitor: connection closed");
      this.#buf += new TextDecoder().decode(chunk.subarray(0, n));
    }
  }

  /** Run one command; returns its output (echo included). */
  async command(cmd: string): Promise<string> {
    await this.#conn.write(new TextEncoder().encode(cmd + "\n"));
    return await this.#prompt();
  }

  /** Close the connection. */
  close(): void {
    try {
      this.#conn.close();
    } catch (_e) {
      // already closed by QEMU
    }
  }
}
