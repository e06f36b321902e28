/**
 * Check `deno task compile` (deno.json): run the task's own `deno compile` command into a temporary
 * directory and start the binary with `-version`. `deno compile` needs the `denort` runtime, which it
 * downloads from dl.deno.land unless it is cached in DENO_DIR or DENORT_BIN names a local copy; where that
 * is impossible (no network) the check is reported as skipped with the reason, not as a failure.
 * Usage: deno run -A bench/compile_check.ts
 * @module
 */

/** Outcome of the check. */
export interface CompileCheck {
  status: "ok" | "skipped" | "failed";
  message: string;
  /** Remarks about the task that do not make it fail. */
  warnings: string[];
}

const ROOT = new URL("../", import.meta.url).pathname;

/** The `tasks.compile` string of deno.json, or null. */
export function compileTask(): string | null {
  try {
    const cfg = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)) as { tasks?: Record<string, unknown> };
    const t = cfg.tasks?.compile;
    return typeof t === "string"
      ? t
      : typeof t === "object" && t && "command" in t
      ? String(t.command)
      : null;
  } catch {
    return null;
  }
}

/** Where `deno compile` caches the runtime it downloads (cli/standalone/binary.rs: DENO_DIR/dl/release/vX/…). */
export function denortCachePath(denoDir: string): string {
  return `${denoDir}/dl/release/v${Deno.version.deno}/denort-${Deno.build.target}.zip`;
}

async function denoDir(): Promise<string | null> {
  const env = Deno.env.get("DENO_DIR");
  if (env) return env;
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  })
    .output();
  try {
    return (JSON.parse(new TextDecoder().decode(r.stdout)) as { denoDir?: string }).denoDir ?? null;
  } catch {
    return null;
  }
}

/** Run the check (at most `timeoutMs`, default 120 s, for the compile itself). */
export async function compileCheck(timeoutMs = 120_000): Promise<CompileCheck> {
  const warnings: string[] = [];
  const task = compileTask();
  if (!task) return { status: "failed", message: "deno.json has no tasks.compile", warnings };
  const words = task.trim().split(/\s+/);
  if (words[0] !== "deno" || words[1] !== "compile" || !words.includes("main.ts")) {
    return {
      status: "failed",
      message: `tasks.compile is not a 'deno compile … main.ts' command: ${task}`,
      warnings,
    };
  }
  const outAt = words.findIndex((w) => w === "--output" || w === "-o");
  if (outAt < 0) warnings.push("tasks.compile has no --output: the binary is named after the entry file");
  if (!words.some((w) => w.startsWith("--include"))) {
    warnings.push(
      "tasks.compile embeds no guest/ files (--include): a compiled binary cannot run the default guest " +
        "(no arguments); it needs -kernel/-initrd paths",
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "mvt-compile-" });
  try {
    const out = `${dir}/microvm-ts`;
    // Drop "deno"; the --output value sits at index outAt of `words`, so at outAt - 1 + 1 of `args`.
    const args = words.slice(1);
    if (outAt >= 0 && outAt + 1 < words.length) args[outAt] = out;
    else args.splice(1, 0, "--output", out);
    const denortBin = Deno.env.get("DENORT_BIN");
    const dd = await denoDir();
    const cached = dd ? denortCachePath(dd) : null;
    let haveRuntime = false;
    for (const p of [denortBin, cached]) {
      if (!p) continue;
      try {
        haveRuntime ||= Deno.statSync(p).isFile;
      } catch {
        // not there
      }
    }
    const child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
    }, timeoutMs);
    const r = await child.output();
    clearTimeout(timer);
    const err = new TextDecoder().decode(r.stderr);
    if (!r.success) {
      const download = /denort|dl\.deno\.land/i.test(err) &&
        /dns error|error sending request|Connect|network|timed out/i.test(err);
      if (download || (!haveRuntime && /Setting up base binary/i.test(err))) {
        return {
          status: "skipped",
          message: `the denort runtime (denort-${Deno.build.target}.zip for Deno ${Deno.version.deno}) ` +
            "is not cached and cannot be downloaded here; set DENORT_BIN to a local denort binary to run this check",
          warnings,
        };
      }
      const first = err.split("\n").find((l) => /error/i.test(l)) ?? err.split("\n")[0] ?? "";
      return { status: "failed", message: `deno compile failed: ${first.trim()}`, warnings };
    }
    const v = await new Deno.Command(out, { args: ["-version"], stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(v.stdout).trim().split("\n")[0] ?? "";
    if (!v.success) {
      return { status: "failed", message: `compiled binary: -version exited ${v.code}`, warnings };
    }
    return { status: "ok", message: `compiled; '-version' prints: ${text}`, warnings };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const r = await compileCheck();
  console.log(`deno task compile: ${r.status}: ${r.message}`);
  for (const w of r.warnings) console.log(`  note: ${w}`);
  Deno.exit(r.status === "failed" ? 1 : 0);
}
