/**
 * Boots the Debian bookworm image of build-image.sh on the software CPU (`-accel tcg -cpu max`, the guest/
 * kernel, virtio-blk root, init=/cmp-init), runs the fixed command list of commands.sh, and compares each
 * command's output with the same list run on the host in a chroot of the same tree. Not run in CI.
 *
 *   sudo tools/debian/build-image.sh /tmp/debian-bookworm
 *   deno run -A tools/debian/compare.ts /tmp/debian-bookworm [--markdown]
 *
 * Prints one row per command: name, match, guest ms (inside the guest), host ms. Exit status 1 on a mismatch.
 */
const dir = Deno.args.find((a) => !a.startsWith("--")) ?? "/tmp/debian-bookworm";
const markdown = Deno.args.includes("--markdown");
const root = new URL("../../", import.meta.url).pathname;
const guestDir = Deno.env.get("MICROVM_GUEST") ?? `${root}../shared/guest`;
const timeoutMs = Number(Deno.env.get("CMP_TIMEOUT_MS") ?? 1800_000);

interface Result {
  out: string;
  rc: string;
  ms: number;
}

function parse(text: string): Map<string, Result> {
  const res = new Map<string, Result>();
  const lines = text.replace(/\r/g, "").split("\n");
  let cur: string | null = null;
  let buf: string[] = [];
  for (const l of lines) {
    const b = /CMP-BEGIN (\S+)$/.exec(l);
    const e = /CMP-END (\S+) rc=(\d+) ms=(-?\d+)$/.exec(l);
    if (b) {
      cur = b[1];
      buf = [];
    } else if (e && cur === e[1]) {
      res.set(cur, { out: buf.join("\n"), rc: e[2], ms: Number(e[3]) });
      cur = null;
    } else if (cur !== null && !/^\[\s*\d+\.\d+\] /.test(l)) buf.push(l); // kernel messages interleave
  }
  return res;
}

async function host(): Promise<Map<string, Result>> {
  const p = await new Deno.Command("chroot", { args: [`${dir}/root`, "/cmp-commands"], stderr: "inherit" })
    .output();
  return parse(new TextDecoder().decode(p.stdout));
}

async function guest(): Promise<{ res: Map<string, Result>; log: string; wallMs: number }> {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${root}main.ts`,
      "-M",
      "microvm",
      "-accel",
      "tcg",
      "-cpu",
      "max",
      "-m",
      "512m",
      "-kernel",
      `${guestDir}/bzImage`,
      "-append",
      "console=ttyS0 root=/dev/vda ro init=/cmp-init reboot=t loglevel=1",
      "-nodefaults",
      "-no-user-config",
      "-nographic",
      "-serial",
      "stdio",
      "-drive",
      `id=root,file=${dir}/rootfs.ext4,format=raw,if=none,readonly=on`,
      "-device",
      "virtio-blk-device,drive=root",
      "-no-reboot",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  const dec = new TextDecoder();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const errP = new Response(child.stderr).text();
  for await (const chunk of child.stdout) {
    const s = dec.decode(chunk, { stream: true });
    log += s;
    Deno.stderr.writeSync(new TextEncoder().encode(s));
    if (log.includes("CMP-DONE") || log.includes("Kernel panic")) {
      child.kill("SIGKILL");
      break;
    }
  }
  clearTimeout(timer);
  await child.status;
  log += await errP;
  return { res: parse(log), log, wallMs: performance.now() - t0 };
}

const h = await host();
const g = await guest();
let bad = 0;
const rows: string[] = [];
if (markdown) rows.push("| command | match | guest ms | host ms |", "| --- | --- | ---: | ---: |");
for (const [name, hr] of h) {
  const gr = g.res.get(name);
  const ok = gr !== undefined && gr.out === hr.out && gr.rc === hr.rc;
  if (!ok) bad++;
  const gms = gr ? String(gr.ms) : "-";
  rows.push(
    markdown
      ? `| \`${name}\` | ${ok ? "yes" : "no"} | ${gms} | ${hr.ms} |`
      : `${name}\t${ok ? "yes" : "NO"}\t${gms}\t${hr.ms}`,
  );
  if (!ok) {
    console.error(
      `--- ${name}: host (rc=${hr.rc})\n${hr.out}\n--- guest (rc=${gr?.rc ?? "none"})\n${
        gr?.out ?? "(no output)"
      }`,
    );
  }
}
console.log(rows.join("\n"));
console.log(`${h.size - bad}/${h.size} match; VMM wall time ${(g.wallMs / 1000).toFixed(1)} s`);
Deno.exit(bad ? 1 : 0);
