// all.ts — runs every benchmark in its "quick" size (a smoke test that CI can
// afford: a few minutes on 2 cores). Never fails on slowness, only on errors.
//   bun bench/all.ts [--full]
const full = process.argv.includes("--full");
const runs: string[][] = [
  ["bench/cast.ts", ...(full ? [] : ["--mib", "16"])],
  ["bench/cast_kernels.ts", ...(full ? [] : ["--quick"])],
  ["bench/matmul.ts", ...(full ? [] : ["--quick"])],
  ["bench/linear_float8.ts", ...(full ? [] : ["--quick"])],
  ["bench/stats.ts", ...(full ? [] : ["--quick"])],
  ["bench/gemm_layouts.ts", ...(full ? [] : ["--quick"])],
  ["bench/tidy_cost.ts", ...(full ? [] : ["--quick"])],
  ["bench/vs_torch.ts", ...(full ? [] : ["--quick"])],
  ["bench/roofline.ts", "--shape-gen", "llama"],
  // torchao's remaining benchmarks (bench_padding, profile_linear_float8, bench_multi_gpu)
  ["bench/padding.ts", ...(full ? [] : ["--quick"])],
  ["bench/profile_linear_float8.ts", ...(full ? [] : ["--quick"])],
  ...(Bun.which("mpirun") ? [["bench/multi_gpu.ts", ...(full ? [] : ["--quick"])]] : []),
];
let failed = 0;
for (const args of runs) {
  console.log(`\n=== bun ${args.join(" ")}`);
  const p = Bun.spawnSync(["bun", ...args], { stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) {
    console.error(`bench:all: ${args[0]} exited with ${p.exitCode}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
