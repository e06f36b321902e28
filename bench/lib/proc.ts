/**
 * Run a VMM (ours or QEMU) as a child process and time it: milliseconds from just before spawn to the
 * first appearance of each marker string in its output and to its exit, plus its peak RSS, read from
 * /proc/<pid>/status (VmHWM, the kernel's resident-set high-water mark) every few milliseconds and once
 * more when the guest announces its reboot.
 * @module
 */

/** What one timed run observed. */
export interface TimedRun {
  /** Exit status, or null when it was killed (timeout). */
  code: number | null;
  /** stdout and stderr, interleaved as they arrived. */
  out: string;
  /** Milliseconds from spawn to the first occurrence of each marker (absent: never seen). */
  marks: Record<string, number>;
  /** Milliseconds from spawn to process exit. */
  exitMs: number;
  /** Peak resident set in KiB (VmHWM), NaN when /proc could not be read. */
  peakRssKiB: number;
  timedOut: boolean;
}

/** Options of timedRun. */
export interface TimedRunOptions {
  cwd: string;
  /** Marker name → string to look for in the output. */
  marks: Record<string, string>;
  /** Kill after this many milliseconds (default 180000). */
  timeoutMs?: number;
  /** Read VmHWM once more as soon as this string appears (the last line before the VMM exits). */
  lastLine?: string;
  env?: Record<string, string>;
}

const POLL_MS = 20;

/** Read VmHWM (KiB) of `pid`, or NaN. */
export function readPeakRssKiB(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Spawn `cmd args` (no shell), stdin closed, and time it. */
export async function timedRun(
  cmd: string,
  args: readonly string[],
  opts: TimedRunOptions,
): Promise<TimedRun> {
  const names = Object.keys(opts.marks);
  const marks: Record<string, number> = {};
  let out = "";
  let peak = NaN;
  const t0 = performance.now();
  const child = new Deno.Command(cmd, {
    args: [...args],
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(opts.env ? { env: opts.env } : {}),
  }).spawn();
  const pid = child.pid;
  const sample = () => {
    const v = readPeakRssKiB(pid);
    if (Number.isFinite(v) && !(v <= peak)) peak = v;
  };
  const poll = setInterval(sample, POLL_MS);
  let timedOut = false;
  let killed = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killed = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, opts.timeoutMs ?? 180_000);
  const dec = new TextDecoder();
  let sawLast = false;
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) {
      const now = performance.now() - t0;
      // Search only the new text plus enough of the old to catch a marker split across chunks.
      const from = Math.max(0, out.length - 64);
      out += dec.decode(chunk, { stream: true });
      const tail = out.slice(from);
      for (const n of names) {
        if (marks[n] === undefined && tail.includes(opts.marks[n])) marks[n] = now;
      }
      if (!sawLast && opts.lastLine && tail.includes(opts.lastLine)) {
        sawLast = true;
        sample();
      }
    }
  };
  await Promise.all([pump(child.stdout), pump(child.stderr)]);
  const st = await child.status;
  const exitMs = performance.now() - t0;
  clearInterval(poll);
  clearTimeout(timer);
  return { code: killed ? null : st.code, out, marks, exitMs, peakRssKiB: peak, timedOut };
}

/** The full path of `name` found on $PATH, or null. */
export function findOnPath(name: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const p = `${dir}/${name}`;
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // not here
    }
  }
  return null;
}
