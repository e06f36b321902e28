import assert from "node:assert/strict";
import { isCliAction, parseCommandLine } from "../cli/mod.ts";
import { UserError } from "../../core/types.ts";
import { gdbChardevConfig } from "./mod.ts";

const parse = (argv: string[]) => {
  const r = parseCommandLine(argv, "microvm.ts");
  assert.ok(!isCliAction(r));
  return r;
};

function errorOf(argv: string[]): string {
  try {
    parseCommandLine(argv, "microvm.ts");
  } catch (e) {
    assert.ok(e instanceof UserError, String(e));
    return e.message;
  }
  return "(no error)";
}

Deno.test("-s is -gdb tcp::1234; -gdb takes QEMU's chardev syntax; the devices are kept in order", () => {
  assert.equal(parse(["-M", "microvm"]).gdb, undefined);
  assert.deepEqual(parse(["-s", "-S"]).gdb, ["tcp::1234"]);
  assert.deepEqual(parse(["-gdb", "unix:/tmp/g.sock,server=on,wait=off", "-gdb", "none"]).gdb, [
    "unix:/tmp/g.sock,server=on,wait=off",
    "none",
  ]);
  assert.deepEqual(parse(["-gdb", "tcp:127.0.0.1:4444"]).gdb, ["tcp:127.0.0.1:4444"]);
});

Deno.test("-gdb with a bad device fails at parse time, one line with the option's location", () => {
  assert.equal(errorOf(["-gdb", "bogus"]), "-gdb bogus: 'bogus' is not a valid char driver");
  assert.equal(errorOf(["-gdb"]), "-gdb: requires an argument");
  assert.match(errorOf(["-gdb", "tcp:1234"]), /^-gdb tcp:1234: 'tcp:1234' is not a valid char driver$/);
});

Deno.test("gdbserver devices: tcp gets wait=off,nodelay=on,server=on as QEMU appends them", () => {
  const t = gdbChardevConfig("tcp::1234");
  assert.equal(t.id, "gdb");
  assert.deepEqual(
    t.backend,
    {
      kind: "socket",
      host: "",
      port: "1234",
      server: true,
      wait: false,
      nodelay: true,
      telnet: false,
      reconnect: 0,
    },
  );
  const u = gdbChardevConfig("unix:/tmp/x.sock,server=on");
  assert.equal(u.backend.kind, "socket");
  assert.equal((u.backend as { path?: string }).path, "/tmp/x.sock");
  assert.equal(
    (u.backend as { wait: boolean }).wait,
    true,
    "unix: QEMU waits for the client unless wait=off",
  );
  assert.equal(gdbChardevConfig("stdio").backend.kind, "stdio");
});
