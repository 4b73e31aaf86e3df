// cuda_gpu.test.ts — libfp8_cuda on a real GPU, with libfp8's CPU kernels as
// the oracle: casts bit for bit (both fp8 encoders, edge and random inputs,
// every bf16 value), amax/scale/history bit for bit, row-wise casts bit for
// bit and row-scaled GEMMs (both paths), GEMMs against the CPU's
// emulation, Float8 Linear SQNR against high precision, graphs, memory and
// errors. Without a usable GPU every test is skipped, with the reason printed.
// bench/gpu/check.sh runs this file on a GPU machine.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cuda } from "../src/index.ts";
import { check, cudaLib, lib, nativeAlloc, nativeFree, nativeView, type NativePtr } from "../src/ffi/index.ts";
import type { CastKernel, CudaContext, DeviceBuffer, HostArray } from "../src/cuda/index.ts";
import { uniformStream } from "../src/tensor/random.ts";

const gpu = cuda.isAvailable();
if (!gpu) console.log(`cuda_gpu.test.ts: SKIPPED: no usable GPU (${cuda.probe().reason})`);
const gpuDescribe = describe.skipIf(!gpu);

const F32 = 0, BF16 = 1, E4M3 = 2, E5M2 = 3;
const FP8 = [["float8_e4m3fn", E4M3], ["float8_e5m2", E5M2]] as const;
const KERNELS = ["reference", "hardware"] as const;

// ---- host helpers ----------------------------------------------------------------

/** Deterministic uniform numbers in [0, 1) (the library's mulberry32 stream). */
const rng = uniformStream;

function normals(n: number, seed: number, std = 1): Float32Array {
  const r = rng(seed), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

const fromBits = (bits: number[]) => new Float32Array(new Uint32Array(bits).buffer);

/** f32 inputs that probe every branch of the encoders: signed zeros, f32 subnormals,
 * NaNs of both signs (quiet and signalling), infinities, the fp8 grids, their ties and
 * the floats either side of each tie, the saturation edges, and random bit patterns. */
function edgeInputs(): Float32Array {
  const v: number[] = [0, -0, 1, -1, 448, -448, 449, 464, 465, 480, 57344, 60000, 61440, 61441, 65536, 1e6, -1e6, 3.4e38, -3.4e38,
    Infinity, -Infinity, NaN, 2 ** -9, 2 ** -10, 3 * 2 ** -11, 2 ** -16, 2 ** -17, 3 * 2 ** -18, 1e-30, -1e-30];
  const special = fromBits([0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0xffffffff, 0x00000001, 0x80000001,
    0x007fffff, 0x807fffff, 0x00800000, 0x80800000, 0x7f7fffff, 0xff7fffff]);
  for (const x of special) v.push(x);
  for (const [, code] of FP8) {
    const codes = new Uint8Array(256).map((_, i) => i);
    const dec = new Float32Array(256);
    check(lib.fp8_cpu_convert(dec, F32, codes, code, 256), "decode");
    const finite = [...dec].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    for (let i = 0; i + 1 < finite.length; i++) {
      const mid = Math.fround((finite[i] + finite[i + 1]) / 2);
      const up = new Float32Array([mid]), bits = new Uint32Array(up.buffer);
      v.push(finite[i], mid);
      bits[0] += 1, v.push(up[0]);
      bits[0] -= 2, v.push(up[0]);
    }
  }
  const r = rng(7);
  const random = new Uint32Array(1 << 18).map(() => Math.floor(r() * 4294967296));
  const out = new Float32Array(v.length + random.length);
  out.set(v);
  out.set(new Float32Array(random.buffer), v.length);
  return out;
}

/** Every bf16 bit pattern. */
const allBf16 = () => new Uint16Array(65536).map((_, i) => i);

function bf16ToF32(h: Uint16Array): Float32Array {
  const u = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
  return new Float32Array(u.buffer);
}

function toF32(b: DeviceBuffer): Float32Array {
  const h = b.toHost();
  return b.dtype === "bfloat16" ? bf16ToF32(h as Uint16Array) : (h as Float32Array);
}

/** Where two raw arrays differ: count and the first few indices with both values. */
function diffBits(got: HostArray, want: HostArray, what: string): string {
  const g = new Uint8Array(got.buffer, got.byteOffset, got.byteLength);
  const w = new Uint8Array(want.buffer, want.byteOffset, want.byteLength);
  if (g.length !== w.length) return `${what}: ${g.length} bytes vs ${w.length}`;
  const size = got.BYTES_PER_ELEMENT;
  const bad: number[] = [];
  for (let i = 0; i < g.length; i++) if (g[i] !== w[i]) bad.push(Math.floor(i / size));
  if (bad.length === 0) return "";
  const uniq = [...new Set(bad)];
  return `${what}: ${uniq.length} of ${got.length} differ, e.g. ` +
    uniq.slice(0, 5).map((i) => `[${i}] gpu ${got[i]} cpu ${want[i]}`).join(", ");
}

function expectBits(got: HostArray, want: HostArray, what: string): void {
  expect(diffBits(got, want, what)).toBe("");
}

/** Elementwise |got - want| <= atol + rtol |want|; returns "" or a description of the worst miss. */
function closeness(got: Float32Array, want: Float32Array, atol: number, rtol: number, what: string): string {
  let worst = -1, excess = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) - (atol + rtol * Math.abs(want[i]));
    if (!(e <= 0) && (worst < 0 || e > excess || Number.isNaN(e))) worst = i, excess = e;
  }
  return worst < 0 ? "" : `${what}: [${worst}] gpu ${got[worst]} cpu ${want[worst]} (atol ${atol}, rtol ${rtol})`;
}

