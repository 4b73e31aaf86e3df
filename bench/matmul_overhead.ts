// matmul_overhead.ts — fp8_cpu_matmul against oneDNN's raw matmul in the same run.
//   bun bench/matmul_overhead.ts [--reps R] [--threads N] [--shape M,K,N] [--dtype f32|bf16]
//                                [--raw PATH] [--json] [--help]
// The baseline is fp8_bench_onednn_raw (oneDNN alone, primitive created once),
// run as a child in --serve mode: the two sides take turns, one call each,
// swapping who goes first every turn, so both see the same machine load. It
// prints each side's best GFLOP/s, ours/raw of those bests, and the median of
// the per-turn ratios (the steadier number on a busy machine).
import { lines } from "./harness.ts";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { check, lib, libraryPath, nativeAlloc, nativeFree, nativeView, type NativePtr } from "../src/ffi/index.ts";

const DTYPES = { f32: { id: 0, bytes: 4 }, bf16: { id: 1, bytes: 2 } } as const;
type DtypeName = keyof typeof DTYPES;
const PAUSE_MS = 20;
const SHAPES: [number, number, number][] = [
  [1024, 2048, 1024],
  [4096, 2048, 4096],
];

function usage(): never {
  console.log(`usage: bun bench/matmul_overhead.ts [--reps R] [--threads N] [--shape M,K,N] [--dtype f32|bf16] [--raw PATH] [--json]
  --reps R      turns per case: one baseline call and one of ours each (default 20)
  --threads N   threads for both libfp8 and the baseline (default: all cores)
  --shape M,K,N run only this shape (default: both shapes below)
  --dtype D     run only f32 or bf16 (default: both)
  --raw PATH    the baseline executable (default: fp8_bench_onednn_raw next to libfp8.so)
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
function fail(message: string): never {
  console.error(`matmul_overhead: ${message}`);
  process.exit(2);
}
function intOption(name: string, fallback: number | undefined): number | undefined {
  const s = option(name);
  if (s === undefined) return fallback;
  const v = Number(s);
  if (!Number.isInteger(v) || v < 1) fail(`--${name} needs a positive integer`);
  return v;
}

const reps = intOption("reps", 20)!;
const threads = intOption("threads", undefined);
const asJson = argv.includes("--json");
const onlyShape = option("shape");
const shapes = onlyShape === undefined ? SHAPES : [onlyShape.split(",").map(Number) as [number, number, number]];
if (shapes.some((s) => s.length !== 3 || s.some((v) => !Number.isInteger(v) || v < 1))) fail("--shape needs M,K,N (positive integers)");
const onlyDtype = option("dtype");
if (onlyDtype !== undefined && !(onlyDtype in DTYPES)) fail("--dtype needs f32 or bf16");
const dtypes = (onlyDtype === undefined ? Object.keys(DTYPES) : [onlyDtype]) as DtypeName[];
const rawPath = option("raw") ?? join(dirname(libraryPath), "fp8_bench_onednn_raw");
if (!existsSync(rawPath)) fail(`baseline ${rawPath} not found; build it with cmake (target fp8_bench_onednn_raw)`);
if (threads !== undefined) check(lib.fp8_set_num_threads(threads), "set_num_threads");


/** The baseline as a child process that runs one timed call per request. */
async function startBaseline(M: number, K: number, N: number, dtype: DtypeName) {
  const env = { ...process.env, ...(threads !== undefined ? { OMP_NUM_THREADS: String(threads) } : {}) };
  const proc = Bun.spawn([rawPath, String(M), String(K), String(N), dtype, "--serve"], { env, stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const out = lines(proc.stdout);
  const next = async (): Promise<string> => {
    const r = await out.next();
    if (r.done) throw new Error(`${rawPath} exited early (code ${await proc.exited})`);
    return r.value;
  };
  const header = JSON.parse(await next()) as { impl: string };
  return {
    impl: header.impl,
    /** Milliseconds of one baseline call. */
    async once(): Promise<number> {
      proc.stdin.write("run\n");
      proc.stdin.flush();
      return Number(await next());
    },
    async stop(): Promise<void> {
      proc.stdin.write("quit\n");
      proc.stdin.end();
      await proc.exited;
    },
  };
}

/** Native a, b, c for one case and a timer of one fp8_cpu_matmul call on them. */
function startOurs(M: number, K: number, N: number, dtype: DtypeName) {
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
  call(); // warm-up, as the baseline does: primitive creation, first touch
  call();
  return {
    /** Milliseconds of one call. */
    once(): number {
      const t0 = performance.now();
      call();
      return performance.now() - t0;
    },
    stop(): void {
      nativeFree(a);
      nativeFree(b);
      nativeFree(c);
    },
  };
}

const median = (xs: number[]): number => {
  const s = xs.slice().sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const threadsOut = new Int32Array(1);
check(lib.fp8_get_num_threads(threadsOut), "get_num_threads");
if (!asJson) {
  console.log(`matmul overhead: fp8_cpu_matmul vs oneDNN raw matmul, ${reps} alternating turns, ${threadsOut[0]} threads`);
  console.log(`baseline: ${rawPath}`);
  console.log("shape (M,K,N)      dtype  raw GFLOP/s  ours GFLOP/s  ours/raw (best)  ours/raw (median turn)  kernel");
}
for (const [M, K, N] of shapes) {
  for (const dtype of dtypes) {
    const raw = await startBaseline(M, K, N, dtype);
    const ours = startOurs(M, K, N, dtype);
    const rawMs: number[] = [];
    const oursMs: number[] = [];
    try {
      // A pause before each call lets the other side's OpenMP workers stop
      // spinning, so neither call shares the cores with them.
      const pause = () => Bun.sleep(PAUSE_MS);
      for (let r = 0; r < reps; r++) {
        for (const side of r % 2 === 0 ? ["raw", "ours"] : ["ours", "raw"]) {
          await pause();
          if (side === "raw") rawMs.push(await raw.once());
          else oursMs.push(ours.once());
        }
      }
    } finally {
      ours.stop();
      await raw.stop();
    }
    const gflops = (ms: number) => (2 * M * K * N) / (ms * 1e6);
    const rawBest = gflops(Math.min(...rawMs));
    const oursBest = gflops(Math.min(...oursMs));
    const bestRatio = oursBest / rawBest;
    const turnRatio = median(rawMs.map((t, i) => t / oursMs[i]!));
    if (asJson) {
      console.log(JSON.stringify({
        M, K, N, dtype, reps, raw_gflops: +rawBest.toFixed(2), ours_gflops: +oursBest.toFixed(2),
        ratio_best: +bestRatio.toFixed(3), ratio_median_turn: +turnRatio.toFixed(3), impl: raw.impl,
      }));
    } else {
      const shape = `${M},${K},${N}`.padEnd(18);
      console.log(`${shape} ${dtype.padEnd(6)} ${rawBest.toFixed(1).padStart(11)}  ${oursBest.toFixed(1).padStart(12)}  ${bestRatio.toFixed(3).padStart(15)}  ${turnRatio.toFixed(3).padStart(22)}  ${raw.impl}`);
    }
  }
}
