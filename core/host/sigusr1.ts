/**
 * Deno (2.9.2+) starts a V8 inspector on 127.0.0.1:9229, unauthenticated, when a `deno run` process gets
 * SIGUSR1 (installed 500 ms after start; no flag turns it off; `deno compile` binaries do not have it).
 * Any local user could then run code with the VMM's permissions. A VMM must never expose a debugger it
 * was not asked for, so once Deno's handler is in place we set SIGUSR1 to SIG_IGN through libc (needs
 * --allow-ffi; without it this returns false and the caller says so).
 * @module
 */

const SIGUSR1 = 10; // Linux x86-64 / arm64

/**
 * Ignore SIGUSR1 for the rest of the process: poll `signal()` until Deno's handler has been installed
 * (then it stays SIG_IGN), restoring SIG_DFL meanwhile. Returns false when FFI is not available.
 * `done` is called once the signal is ignored.
 */
export function ignoreSigusr1(opts: { pollMs?: number; giveUpMs?: number; done?: () => void } = {}): boolean {
  if (Deno.build.os !== "linux") return false;
  let lib: Deno.DynamicLibrary<{ signal: { parameters: ["i32", "pointer"]; result: "pointer" } }>;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return false;
    lib = Deno.dlopen("libc.so.6", { signal: { parameters: ["i32", "pointer"], result: "pointer" } });
  } catch {
    return false;
  }
  const IGN = Deno.UnsafePointer.create(1n);
  const t0 = performance.now();
  const tick = () => {
    const prev = lib.symbols.signal(SIGUSR1, IGN);
    const v = prev === null ? 0n : Deno.UnsafePointer.value(prev);
    if (v <= 1n && performance.now() - t0 < (opts.giveUpMs ?? 5000)) {
      // Deno's handler is not there yet (SIG_DFL or an inherited SIG_IGN): put it back as it was.
      lib.symbols.signal(SIGUSR1, prev);
      const t = setTimeout(tick, opts.pollMs ?? 10);
      Deno.unrefTimer(t);
      return;
    }
    opts.done?.();
  };
  tick();
  return true;
}
