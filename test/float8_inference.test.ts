// float8 inference: libfp8's fp8-weight GEMV (every ISA, every scale mode, against an f64
// reference on the decoded weight), quantizeForInference (tensorwise / rowwise / blockwise,
// weight-only and dynamic activations) within torchao's SQNR bar of the bf16 model, the GEMV and
// oneDNN paths agreeing, safetensors round trip with fp8 weights, and errors.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nn, float8, io, randn, manualSeed, cat } from "../src/index.ts";
import { lib } from "../src/ffi/index.ts";

const F32 = 0, BF16 = 1, E4M3 = 2, E5M2 = 3;

function isas(): number[] {
  const out = new Int32Array(1);
  lib.fp8_cpu_set_isa(2);
  lib.fp8_cpu_get_isa(out);
  return Array.from({ length: out[0]! + 1 }, (_, i) => i);
}

function decodeTable(dt: number): Float32Array {
  const bytes = new Uint8Array(256).map((_, i) => i);
  const out = new Float32Array(256);
  lib.fp8_cpu_convert(out, F32, bytes, dt, 256);
  return out;
}

let seed = 7;
const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0), seed / 2 ** 32);

describe("fp8-weight GEMV kernel (libfp8/src/cpu/gemv_fp8.c)", () => {
  test("matches an f64 reference on the decoded, scaled weight for every ISA, M 1..16, every scale mode", () => {
    for (const dt of [E4M3, E5M2]) {
      const tab = decodeTable(dt);
      for (const [M, K, N] of [[1, 64, 40], [3, 257, 19], [7, 128, 33], [16, 384, 24], [12, 96, 5]] as const) {
        const x = Float32Array.from({ length: M * K }, () => rnd() * 2 - 1);
        const w = Uint8Array.from({ length: N * K }, () => {
          const b = Math.floor(rnd() * 256);
          return (b & 0x7f) >= (dt === E4M3 ? 0x7f : 0x7c) ? b & 0x80 : b; // finite codes only
        });
        const bias = Float32Array.from({ length: N }, () => rnd());
        for (const mode of [0, 1, 2, 3]) {
          const [br, bc] = mode === 3 ? [16, 32] : [1, 1];
          const nScale = mode === 0 ? 0 : mode === 1 ? 1 : mode === 2 ? N : Math.ceil(N / br) * Math.ceil(K / bc);
          const scale = Float32Array.from({ length: Math.max(nScale, 1) }, () => 2 ** (rnd() * 6 - 3));
          // reference: y = x @ (decode(w) * s)^T + bias in f64 (block scales applied to the weight in f32)
          const ref = new Float64Array(M * N);
          let refMax = 0;
          for (let m = 0; m < M; m++)
            for (let n = 0; n < N; n++) {
              let acc = 0;
              for (let k = 0; k < K; k++) {
                let wv = tab[w[n * K + k]!]!;
                if (mode === 3) wv = Math.fround(wv * scale[Math.floor(n / br) * Math.ceil(K / bc) + Math.floor(k / bc)]!);
                acc += wv * x[m * K + k]!;
              }
              if (mode === 1) acc *= scale[0]!;
              if (mode === 2) acc *= scale[n]!;
              ref[m * N + n] = acc + bias[n]!;
              refMax = Math.max(refMax, Math.abs(ref[m * N + n]!));
            }
          for (const isa of isas()) {
            lib.fp8_cpu_set_isa(isa);
            const y = new Float32Array(M * N);
            const st = lib.fp8_cpu_gemv_fp8w(y, F32, x, F32, M, K, w, dt, N, mode, mode ? scale : null, br, bc, bias, F32);
            lib.fp8_cpu_set_isa(2);
            expect(st).toBe(0);
            for (let i = 0; i < M * N; i++) {
              // f32 sums of K terms: error well below 1e-5 of the output's magnitude
              if (Math.abs(y[i]! - ref[i]!) > 1e-5 * refMax * Math.sqrt(K)) throw new Error(`isa ${isa} mode ${mode} M ${M} K ${K} [${i}]: ${y[i]} vs ${ref[i]}`);
            }
          }
        }
      }
    }
  }, 120000);

  test("bf16 inputs (the AVX-512 BF16 path where the CPU has it) match the f64 reference on every ISA", () => {
    for (const dt of [E4M3, E5M2]) {
      const tab = decodeTable(dt);
      for (const [M, K, N] of [[1, 300, 20], [5, 64, 9], [16, 1056, 18]] as const) {
        const xf = Float32Array.from({ length: M * K }, () => rnd() * 2 - 1);
        const xb = Uint16Array.from(new Uint32Array(xf.buffer), (u) => u >>> 16); // truncate: exact bf16 values
        const xv = Float32Array.from(xb, (h) => new Float32Array(new Uint32Array([h << 16]).buffer)[0]!);
        const w = Uint8Array.from({ length: N * K }, () => {
          const b = Math.floor(rnd() * 256);
          return (b & 0x7f) >= (dt === E4M3 ? 0x7f : 0x7c) ? b & 0x80 : b;
        });
        for (const mode of [0, 1, 2]) {
          const scale = Float32Array.from({ length: mode === 2 ? N : 1 }, () => 2 ** (rnd() * 6 - 3));
          const ref = new Float64Array(M * N);
          let refMax = 0;
          for (let m = 0; m < M; m++)
            for (let n = 0; n < N; n++) {
              let acc = 0;
              for (let k = 0; k < K; k++) acc += tab[w[n * K + k]!]! * xv[m * K + k]!;
              ref[m * N + n] = mode === 1 ? acc * scale[0]! : mode === 2 ? acc * scale[n]! : acc;
              refMax = Math.max(refMax, Math.abs(ref[m * N + n]!));
            }
          for (const isa of isas()) {
            lib.fp8_cpu_set_isa(isa);
            const y = new Float32Array(M * N);
            const st = lib.fp8_cpu_gemv_fp8w(y, F32, xb, BF16, M, K, w, dt, N, mode, mode ? scale : null, 1, 1, null, 0);
            lib.fp8_cpu_set_isa(2);
            expect(st).toBe(0);
            for (let i = 0; i < M * N; i++) {
              if (Math.abs(y[i]! - ref[i]!) > 1e-5 * refMax * Math.sqrt(K)) throw new Error(`bf16 isa ${isa} mode ${mode} M ${M} [${i}]: ${y[i]} vs ${ref[i]}`);
            }
          }
        }
      }
    }
  }, 120000);

  test("bf16 inputs, every M in 1..16 (the 16-row transposed kernels from M = 4), ragged K and N, one and two threads", () => {
    // K: below one 64-code tile, whole tiles, tiles plus a tail; N: partial 16-row blocks; the
    // last shape is big enough (N * K >= 2^18) for the two-thread split
    const shapes: [number, number][] = [[40, 21], [128, 16], [200, 37], [1090, 250]];
    const threadsBefore = new Int32Array(1);
    lib.fp8_get_num_threads(threadsBefore);
    for (const dt of [E4M3, E5M2]) {
      const tab = decodeTable(dt);
      for (const [K, N] of shapes) {
        const w = Uint8Array.from({ length: N * K }, () => {
          const b = Math.floor(rnd() * 256);
          return (b & 0x7f) >= (dt === E4M3 ? 0x7f : 0x7c) ? b & 0x80 : b;
        });
        const wv = Float64Array.from(w, (b) => tab[b]!);
        for (let M = 1; M <= 16; M++) {
          if (K * N > 100000 && M % 4 !== 0 && M !== 13) continue; // the big shape: M = 4, 8, 12, 13, 16
          const xf = Float32Array.from({ length: M * K }, () => rnd() * 2 - 1);
          const xb = Uint16Array.from(new Uint32Array(xf.buffer), (u) => u >>> 16);
          const xv = Float64Array.from(xb, (h) => new Float32Array(new Uint32Array([h << 16]).buffer)[0]!);
          const scale = Float32Array.from({ length: N }, () => 2 ** (rnd() * 6 - 3));
          const ref = new Float64Array(M * N);
          let refMax = 0;
          for (let m = 0; m < M; m++)
            for (let n = 0; n < N; n++) {
              let acc = 0;
              for (let k = 0; k < K; k++) acc += wv[n * K + k]! * xv[m * K + k]!;
              ref[m * N + n] = acc * scale[n]!;
              refMax = Math.max(refMax, Math.abs(ref[m * N + n]!));
            }
          for (const threads of [1, 2]) {
            lib.fp8_set_num_threads(threads);
            const y = new Float32Array(M * N);
            expect(lib.fp8_cpu_gemv_fp8w(y, F32, xb, BF16, M, K, w, dt, N, 2, scale, 1, 1, null, 0)).toBe(0);
            for (let i = 0; i < M * N; i++) {
              if (!(Math.abs(y[i]! - ref[i]!) <= 1e-5 * refMax * Math.sqrt(K))) throw new Error(`dt ${dt} M ${M} K ${K} N ${N} threads ${threads} [${i}]: ${y[i]} vs ${ref[i]}`);
            }
          }
        }
      }
    }
    lib.fp8_set_num_threads(threadsBefore[0]!);
  }, 120000);

  test("bf16 input and output", () => {
    const [M, K, N] = [2, 64, 8];
    const x = new Uint16Array(M * K).fill(0x3f80); // 1.0
    const w = new Uint8Array(N * K).fill(0x38); // e4m3 1.0
    const y = new Uint16Array(M * N);
    expect(lib.fp8_cpu_gemv_fp8w(y, BF16, x, BF16, M, K, w, E4M3, N, 1, new Float32Array([0.5]), 1, 1, null, 0)).toBe(0);
    expect([...y]).toEqual(new Array(M * N).fill(0x4200)); // 64 * 0.5 = 32
  }, 120000);

  test("bad arguments are errors naming the function", () => {
    const x = new Float32Array(32 * 8), w = new Uint8Array(64), y = new Float32Array(32 * 8);
    expect(lib.fp8_cpu_gemv_fp8w(y, F32, x, F32, 17, 8, w, E4M3, 8, 0, null, 1, 1, null, 0)).not.toBe(0);
    expect(String(lib.fp8_last_error())).toContain("fp8_cpu_gemv_fp8w: M must be in 1..16");
    expect(lib.fp8_cpu_gemv_fp8w(y, F32, x, F32, 1, 8, w, F32, 8, 0, null, 1, 1, null, 0)).not.toBe(0);
    expect(lib.fp8_cpu_gemv_fp8w(y, F32, x, F32, 1, 8, w, E4M3, 8, 2, null, 1, 1, null, 0)).not.toBe(0);
    expect(String(lib.fp8_last_error())).toContain("scale is NULL");
    expect(lib.fp8_cpu_gemv_fp8w(y, F32, x, F32, 1, 8, w, E4M3, 8, 9, null, 1, 1, null, 0)).not.toBe(0);
  }, 120000);
});

