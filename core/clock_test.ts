import assert from "node:assert/strict";
import { VirtualClock } from "./clock.ts";
import { UserError } from "./types.ts";

Deno.test("VirtualClock fires timers in deadline order at their deadlines", () => {
  const c = new VirtualClock({ mode: "manual" });
  const log: string[] = [];
  const mk = (n: string) => c.timer(() => log.push(`${n}@${c.now()}`));
  mk("c").arm(300);
  mk("a").arm(100);
  mk("b").arm(200);
  const tie1 = mk("t1");
  const tie2 = mk("t2");
  tie1.arm(200);
  tie2.arm(200);
  assert.equal(c.nextDeadline(), 100);
  c.step(250);
  assert.deepEqual(log, ["a@100", "b@200", "t1@200", "t2@200"]);
  assert.equal(c.now(), 250);
  assert.equal(c.nextDeadline(), 300);
});

Deno.test("VirtualClock lets a callback re-arm its timer", () => {
  const c = new VirtualClock({ mode: "manual" });
  const fired: number[] = [];
  const t = c.timer(() => {
    fired.push(c.now());
    if (fired.length < 3) t.arm(c.now() + 10);
  });
  t.arm(10);
  c.step(100);
  assert.deepEqual(fired, [10, 20, 30]);
  assert.equal(t.armed, false);
  assert.equal(c.nextDeadline(), Infinity);
});

Deno.test("VirtualClock re-arm replaces the deadline and cancel removes the timer", () => {
  const c = new VirtualClock({ mode: "manual" });
  let n = 0;
  const t = c.timer(() => n++);
  for (let i = 0; i < 1000; i++) t.arm(1000 - i);
  assert.equal(t.deadline, 1);
  t.cancel();
  assert.equal(t.armed, false);
  c.step(2000);
  assert.equal(n, 0);
});

Deno.test("VirtualClock warp jumps to the next deadline and set never goes back", () => {
  const c = new VirtualClock({ mode: "manual" });
  let hit = false;
  c.timer(() => (hit = true)).arm(5000);
  assert.equal(c.warp(), 5000);
  assert.equal(hit, true);
  assert.equal(c.warp(), 5000);
  assert.throws(() => c.set(10), UserError);
});

Deno.test("VirtualClock in host mode follows the source and freezes while paused", () => {
  let host = 1_000_000;
  const c = new VirtualClock({ mode: "host", now: () => host });
  assert.equal(c.now(), 0);
  host += 500;
  assert.equal(c.now(), 500);
  c.pause();
  host += 10_000;
  assert.equal(c.now(), 500);
  c.resume();
  host += 100;
  assert.equal(c.now(), 600);
  let fired = 0;
  c.timer(() => fired++).arm(650);
  assert.equal(c.runDue(), 0);
  host += 50;
  assert.equal(c.runDue(), 1);
  assert.equal(fired, 1);
  assert.throws(() => c.step(1), UserError);
});

Deno.test("VirtualClock reports timer callback errors through onTimerError", () => {
  const errs: unknown[] = [];
  const c = new VirtualClock({ mode: "manual", onTimerError: (e) => errs.push(e) });
  c.timer(() => {
    throw new Error("x");
  }).arm(1);
  c.step(1);
  assert.equal(errs.length, 1);
});

Deno.test("onEarlierDeadline fires when an armed timer becomes the earliest one", () => {
  const clock = new VirtualClock({ mode: "manual" });
  let calls = 0;
  clock.onEarlierDeadline = () => calls++;
  const a = clock.timer(() => {}), b = clock.timer(() => {});
  a.arm(1000);
  assert.equal(calls, 1); // first timer: the sleeper had no deadline
  b.arm(2000);
  assert.equal(calls, 1); // later than the head: a sleeper's wake-up time is unchanged
  b.arm(500);
  assert.equal(calls, 2); // ahead of every other timer: a halted vCPU must wake for it
  a.arm(400);
  assert.equal(calls, 3);
  a.cancel();
  b.arm(600);
  assert.equal(calls, 4);
  clock.onEarlierDeadline = null;
  b.arm(100);
  assert.equal(calls, 4);
});
