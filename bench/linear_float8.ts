// linear_float8.ts — forward+backward of Linear against Float8Linear for each
// scaling type, measured in the same run (interleaved rounds).
//   bun bench/linear_float8.ts [--shapes issue|llama|custom] [--M 1024] [--K ..] [--N ..]
//        [--dtype bfloat16|float32] [--device cpu] [--rounds 5] [-o out.csv] [--quick]
import { nn, float8, randn, tidy, manualSeed, noGrad, type HighPrecisionDType } from "../src/index.ts";
import { argValue, forwardBackward, hasFlag, machineLine, timeInterleaved, writeCsv } from "./harness.ts";

if (hasFlag("help") || hasFlag("h")) {
  console.log(`usage: bun bench/linear_float8.ts [options]
  --shapes issue|llama|custom  issue: 4096,2048,4096 (default); llama: LLaMA-2-70B wqkv, w0, w13, w2 with M scaled down; custom: --M --K --N
  --M N            rows (tokens); default 4096 (issue), 1024 (llama; torchao uses 16384)
  --dtype D        bfloat16 (default) or float32 model
  --device cpu     cuda runs through bench/gpu/check.sh
  --rounds R       interleaved rounds per shape (default 5)
  -o FILE          write CSV
  --quick          small shapes, 2 rounds (smoke test)
Prints Float8Linear speed as a ratio of the same run's high-precision Linear.`);
  process.exit(0);
}

const device = argValue("device", "cpu");
if (device !== "cpu") {
  console.error(`--device ${device}: this benchmark runs on the CPU here; GPU numbers come from bench/gpu/check.sh`);
  process.exit(2);
}
const quick = hasFlag("quick");
const dtype = argValue("dtype", "bfloat16") as HighPrecisionDType;
const rounds = Number(argValue("rounds", quick ? "2" : "5"));
const shapesArg = argValue("shapes", "issue");
let shapes: { name: string; M: number; K: number; N: number }[];
if (quick) {
  shapes = [{ name: "quick", M: 512, K: 512, N: 512 }];
} else if (shapesArg === "llama") {
  const M = Number(argValue("M", "1024"));
  shapes = [
    { name: "wqkv", M, K: 8192, N: 1280 },
    { name: "w0", M, K: 1024, N: 8192 },
    { name: "w13", M, K: 8192, N: 7168 },
    { name: "w2", M, K: 3584, N: 8192 },
  ];
} else if (shapesArg === "custom") {
  shapes = [{ name: "custom", M: Number(argValue("M")), K: Number(argValue("K")), N: Number(argValue("N")) }];
} else {
  shapes = [{ name: "issue", M: Number(argValue("M", "4096")), K: 2048, N: 4096 }];
}

const { ScalingType, CastConfig, Float8LinearConfig } = float8;
const recipes = {
  dynamic: new Float8LinearConfig(),
  delayed: new Float8LinearConfig({
    castConfigInput: new CastConfig({ scalingType: ScalingType.DELAYED }),
    castConfigWeight: new CastConfig({ scalingType: ScalingType.DELAYED }),
    castConfigGradOutput: new CastConfig({ scalingType: ScalingType.DELAYED }),
  }),
  static: new Float8LinearConfig({
    castConfigInput: new CastConfig({ scalingType: ScalingType.STATIC, staticScale: 32 }),
    castConfigWeight: new CastConfig({ scalingType: ScalingType.STATIC, staticScale: 256 }),
    castConfigGradOutput: new CastConfig({ scalingType: ScalingType.STATIC, staticScale: 4096 }),
  }),
};

console.log(`# linear_float8 on ${machineLine()}, ${dtype} model, ${new Date().toISOString().slice(0, 10)}`);
const rows: Record<string, string | number>[] = [];
for (const s of shapes) {
  manualSeed(0);
  const base = new nn.Linear(s.K, s.N, { dtype, bias: false });
  const layers: Record<string, nn.Module> = { [`${dtype} Linear`]: base };
  for (const [name, cfg] of Object.entries(recipes)) {
    layers[`Float8Linear ${name}`] = float8.Float8Linear.fromFloat(new nn.Linear(s.K, s.N, { dtype, bias: false }), cfg);
  }
  const x = randn([s.M, s.K], { dtype, requiresGrad: true }).keep();
  const g = noGrad(() => randn([s.M, s.N], { dtype, std: 1e-3 })).keep();
  const step = (m: nn.Module) => () =>
    tidy(() => {
      forwardBackward(m, x, g);
      if (m instanceof float8.Float8Linear) float8.syncFloat8AmaxAndScaleHistory(m);
    });
  const fns = Object.fromEntries(Object.entries(layers).map(([k, m]) => [k, step(m)]));
  const t = await timeInterleaved(fns, rounds);
  const baseMs = t[`${dtype} Linear`];
  const flops = 3 * 2 * s.M * s.K * s.N;
  console.log(`\n${s.name}  M,K,N = ${s.M},${s.K},${s.N}`);
  for (const [k, ms] of Object.entries(t)) {
    const ratio = baseMs / ms;
    console.log(`  ${k.padEnd(24)} ${ms.toFixed(1).padStart(9)} ms  ${(flops / ms / 1e6).toFixed(1).padStart(7)} GFLOP/s  speed vs ${dtype} Linear ${ratio.toFixed(3)}x  fp8 overhead ${(100 * (1 - ratio)).toFixed(1)}%`);
    rows.push({ shape: s.name, M: s.M, K: s.K, N: s.N, dtype, layer: k, ms: +ms.toFixed(3), speed_vs_base: +ratio.toFixed(4) });
  }
  for (const m of Object.values(layers)) m.dispose();
  x.dispose();
  g.dispose();
}
const out = argValue("o");
if (out) {
  writeCsv(out, rows);
  console.log(`\nwrote ${out}`);
}
