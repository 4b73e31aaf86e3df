// The demo's pieces in miniature: real digits load, every recipe trains a few
// steps with a falling loss, and the table, SVG, progress lines and CLI work.
import { beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { cudaProbe } from "../src/ffi/index.ts";
import {
  Progress, RECIPES, batchOrder, formatTable, gather, loadDigits, lossChartSvg, trainRecipe, type Digits, type RunResult,
} from "../examples/demo.ts";

let data: Digits;
const results: RunResult[] = [];

beforeAll(async () => {
  data = await loadDigits({ limit: 40 }); // 40 per digit: 320 train, 80 held out
});

test("the digits load with a fixed per-digit split of standardised pixels", () => {
  expect(data.trainY.length).toBe(320);
  expect(data.testY.length).toBe(80);
  expect(data.trainX.length).toBe(320 * 784);
  expect(new Set(data.testY).size).toBe(10);
  const min = data.trainX.reduce((a, b) => Math.min(a, b), Infinity);
  expect(min).toBeCloseTo(-0.1307 / 0.3081, 4);
});

test("the data order is the same for a seed and covers each epoch once", () => {
  const a = batchOrder(100, 10, 12, 3);
  expect(batchOrder(100, 10, 12, 3)).toEqual(a);
  expect(new Set(a.slice(0, 10).flatMap((b) => [...b])).size).toBe(100);
  expect(batchOrder(100, 10, 12, 4)).not.toEqual(a);
});

test("the shift augmentation moves a digit by whole pixels and fills in background", () => {
  const bg = Math.fround(-0.1307 / 0.3081);
  const x = new Float32Array(2 * 784).fill(bg);
  x[784 + 10 * 28 + 10] = 3; // sample 1: one bright pixel at row 10, column 10
  const draws = [0.99, 0.0]; // dx = +2, dy = -2
  const b = gather(x, Int32Array.from([0, 7]), Int32Array.from([1]), 2, () => draws.shift()!);
  expect(b.y).toEqual(Int32Array.from([7]));
  expect(b.x.indexOf(3)).toBe(8 * 28 + 12);
  expect(b.x.filter((v) => v !== bg).length).toBe(1);
  expect(gather(x, Int32Array.from([0, 7]), Int32Array.from([1])).x).toEqual(x.subarray(784));
});

for (const recipe of RECIPES) {
  test(`${recipe}: a few steps lower the loss and beat chance on held-out digits`, () => {
    const r = trainRecipe(recipe, data, { steps: 24, batchSize: 32, lr: 2e-3, dtype: "bfloat16", seed: 0 });
    results.push(r);
    const head = r.losses.slice(0, 3).reduce((a, b) => a + b) / 3;
    const tail = r.losses.slice(-3).reduce((a, b) => a + b) / 3;
    expect(r.losses.length).toBe(24);
    expect(tail).toBeLessThan(head * 0.7);
    expect(r.heldOutAccuracy).toBeGreaterThan(0.5);
    expect(r.msPerStep).toBeGreaterThan(0);
    const fp8 = recipe === "dynamic" || recipe === "delayed";
    expect(r.fp8.map((l) => l.layer)).toEqual(fp8 ? ["0", "2", "4"] : []);
    for (const l of r.fp8) {
      expect(l.input.numel).toBe(80 * (l.layer === "0" ? 784 : 512));
      expect(l.gradOutput.numel).toBe(80 * (l.layer === "4" ? 10 : 512));
      for (const c of [l.input, l.weight, l.gradOutput]) expect(c.clipped + c.underflowed).toBeLessThanOrEqual(c.numel);
    }
  }, 60_000); // generous: on a CPU shared with other jobs, per-op latency can grow many times over
}

test("the same seed gives f32 and bf16 the same first loss up to bf16 rounding", () => {
  const [f32, bf16] = results;
  expect(Math.abs(f32.losses[0] - bf16.losses[0])).toBeLessThan(0.05);
});

test("the table has a row per recipe and the fp8 counts per layer", () => {
  const table = formatTable(results, 80);
  for (const r of RECIPES) expect(table).toMatch(new RegExp(`^${r}\\s`, "m"));
  expect(table).toContain("held-out acc");
  expect(table).toContain("grad_output e5m2");
  expect(table).toMatch(/^delayed\s+4\s/m);
});

test("the SVG chart draws a raw and a smoothed curve per run, with a legend", () => {
  const svg = lossChartSvg(results);
  expect(svg.startsWith("<svg")).toBe(true);
  expect(svg.match(/<polyline/g)?.length).toBe(2 * RECIPES.length);
  for (const r of RECIPES) expect(svg).toContain(`${r} (`);
});

test("without a TTY the progress prints a line every ~10 % of steps and at the end", () => {
  const lines: string[] = [];
  const p = new Progress("f32", 25, (s) => lines.push(s), false);
  for (let i = 1; i <= 25; i++) p.update(i, 1 / i);
  expect(lines.length).toBe(9); // steps 3, 6, ..., 24 and 25
  expect(lines.at(-1)).toMatch(/^f32 +\[#{24}\] 25\/25 {2}loss 0\.0400 {2}[\d.]+ steps\/s/);
});

const demo = join(import.meta.dir, "..", "examples", "demo.ts");

test("--help lists the options", () => {
  const r = Bun.spawnSync(["bun", demo, "--help"]);
  expect(r.exitCode).toBe(0);
  for (const opt of ["--steps", "--recipe", "--batch-size", "--lr", "--dtype", "--device", "--help"]) expect(r.stdout.toString()).toContain(opt);
});

test.skipIf(cudaProbe().available)("--device cuda without a usable GPU fails with a clear message", () => {
  const cuda = Bun.spawnSync(["bun", demo, "--device", "cuda"]);
  expect(cuda.exitCode).toBe(1);
  expect(cuda.stderr.toString()).toContain("--device cuda is not usable here");
});

test("a bad --recipe fails with a clear message", () => {
  const bad = Bun.spawnSync(["bun", demo, "--recipe", "f32,fp4"]);
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr.toString()).toContain("unknown recipe 'fp4'");
});
