// onednn_backend.test.ts — what oneDNN runs under the CPU backend
// (libfp8/src/cpu/onednn.hpp, onednn_check.cpp, colsum.c): the version the
// suite runs with, our column-sum kernel (the bias gradient) bit for bit
// against a sequential f32 sum on every vector path, and training steps of an
// MLP with bias and of the GPT example that must not run any reference
// ("ref...") oneDNN implementation.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { join } from "node:path";
import { onednnInfo } from "../src/index.ts";
import { lib } from "../src/ffi/index.ts";
import { buffer, f32, random, roundTo, values } from "./helpers/host.ts";

const F32 = 0;
const BF16 = 1;
const dims = (d: number[]): BigInt64Array => BigInt64Array.from(d.map(BigInt));
const root = join(import.meta.dir, "..");

test("the suite reports the oneDNN version it runs with", () => {
  const out = { major: new Int32Array(1), minor: new Int32Array(1), patch: new Int32Array(1) };
  expect(lib.fp8_cpu_onednn_version(out.major, out.minor, out.patch)).toBe(0);
  const info = onednnInfo();
  expect(info.version).toBe(`${out.major[0]}.${out.minor[0]}.${out.patch[0]}`);
  expect(info.version).toMatch(/^\d+\.\d+\.\d+$/);
  // the library was compiled against the API of the release it loads
  expect(info.api).toBe(out.major[0]!);
  console.log(`oneDNN ${info.version} (libfp8 compiled against the oneDNN ${info.api}.x API)`);
});

/** Sums over the middle block of src (outer, R, C), row after row in f32, as the kernel must. */
function colsumRef(src: number[], outer: number, R: number, C: number, mean: boolean): number[] {
  const out: number[] = [];
  for (let o = 0; o < outer; o++)
    for (let c = 0; c < C; c++) {
      let acc = 0;
      for (let r = 0; r < R; r++) acc = f32(acc + src[(o * R + r) * C + c]!);
      out.push(mean ? f32(acc / R) : acc);
    }
  return out;
}

describe("column sums (fp8_cpu_reduce over a contiguous block of dims: the bias gradient)", () => {
  const isa = new Int32Array(1);
  lib.fp8_cpu_get_isa(isa);
  const paths = Array.from({ length: isa[0]! + 1 }, (_, i) => i);

  test("equal a sequential f32 sum bit for bit, on every vector path, f32 and bf16, sum and mean", () => {
    try {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 2, max: 300 }),
          fc.constantFrom(F32, BF16), fc.constantFrom(0, 1), fc.boolean(), fc.integer({ min: 0, max: 1e6 }),
          (outer, R, C, dtype, alg, split, seed) => {
            const rnd = random(seed);
            const src = Array.from({ length: outer * R * C }, () => roundTo(dtype, rnd(-4, 4)));
            // the reduced block as one dim or as two (R = r1 * r2 when it splits)
            const r1 = split && R % 2 === 0 ? 2 : 1;
            const srcDims = r1 === 2 ? [outer, 2, R / 2, C] : [outer, R, C];
            const dstDims = r1 === 2 ? [outer, 1, 1, C] : [outer, 1, C];
            const want = colsumRef(src, outer, R, C, alg === 1).map((v) => roundTo(dtype, v));
            for (const p of paths) {
              expect(lib.fp8_cpu_set_isa(p)).toBe(0);
              const dst = buffer(dtype, new Array(outer * C).fill(0));
              expect(lib.fp8_cpu_reduce(dst, dims(dstDims), buffer(dtype, src), dims(srcDims), dtype, srcDims.length, alg)).toBe(0);
              const got = values(dst);
              for (let i = 0; i < want.length; i++) {
                if (!Object.is(got[i], want[i])) throw new Error(`isa ${p} ${JSON.stringify(srcDims)} element ${i}: got ${got[i]}, want ${want[i]}`);
              }
            }
          },
        ),
        { numRuns: 60, seed: 20 },
      );
    } finally {
      lib.fp8_cpu_set_isa(2);
    }
  });

  test("a bias-gradient-sized sum (the threaded path) equals the sequential sum", () => {
    const R = 512, C = 1000; // R * C well above the threading threshold; C not a multiple of any vector width
    const rnd = random(7);
    const src = Array.from({ length: R * C }, () => roundTo(BF16, rnd(-1, 1)));
    const want = colsumRef(src, 1, R, C, false).map((v) => roundTo(BF16, v));
    const dst = buffer(BF16, new Array(C).fill(0));
    expect(lib.fp8_cpu_reduce(dst, dims([1, C]), buffer(BF16, src), dims([R, C]), BF16, 2, 0)).toBe(0);
    expect(values(dst)).toEqual(want);
  });
});