/** 20 log10(|ref| / |ref - y|) in dB. */
function sqnr(ref: Float32Array, y: Float32Array): number {
  let s = 0, n = 0;
  for (let i = 0; i < ref.length; i++) {
    s += ref[i] * ref[i];
    n += (ref[i] - y[i]) ** 2;
  }
  return 10 * Math.log10(s / n);
}

function cpuQuantize(src: Float32Array | Uint16Array, srcCode: number, fp8Code: number, scale: number): Uint8Array {
  const out = new Uint8Array(src.length);
  check(lib.fp8_cpu_quantize(out, fp8Code, src, srcCode, src.length, new Float32Array([scale])), "cpu quantize");
  return out;
}

/** Rows of normals whose magnitudes span std * 2^-octaves .. std * 2^octaves (times 1 to 5/3),
 * so every row gets its own scale. */
function rowScaledNormals(rows: number, cols: number, seed: number, std = 1, octaves = 6): Float32Array {
  const x = normals(rows * cols, seed);
  for (let r = 0; r < rows; r++) {
    const mag = std * 2 ** ((r % (2 * octaves + 1)) - octaves) * (1 + (r % 3) / 3);
    for (let c = 0; c < cols; c++) x[r * cols + c] *= mag;
  }
  return x;
}

function cpuQuantizeRowwise(src: Float32Array | Uint16Array, srcCode: number, fp8Code: number, rows: number, cols: number, pow2: boolean) {
  const q = new Uint8Array(rows * cols), scale = new Float32Array(rows);
  check(lib.fp8_cpu_quantize_rowwise(q, scale, fp8Code, src, srcCode, rows, cols, pow2 ? 1 : 0), "cpu quantize_rowwise");
  return { q, scale };
}

/** NaN -> positive quiet NaN (f32 bits). A row holding a NaN gets a NaN scale, and for a
 * negative NaN times a NaN scale the CPU's vector and scalar paths keep different NaNs (see
 * mul_x86 in cuda_common.cuh); every other input is compared exactly. */
function positiveNaNs(x: Float32Array): Float32Array {
  const y = x.slice();
  for (let i = 0; i < y.length; i++) if (Number.isNaN(y[i])) y[i] = NaN;
  return y;
}

// ---- the tests ------------------------------------------------------------------------

