// gemm_layouts.ts — each of the three GEMMs of Linear and Float8Linear against oneDNN's own matmul
// for the same problem in each of the four operand layouts, in the same run.
//   bun bench/gemm_layouts.ts [--shapes 1024,2048,1024;4096,2048,4096] [--rounds 9] [--threads 2] [--json]
// For a Linear (M,K,N) the three GEMMs are, as (rows P, reduced R, cols Q) and stored layouts of a, b:
//   forward      y  = x @ w^T   P,R,Q = M,K,N   a = x (M,K) "ab", b = w (N,K) "ba"
//   grad_input   dx = g @ w     P,R,Q = M,N,K   a = g (M,N) "ab", b = w (N,K) "ab"
//   grad_weight  dw = g^T @ x   P,R,Q = N,M,K   a = g (M,N) "ba", b = x (M,K) "ab"
// The baseline (fp8_bench_onednn_layouts, a child in --serve mode) runs oneDNN's matmul alone for
// that P,R,Q in layouts ab,ab / ab,ba / ba,ab / ba,ba; "best" is the fastest layout's median.
// "ours" is the GEMM exactly as the layer issues it (linearGemm in src/tensor/ops/linalg.ts
// picks the layouts; Float8Linear's include the fp8 decode or transpose that the cast did not
// already write, and the alpha post-op). All sides take turns within each round.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { float8, randn, noGrad, transpose, type Tensor } from "../src/index.ts";
import { check, lib, libraryPath } from "../src/ffi/index.ts";
import { gemm, linearGemm } from "../src/tensor/ops/linalg.ts";
import { gemmLayoutPolicy, materializeTransposedA, materializeTransposedB, setGemmLayoutPolicy, type GemmLayoutPolicy, type LinearGemm } from "../src/tensor/ops/gemm_layout.ts";
import { argValue, cpuInfo, hasFlag, lines } from "./harness.ts";

if (hasFlag("help") || hasFlag("h")) {
  console.log(`usage: bun bench/gemm_layouts.ts [--shapes M,K,N;M,K,N] [--rounds R] [--threads T] [--quick] [--json]
Times forward, grad_input and grad_weight of bf16 Linear and Float8Linear (dynamic, tensorwise)
against oneDNN's own matmul in each operand layout for the same problem, interleaved.`);
  process.exit(0);
}
const quick = hasFlag("quick");
const threads = Number(argValue("threads", "2"));
const rounds = Number(argValue("rounds", quick ? "2" : "9"));
const asJson = hasFlag("json");
const shapes: [number, number, number][] = quick
  ? [[256, 512, 384]]
  : argValue("shapes", "1024,2048,1024;4096,2048,4096")!.split(";").map((s) => s.split(",").map(Number) as [number, number, number]);
const rawPath = join(dirname(libraryPath), "fp8_bench_onednn_layouts");
if (!existsSync(rawPath)) {
  console.error(`gemm_layouts: ${rawPath} not found; build it with cmake (target fp8_bench_onednn_layouts)`);
  process.exit(2);
}
check(lib.fp8_set_num_threads(threads), "fp8_set_num_threads");
const LAYOUTS = ["ab,ab", "ab,ba", "ba,ab", "ba,ba"];
const PAUSE_MS = 10;


async function startRaw(P: number, R: number, Q: number) {
  const proc = Bun.spawn([rawPath, String(P), String(R), String(Q), "bf16", "--serve"], {
    env: { ...process.env, OMP_NUM_THREADS: String(threads) }, stdin: "pipe", stdout: "pipe", stderr: "inherit",
  });
  const out = lines(proc.stdout);
  const next = async () => {
    const r = await out.next();
    if (r.done) throw new Error(`${rawPath} exited early`);
    return r.value;
  };
  const header = JSON.parse(await next()) as { impl: { layout: string; impl: string }[] };
  return {
    impls: header.impl.map((i) => i.impl),
    async run(l: number) {
      proc.stdin.write(`run ${l}\n`);
      proc.stdin.flush();
      return Number(await next());
    },
    async stop() {
      proc.stdin.write("quit\n");
      proc.stdin.end();
      await proc.exited;
    },
  };
}

