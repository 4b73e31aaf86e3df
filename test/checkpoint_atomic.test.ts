// checkpoint_atomic.test.ts — io.save replaces the model + optimizer pair all or
// nothing (issue 15): a save killed at random points, a save stopped by a
// file-size limit, and concurrent savers to one path never leave an unloadable
// or mixed pair, and a later save cleans up what a killed one left behind.
// The savers are child processes (test/helpers/save_worker.ts).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { uniformStream } from "../src/tensor/random.ts";

const worker = join(import.meta.dir, "helpers", "save_worker.ts");
let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "float8-atomic-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runWorker(args: string[], shellPrefix = ""): { out: string; code: number | null; signal: string | null } {
  const cmd = shellPrefix
    ? ["bash", "-c", `${shellPrefix} exec "$0" "$@"`, process.execPath, worker, ...args]
    : [process.execPath, worker, ...args];
  const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", timeout: 120000 });
  return { out: p.stdout.toString() + p.stderr.toString(), code: p.exitCode, signal: (p.signalCode as string | undefined) ?? null };
}

/** The generation of the pair at `path`, or throws with the loader's message. */
function loadedGeneration(path: string): number {
  const r = runWorker([path, "verify"]);
  const m = /^pair (\d+)$/m.exec(r.out);
  if (!m) throw new Error(`no complete pair at ${path}: ${r.out}`);
  return Number(m[1]);
}

/** A deterministic PRNG for the kill delays, so a failure can be replayed. */
const rng = uniformStream;

test("a save killed (SIGKILL) at 24 random points always leaves the complete old or new pair, and the next save cleans up", async () => {
  const path = join(dir, "killed.safetensors");
  expect(runWorker([path, "once", "1"]).out).toContain("saved 1");
  const rand = rng(15);
  let last = 1, sawOld = 0, sawNew = 0;
  for (let trial = 0; trial < 24; trial++) {
    // the child saves generations last+1, last+2, ... until killed after a random delay
    const child = Bun.spawn([process.execPath, worker, path, "loop", String(last + 1)], { stdout: "pipe", stderr: "pipe" });
    const reader = child.stdout.getReader();
    let text = "";
    while (!text.includes("saved")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await Bun.sleep(rand() * 120);
    child.kill("SIGKILL");
    await child.exited;
    for (;;) {
      // everything the child printed before it died
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    const g = loadedGeneration(path);
    // the last save the child reported is complete, or the one it was in the middle of
    const reported = Math.max(...[...text.matchAll(/saved (\d+)/g)].map((m) => Number(m[1])));
    expect(g).toBeGreaterThanOrEqual(reported);
    expect(g).toBeLessThanOrEqual(reported + 1);
    if (g === reported) sawOld++;
    else sawNew++;
    last = g;
  }
  console.log(`checkpoint_atomic: ${sawOld} kills left the last reported pair, ${sawNew} the pair being saved`);
  // leftovers of the killed saves go away with the next complete save
  expect(runWorker([path, "once", String(last + 1)]).out).toContain(`saved ${last + 1}`);
  expect(loadedGeneration(path)).toBe(last + 1);
  expect(readdirSync(dir).filter((f) => f.includes("killed")).sort()).toEqual(["killed.safetensors", "killed.safetensors.optim.safetensors"]);
}, 240000);

test("a save killed at each step of its commit (test hook) leaves the complete old or new pair, and the next save recovers", () => {
  const points = ["locked", "optimizer-temp-written", "model-temp-written", "prev-removed", "prev-linked", "optimizer-renamed", "model-renamed", "prev-removed-after-commit"];
  const path = join(dir, "points.safetensors");
  expect(runWorker([path, "once", "1"]).out).toContain("saved 1");
  let g = 1;
  for (const point of points) {
    const r = Bun.spawnSync([process.execPath, worker, path, "once", String(g + 1)], {
      stdout: "pipe", stderr: "pipe", env: { ...process.env, FLOAT8_TEST_SAVE_CRASH_AT: point },
    });
    expect(r.signalCode).toBe("SIGKILL"); // the hook fired: the save really stopped there
    const now = loadedGeneration(path);
    // before the model's rename the old pair stands; from it on, the new one
    expect(now).toBe(points.indexOf(point) >= points.indexOf("model-renamed") ? g + 1 : g);
    g = now;
    // and a save after the crash completes normally
    expect(runWorker([path, "once", String(g + 1)]).out).toContain(`saved ${g + 1}`);
    g++;
    expect(loadedGeneration(path)).toBe(g);
  }
  expect(readdirSync(dir).filter((f) => f.includes("points")).sort()).toEqual(["points.safetensors", "points.safetensors.optim.safetensors"]);
}, 240000);

test("a save stopped by a file-size limit (ulimit -f) keeps the previous pair loadable", () => {
  const path = join(dir, "limited.safetensors");
  expect(runWorker([path, "once", "7"]).out).toContain("saved 7");
  // 8 MiB (bash counts ulimit -f in 1024-byte blocks): the optimizer file (4 MiB) fits, the model file (12 MiB) does not
  const r = runWorker([path, "once", "8"], "ulimit -f 8192;");
  expect(r.out).not.toContain("saved 8");
  expect(loadedGeneration(path)).toBe(7);
  expect(runWorker([path, "once", "9"]).out).toContain("saved 9");
  expect(loadedGeneration(path)).toBe(9);
  expect(readdirSync(dir).filter((f) => f.includes("limited")).sort()).toEqual(["limited.safetensors", "limited.safetensors.optim.safetensors"]);
}, 120000);

test("4 processes saving to one path and loading it after each save: every load finds a complete pair", async () => {
  const path = join(dir, "concurrent.safetensors");
  const children = [100, 200, 300, 400].map((g) =>
    Bun.spawn([process.execPath, worker, path, "save-verify", String(g), "4"], { stdout: "pipe", stderr: "pipe" }),
  );
  const outs = await Promise.all(children.map(async (c) => (await new Response(c.stdout).text()) + (await new Response(c.stderr).text())));
  for (const o of outs) {
    expect(o.match(/^saved \d+$/gm)?.length).toBe(4);
    expect(o.match(/^pair \d+$/gm)?.length).toBe(4); // no "error": never a mixed or unloadable pair
  }
  expect([100, 101, 102, 103, 200, 201, 202, 203, 300, 301, 302, 303, 400, 401, 402, 403]).toContain(loadedGeneration(path));
  expect(readdirSync(dir).filter((f) => f.includes("concurrent")).sort()).toEqual(["concurrent.safetensors", "concurrent.safetensors.optim.safetensors"]);
}, 180000);