gpuDescribe("cuda on a GPU", () => {
  let ctx: CudaContext;
  const owned: DeviceBuffer[] = [];
  /** Upload, remembered for disposal at the end. */
  const up = (data: HostArray, shape: number[], dtype: Parameters<typeof cuda.DeviceBuffer.from>[3]) => {
    const b = cuda.DeviceBuffer.from(ctx, data, shape, dtype);
    owned.push(b);
    return b;
  };
  const keep = (b: DeviceBuffer) => (owned.push(b), b);
  const scalar = (v: number) => keep(cuda.scalarBuffer(ctx, v));

  let defaultKernel: CastKernel = "reference";
  beforeAll(() => {
    ctx = cuda.device(0);
    defaultKernel = ctx.castKernel;
    console.log(`cuda_gpu.test.ts: ${ctx.info.name}, cc ${ctx.info.computeCapability.join(".")}, ${ctx.info.smCount} SMs`);
  });
  afterAll(() => {
    for (const b of owned) b.dispose();
    ctx.castKernel = defaultKernel;
  });

  const scales = [1, 0.5, 2 ** -15, 1.7, 179.2, 1e-30, 1e30, 0, -2, Infinity, NaN];

  for (const kernel of KERNELS) {
    test(`quantize f32 -> fp8 is bit-identical to the CPU on edge and random-bit inputs, every scale (${kernel})`, () => {
      ctx.castKernel = kernel;
      const x = edgeInputs();
      const dx = up(x, [x.length], "float32");
      for (const [name, code] of FP8) {
        for (const s of scales) {
          const q = keep(cuda.quantize(dx, scalar(s), name));
          expectBits(q.toHost(), cpuQuantize(x, F32, code, s), `${name} scale ${s}`);
        }
      }
    });

    test(`quantize bf16 -> fp8 is bit-identical to the CPU on all 65536 bf16 values (${kernel})`, () => {
      ctx.castKernel = kernel;
      const x = allBf16();
      const dx = up(x, [x.length], "bfloat16");
      for (const [name, code] of FP8) {
        for (const s of scales) {
          const q = keep(cuda.quantize(dx, scalar(s), name));
          expectBits(q.toHost(), cpuQuantize(x, BF16, code, s), `${name} scale ${s}`);
        }
      }
    });

    test(`quantizeTranspose writes the CPU's bytes row-major and transposed, any shape (${kernel})`, () => {
      ctx.castKernel = kernel;
      const shapes = [[64, 64], [128, 320], [37, 53], [1, 100], [100, 1], [200, 4], [68, 132], [4096, 64]];
      for (const [rows, cols] of shapes) {
        for (const dtype of ["float32", "bfloat16"] as const) {
          let x: Float32Array | Uint16Array = normals(rows * cols, rows * 131 + cols, 40);
          x[0] = NaN, x[x.length - 1] = -Infinity;
          if (dtype === "bfloat16") {
            const h = new Uint16Array(x.length);
            check(lib.fp8_cpu_convert(h, BF16, x, F32, x.length), "to bf16");
            x = h;
          }
          const dx = up(x, [rows, cols], dtype);
          for (const [name, code] of FP8) {
            const want = cpuQuantize(x, dtype === "float32" ? F32 : BF16, code, 3.5);
            const wantT = new Uint8Array(rows * cols);
            for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) wantT[c * rows + r] = want[r * cols + c];
            const { rowMajor, transposed } = cuda.quantizeTranspose(dx, scalar(3.5), name);
            keep(rowMajor!), keep(transposed!);
            expectBits(rowMajor!.toHost(), want, `(${rows}, ${cols}) ${dtype} -> ${name} row-major`);
            expectBits(transposed!.toHost(), wantT, `(${rows}, ${cols}) ${dtype} -> ${name} transposed`);
            const only = cuda.quantizeTranspose(dx, scalar(3.5), name, { rowMajor: null });
            expectBits(keep(only.transposed!).toHost(), wantT, `(${rows}, ${cols}) transposed only`);
          }
        }
      }
    });

    test(`convert between f32, bf16 and fp8 is bit-identical to fp8_cpu_convert (${kernel})`, () => {
      ctx.castKernel = kernel;
      const x = edgeInputs();
      const cases: [HostArray, number, string][] = [
        [x, F32, "float32"], [allBf16(), BF16, "bfloat16"],
        [new Uint8Array(256).map((_, i) => i), E4M3, "float8_e4m3fn"], [new Uint8Array(256).map((_, i) => i), E5M2, "float8_e5m2"],
      ];
      const all = [["float32", F32], ["bfloat16", BF16], ["float8_e4m3fn", E4M3], ["float8_e5m2", E5M2]] as const;
      for (const [src, srcCode, srcName] of cases) {
        const ds = up(src, [src.length], srcName as "float32");
        for (const [dstName, dstCode] of all) {
          const got = keep(cuda.convert(ds, dstName)).toHost();
          const want = new (got.constructor as new (n: number) => HostArray)(src.length);
          check(lib.fp8_cpu_convert(want, dstCode, src, srcCode, src.length), "cpu convert");
          expectBits(got, want, `${srcName} -> ${dstName}`);
        }
      }
    });
  }

  test("dequantize is bit-identical to the CPU for every code and scale", () => {
    const codes = new Uint8Array(256).map((_, i) => i);
    for (const [name, code] of FP8) {
      const dq = up(codes, [256], name);
      for (const s of scales) {
        for (const [outName, outCode] of [["float32", F32], ["bfloat16", BF16]] as const) {
          const got = keep(cuda.dequantize(dq, scalar(s), outName)).toHost();
          const want = outCode === F32 ? new Float32Array(256) : new Uint16Array(256);
          check(lib.fp8_cpu_dequantize(want, outCode, codes, code, 256, new Float32Array([s])), "cpu dequantize");
          expectBits(got, want, `${name} -> ${outName} scale ${s}`);
        }
      }
    }
  });

  test("amax and amaxToScale match the CPU bit for bit (odd lengths, NaN, inf, empty)", () => {
    const lengths = [0, 1, 7, 33, 4097, 1_000_003];
    for (const n of lengths) {
      for (const poison of [null, NaN, Infinity, -Infinity]) {
        const x = normals(n, n + 1, 3);
        if (poison !== null && n > 0) x[n >> 1] = poison;
        const h = new Uint16Array(n);
        check(lib.fp8_cpu_convert(h, BF16, x, F32, n), "to bf16");
        for (const [src, code, dt] of [[x, F32, "float32"], [h, BF16, "bfloat16"]] as const) {
          const dx = up(src, [n], dt);
          for (const [name, fcode] of FP8) {
            for (const clamp of [false, true]) {
              const { amax, scale } = cuda.amaxToScale(dx, name, {}, clamp);
              keep(amax), keep(scale);
              const wa = new Float32Array(1), ws = new Float32Array(1);
              check(lib.fp8_cpu_amax_to_scale(wa, ws, src, code, n, fcode, clamp ? 1 : 0), "cpu amax_to_scale");
              const what = `n ${n} ${dt} poison ${poison} ${name} clamp ${clamp}`;
              expectBits(amax.toHost(), wa, `${what} amax`);
              expectBits(scale.toHost(), ws, `${what} scale`);
            }
          }
          expectBits(keep(cuda.amax(dx)).toHost(), (() => {
            const w = new Float32Array(1);
            check(lib.fp8_cpu_amax(w, src, code, n), "cpu amax");
            return w;
          })(), `amax n ${n} ${dt}`);
        }
      }
    }
  });

  test("scaleFromAmax follows amax_to_scale: f32(fp8_max / max(f64(amax), 1e-12)), clamped, NaN kept", () => {
    const amaxes = fromBits([0, 0x80000000, 1, 0x2b8cbccc, 0x3f800000, 0x43e00000, 0x7f7fffff, 0x7f800000, 0x7fc00000, 0xffc00000]);
    for (const a of amaxes) {
      for (const [name] of FP8) {
        for (const clamp of [false, true]) {
          const got = (keep(cuda.scaleFromAmax(scalar(a), name, undefined, clamp)).toHost() as Float32Array)[0];
          let want = (name === "float8_e4m3fn" ? 448 : 57344) / Math.max(a, 1e-12); // f64, as the CPU
          if (clamp && want > 65504) want = 65504;
          if (Number.isNaN(a)) expect(Number.isNaN(got)).toBe(true);
          else expect(got).toBe(Math.fround(want));
        }
      }
    }
  });

  test("syncAmaxHistory matches fp8_cpu_sync_amax_history over several rounds, NaN included", () => {
    const count = 7, len = 16;
    const r = rng(11);
    const hostAmax: NativePtr[] = [], hostHist: NativePtr[] = [], hostScale: NativePtr[] = [];
    const entries: import("../src/cuda/index.ts").DelayedScalingEntry[] = [];
    const dtypes = new Int32Array(count), clamps = new Int32Array(count);
    try {
      for (let i = 0; i < count; i++) {
        const hist = new Float32Array(len).map(() => r() * 100);
        if (i === 3) hist[5] = NaN;
        hostAmax.push(nativeAlloc(4)), hostHist.push(nativeAlloc(4 * len)), hostScale.push(nativeAlloc(4));
        new Float32Array(nativeView(hostHist[i], 4 * len)).set(hist);
        new Float32Array(nativeView(hostScale[i], 4))[0] = 1;
        dtypes[i] = i % 2 ? E5M2 : E4M3, clamps[i] = i === 5 ? 1 : 0;
        entries.push({
          amax: scalar(0), history: up(hist, [len], "float32"), scale: scalar(1),
          fp8Dtype: i % 2 ? "float8_e5m2" : "float8_e4m3fn", clampToFloat16: i === 5,
        });
      }
      const group = new cuda.DelayedScalingGroup(ctx, entries);
      const table = (ps: NativePtr[]) => new BigUint64Array(ps.map((p) => BigInt(p)));
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < count; i++) {
          const a = round === 4 && i === 1 ? NaN : i === 6 ? 1e-20 : r() * 1000;
          entries[i].amax.upload(new Float32Array([a]));
          new Float32Array(nativeView(hostAmax[i], 4))[0] = a;
        }
        group.sync();
        check(lib.fp8_cpu_sync_amax_history(table(hostAmax), table(hostHist), table(hostScale), dtypes, clamps, count, len), "cpu sync");
        for (let i = 0; i < count; i++) {
          expectBits(entries[i].history.toHost(), new Float32Array(nativeView(hostHist[i], 4 * len)).slice(), `round ${round} history ${i}`);
          expectBits(entries[i].scale.toHost(), new Float32Array(nativeView(hostScale[i], 4)).slice(), `round ${round} scale ${i}`);
        }
      }
      group.dispose();
    } finally {
      for (const p of [...hostAmax, ...hostHist, ...hostScale]) nativeFree(p);
    }
  });

  /** Random fp8 operand (rows, cols) of `name` and its scale, quantized on the CPU. */
  function fp8Operand(rows: number, cols: number, name: "float8_e4m3fn" | "float8_e5m2", seed: number, std: number) {
    const x = normals(rows * cols, seed, std);
    let amax = 0;
    for (const v of x) amax = Math.max(amax, Math.abs(v));
    const s = Math.fround((name === "float8_e4m3fn" ? 448 : 57344) / amax);
    const q = cpuQuantize(x, F32, name === "float8_e4m3fn" ? E4M3 : E5M2, s);
    return { q, s, d: up(q, [rows, cols], name), ds: scalar(s) };
  }

  test("scaledMm matches the CPU's emulated scaled GEMM (bf16 out 7e-2, f32 out 3e-3), bias and layouts", () => {
    const combos = [["float8_e4m3fn", "float8_e4m3fn"], ["float8_e5m2", "float8_e4m3fn"], ["float8_e4m3fn", "float8_e5m2"]] as const;
    const shapes = [[64, 128, 256], [256, 512, 128], [16, 64, 48], [1000, 256, 512]];
    let seed = 100;
    for (const [M, K, N] of shapes) {
      for (const [an, bn] of combos) {
        const a = fp8Operand(M, K, an, seed++, 2), b = fp8Operand(N, K, bn, seed++, 0.05);
        const biasF32 = normals(N, seed++, 0.5);
        const biasBf16 = new Uint16Array(N);
        check(lib.fp8_cpu_convert(biasBf16, BF16, biasF32, F32, N), "bias bf16");
        for (const [outName, outCode, atol, fast] of [["bfloat16", BF16, 7e-2, true], ["float32", F32, 3e-3, false]] as const) {
          for (const bias of [null, "bfloat16", "float32"] as const) {
            const hb = bias === "bfloat16" ? biasBf16 : biasF32;
            const db = bias === null ? null : up(hb, [N], bias);
            const got = toF32(keep(cuda.scaledMm(a.d, b.d, a.ds, b.ds, { outDtype: outName, bias: db, useFastAccum: fast })));
            const want = outCode === F32 ? new Float32Array(M * N) : new Uint16Array(M * N);
            check(lib.fp8_cpu_scaled_mm(want, outCode, a.q, an === "float8_e4m3fn" ? E4M3 : E5M2, b.q, bn === "float8_e4m3fn" ? E4M3 : E5M2,
              new Float32Array([a.s]), new Float32Array([b.s]), bias === null ? null : hb, bias === "bfloat16" ? BF16 : F32, M, K, N, 0, 1), "cpu scaled_mm");
            const wantF = outCode === F32 ? (want as Float32Array) : bf16ToF32(want as Uint16Array);
            expect(closeness(got, wantF, atol, atol, `(${M},${K},${N}) ${an} x ${bn} -> ${outName} bias ${bias} fast ${fast}`)).toBe("");
          }
        }
      }
    }
  });

  test("scaledMm rejects what cuBLASLt's fp8 GEMM cannot take, naming shapes and dtypes", () => {
    const a = fp8Operand(32, 24, "float8_e4m3fn", 1, 1), b = fp8Operand(32, 24, "float8_e4m3fn", 2, 1);
    expect(() => cuda.scaledMm(a.d, b.d, a.ds, b.ds)).toThrow(/multiples of 16: a \(32, 24\) float8_e4m3fn @ b \(32, 24\) float8_e4m3fn/);
    const c = fp8Operand(32, 32, "float8_e5m2", 3, 1), e = fp8Operand(32, 32, "float8_e5m2", 4, 1);
    expect(() => cuda.scaledMm(c.d, e.d, c.ds, e.ds)).toThrow(/both be float8_e5m2/);
  });

  test("matmul (f32, bf16; transposes; bias; beta = 1) matches fp8_cpu_matmul", () => {
    const [M, K, N] = [96, 160, 80];
    let seed = 500;
    for (const [dt, code, tol] of [["float32", F32, 1e-3], ["bfloat16", BF16, 2e-2]] as const) {
      for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        const toDt = (x: Float32Array) => {
          if (dt === "float32") return x;
          const h = new Uint16Array(x.length);
          check(lib.fp8_cpu_convert(h, BF16, x, F32, x.length), "bf16");
          return h;
        };
        const a = toDt(normals(M * K, seed++)), b = toDt(normals(K * N, seed++)), bias = toDt(normals(N, seed++));
        const c0 = normals(M * N, seed++);
        const da = up(a, ta ? [K, M] : [M, K], dt), db = up(b, tb ? [N, K] : [K, N], dt), dbias = up(bias, [N], dt);
        const dc = up(c0, [M, N], "float32");
        cuda.matmul(da, db, { transA: ta, transB: tb, bias: dbias, outDtype: "float32", alpha: 0.5, beta: 1, out: dc });
        const want = c0.slice();
        check(lib.fp8_cpu_matmul(want, F32, a, b, code, bias, code, 1, 1, M, K, N, ta ? 1 : 0, tb ? 1 : 0, 0.5, 1), "cpu matmul");
        expect(closeness(toF32(dc), want, tol, tol, `${dt} transA ${ta} transB ${tb}`)).toBe("");
      }
    }
  });

  // ---- axiswise (row-wise) scaling ----

  for (const kernel of KERNELS) {
    test(`quantizeRowwise bytes and scales are bit-identical to fp8_cpu_quantize_rowwise, any shape, pow2 or not (${kernel})`, () => {
      ctx.castKernel = kernel;
      // warp-per-row (cols <= 1024) and block-per-row kernels, vector and scalar paths, empty shapes
      const shapes = [[1, 1], [7, 33], [64, 1024], [5, 1025], [3, 4100], [300, 96], [129, 8], [2, 0], [0, 5]];
      let seed = 900;
      for (const [rows, cols] of shapes) {
        const x = rowScaledNormals(rows, cols, seed++);
        if (rows * cols > 3) x[1] = Infinity, x[x.length - 1] = -Infinity; // inf rows get scale 0 (inf * 0 is NaN)
        if (rows > 2 && cols > 0) x[2 * cols] = NaN, x.fill(0, cols, 2 * cols); // a NaN row, an all-zero row
        const h = new Uint16Array(x.length);
        check(lib.fp8_cpu_convert(h, BF16, x, F32, x.length), "to bf16");
        for (const [src, srcCode, dt] of [[x, F32, "float32"], [h, BF16, "bfloat16"]] as const) {
          const dx = up(src, [rows, cols], dt);
          for (const [name, code] of FP8) {
            for (const pow2 of [false, true]) {
              const { data, scale } = cuda.quantizeRowwise(dx, name, { roundScalesToPowerOf2: pow2 });
              keep(data), keep(scale);
              const want = cpuQuantizeRowwise(src, srcCode, code, rows, cols, pow2);
              const what = `(${rows}, ${cols}) ${dt} -> ${name} pow2 ${pow2}`;
              expectBits(scale.toHost(), want.scale, `${what} scales`);
              expectBits(data.toHost(), want.q, `${what} bytes`);
            }
          }
        }
      }
    });

    test(`quantizeRowwise is bit-identical to the CPU on edge and random-bit rows and on all bf16 values (${kernel})`, () => {
      ctx.castKernel = kernel;
      const e = positiveNaNs(edgeInputs());
      const cols = 61, rows = Math.floor(e.length / cols); // odd: scalar path; rows of every kind of value
      const x = e.slice(0, rows * cols);
      const b = allBf16().map((v) => ((v & 0x7fff) > 0x7f80 ? 0x7fc0 : v)); // bf16 NaNs made positive, as above
      for (const [src, srcCode, dt, r, c] of [[x, F32, "float32", rows, cols], [b, BF16, "bfloat16", 512, 128]] as const) {
        const dx = up(src, [r, c], dt);
        for (const [name, code] of FP8) {
          for (const pow2 of [false, true]) {
            const { data, scale } = cuda.quantizeRowwise(dx, name, { roundScalesToPowerOf2: pow2 });
            keep(data), keep(scale);
            const want = cpuQuantizeRowwise(src, srcCode, code, r, c, pow2);
            expectBits(scale.toHost(), want.scale, `${dt} (${r}, ${c}) -> ${name} pow2 ${pow2} scales`);
            expectBits(data.toHost(), want.q, `${dt} (${r}, ${c}) -> ${name} pow2 ${pow2} bytes`);
          }
        }
      }
    });
  }

  test("quantizeRowwise power-of-2 scales are exact powers of two, at most the plain scale", () => {
    const [rows, cols] = [200, 160];
    const dx = up(rowScaledNormals(rows, cols, 31), [rows, cols], "float32");
    const plain = keep(cuda.quantizeRowwise(dx, "float8_e4m3fn").scale).toHost() as Float32Array;
    const pow2 = keep(cuda.quantizeRowwise(dx, "float8_e4m3fn", { roundScalesToPowerOf2: true }).scale).toHost() as Float32Array;
    for (let r = 0; r < rows; r++) {
      expect(Math.log2(pow2[r]) % 1).toBe(0);
      expect(pow2[r]).toBeLessThanOrEqual(plain[r]);
      expect(pow2[r] * 2).toBeGreaterThan(plain[r]);
    }
  });

  /** Row-quantized fp8 operand (rows, cols) of `name` from the CPU, its row magnitudes up to
   * 2^octaves apart around std. */
  function rowwiseOperand(rows: number, cols: number, name: "float8_e4m3fn" | "float8_e5m2", seed: number, pow2: boolean, std = 1, octaves = 2) {
    const x = rowScaledNormals(rows, cols, seed, std, octaves);
    const { q, scale } = cpuQuantizeRowwise(x, F32, name === "float8_e4m3fn" ? E4M3 : E5M2, rows, cols, pow2);
    return { q, scale, code: name === "float8_e4m3fn" ? E4M3 : E5M2, d: up(q, [rows, cols], name), ds: up(scale, [rows], "float32") };
  }

  /** Runs `fn` with ctx.rowwiseGemm = path; for "outer-vector", null when this cuBLASLt does not take it. */
  function withRowwisePath<T>(path: "auto" | "outer-vector" | "epilogue", fn: () => T): T | null {
    ctx.rowwiseGemm = path;
    try {
      return fn();
    } catch (e) {
      if (path === "outer-vector" && /outer-vector/.test((e as Error).message)) {
        console.log(`cuda_gpu.test.ts: cuBLASLt does not take outer-vector scaling here, "auto" uses the epilogue kernel: ${(e as Error).message}`);
        return null;
      }
      throw e;
    } finally {
      ctx.rowwiseGemm = "auto";
    }
  }

  for (const path of ["auto", "outer-vector", "epilogue"] as const) {
    test(`scaledMmRowwise (${path}) matches fp8_cpu_scaled_mm_rowwise (bf16 out 7e-2, f32 out 3e-3), with bias`, () => {
      const combos = [["float8_e4m3fn", "float8_e4m3fn"], ["float8_e5m2", "float8_e4m3fn"], ["float8_e4m3fn", "float8_e5m2"]] as const;
      const shapes = [[64, 128, 256], [256, 512, 128], [16, 64, 48], [333, 256, 512], [1, 32, 16]];
      let seed = 700, announced = false;
      for (const [M, K, N] of shapes) {
        for (const [an, bn] of combos) {
          // outputs of order 0.1 .. 5 (as the tensorwise test's), so that the absolute tolerance
          // means something; the row and column scales still differ by up to 2^5
          const a = rowwiseOperand(M, K, an, seed++, false), b = rowwiseOperand(N, K, bn, seed++, true, 0.25 / Math.sqrt(K), 1);
          const biasF32 = normals(N, seed++, 0.5);
          const biasBf16 = new Uint16Array(N);
          check(lib.fp8_cpu_convert(biasBf16, BF16, biasF32, F32, N), "bias bf16");
          for (const [outName, outCode, tol, fast] of [["bfloat16", BF16, 7e-2, true], ["float32", F32, 3e-3, false]] as const) {
            for (const bias of [null, "bfloat16", "float32"] as const) {
              const hb = bias === "bfloat16" ? biasBf16 : biasF32;
              const db = bias === null ? null : up(hb, [N], bias);
              const c = withRowwisePath(path, () => cuda.scaledMmRowwise(a.d, b.d, a.ds, b.ds, { outDtype: outName, bias: db, useFastAccum: fast }));
              if (c === null) return;
              if (path === "outer-vector" && !announced) console.log("cuda_gpu.test.ts: row-scaled GEMMs: cuBLASLt takes outer-vector scaling here (\"auto\" uses it)");
              announced = true;
              const got = toF32(keep(c));
              const want = outCode === F32 ? new Float32Array(M * N) : new Uint16Array(M * N);
              check(lib.fp8_cpu_scaled_mm_rowwise(want, outCode, a.q, a.code, b.q, b.code, a.scale, b.scale, bias === null ? null : hb,
                bias === "bfloat16" ? BF16 : F32, M, K, N, 0, 1), "cpu scaled_mm_rowwise");
              const wantF = outCode === F32 ? (want as Float32Array) : bf16ToF32(want as Uint16Array);
              expect(closeness(got, wantF, tol, tol, `${path} (${M},${K},${N}) ${an} x ${bn} -> ${outName} bias ${bias} fast ${fast}`)).toBe("");
            }
          }
        }
      }
    });
  }

  test("row-wise cast then scaledMmRowwise reaches SQNR >= 25 dB against the f32 product", () => {
    const [M, K, N] = [256, 512, 192];
    const x = rowScaledNormals(M, K, 41), w = rowScaledNormals(N, K, 42);
    const ref = new Float32Array(M * N);
    check(lib.fp8_cpu_matmul(ref, F32, x, w, F32, null, 0, 1, 1, M, K, N, 0, 1, 1, 0), "cpu f32 matmul");
    const qx = cuda.quantizeRowwise(up(x, [M, K], "float32"), "float8_e4m3fn");
    const qw = cuda.quantizeRowwise(up(w, [N, K], "float32"), "float8_e4m3fn");
    [qx.data, qx.scale, qw.data, qw.scale].forEach(keep);
    for (const path of ["auto", "epilogue"] as const) {
      const y = withRowwisePath(path, () => keep(cuda.scaledMmRowwise(qx.data, qw.data, qx.scale, qw.scale, { outDtype: "float32" })))!;
      const s = sqnr(ref, toF32(y));
      console.log(`scaledMmRowwise (${path}) (${M},${K},${N}) e4m3 x e4m3 SQNR ${s.toFixed(1)} dB`);
      expect(s).toBeGreaterThanOrEqual(25);
    }
  });

  test("scaledMmRowwise and quantizeRowwise reject bad shapes and dtypes, naming them", () => {
    const a = rowwiseOperand(32, 32, "float8_e4m3fn", 1, false), b = rowwiseOperand(48, 32, "float8_e4m3fn", 2, false);
    expect(() => cuda.scaledMmRowwise(a.d, b.d, b.ds, b.ds)).toThrow(/cuda.scaledMmRowwise: scaleA must be \(32\) float32, one scale per row, got \(48\) float32/);
    expect(() => cuda.scaledMmRowwise(a.d, b.d, a.ds, scalar(1))).toThrow(/scaleB must be \(48\) float32/);
    const odd = rowwiseOperand(32, 24, "float8_e4m3fn", 3, false);
    expect(() => cuda.scaledMmRowwise(odd.d, odd.d, odd.ds, odd.ds)).toThrow(/multiples of 16: a \(32, 24\) float8_e4m3fn @ b \(32, 24\) float8_e4m3fn/);
    const e5 = rowwiseOperand(32, 32, "float8_e5m2", 4, false);
    expect(() => cuda.scaledMmRowwise(e5.d, e5.d, e5.ds, e5.ds)).toThrow(/both be float8_e5m2/);
    expect(() => cuda.quantizeRowwise(up(new Float32Array(8), [8], "float32"), "float8_e4m3fn")).toThrow(/cuda.quantizeRowwise: x must be 2-D/);
    expect(() => cuda.quantizeRowwise(a.d, "float8_e4m3fn")).toThrow(/x must be float32 or bfloat16/);
    expect(() => (ctx.rowwiseGemm = "fast" as "auto")).toThrow(/expected "auto", "outer-vector" or "epilogue"/);
  });

  test("a captured row-wise cast + GEMM replays to the eager result on both paths (temporaries inside the graph)", () => {
    const [M, K, N] = [128, 256, 64];
    const x = up(rowScaledNormals(M, K, 51), [M, K], "float32");
    const w = up(rowScaledNormals(N, K, 52), [N, K], "float32");
    const bias = up(normals(N, 53), [N], "float32");
    const qx = keep(cuda.DeviceBuffer.empty(ctx, [M, K], "float8_e4m3fn")), sx = keep(cuda.DeviceBuffer.empty(ctx, [M], "float32"));
    const qw = keep(cuda.DeviceBuffer.empty(ctx, [N, K], "float8_e4m3fn")), sw = keep(cuda.DeviceBuffer.empty(ctx, [N], "float32"));
    const y = keep(cuda.DeviceBuffer.empty(ctx, [M, N], "bfloat16"));
    for (const path of ["auto", "epilogue"] as const) {
      const step = () => {
        cuda.quantizeRowwise(x, "float8_e4m3fn", { out: qx, scale: sx, roundScalesToPowerOf2: true });
        cuda.quantizeRowwise(w, "float8_e4m3fn", { out: qw, scale: sw, roundScalesToPowerOf2: true });
        cuda.scaledMmRowwise(qx, qw, sx, sw, { bias, out: y });
      };
      withRowwisePath(path, step);
      const y0 = y.toHost();
      cuda.fill(y, 0);
      ctx.rowwiseGemm = path;
      const graph = ctx.capture(step);
      ctx.rowwiseGemm = "auto";
      graph.launch();
      graph.launch();
      ctx.synchronize();
      expectBits(y.toHost(), y0, `graph y (${path})`);
      graph.dispose();
    }
  });

  test("biasAdd and biasGrad match host sums", () => {
    const [rows, cols] = [3000, 96];
    const dy = normals(rows * cols, 9);
    const ddy = up(dy, [rows, cols], "float32");
    const got = toF32(keep(cuda.biasGrad(ddy)));
    const want = new Float32Array(cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) want[c] += dy[r * cols + c];
    expect(closeness(got, want, 1e-3, 1e-4, "biasGrad")).toBe("");
    const y = normals(rows * cols, 10), bias = normals(cols, 11);
    const dyb = up(y, [rows, cols], "float32");
    cuda.biasAdd(dyb, up(bias, [cols], "float32"));
    const wantY = y.map((v, i) => Math.fround(v + bias[i % cols]));
    expectBits(dyb.toHost(), wantY, "biasAdd");
  });

  test("Float8LinearCuda: output SQNR >= 18 dB and weight-grad SQNR >= 17 dB against high precision", () => {
    const [M, K, N] = [512, 1024, 768];
    const x = keep(cuda.randn(ctx, [M, K], "bfloat16", 1)), w = keep(cuda.randn(ctx, [N, K], "bfloat16", 2, 0.02));
    const dy = keep(cuda.randn(ctx, [M, N], "bfloat16", 3, 0.1)), bias = keep(cuda.randn(ctx, [N], "bfloat16", 4, 0.1));
    const f8 = new cuda.Float8LinearCuda(ctx, M, K, N, { fallback: "never" });
    const y8 = keep(f8.forward(x, w, { bias }));
    const g8 = f8.backward(dy);
    const f32 = (b: DeviceBuffer) => keep(cuda.convert(b, "float32"));
    const ref = new cuda.HighPrecisionLinearCuda(ctx, M, K, N, "float32");
    const yr = keep(ref.forward(f32(x), f32(w), { bias: f32(bias) }));
    const gr = ref.backward(f32(dy));
    const sY = sqnr(toF32(yr), toF32(y8)), sW = sqnr(toF32(gr.dw), toF32(g8.dw)), sX = sqnr(toF32(gr.dx), toF32(g8.dx));
    const sB = sqnr(toF32(gr.dbias!), toF32(g8.dbias!));
    console.log(`Float8LinearCuda (${M},${K},${N}) SQNR: output ${sY.toFixed(1)} dB, grad_weight ${sW.toFixed(1)} dB, grad_input ${sX.toFixed(1)} dB, grad_bias ${sB.toFixed(1)} dB`);
    expect(sY).toBeGreaterThanOrEqual(18);
    expect(sW).toBeGreaterThanOrEqual(17);
    expect(sX).toBeGreaterThanOrEqual(17);
    for (const b of [g8.dx, g8.dw, g8.dbias!, gr.dx, gr.dw, gr.dbias!]) keep(b);
    f8.dispose(), ref.dispose();
  });

  test("Float8LinearCuda shows its bf16 fallback in toString() and honours fallback modes", () => {
    const small = new cuda.Float8LinearCuda(ctx, 1024, 2048, 1024);
    expect(small.toString()).toContain(small.usesFloat8 ? "float8: " : "bf16 fallback: ");
    expect(small.toString()).toMatch(/i:dyn,w:dyn,go:dyn/);
    const odd = new cuda.Float8LinearCuda(ctx, 100, 64, 64);
    expect(odd.usesFloat8).toBe(false);
    expect(odd.toString()).toContain("not all multiples of 16");
    expect(() => new cuda.Float8LinearCuda(ctx, 100, 64, 64, { fallback: "never" })).toThrow(/multiples of 16/);
    expect(new cuda.Float8LinearCuda(ctx, 4096, 8192, 16384, { fallback: "always" }).usesFloat8).toBe(false);
    small.dispose(), odd.dispose();
  });

  test("a captured fwd+bwd graph replays to the eager result; memory stays flat and GEMM plans are cached", () => {
    const [M, K, N] = [256, 512, 384];
    const x = keep(cuda.randn(ctx, [M, K], "bfloat16", 21)), w = keep(cuda.randn(ctx, [N, K], "bfloat16", 22, 0.05));
    const dy = keep(cuda.randn(ctx, [M, N], "bfloat16", 23));
    const y = keep(cuda.DeviceBuffer.empty(ctx, [M, N], "bfloat16"));
    const dx = keep(cuda.DeviceBuffer.empty(ctx, [M, K], "bfloat16")), dw = keep(cuda.DeviceBuffer.empty(ctx, [N, K], "bfloat16"));
    const layer = new cuda.Float8LinearCuda(ctx, M, K, N, { fallback: "never" });
    const step = () => {
      layer.forward(x, w, { out: y });
      layer.backward(dy, { dx, dw });
    };
    step();
    const [y0, dx0, dw0] = [y.toHost(), dx.toHost(), dw.toHost()];
    const plans = ctx.gemmPlans(), mem = ctx.memoryStats();
    for (let i = 0; i < 10; i++) step();
    ctx.synchronize();
    expect(ctx.gemmPlans()).toBe(plans);
    expect(ctx.memoryStats()).toEqual(mem);
    cuda.fill(y, 0), cuda.fill(dx, 0), cuda.fill(dw, 0);
    const graph = ctx.capture(step);
    graph.launch();
    graph.launch();
    ctx.synchronize();
    expectBits(y.toHost(), y0, "graph y"), expectBits(dx.toHost(), dx0, "graph dx"), expectBits(dw.toHost(), dw0, "graph dw");
    graph.dispose(), layer.dispose();
  });

  test("CUDA errors come back as statuses naming the call and the CUDA error", () => {
    const out = new BigUint64Array(1);
    expect(cudaLib().fp8_cuda_malloc(ctx.handle, 2 ** 52, out)).toBe(-2); // FP8_ERR_OUT_OF_MEMORY
    expect(String(cudaLib().fp8_cuda_last_error())).toMatch(/^fp8_cuda_malloc: cudaMallocFromPoolAsync: cudaErrorMemoryAllocation/);
    expect(() => cuda.deviceInfo(99)).toThrow(/device 99 out of range/);
    // the context still works afterwards
    const b = keep(cuda.randn(ctx, [1000], "float32", 5));
    expect(toF32(keep(cuda.amax(b)))[0]).toBeGreaterThan(0);
    ctx.synchronize();
  });
});
