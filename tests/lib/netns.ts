/**
 * Private network namespaces for end-to-end network tests and benchmarks: create one with a unique name
 * (`mvt-<random>`), add a tap with an address inside 192.168.100.0/24, run processes inside it with
 * `ip netns exec`, and tear everything down (processes, taps, the namespace) even when the test failed.
 * Only namespaces made here are touched. Also a small child-process wrapper (`Proc`) that collects output,
 * can wait for a pattern and is always reaped, so Deno's test sanitizers stay quiet.
 * @module
 */

/** The address the host side of the tap gets inside each namespace. */
export const HOST_IP = "192.168.100.1";
/** The guest's address (the guest's `guest_ip=` knob takes it with the prefix). */
export const GUEST_IP = "192.168.100.2";
/** Prefix length of the test network. */
export const NET_PREFIX = 24;

const MAIN_TS = new URL("../../main.ts", import.meta.url).pathname;

/** Permissions main.ts needs for a tap netdev (FFI on /dev/net/tun); no --allow-run, no --allow-net. */
export const TAP_VMM_PERMS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
];

/** What a finished child process left behind. */
export interface ProcResult {
  /** Exit status, or null when it was killed by us (timeout or kill()). */
  code: number | null;
  /** stdout and stderr, interleaved as they arrived. */
  out: string;
  timedOut: boolean;
}

/** Options of Proc. */
export interface ProcOptions {
  cwd?: string;
  /** SIGKILL after this many milliseconds (default 300000). */
  timeoutMs?: number;
  /** Called on every chunk with all output so far; returning true kills the process (SIGKILL). */
  onOutput?: (out: string) => boolean;
}

/** A child process (stdin closed) whose output is collected; `done` settles once it exited and was reaped. */
export class Proc {
  readonly pid: number;
  readonly done: Promise<ProcResult>;
  #child: Deno.ChildProcess;
  #out = "";
  #killed = false;
  #timedOut = false;
  #waiters: { re: RegExp; res: (m: RegExpExecArray | null) => void }[] = [];

  constructor(cmd: string, args: readonly string[], opts: ProcOptions = {}) {
    const child = new Deno.Command(cmd, {
      args: [...args],
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.pid = child.pid;
    const timer = setTimeout(() => {
      this.#timedOut = true;
      this.kill();
    }, opts.timeoutMs ?? 300_000);
    const dec = new TextDecoder();
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) {
        this.#out += dec.decode(chunk, { stream: true });
        this.#wake();
        if (opts.onOutput?.(this.#out)) this.kill();
      }
    };
    this.done = (async () => {
      await Promise.all([pump(child.stdout), pump(child.stderr)]);
      const st = await child.status;
      clearTimeout(timer);
      for (const w of this.#waiters) w.res(null);
      this.#waiters = [];
      return { code: this.#killed ? null : st.code, out: this.#out, timedOut: this.#timedOut };
    })();
  }

  /** Output so far. */
  get out(): string {
    return this.#out;
  }

  /** SIGKILL the process (no-op once killed or gone). */
  kill(): void {
    if (this.#killed) return;
    this.#killed = true;
    try {
      this.#child.kill("SIGKILL");
    } catch (e) {
      if (!(e instanceof TypeError)) throw e; // TypeError: the process already exited
    }
  }

  /** Wait until the output matches `re` (resolves with the match), or null once the process ended or `ms` passed. */
  waitFor(re: RegExp, ms: number): Promise<RegExpExecArray | null> {
    const m = re.exec(this.#out);
    if (m) return Promise.resolve(m);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        resolve(null);
      }, ms);
      const waiter = { re, res: (x: RegExpExecArray | null) => (clearTimeout(t), resolve(x)) };
      this.#waiters.push(waiter);
    });
  }

  #wake(): void {
    this.#waiters = this.#waiters.filter((w) => {
      const m = w.re.exec(this.#out);
      if (!m) return true;
      w.res(m);
      return false;
    });
  }
}

/** Start `deno run <perms> main.ts <args>` (the VMM) in this network namespace, as a Proc. */
export function vmmProc(args: readonly string[], opts: ProcOptions & { perms: readonly string[] }): Proc {
  return new Proc(Deno.execPath(), ["run", ...opts.perms, MAIN_TS, ...args], opts);
}