function mlp() {
  return new nn.Sequential(new nn.Linear(256, 512), new nn.SiLU(), new nn.Linear(512, 256), new nn.SiLU(), new nn.Linear(256, 64)).to({ dtype: "bfloat16" });
}

describe("quantizeForInference", () => {
  for (const recipe of ["tensorwise", "rowwise", "blockwise"] as const) {
    for (const activation of ["none", "dynamic"] as const) {
      test(`${recipe}, activation ${activation}: within torchao's 20 dB of the bf16 model, GEMV (M <= 16) and oneDNN (M > 16) paths agree`, () => {
        manualSeed(5);
        const ref = mlp();
        const q = mlp();
        q.loadStateDict(ref.stateDict());
        float8.quantizeForInference(q, { recipe, activation });
        const layers = [...q.namedModules()].filter(([, m]) => m instanceof float8.Float8InferenceLinear);
        expect(layers.length).toBe(3);
        const l0 = layers[0]![1] as InstanceType<typeof float8.Float8InferenceLinear>;
        expect(l0.weight.dtype).toBe("float8_e4m3fn");
        expect(l0.weightScale.shape).toEqual(recipe === "tensorwise" ? [1] : recipe === "rowwise" ? [512] : [4, 2]);
        for (const M of [1, 4, 16, 48]) {
          const x = randn([M, 256], { dtype: "bfloat16" });
          expect(float8.computeError(ref.forward(x), q.forward(x))).toBeGreaterThanOrEqual(20);
        }
        // the same rows through the GEMV (16 rows) and through oneDNN (32 rows)
        const x16 = randn([16, 256], { dtype: "bfloat16" });
        const small = q.forward(x16);
        const big = q.forward(cat([x16, x16], 0)).slice(0, 0, 16);
        expect(float8.computeError(big, small)).toBeGreaterThanOrEqual(activation === "none" ? 35 : 30);
      }, 120000);
    }
  }

  test("moduleFilterFn, Float8Linear layers, and a Linear root", () => {
    const m = mlp();
    float8.quantizeForInference(m, { moduleFilterFn: (_, fqn) => fqn !== "4" });
    expect(String(m)).toContain("Float8InferenceLinear");
    expect([...m.namedModules()].find(([fqn]) => fqn === "4")![1]).toBeInstanceOf(nn.Linear);
    const root = float8.quantizeForInference(new nn.Linear(32, 16), { recipe: "tensorwise" });
    expect(root).toBeInstanceOf(float8.Float8InferenceLinear);
    const trained = float8.convertToFloat8Training(mlp());
    float8.quantizeForInference(trained);
    expect(float8.float8Layers(trained).length).toBe(0);
  }, 120000);

  test("saves to safetensors with F8_E4M3 weights (about half of bf16's bytes) and loads back", () => {
    manualSeed(6);
    const dir = mkdtempSync(join(tmpdir(), "f8inf-"));
    try {
      const big = () => new nn.Sequential(new nn.Linear(512, 1024), new nn.Linear(1024, 512)).to({ dtype: "bfloat16" });
      const m = big();
      io.save(m, join(dir, "bf16.safetensors"));
      float8.quantizeForInference(m, { recipe: "rowwise" });
      io.save(m, join(dir, "fp8.safetensors"));
      const ratio = statSync(join(dir, "fp8.safetensors")).size / statSync(join(dir, "bf16.safetensors")).size;
      expect(ratio).toBeLessThan(0.51);
      expect(ratio).toBeGreaterThan(0.49);
      const header = Bun.file(join(dir, "fp8.safetensors"));
      const bytes = new Uint8Array(header.size > 4096 ? 4096 : header.size);
      bytes.set(new Uint8Array(require("node:fs").readFileSync(join(dir, "fp8.safetensors")).subarray(0, bytes.length)));
      expect(new TextDecoder().decode(bytes)).toContain('"F8_E4M3"');
      const fresh = big();
      float8.quantizeForInference(fresh, { recipe: "rowwise" });
      io.load(fresh, join(dir, "fp8.safetensors"));
      const x = randn([3, 512], { dtype: "bfloat16" });
      expect([...fresh.forward(x).toArray()]).toEqual([...m.forward(x).toArray()]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120000);

  test("bad options are Float8Errors", () => {
    expect(() => float8.quantizeForInference(mlp(), { recipe: "mxfp8" as never })).toThrow(/quantizeForInference.*recipe/);
    expect(() => float8.quantizeForInference(mlp(), { activation: "static" as never })).toThrow(/activation/);
    expect(() => float8.quantizeForInference(mlp(), { foo: 1 } as never)).toThrow(/unknown option 'foo'/);
    const l = float8.quantizeForInference(new nn.Linear(32, 16)) as InstanceType<typeof float8.Float8InferenceLinear>;
    expect(() => l.forward(randn([2, 31]))).toThrow(/Float8InferenceLinear.forward/);
  }, 120000);
});
