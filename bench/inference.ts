// inference.ts — fp8-weight inference against bf16 on the CPU, in one run:
//   M = 1 and M = 16 rows, K = N = 4096 (one decode step of a 4096-wide layer):
//   weight-only fp8 (Float8InferenceLinear, rowwise scales, our GEMV) vs our bf16 nn.Linear
//   (oneDNN) vs torch's bf16 F.linear (same machine, same thread count, a child process), plus
//   the outputs' SQNR against the bf16 Linear (torchao's bar: 20 dB).
//
//   PYTHONPATH=<torch install> bun bench/inference.ts [--threads 2] [--rounds 7]
//
// Without an importable torch the torch column says so. Two statistics, both interleaved so that
// machine noise hits every side alike: the harness's (bench/harness.ts: per round the mean of
// repeated calls, then the median over rounds), and the median of single calls (A, B, A, B, ...),
// which drops the calls a busy host delays by a scheduler tick (4 ms here) waking an OpenMP thread,
// and the fastest single call of each (the least disturbed one; on a shared host the only stable one).
import { parseArgs } from "node:util";
import { nn, float8, randn, manualSeed, noGrad } from "../src/index.ts";
import { lib } from "../src/ffi/index.ts";
import { timeInterleaved } from "./harness.ts";

const { values } = parseArgs({ options: { threads: { type: "string", default: "2" }, rounds: { type: "string", default: "7" }, size: { type: "string", default: "4096" } } });
const threads = Number(values.threads), rounds = Number(values.rounds), D = Number(values.size);
lib.fp8_set_num_threads(threads);

const TORCH = `
import json, sys, time
import torch, torch.nn.functional as F
torch.set_num_threads(${threads})
torch.manual_seed(0)
D = ${D}
w = torch.randn(D, D).to(torch.bfloat16)
out = {}
for M in (1, 16):
    x = torch.randn(M, D).to(torch.bfloat16)
    with torch.no_grad():
        F.linear(x, w)
        t0 = time.perf_counter(); n = 0
        while time.perf_counter() - t0 < 0.05: F.linear(x, w); n += 1
        reps = max(n, 1)
        ts = []
        for _ in range(${rounds}):
            t0 = time.perf_counter()
            for _ in range(reps): F.linear(x, w)
            ts.append((time.perf_counter() - t0) / reps * 1e3)
    out[M] = sorted(ts)[len(ts) // 2]
print(json.dumps({"version": torch.__version__, "ms": out}))
`;

function torchTimes(): { version: string; ms: Record<string, number> } | string {
  const p = Bun.spawnSync(["python3", "-c", TORCH], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) return `torch not available (${p.stderr.toString().trim().split("\n").at(-1)})`;
  return JSON.parse(p.stdout.toString());
}

manualSeed(0);
const bf16 = new nn.Linear(D, D, { bias: false, dtype: "bfloat16" });
const fp8 = float8.quantizeForInference(new nn.Linear(D, D, { bias: false, dtype: "bfloat16", weight: bf16.weight.detach() }), { recipe: "rowwise" }) as InstanceType<typeof float8.Float8InferenceLinear>;

/** Median (and fastest) time of single calls, the functions called in turn `calls` times each after a warm-up. */
function perCallMedians(fns: Record<string, () => void>, calls: number, pick: "median" | "min" = "median"): Record<string, number> {
  const names = Object.keys(fns);
  const ts: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (const n of names) for (let i = 0; i < 5; i++) fns[n]!();
  for (let i = 0; i < calls; i++) {
    for (const n of names) {
      const t0 = performance.now();
      fns[n]!();
      ts[n]!.push(performance.now() - t0);
    }
  }
  return Object.fromEntries(names.map((n) => [n, ts[n]!.sort((a, b) => a - b)[pick === "min" ? 0 : Math.floor(calls / 2)]!]));
}

const rows: string[] = [];
const torch = torchTimes();
for (const M of [1, 16]) {
  const x = randn([M, D], { dtype: "bfloat16" });
  const sqnr = noGrad(() => float8.computeError(bf16.forward(x), fp8.forward(x)));
  const t = await timeInterleaved({
    bf16: () => noGrad(() => bf16.forward(x).dispose()),
    fp8: () => fp8.forward(x).dispose(),
  }, rounds);
  const torchMs = typeof torch === "string" ? NaN : torch.ms[String(M)]!;
  const calls = { bf16: () => noGrad(() => bf16.forward(x).dispose()), fp8: () => fp8.forward(x).dispose() };
  const per = perCallMedians(calls, 50 * rounds);
  const best = perCallMedians(calls, 50 * rounds, "min");
  const gbs = (bytes: number, ms: number) => (bytes / ms / 1e6).toFixed(1);
  rows.push(
    `M=${M} K=N=${D} threads=${threads}: fp8 weight-only ${t.fp8!.toFixed(3)} ms (${gbs(D * D, t.fp8!)} GB/s of weights), ` +
      `our bf16 Linear ${t.bf16!.toFixed(3)} ms (${gbs(2 * D * D, t.bf16!)} GB/s), ` +
      (typeof torch === "string" ? torch : `torch ${torch.version} bf16 F.linear ${torchMs.toFixed(3)} ms`) +
      ` | fp8 speedup: ${(t.bf16! / t.fp8!).toFixed(2)}x vs our bf16` +
      (Number.isNaN(torchMs) ? "" : `, ${(torchMs / t.fp8!).toFixed(2)}x vs torch`) +
      ` | SQNR vs bf16 ${sqnr.toFixed(1)} dB` +
      ` | per-call medians: fp8 ${per.fp8!.toFixed(3)} ms, bf16 ${per.bf16!.toFixed(3)} ms, ${(per.bf16! / per.fp8!).toFixed(2)}x` +
      ` | fastest calls: fp8 ${best.fp8!.toFixed(3)} ms, bf16 ${best.bf16!.toFixed(3)} ms, ${(best.bf16! / best.fp8!).toFixed(2)}x`,
  );
}
console.log(rows.join("\n"));
