import assert from "node:assert/strict";
import { linux64EntryState } from "../boot/bzimage.ts";
import { makeHarnessBoard } from "./harness.ts";
import { SoftCpuAccelerator } from "./mod.ts";

const CODE = 0x100000;

Deno.test("SoftCpuAccelerator stops at the instruction boundary after an I/O handler calls requestStop", async () => {
  let accel: SoftCpuAccelerator | null = null;
  const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20, onSerial: () => accel?.requestStop() });
  // mov dx, 0x3f8; mov al, 0x41; out dx, al; inc ecx; cli; hlt
  ram.write(CODE, new Uint8Array([0x66, 0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, 0xff, 0xc1, 0xfa, 0xf4]));
  accel = new SoftCpuAccelerator();
  accel.init(board, linux64EntryState(ram, CODE));
  const exit = await accel.run();
  assert.equal(exit.kind, "paused");
  const r = accel.registers(0);
  assert.equal(r.gpr.rip, BigInt(CODE + 7)); // right after OUT: KVM exits per PIO
  assert.equal(r.gpr.rcx & 0xffffffffn, 0n);
  assert.equal(r.halted, false);
  accel.destroy();
});

Deno.test("SoftCpuAccelerator lets the host accept a socket client while the guest spins", async () => {
  // Regression: a MessageChannel-only yield never let the host poll new I/O, so a monitor client got no
  // banner until the guest halted.
  const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20 });
  ram.write(CODE, new Uint8Array([0xeb, 0xfe])); // jmp $
  const accel = new SoftCpuAccelerator();
  accel.init(board, linux64EntryState(ram, CODE));
  const dir = await Deno.makeTempDir();
  const path = `${dir}/s.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  let accepted = false;
  let gaveUp = false;
  const t0 = performance.now();
  accel.setSampler(() => {
    // Safety net only (not a timing assertion): stop a guest that would otherwise spin forever.
    if (performance.now() - t0 > 10_000) {
      gaveUp = true;
      accel.requestStop();
    }
  });
  const acceptor = listener.accept().then((conn) => {
    accepted = true;
    conn.close();
    accel.requestStop();
  });
  const client = Deno.connect({ transport: "unix", path });
  const exit = await accel.run();
  (await client).close();
  await acceptor;
  listener.close();
  await Deno.remove(dir, { recursive: true });
  accel.destroy();
  assert.equal(exit.kind, "paused");
  assert.ok(accepted && !gaveUp, "the socket client was not accepted while the guest ran");
});

Deno.test("SoftCpuAccelerator in_asm lists each instruction once, with QEMU's IN: headers", async () => {
  let accel: SoftCpuAccelerator | null = null;
  const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20, onSerial: () => accel?.requestStop() });
  // mov ecx, 3; L: dec ecx; jnz L; mov dx, 0x3f8; out dx, al
  ram.write(CODE, new Uint8Array([0xb9, 3, 0, 0, 0, 0xff, 0xc9, 0x75, 0xfc, 0x66, 0xba, 0xf8, 0x03, 0xee]));
  const lines: string[] = [];
  accel = new SoftCpuAccelerator({ inAsm: (l) => lines.push(l) });
  accel.init(board, linux64EntryState(ram, CODE));
  assert.equal((await accel.run()).kind, "paused");
  const text = lines.join("\n");
  assert.equal(text.match(/^IN: cpu0$/gm)?.length, 1, text);
  assert.ok(text.split("\n").includes("0x0000000000100000:  mov $3,%ecx"), text);
  assert.equal(text.match(/dec/g)?.length, 1, text);
  assert.ok(text.split("\n").includes("0x000000000010000d:  out %al,%dx"), text);
  accel.destroy();
});

Deno.test("SoftCpuAccelerator awaits pollHost while the guest spins", async () => {
  const { board, ram } = makeHarnessBoard({ ramBytes: 4 << 20 });
  ram.write(CODE, new Uint8Array([0xeb, 0xfe])); // jmp $
  let polls = 0;
  const accel: SoftCpuAccelerator = new SoftCpuAccelerator({
    pollHost: () => {
      if (++polls === 2) accel.requestStop();
      return Promise.resolve();
    },
  });
  accel.init(board, linux64EntryState(ram, CODE));
  assert.equal((await accel.run()).kind, "paused");
  assert.equal(polls, 2);
  accel.destroy();
});
