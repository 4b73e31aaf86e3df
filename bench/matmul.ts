// matmul.ts — scaledMm (fp8) against bf16 and f32 matmul on the LLaMA-2-70B
// linear shapes, measured in the same run (interleaved rounds).
//   bun bench/matmul.ts [--M 1024] [--rounds 3] [-o out.csv] [--quick]
// torchao's bench_matmul uses M = 16384; on a 2-core CPU the default is M = 1024.
import { float8, randn, tidy, manualSeed } from "../src/index.ts";
import { gemm } from "../src/tensor/ops/linalg.ts";
import { argValue, hasFlag, machineLine, timeInterleaved, writeCsv } from "./harness.ts";

if (hasFlag("help") || hasFlag("h")) {
  console.log(`usage: bun bench/matmul.ts [--M 1024] [--rounds 3] [-o FILE] [--quick]
Shapes (M, K, N): wqkv (M,8192,1280), w0 (M,1024,8192), w13 (M,8192,7168), w2 (M,3584,8192).
For each: f32 and bf16 matmul (x @ w^T as in a Linear) and scaledMm e4m3 x e4m3 -> bf16.
Prints GFLOP/s and fp8 speed relative to bf16 and f32 from the same run.`);
  process.exit(0);
}
const quick = hasFlag("quick");
const M = Number(argValue("M", quick ? "256" : "1024"));
const rounds = Number(argValue("rounds", quick ? "2" : "3"));
const shapes = quick
  ? [{ name: "w0", K: 1024, N: 2048 }]
  : [
      { name: "wqkv", K: 8192, N: 1280 },
      { name: "w0", K: 1024, N: 8192 },
      { name: "w13", K: 8192, N: 7168 },
      { name: "w2", K: 3584, N: 8192 },
    ];

console.log(`# matmul on ${machineLine()}, M=${M}, ${new Date().toISOString().slice(0, 10)}`);
const rows: Record<string, string | number>[] = [];
for (const s of shapes) {
  manualSeed(0);
  const x32 = randn([M, s.K]).keep(), w32 = randn([s.N, s.K]).keep();
  const x16 = x32.to({ dtype: "bfloat16" }).keep(), w16 = w32.to({ dtype: "bfloat16" }).keep();
  const xf = float8.hpTensorToFloat8Dynamic(x16, "float8_e4m3fn", "input");
  const wf = float8.hpTensorToFloat8Dynamic(w16, "float8_e4m3fn", "weight");
  xf.data.keep(); xf.scale.keep(); wf.data.keep(); wf.scale.keep();
  const t = await timeInterleaved(
    {
      f32: () => tidy(() => void gemm(x32, w32, { M, K: s.K, N: s.N, transB: true })),
      bf16: () => tidy(() => void gemm(x16, w16, { M, K: s.K, N: s.N, transB: true })),
      fp8: () => tidy(() => void float8.scaledMm(xf, wf, { transposeB: true, outDtype: "bfloat16" })),
    },
    rounds,
  );
  const gflop = (2 * M * s.K * s.N) / 1e9;
  console.log(
    `${s.name.padEnd(5)} (${M},${s.K},${s.N}): f32 ${(gflop / t.f32 * 1e3).toFixed(1)} GFLOP/s, bf16 ${(gflop / t.bf16 * 1e3).toFixed(1)}, fp8 ${(gflop / t.fp8 * 1e3).toFixed(1)}` +
      `  | fp8 speedup vs bf16 ${(t.bf16 / t.fp8).toFixed(3)}x, vs f32 ${(t.f32 / t.fp8).toFixed(3)}x`,
  );
  rows.push({ shape: s.name, M, K: s.K, N: s.N, f32_ms: +t.f32.toFixed(3), bf16_ms: +t.bf16.toFixed(3), fp8_ms: +t.fp8.toFixed(3), fp8_vs_bf16: +(t.bf16 / t.fp8).toFixed(4) });
  for (const z of [x32, w32, x16, w16]) z.dispose();
  xf.dispose();
  wf.dispose();
}
const out = argValue("o");
if (out) writeCsv(out, rows);
