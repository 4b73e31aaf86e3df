// call_overhead.ts — the TypeScript cost of one op call, measured on tiny tensors
// (the kernels then cost next to nothing): what the tensor-level device contract
// (src/tensor/device_ops.ts) and the rest of the plumbing add per call.
//   bun bench/call_overhead.ts [--root DIR] [--rounds 7]
// --root runs another checkout's src/ (e.g. an older commit exported with
// `git archive`, its build/ linked to this one's) for a before/after on one machine.
import { resolve } from "node:path";
import { argValue, hasFlag } from "./harness.ts";

if (hasFlag("help") || hasFlag("h")) {
  console.log("usage: bun bench/call_overhead.ts [--root DIR] [--rounds 7]\nPrints min and median microseconds per call of tiny float8 casts, an add and a Float8Linear step.");
  process.exit(0);
}
const root = resolve(argValue("root") ?? resolve(import.meta.dir, ".."));
const rounds = Number(argValue("rounds") ?? "7");
const { float8, randn, tidy, nn, manualSeed } = await import(`${root}/src/index.ts`);

manualSeed(1);
const x = randn([4, 16], { dtype: "bfloat16" }).keep();
const y = randn([4, 16], { dtype: "bfloat16" }).keep();
const scale = float8.tensorToScale(x, "float8_e4m3fn")[0].keep();
const lin = float8.convertToFloat8Training(new nn.Linear(16, 16, { dtype: "bfloat16" }));
const cases: Record<string, [number, () => void]> = {
  "toFloat8Saturated (4x16)": [20000, () => tidy(() => void float8.toFloat8Saturated(x, scale, "float8_e4m3fn"))],
  "hpTensorToFloat8Dynamic (4x16, decoded)": [20000, () => tidy(() => void float8.hpTensorToFloat8Dynamic(x, "float8_e4m3fn", "input", false, true))],
  "add (4x16)": [20000, () => tidy(() => void x.add(y))],
  "Float8Linear forward+backward (4x16x16)": [2000, () => tidy(() => lin.forward(x).sum().backward())],
};
console.log(`# call_overhead: ${root}, ${rounds} rounds; microseconds per call`);
for (const [name, [n, fn]] of Object.entries(cases)) {
  for (let i = 0; i < n / 4; i++) fn(); // warm-up
  const t: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    t.push(((performance.now() - t0) / n) * 1000);
  }
  t.sort((a, b) => a - b);
  console.log(`${name.padEnd(42)} min ${t[0].toFixed(2).padStart(7)} us   median ${t[Math.floor(t.length / 2)].toFixed(2).padStart(7)} us`);
}
