// padding.ts — counterpart of torchao's bench_padding benchmark: what
// padding the GEMM's inner dim to a multiple of 16 (padInnerDim, torchao's
// pad_tensor_for_matmul) costs around a scaled fp8 GEMM whose K is not aligned.
// Per shape, interleaved in one run: scaledMm at the unaligned K (the CPU runs any K),
// the pad alone (both fp8 operands copied into zero-filled (., K16) buffers, as torchao
// pads the fp8 data), and pad + scaledMm at K16. Reports the padding overhead.
//   bun bench/padding.ts [--quick] [--rounds R] [-o out.csv]
import { float8, randn, manualSeed, cat, zeros, tidy, type Tensor } from "../src/index.ts";
import { argValue, hasFlag, machineLine, timeInterleaved, writeCsv } from "./harness.ts";

if (hasFlag("help") || hasFlag("h")) {
  console.log(`usage: bun bench/padding.ts [--quick] [--rounds R] [-o FILE]
Shapes (M, K, N) with K not a multiple of 16 (torchao's bench_padding uses K = N = 1024*k - 1 style sizes);
prints per shape the time of scaledMm at K, of padding both fp8 operands to K16, and of pad + scaledMm at K16.`);
  process.exit(0);
}
const quick = hasFlag("quick");
const rounds = Number(argValue("rounds", quick ? "2" : "5"));
const shapes = quick
  ? [{ M: 256, K: 1000, N: 256 }]
  : [{ M: 1024, K: 1023, N: 1024 }, { M: 2048, K: 2047, N: 2048 }, { M: 4096, K: 4095, N: 1024 }, { M: 1024, K: 8191, N: 1024 }];

/** (rows, K) fp8 -> (rows, K16) fp8 with zero columns (the data only; the scale is unchanged). */
function padInner(f: float8.Float8Tensor, k16: number): float8.Float8Tensor {
  const [rows, k] = f.shape;
  const padded = cat([f.data, zeros([rows, k16 - k], { dtype: f.dtype })], 1);
  return new float8.Float8Tensor(padded, f.scale, f.origDtype, f.role);
}

console.log(`# padding (bench_padding counterpart) on ${machineLine()}, ${new Date().toISOString().slice(0, 10)}`);
const rows: Record<string, string | number>[] = [];
for (const s of shapes) {
  manualSeed(0);
  const k16 = Math.ceil(s.K / 16) * 16;
  const a = float8.hpTensorToFloat8Dynamic(randn([s.M, s.K], { dtype: "bfloat16" }), "float8_e4m3fn", "input");
  const b = float8.hpTensorToFloat8Dynamic(randn([s.N, s.K], { dtype: "bfloat16" }), "float8_e4m3fn", "weight");
  for (const t of [a.data, a.scale, b.data, b.scale] as Tensor[]) t.keep();
  const t = await timeInterleaved({
    "scaledMm K": () => tidy(() => void float8.scaledMm(a, b, { transposeB: true, outDtype: "bfloat16" })),
    "pad only": () => tidy(() => void [padInner(a, k16), padInner(b, k16)]),
    "pad + scaledMm K16": () => tidy(() => void float8.scaledMm(padInner(a, k16), padInner(b, k16), { transposeB: true, outDtype: "bfloat16" })),
  }, rounds);
  const base = t["scaledMm K"];
  console.log(`\nM,K,N = ${s.M},${s.K},${s.N} (K16 = ${k16})`);
  for (const [k, ms] of Object.entries(t)) {
    console.log(`  ${k.padEnd(20)} ${ms.toFixed(3).padStart(9)} ms  ${(ms / base).toFixed(3)}x scaledMm at K`);
    rows.push({ M: s.M, K: s.K, N: s.N, K16: k16, what: k, ms: +ms.toFixed(4), vs_unpadded: +(ms / base).toFixed(4) });
  }
  console.log(`  padding overhead ${(100 * (t["pad + scaledMm K16"] / base - 1)).toFixed(1)}% (pad alone ${(100 * t["pad only"] / base).toFixed(1)}% of the GEMM)`);
  for (const x of [a, b]) x.dispose();
}
const out = argValue("o");
if (out) {
  writeCsv(out, rows);
  console.log(`\nwrote ${out}`);
}
