// cast.ts — bandwidth of libfp8's fp8 cast and amax kernels against memcpy in the same run.
//   bun bench/cast.ts [--mib 64] [--threads N] [--isa 0|1|2] [--help]
// Bytes moved per element: scaled cast f32 -> e4m3 reads 4 and writes 1; amax reads 4;
// memcpy (Uint8Array.prototype.set between native buffers) reads and writes each byte.
// Prints mitata's table, then GB/s and the ratio to memcpy for each kernel.
import { bench, do_not_optimize, run } from "mitata";
import { check, lib, nativeAlloc, nativeFree, nativeView } from "../src/ffi/index.ts";

const F32 = 0;
const E4M3 = 2;
const ISA_NAMES = ["portable", "AVX2", "AVX-512"];

function usage(): never {
  console.log(`usage: bun bench/cast.ts [--mib N] [--threads N] [--isa 0|1|2]
  --mib N      float32 input size in MiB (default 64)
  --threads N  OpenMP threads for the kernels (default: libfp8's default)
  --isa K      cap the kernels at 0 portable, 1 AVX2, 2 AVX-512 (default 2)
Measures memcpy, scaled cast float32 -> float8_e4m3fn and amax over float32,
and prints each kernel's bytes/s as a ratio of memcpy's, measured in the same run.`);
  process.exit(0);
}

function option(name: string, fallback: number | undefined): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    console.error(`--${name} needs a non-negative integer`);
    process.exit(2);
  }
  return v;
}

if (process.argv.includes("--help") || process.argv.includes("-h")) usage();
const mib = option("mib", 64)!;
const threads = option("threads", undefined);
const isa = option("isa", 2)!;
if (threads !== undefined) check(lib.fp8_set_num_threads(threads), "set_num_threads");
check(lib.fp8_cpu_set_isa(isa), "set_isa");
const isaOut = new Int32Array(1), threadsOut = new Int32Array(1);
check(lib.fp8_cpu_get_isa(isaOut), "get_isa");
check(lib.fp8_get_num_threads(threadsOut), "get_num_threads");

const n = (mib * 1024 * 1024) / 4;
const srcPtr = nativeAlloc(4 * n);
const copyPtr = nativeAlloc(4 * n);
const fp8Ptr = nativeAlloc(n);
const src = new Float32Array(nativeView(srcPtr, 4 * n));
for (let i = 0; i < n; i++) src[i] = Math.sin(i * 0.618) * 3; // any non-trivial data
const srcBytes = new Uint8Array(nativeView(srcPtr, 4 * n));
const copyBytes = new Uint8Array(nativeView(copyPtr, 4 * n));
new Uint8Array(nativeView(fp8Ptr, n)).fill(0); // touch the pages before timing
copyBytes.fill(0);
const scale = Float32Array.of(448 / 3);
const amaxOut = new Float32Array(1);
// Native pointers are plain numbers here; bun:ffi takes them for `ptr` arguments.
const P = (p: number) => p as unknown as Float32Array;

const kernels = [
  { name: `memcpy ${mib} MiB`, bytes: 2 * 4 * n, fn: () => copyBytes.set(srcBytes) },
  {
    name: "cast f32->e4m3 (scaled)",
    bytes: 5 * n,
    fn: () => lib.fp8_cpu_quantize(P(fp8Ptr), E4M3, P(srcPtr), F32, n, scale),
  },
  { name: "amax f32", bytes: 4 * n, fn: () => lib.fp8_cpu_amax(amaxOut, P(srcPtr), F32, n) },
];
for (const k of kernels) bench(k.name, () => do_not_optimize(k.fn()));

const result = await run();
nativeFree(srcPtr);
nativeFree(copyPtr);
nativeFree(fp8Ptr);

const median = (name: string): number => {
  for (const t of result.benchmarks) for (const r of t.runs) if (r.name === name && r.stats) return r.stats.p50;
  throw new Error(`no result for ${name}`);
};
const gbps = (bytes: number, ns: number): number => bytes / ns; // bytes/ns == GB/s
const base = gbps(kernels[0]!.bytes, median(kernels[0]!.name));
console.log(
  `\n${ISA_NAMES[isaOut[0]!]} kernels, ${threadsOut[0]} thread(s), ${mib} MiB float32 input; medians:`,
);
for (const k of kernels) {
  const rate = gbps(k.bytes, median(k.name));
  console.log(`${k.name.padEnd(26)} ${rate.toFixed(2).padStart(7)} GB/s   ${(rate / base).toFixed(2)}x memcpy`);
}
