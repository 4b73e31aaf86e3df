// Smoke test: every benchmark runs in its quick size and prints its result
// lines (bench:all). It checks that they work, never how fast they are.
import { expect, test } from "bun:test";
import { join } from "node:path";

test("bench:all runs every benchmark in its quick size", () => {
  const p = Bun.spawnSync(["bun", join(import.meta.dir, "..", "bench", "all.ts")], { stdout: "pipe", stderr: "pipe" });
  const out = p.stdout.toString();
  expect(p.exitCode).toBe(0);
  for (const line of [/cast f32->e4m3 \(scaled\) .*x memcpy/, /fp8 speedup vs bf16 [\d.]+x/, /Float8Linear dynamic .* speed vs bfloat16 Linear [\d.]+x/, /stats every 10 .* ms\/step/, /w13 +16384 +8192 +7168/,
    /grad_weight .*P,R,Q/, /Float8Linear materialize +[\d.]+ ms .*vs best layout [\d.]+x/, /without tidy +median +[\d.]+ ms/, /bf16 MLP step +[\d.]+ ms/, /arithmetic ceiling \(fp8_bench_cpu_peak, \d+ threads\): .*avx512_bf16 /, /bf16 Linear +[\d.]+ ms.*GEMMs \d+ GFLOP\/s/]) {
    expect(out).toMatch(line);
  }
});
