// A long training loop keeps live native memory flat. Each loop runs in a fresh
// process (test/helpers/memory_loop.ts) so other tests' garbage cannot interfere.
import { expect, test } from "bun:test";
import { join } from "node:path";

function runLoop(kind: "mlp" | "float8", steps: number) {
  const p = Bun.spawnSync(["bun", join(import.meta.dir, "helpers", "memory_loop.ts"), kind, String(steps)], { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`memory_loop failed: ${p.stderr.toString()}`);
  return JSON.parse(p.stdout.toString().trim().split("\n").pop()!) as {
    before: { liveBytes: number; liveAllocs: number };
    after: { liveBytes: number; liveAllocs: number };
  };
}

test("1,000 training steps of a small MLP keep live native bytes flat", () => {
  const { before, after } = runLoop("mlp", 1000);
  expect(before.liveBytes).toBeGreaterThan(0);
  expect(after.liveBytes).toBe(before.liveBytes);
  expect(after.liveAllocs).toBe(before.liveAllocs);
});

test("float8 delayed-scaling training keeps live native bytes flat", () => {
  const { before, after } = runLoop("float8", 300);
  expect(after.liveBytes).toBe(before.liveBytes);
  expect(after.liveAllocs).toBe(before.liveAllocs);
});