// A training step in a fresh process, so that primitives made by other tests
// (which may be ref ones, e.g. a tiny max-reduction) do not count here.
const trainScript = `
import { nn, optim, float8, randn, tensor, onednnInfo } from "./src/index.ts";
import { charData, trainGpt } from "./examples/gpt.ts";
for (const recipe of ["bf16", "float8"]) {
  const model = new nn.Sequential(new nn.Linear(64, 128, { dtype: "bfloat16" }), new nn.ReLU(), new nn.Linear(128, 32, { dtype: "bfloat16" }));
  if (recipe === "float8") float8.convertToFloat8Training(model);
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-3 });
  for (let step = 0; step < 2; step++) {
    opt.zeroGrad();
    const y = model.forward(randn([48, 64], { dtype: "bfloat16" }));
    y.mul(y).mean().backward();
    opt.step();
  }
  const data = charData("In the beginning God created the heaven and the earth. ".repeat(10));
  trainGpt(recipe, data, { dim: 32, nLayers: 1, nHeads: 2, seqLen: 16, seed: 0, steps: 1, batchSize: 2, lr: 1e-2, evalBatches: 1 }).model.dispose();
}
console.log(JSON.stringify(onednnInfo()));
`;

test("training steps of an MLP with bias and of the GPT example (bf16 and float8) run no reference oneDNN implementation", () => {
  const proc = Bun.spawnSync([process.execPath, "-e", trainScript], { cwd: root, env: process.env, stderr: "pipe" });
  const stderr = proc.stderr.toString();
  expect(proc.exitCode, stderr).toBe(0);
  const info = JSON.parse(proc.stdout.toString().trim().split("\n").pop()!);
  expect(info.refPrimitives, JSON.stringify(info.refPrimitives)).toEqual([]);
  expect(stderr).not.toContain("reference implementation");
  // the float8 steps asked libfp8 how to run their fp8 GEMMs, and it never picked a ref kernel
  const choices = info.fp8Matmul as { path: string; nativeImpl: string; reason: string }[];
  expect(choices.length).toBeGreaterThan(0);
  for (const c of choices) if (c.path === "native") expect(c.nativeImpl).not.toMatch(/^ref/);
  console.log(`fp8 matmul paths: ${[...new Set(choices.map((c) => `${c.path} (${c.reason.replace(/[\d.]+ ms/g, "… ms")})`))].join("; ")}`);
});

