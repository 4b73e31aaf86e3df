// block_training.ts — one training step (forward + backward) of a Linear under the block-scaled
// recipes against tensorwise Float8Linear and the high-precision Linear, in one run (interleaved
// rounds), on the CPU:
//   bf16 Linear (oneDNN bf16 GEMMs) | Float8Linear tensorwise (dynamic) | blockwise (f32 GEMMs on
//   the scaled decodes) | mxfp8 (bf16 GEMMs on exact bf16 decodes, where the CPU has AVX-512 BF16)
//   | mxfp8 with the bf16 GEMM turned off (f32 GEMMs, the path before it)
//   bun bench/block_training.ts [--M 4096 --K 2048 --N 4096] [--rounds 3] [--quick]
import { nn, float8, randn, tidy, manualSeed, noGrad } from "../src/index.ts";
import { setMxBf16Gemm } from "../src/float8/block_scaling.ts";
import { lib } from "../src/ffi/index.ts";
import { argValue, forwardBackward, hasFlag, machineLine, timeInterleaved } from "./harness.ts";

const quick = hasFlag("quick");
const M = Number(argValue("M", quick ? "256" : "4096")), K = Number(argValue("K", quick ? "256" : "2048")), N = Number(argValue("N", quick ? "256" : "4096"));
const rounds = Number(argValue("rounds", quick ? "2" : "3"));
const native = new Int32Array(1);
lib.fp8_cpu_bf16_native(native);
console.log(`# block_training on ${machineLine()}, bf16 model, M,K,N = ${M},${K},${N}, AVX-512 BF16: ${native[0] ? "yes" : "no"}, ${new Date().toISOString()}`);

const { Float8LinearConfig, Float8Linear } = float8;
manualSeed(0);
const make = () => new nn.Linear(K, N, { dtype: "bfloat16", bias: false });
const layers: Record<string, [nn.Module, boolean]> = {
  "bf16 Linear": [make(), true],
  "Float8Linear tensorwise": [Float8Linear.fromFloat(make(), new Float8LinearConfig()), true],
  "Float8Linear blockwise": [Float8Linear.fromFloat(make(), Float8LinearConfig.fromRecipeName("blockwise")), true],
  "Float8Linear mxfp8": [Float8Linear.fromFloat(make(), Float8LinearConfig.fromRecipeName("mxfp8")), true],
  "Float8Linear mxfp8 (f32 GEMMs)": [Float8Linear.fromFloat(make(), Float8LinearConfig.fromRecipeName("mxfp8")), false],
};
const x = randn([M, K], { dtype: "bfloat16", requiresGrad: true }).keep();
const g = noGrad(() => randn([M, N], { dtype: "bfloat16", std: 1e-3 })).keep();
const step = ([m, bf16Gemm]: [nn.Module, boolean]) => () => {
  const was = setMxBf16Gemm(bf16Gemm);
  try {
    tidy(() => forwardBackward(m, x, g));
  } finally {
    setMxBf16Gemm(was);
  }
};
const t = await timeInterleaved(Object.fromEntries(Object.entries(layers).map(([k, v]) => [k, step(v)])), rounds);
const base = t["bf16 Linear"]!, tw = t["Float8Linear tensorwise"]!;
for (const [k, ms] of Object.entries(t)) {
  console.log(`  ${k.padEnd(32)} ${ms.toFixed(1).padStart(9)} ms  vs bf16 Linear ${(base / ms).toFixed(3)}x  vs tensorwise ${(tw / ms).toFixed(3)}x`);
}
