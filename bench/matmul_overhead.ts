// matmul_overhead.ts — fp8_cpu_matmul against oneDNN's raw matmul in the same run.
//   bun bench/matmul_overhead.ts [--reps R] [--rounds N] [--threads N] [--raw PATH] [--json] [--help]
// For each shape and dtype it alternates the standalone baseline
// (fp8_bench_onednn_raw: oneDNN alone, primitive created once) with our FFI
// call on native buffers, for N rounds plus a closing baseline run, and prints
// ours / raw with each side's best GFLOP/s. Alternating and taking the best
// keeps the ratio honest on a shared, noisy machine.
import { dirname, join } from "node:path";
import { existsSync } from "node:fs";
import { check, lib, libraryPath, nativeAlloc, nativeFree, nativeView, type NativePtr } from "../src/ffi/index.ts";

const DTYPES = { f32: { id: 0, bytes: 4 }, bf16: { id: 1, bytes: 2 } } as const;
type DtypeName = keyof typeof DTYPES;
const SHAPES: [number, number, number][] = [
  [1024, 2048, 1024],
  [4096, 2048, 4096],
];

function usage(): never {
  console.log(`usage: bun bench/matmul_overhead.ts [--reps R] [--rounds N] [--threads N] [--raw PATH] [--json]
  --reps R      timed repetitions per measurement, best one counts (default 10)
  --rounds N    baseline/ours alternations per case (default 2)
  --threads N   threads for both libfp8 and the baseline (default: all cores)
  --raw PATH    the baseline executable (default: fp8_bench_onednn_raw next to libfp8.so)
  --shape M,K,N run only this shape (default: both shapes below)
  --dtype D     run only f32 or bf16 (default: both)
  --json        print one JSON line per case instead of the table
Shapes M,K,N = 1024,2048,1024 and 4096,2048,4096 in float32 and bfloat16 (a, b, c of
one dtype, row-major, no transposes, alpha 1, beta 0). Target: ours/raw >= 0.90.`);
  process.exit(0);
}

const argv = process.argv.slice(2);
if (argv.includes("--help") || argv.includes("-h")) usage();
function option(name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? undefined : argv[i + 1];
}
function intOption(name: string, fallback: number | undefined): number | undefined {
  const s = option(name);
  if (s === undefined) return fallback;
  const v = Number(s);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`--${name} needs a positive integer`);
    process.exit(2);
  }
  return v;
}
const reps = intOption("reps", 10)!;
const rounds = intOption("rounds", 2)!;
const threads = intOption("threads", undefined);
const asJson = argv.includes("--json");
const onlyShape = option("shape");
const onlyDtype = option("dtype");
const shapes: [number, number, number][] = onlyShape === undefined ? SHAPES : [onlyShape.split(",").map(Number) as [number, number, number]];
if (shapes.some((s) => s.length !== 3 || s.some((v) => !Number.isInteger(v) || v < 1))) {
  console.error("--shape needs M,K,N (positive integers)");
  process.exit(2);
}
if (onlyDtype !== undefined && !(onlyDtype in DTYPES)) {
  console.error("--dtype needs f32 or bf16");
  process.exit(2);
}
const dtypes = (onlyDtype === undefined ? Object.keys(DTYPES) : [onlyDtype]) as DtypeName[];
const rawPath = option("raw") ?? join(dirname(libraryPath), "fp8_bench_onednn_raw");
if (!existsSync(rawPath)) {
  console.error(`matmul_overhead: baseline ${rawPath} not found; build it with cmake (target fp8_bench_onednn_raw)`);
  process.exit(1);
}
if (threads !== undefined) check(lib.fp8_set_num_threads(threads), "set_num_threads");

/** What fp8_bench_onednn_raw prints (the fields used here). */
interface Raw {
  gflops: number;
  impl: string;
}

function runRaw(M: number, K: number, N: number, dtype: DtypeName): Raw {
  const env = { ...process.env, ...(threads !== undefined ? { OMP_NUM_THREADS: String(threads) } : {}) };
  const proc = Bun.spawnSync([rawPath, String(M), String(K), String(N), dtype, "--reps", String(reps)], { env });
  if (proc.exitCode !== 0) throw new Error(`${rawPath} failed: ${proc.stderr.toString()}`);
  return JSON.parse(proc.stdout.toString()) as Raw;
}

/** Native a, b, c for one case and a timer of fp8_cpu_matmul on them. */
function ours(M: number, K: number, N: number, dtype: DtypeName) {
  const { id, bytes } = DTYPES[dtype];
  const a = nativeAlloc(M * K * bytes);
  const b = nativeAlloc(K * N * bytes);
  const c = nativeAlloc(M * N * bytes);
  // values in [-1, 1] like the baseline's; bf16 as the top half of the f32 bits
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (const [p, n] of [[a, M * K], [b, K * N], [c, M * N]] as [NativePtr, number][]) {
    const view = dtype === "f32" ? new Float32Array(nativeView(p, n * 4)) : new Uint16Array(nativeView(p, n * 2));
    for (let i = 0; i < n; i++) {
      f[0] = Math.sin(i);
      view[i] = dtype === "f32" ? f[0]! : u[0]! >>> 16;
    }
  }
  const call = () => check(lib.fp8_cpu_matmul(c, id, a, b, id, null, id, 1, 1, M, K, N, 0, 0, 1, 0), "matmul");
  return {
    /** Best-of-reps GFLOP/s, after two warm-up calls (primitive creation, first touch). */
    time(): number {
      call();
      call();
      let best = Infinity;
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        call();
        best = Math.min(best, performance.now() - t0);
      }
      return (2 * M * K * N) / (best * 1e6);
    },
    free(): void {
      nativeFree(a);
      nativeFree(b);
      nativeFree(c);
    },
  };
}

const threadsOut = new Int32Array(1);
check(lib.fp8_get_num_threads(threadsOut), "get_num_threads");
if (!asJson) {
  console.log(`matmul overhead: fp8_cpu_matmul vs oneDNN raw matmul, best of ${reps} x ${rounds} rounds, ${threadsOut[0]} threads`);
  console.log(`baseline: ${rawPath}`);
  console.log("shape (M,K,N)      dtype  raw GFLOP/s  ours GFLOP/s  ours/raw  kernel");
}
for (const [M, K, N] of shapes) {
  for (const dtype of dtypes) {
    let raw = runRaw(M, K, N, dtype);
    let oursGflops = 0;
    const mine = ours(M, K, N, dtype);
    try {
      for (let r = 0; r < rounds; r++) {
        oursGflops = Math.max(oursGflops, mine.time());
        const again = runRaw(M, K, N, dtype);
        if (again.gflops > raw.gflops) raw = again;
      }
    } finally {
      mine.free();
    }
    const ratio = oursGflops / raw.gflops;
    if (asJson) {
      console.log(JSON.stringify({ M, K, N, dtype, reps, raw_gflops: raw.gflops, ours_gflops: +oursGflops.toFixed(2), ratio: +ratio.toFixed(3), impl: raw.impl }));
    } else {
      const shape = `${M},${K},${N}`.padEnd(18);
      console.log(`${shape} ${dtype.padEnd(6)} ${raw.gflops.toFixed(1).padStart(11)}  ${oursGflops.toFixed(1).padStart(12)}  ${ratio.toFixed(3).padStart(8)}  ${raw.impl}`);
    }
  }
}