/** Path of `name` on $PATH, or null. */
export function onPath(name: string): string | null {
  for (const d of (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    try {
      if (d && Deno.statSync(`${d}/${name}`).isFile) return `${d}/${name}`;
    } catch {
      continue; // not in this directory
    }
  }
  return null;
}

async function run(cmd: string, args: readonly string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await new Deno.Command(cmd, {
      args: [...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    const dec = new TextDecoder();
    return { ok: r.success, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
  } catch (e) {
    return { ok: false, out: e instanceof Error ? e.message : String(e) };
  }
}

async function ip(args: readonly string[]): Promise<string> {
  const r = await run("ip", args);
  if (!r.ok) throw new Error(`Cannot run "ip ${args.join(" ")}": ${r.out.trim()}`);
  return r.out;
}

function randomName(prefix: string): string {
  const b = crypto.getRandomValues(new Uint8Array(4));
  return `${prefix}-${[...b].map((x) => x.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Why namespaced tap tests cannot run here (not root, no /dev/net/tun, no `ip`, or `ip netns add` refused),
 * or null when they can. Probes by creating and deleting a throw-away namespace.
 */
export async function netnsUnavailable(): Promise<string | null> {
  if (Deno.build.os !== "linux") return "network namespaces need Linux";
  if (Deno.uid() !== 0) return "network namespace tests need root";
  try {
    if (!Deno.statSync("/dev/net/tun").isCharDevice) return "/dev/net/tun is not a character device";
  } catch {
    return "/dev/net/tun is missing";
  }
  if (onPath("ip") === null) return "the `ip` command (iproute2) is not installed";
  const probe = randomName("mvt-probe");
  const add = await run("ip", ["netns", "add", probe]);
  if (!add.ok) return `cannot create a network namespace: ${add.out.trim().split("\n")[0]}`;
  const tap = await run("ip", ["-n", probe, "tuntap", "add", "tapx", "mode", "tap"]);
  await run("ip", ["netns", "del", probe]);
  if (!tap.ok) return `cannot create a tap: ${tap.out.trim().split("\n")[0]}`;
  return null;
}

/** A network namespace this process created; `destroy()` kills what runs in it and deletes it. */
export class Netns {
  readonly name: string;
  #procs: Proc[] = [];
  #taps: string[] = [];
  #destroyed = false;

  private constructor(name: string) {
    this.name = name;
  }

  /** Create a namespace named `<prefix>-<8 hex digits>` with `lo` up. */
  static async create(prefix = "mvt"): Promise<Netns> {
    const ns = new Netns(randomName(prefix));
    await ip(["netns", "add", ns.name]);
    try {
      await ip(["-n", ns.name, "link", "set", "lo", "up"]);
    } catch (e) {
      await ns.destroy();
      throw e;
    }
    return ns;
  }

  /** Add a tap `ifname` with address `cidr` (default 192.168.100.1/24) and bring it up. */
  async addTap(ifname = "tap0", cidr = `${HOST_IP}/${NET_PREFIX}`): Promise<void> {
    await ip(["-n", this.name, "tuntap", "add", ifname, "mode", "tap"]);
    this.#taps.push(ifname);
    await ip(["-n", this.name, "addr", "add", cidr, "dev", ifname]);
    await ip(["-n", this.name, "link", "set", ifname, "up"]);
  }

  /** Run `ip -n <ns> args…` and return its output (throws on failure). */
  ip(args: readonly string[]): Promise<string> {
    return ip(["-n", this.name, ...args]);
  }

  /** Start `cmd args` inside the namespace (`ip netns exec`); destroy() kills it if it still runs. */
  spawn(cmd: string, args: readonly string[], opts: ProcOptions = {}): Proc {
    const p = new Proc("ip", ["netns", "exec", this.name, cmd, ...args], opts);
    this.#procs.push(p);
    return p;
  }

  /** Start `deno run <perms> main.ts <args>` (the VMM) inside the namespace. */
  spawnVmm(args: readonly string[], opts: ProcOptions & { perms?: readonly string[] } = {}): Proc {
    return this.spawn(Deno.execPath(), ["run", ...(opts.perms ?? TAP_VMM_PERMS), MAIN_TS, ...args], opts);
  }

  /** Kill and reap every process started here, delete the taps and the namespace. Never throws. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const p of this.#procs) p.kill();
    await Promise.allSettled(this.#procs.map((p) => p.done));
    for (const t of this.#taps) await run("ip", ["-n", this.name, "link", "del", t]);
    const del = await run("ip", ["netns", "del", this.name]);
    if (!del.ok) console.error(`warning: cannot delete network namespace ${this.name}: ${del.out.trim()}`);
  }
}

/** Run `fn` with a fresh namespace holding tap0 = 192.168.100.1/24; the namespace is destroyed afterwards. */
export async function withTapNetns<T>(fn: (ns: Netns) => Promise<T>): Promise<T> {
  const ns = await Netns.create();
  try {
    await ns.addTap("tap0");
    return await fn(ns);
  } finally {
    await ns.destroy();
  }
}