const median = (a: number[]) => {
  const s = [...a].sort((p, q) => p - q);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const timed = (fn: () => Tensor | void) => {
  const t0 = performance.now();
  const out = fn();
  const ms = performance.now() - t0;
  if (out) out.dispose();
  return ms;
};

const cpu = cpuInfo();
console.log(`# gemm_layouts ${new Date().toISOString().slice(0, 16)}Z, ${threads} threads, ${rounds} rounds, bf16 operands`);
console.log(`# CPU: ${cpu.model}; GEMM flags: ${cpu.gemmFlags}; load average ${require("node:os").loadavg().map((v: number) => v.toFixed(1)).join(" ")}`);

for (const [M, K, N] of shapes) {
  const x = noGrad(() => randn([M, K], { dtype: "bfloat16" })).keep();
  const w = noGrad(() => randn([N, K], { dtype: "bfloat16", std: 0.02 })).keep();
  const g = noGrad(() => randn([M, N], { dtype: "bfloat16", std: 1e-3 })).keep();
  const bias = noGrad(() => randn([N], { dtype: "bfloat16" })).keep();
  // the fp8 operands as Float8Linear's dynamic casts leave them
  const { hpTensorToFloat8Dynamic } = await import("../src/float8/float8_tensor.ts");
  const { scaledMm } = float8;
  const policy0 = gemmLayoutPolicy();
  /** Float8Linear's grad_weight GEMM under a policy: the grad_output cast as the layer makes it, then the timed scaledMm. */
  const f8GradWeight = (policy: GemmLayoutPolicy) => {
    const prev = setGemmLayoutPolicy(policy);
    const gf = hpTensorToFloat8Dynamic(g, "float8_e5m2", "grad_output", false, true, materializeTransposedA("cpu", { P: N, R: M, Q: K, dtype: "bfloat16" }));
    const xf = hpTensorToFloat8Dynamic(x, "float8_e4m3fn", "input", false, true);
    xf.dropDecoded(); // Float8Linear keeps only x's fp8 bytes for backward
    const t0 = performance.now();
    scaledMm(gf, xf, { transposeA: true }).dispose();
    lastMs = performance.now() - t0;
    gf.dispose();
    xf.dispose();
    setGemmLayoutPolicy(prev);
  };
  /** fn under the "materialize" policy. */
  const materialized = (fn: () => Tensor) => {
    const prev = setGemmLayoutPolicy("materialize");
    try {
      return fn();
    } finally {
      setGemmLayoutPolicy(prev);
    }
  };
  /** Float8Linear's forward GEMM under a policy: the weight cast as the layer makes it, then the timed scaledMm. */
  const f8Forward = (policy: GemmLayoutPolicy) => {
    const prev = setGemmLayoutPolicy(policy);
    const xf = hpTensorToFloat8Dynamic(x, "float8_e4m3fn", "input", false, true);
    const wf = hpTensorToFloat8Dynamic(w, "float8_e4m3fn", "weight", false, true, materializeTransposedB("cpu", { P: M, R: K, Q: N, dtype: "bfloat16" }));
    const t0 = performance.now();
    scaledMm(xf, wf, { transposeB: true, bias }).dispose();
    lastMs = performance.now() - t0;
    xf.dispose();
    wf.dispose();
    setGemmLayoutPolicy(prev);
  };
  /** The weight cast alone (with the transposed decode under materialize). */
  const castW = (policy: GemmLayoutPolicy) => {
    const t0 = performance.now();
    const wf = hpTensorToFloat8Dynamic(w, "float8_e4m3fn", "weight", false, true, policy === "materialize");
    lastMs = performance.now() - t0;
    wf.dispose();
  };
  /** The grad_output cast alone (with the transposed decode under materialize). */
  const castG = (policy: GemmLayoutPolicy) => {
    const t0 = performance.now();
    const gf = hpTensorToFloat8Dynamic(g, "float8_e5m2", "grad_output", false, true, policy === "materialize");
    lastMs = performance.now() - t0;
    gf.dispose();
  };
  const problems: { gemm: LinearGemm; P: number; R: number; Q: number; ours: Record<string, () => Tensor | void> }[] = [
    {
      gemm: "forward", P: M, R: K, Q: N,
      ours: {
        "bf16 Linear": () => linearGemm("forward", x, w, { M, K, N, bias }),
        "bf16 Linear materialize": () => materialized(() => linearGemm("forward", x, w, { M, K, N, bias })),
        "Float8Linear": () => f8Forward(policy0),
        "Float8Linear descriptor": () => f8Forward("descriptor"),
        "Float8Linear materialize": () => f8Forward("materialize"),
        "w cast, descriptor": () => castW("descriptor"),
        "w cast, materialize": () => castW("materialize"),
      },
    },
    {
      gemm: "grad_input", P: M, R: N, Q: K,
      ours: {
        "bf16 Linear": () => linearGemm("grad_input", g, w, { M, K, N }),
        "Float8Linear": () => {
          const gf = hpTensorToFloat8Dynamic(g, "float8_e5m2", "grad_output", false, true);
          const wf = hpTensorToFloat8Dynamic(w, "float8_e4m3fn", "weight", false, true);
          const t0 = performance.now();
          scaledMm(gf, wf, {}).dispose();
          const ms = performance.now() - t0;
          gf.dispose();
          wf.dispose();
          return void (lastMs = ms);
        },
      },
    },
    {
      gemm: "grad_weight", P: N, R: M, Q: K,
      ours: {
        "bf16 Linear": () => linearGemm("grad_weight", g, x, { M, K, N }),
        "bf16 Linear materialize": () => materialized(() => linearGemm("grad_weight", g, x, { M, K, N })),
        "bf16 as flags (ba)": () => gemm(g, x, { M: N, K: M, N: K, transA: true }),
        "bf16 transpose+ab": () => {
          const gt = transpose(g, 0, 1);
          const out = gemm(gt, x, { M: N, K: M, N: K });
          gt.dispose();
          return out;
        },
        "Float8Linear": () => f8GradWeight(policy0),
        "Float8Linear descriptor": () => f8GradWeight("descriptor"),
        "Float8Linear materialize": () => f8GradWeight("materialize"),
        "g cast, descriptor": () => castG("descriptor"),
        "g cast, materialize": () => castG("materialize"),
      },
    },
  ];
  let lastMs = 0;
  for (const p of problems) {
    const raw = await startRaw(p.P, p.R, p.Q);
    const names = Object.keys(p.ours);
    const times: Record<string, number[]> = Object.fromEntries([...LAYOUTS, ...names].map((n) => [n, []]));
    const runOurs = (n: string) => {
      lastMs = -1;
      const ms = timed(p.ours[n]);
      return lastMs >= 0 ? lastMs : ms;
    };
    for (const n of names) runOurs(n); // warm-up: primitives, allocator
    for (let r = 0; r < rounds; r++) {
      const order = [...LAYOUTS.map((_, i) => i), ...names];
      if (r % 2) order.reverse();
      for (const s of order) {
        await Bun.sleep(PAUSE_MS);
        if (typeof s === "number") times[LAYOUTS[s]].push(await raw.run(s));
        else times[s].push(runOurs(s));
      }
    }
    await raw.stop();
    const med = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
    const min = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, Math.min(...v)]));
    const bestLayout = LAYOUTS.reduce((b, l) => (med[l] < med[b] ? l : b), LAYOUTS[0]);
    const gf = (ms: number) => (2 * p.P * p.R * p.Q) / (ms * 1e6);
    console.log(`\n${M},${K},${N} ${p.gemm}  (P,R,Q = ${p.P},${p.R},${p.Q}); oneDNN alone, median ms (GFLOP/s) [min ms]:`);
    console.log("  " + LAYOUTS.map((l, i) => `${l} ${med[l].toFixed(2)} (${gf(med[l]).toFixed(0)}) [${min[l].toFixed(2)}]${l === bestLayout ? " best" : ""}`).join("  "));
    console.log(`  kernels: ${[...new Set(raw.impls)].join(", ")}`);
    for (const n of names) {
      const ratio = med[bestLayout] / med[n];
      console.log(`  ${n.padEnd(26)} ${med[n].toFixed(2).padStart(8)} ms  ${gf(med[n]).toFixed(0).padStart(5)} GFLOP/s  [min ${min[n].toFixed(2)}]  vs best layout ${ratio.toFixed(2)}x (mins ${(min[bestLayout] / min[n]).toFixed(2)}x)`);
      if (asJson) {
        console.log(JSON.stringify({ M, K, N, gemm: p.gemm, side: n, ms: +med[n].toFixed(3), min_ms: +min[n].toFixed(3), best_layout: bestLayout, best_ms: +med[bestLayout].toFixed(3), vs_best: +ratio.toFixed(3), raw: Object.fromEntries(LAYOUTS.map((l) => [l, +med[l].toFixed(3)])), cpu: cpu.model, gemm_flags: cpu.gemmFlags, threads }));
      }
    }
  }
  for (const t of [x, w, g, bias]) t.dispose();
}
