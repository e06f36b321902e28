/**
 * hostfwd_add, hostfwd_remove and info usernet against a live libslirp stack, compared with what QEMU 7.2
 * printed for the same commands (qemu-system-x86_64 -M microvm -netdev user,id=n,… -monitor stdio).
 * Listeners are on 127.0.0.1 only. Without libslirp0: one `SKIP:` line.
 */
import assert from "node:assert/strict";
import { SlirpBackend } from "../core/host/slirp.ts";
import { parseSlirpOptions } from "../core/host/slirp_config.ts";
import { makeFakeMachine } from "./_fake_machine_test_util.ts";
import { HmpSession } from "./hmp.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

let backend: SlirpBackend | null = null;
const p0 = freePort();
try {
  backend = SlirpBackend.open(parseSlirpOptions({}, { hostfwd: [`tcp:127.0.0.1:${p0}-:22`] }));
} catch (e) {
  console.log(`SKIP: libslirp unavailable (${(e as Error).message}): HMP usernet tests not run`);
}

Deno.test({
  name: "HMP hostfwd_add / hostfwd_remove / info usernet print what QEMU 7.2 prints",
  ignore: backend === null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => {
    const b = backend!;
    const m = makeFakeMachine();
    m.netdevIds = () => ["n", "sock0"];
    m.usernets = () => [{
      id: "n",
      hostfwdAdd: (r) => b.hostfwdAdd(r),
      hostfwdRemove: (s) => b.hostfwdRemove(s),
      connectionInfo: () => b.connectionInfo(),
    }];
    const h = new HmpSession(m);
    try {
      const head =
        "Hub -1 (n):\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\n";
      const row = (proto: string, src: string, port: number, dst: string, dport: number) =>
        new RegExp(
          `  ${proto}\\[HOST_FORWARD\\]\\s+\\d+\\s+${src.replace(/\./g, "\\.")}\\s+${port}\\s+` +
            `${dst.replace(/\./g, "\\.")}\\s+${dport}\\s+0\\s+0\\n`,
        );
      const info0 = h.execute("info usernet");
      assert.ok(info0.startsWith(head), info0);
      assert.match(info0, row("TCP", "127.0.0.1", p0, "10.0.2.15", 22));
      const p1 = freePort();
      const p2 = freePort();
      assert.equal(h.execute(`hostfwd_add tcp:127.0.0.1:${p1}-:80`), "");
      assert.equal(h.execute(`hostfwd_add n udp:127.0.0.1:${p2}-10.0.2.20:53`), "");
      assert.equal(h.execute("hostfwd_add bogus tcp::1-:2"), "unrecognized netdev id 'bogus'\n");
      assert.equal(h.execute("hostfwd_add sock0 tcp::1-:2"), "invalid device specified\n");
      assert.equal(
        h.execute("hostfwd_add tcp:x"),
        "Invalid host forwarding rule 'tcp:x' (Missing : separator)\n",
      );
      assert.equal(
        h.execute(`hostfwd_add tcp:127.0.0.1:${p1}-:80`),
        `Could not set up host forwarding rule 'tcp:127.0.0.1:${p1}-:80'\n`,
      );
      const info = h.execute("info usernet");
      assert.match(info, row("TCP", "127.0.0.1", p1, "10.0.2.15", 80));
      assert.match(info, row("UDP", "127.0.0.1", p2, "10.0.2.20", 53));
      assert.equal(
        h.execute(`hostfwd_remove tcp:127.0.0.1:${p1}`),
        `host forwarding rule for tcp:127.0.0.1:${p1} removed\n`,
      );
      assert.equal(
        h.execute(`hostfwd_remove tcp:127.0.0.1:${p1}`),
        `host forwarding rule for tcp:127.0.0.1:${p1} not found\n`,
      );
      assert.equal(
        h.execute(`hostfwd_remove n udp:127.0.0.1:${p2}`),
        `host forwarding rule for udp:127.0.0.1:${p2} removed\n`,
      );
      assert.equal(h.execute("hostfwd_remove zzz"), "invalid format\n");
      assert.doesNotMatch(h.execute("info usernet"), new RegExp(`\\s${p1}\\s`));
      assert.match(
        h.execute("help hostfwd_add"),
        /^hostfwd_add \[netdev_id\] \[tcp\|udp\]:\[hostaddr\]:hostport-\[guestaddr\]:guestport -- redirect TCP or UDP connections from host to guest \(requires -net user\)\n$/,
      );
      const none = new HmpSession(makeFakeMachine());
      assert.equal(none.execute("hostfwd_add tcp::1-:2"), "user mode network stack not in use\n");
      assert.equal(none.execute("info usernet"), "");
    } finally {
      b.close();
    }
  },
});