// fp8 GEMMs whose f32 sums are exact (K = 16, values 2^-3..2^3 with 3 mantissa
// bits), so that any correct kernel, native or decode + bf16, gives the same bits.
const fp8Script = `
import { lib } from "./src/ffi/index.ts";
import { onednnInfo } from "./src/index.ts";
const out = [];
for (const [M, K, N, ad, bd, ta, tb] of [[32, 16, 48, 2, 2, 0, 1], [17, 16, 33, 3, 2, 1, 0], [64, 16, 64, 2, 3, 0, 0]]) {
  let x = 12345;
  const rnd = () => (x = (x * 1103515245 + 12345) >>> 0) >>> 8;
  // e4m3 (2) / e5m2 (3) codes of +-2^e * (1 + m/8), e in -3..3; e5m2 keeps 2 mantissa bits
  const code = (d) => { const s = rnd() & 1, e = (rnd() % 7) - 3, m = rnd() % (d === 2 ? 8 : 4);
    return (s << 7) | (d === 2 ? ((e + 7) << 3) | m : ((e + 15) << 2) | m); };
  const a = Uint8Array.from({ length: M * K }, () => code(ad)), b = Uint8Array.from({ length: K * N }, () => code(bd));
  const c = new Float32Array(M * N), bias = Float32Array.from({ length: N }, (_, i) => i / 4);
  const st = lib.fp8_cpu_scaled_mm(c, 0, a, ad, b, bd, Float32Array.of(0.5), Float32Array.of(4), bias, 0, M, K, N, ta, tb);
  if (st !== 0) throw new Error("scaled_mm failed " + st);
  out.push(Array.from(new Uint32Array(c.buffer)));
}
console.log(JSON.stringify({ out, paths: onednnInfo().fp8Matmul }));`;

test("fp8 matmul: the native oneDNN path (where it exists) equals the decode + bf16 path bit for bit", () => {
  const run = (mode: string) => {
    const proc = Bun.spawnSync([process.execPath, "-e", fp8Script], { cwd: root, env: { ...process.env, FP8_CPU_FP8_MATMUL: mode }, stderr: "pipe" });
    expect(proc.exitCode, proc.stderr.toString()).toBe(0);
    return JSON.parse(proc.stdout.toString().trim().split("\n").pop()!) as { out: number[][]; paths: { path: string; nativeImpl: string; reason: string }[] };
  };
  const decode = run("decode");
  const native = run("native");
  for (const p of decode.paths) expect(p.path).toBe("decode_bf16");
  expect(native.out).toEqual(decode.out);
  const ran = native.paths.map((p) => (p.path === "native" ? `native ${p.nativeImpl}` : `decode (${p.reason})`));
  // where oneDNN builds the primitive at all, FP8_CPU_FP8_MATMUL=native must have run it
  for (const p of native.paths) if (p.path !== "native") expect(p.reason).toMatch(/no fp8 matmul/);
  console.log(`fp8 matmul with FP8_CPU_FP8_MATMUL=native ran: ${[...new Set(ran)].join("; ")}`);
});

test("a primitive that runs a reference implementation is recorded and logged once", () => {
  // a bf16 max over dim 0 of 3 columns: oneDNN has no JIT reduction for it in 2.6 or 3.7
  const script = `
import { lib } from "./src/ffi/index.ts";
import { onednnInfo } from "./src/index.ts";
const src = new Uint16Array(64 * 3).fill(0x3f80), dst = new Uint16Array(3);
for (let i = 0; i < 2; i++) lib.fp8_cpu_reduce(dst, BigInt64Array.of(1n, 3n), src, BigInt64Array.of(64n, 3n), 1, 2, 2);
const n = new BigInt64Array(1); lib.fp8_cpu_onednn_ref_count(n);
console.log(JSON.stringify({ info: onednnInfo(), count: Number(n[0]) }));`;
  const proc = Bun.spawnSync([process.execPath, "-e", script], { cwd: root, env: process.env, stderr: "pipe" });
  expect(proc.exitCode).toBe(0);
  const { info, count } = JSON.parse(proc.stdout.toString().trim().split("\n").pop()!);
  const refs = info.refPrimitives as { op: string; impl: string; problem: string }[];
  if (refs.length === 0) {
    // a oneDNN with a JIT kernel for it: nothing to record, and nothing logged
    expect(count).toBe(0);
    expect(proc.stderr.toString()).not.toContain("reference implementation");
    return;
  }
  console.log(`recorded: ${JSON.stringify(refs)}`);
  expect(count).toBe(1);
  expect(refs[0]).toEqual({ op: "reduction", impl: expect.stringMatching(/^ref/), problem: "(64,3) -> (1,3)" });
  expect(proc.stderr.toString().match(/reference implementation/g)?.length).toBe(1);
});
