/**
 * Boot a real guest in a child process (`deno run main.ts …`) with narrowed permissions and collect
 * what the guest printed. Boot tests assert on guest output, never on our own log lines.
 * @module
 */
import { guestFile } from "../../core/host/guest_files.ts";

/** Result of one boot. */
export interface BootResult {
  code: number | null;
  out: string;
  timedOut: boolean;
}

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** A scratch directory with the seed lines' file names: vmlinux, bzImage, test.img (a copy of the rootfs). */
export async function seedDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mvt-boot-" });
  // ~85 MiB of images: removed when the test module's process ends.
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // already gone
    }
  });
  await Deno.copyFile(await guestFile("vmlinux"), `${dir}/vmlinux`);
  await Deno.copyFile(await guestFile("bzImage"), `${dir}/bzImage`);
  await Deno.copyFile(await guestFile("initramfs.cpio.gz"), `${dir}/initramfs.cpio.gz`);
  await Deno.copyFile(await guestFile("rootfs.ext4"), `${dir}/test.img`);
  return dir;
}

/**
 * Run main.ts with `args` in `cwd`, without --allow-ffi/--allow-run/--allow-net, until it exits or
 * `timeoutMs` passes (then SIGKILL). `onOutput` may return true to kill early (SIGKILL).
 */
export async function boot(
  args: string[],
  opts: { cwd: string; timeoutMs?: number; onOutput?: (out: string) => boolean; perms?: string[] },
): Promise<BootResult> {
  const perms = opts.perms ?? ["--allow-read", "--allow-write", "--allow-env"];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...perms, MAIN, ...args],
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let timedOut = false;
  let killed = false;
  const kill = () => {
    if (killed) return;
    killed = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, opts.timeoutMs ?? 300_000);
  const dec = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) {
      out += dec.decode(chunk, { stream: true });
      if (opts.onOutput?.(out)) kill();
    }
  };
  await Promise.all([pump(child.stdout), pump(child.stderr)]);
  const st = await child.status;
  clearTimeout(timer);
  return { code: killed ? null : st.code, out, timedOut };
}

/** The lines the guest's /init printed (GUEST-…), in order. */
export function guestLines(out: string): string[] {
  return out.split(/\r?\n/).map((l) => l.replace(/^.*?(GUEST-)/, "$1")).filter((l) => l.startsWith("GUEST-"));
}
