// native_onednn.test.ts — libfp8's oneDNN-backed CPU primitives (matmul.cpp,
// eltwise.cpp, binary_reduce.cpp, norm_softmax.cpp, copy.cpp) called straight
// through the FFI and compared with plain JS references on small random
// shapes, in float32 and bfloat16, plus their argument checks.
import { describe, expect, test } from "bun:test";
import { lib } from "../src/ffi/index.ts";
import { bf16, buffer, f32, random, roundTo, values, type HostBuffer } from "./helpers/host.ts";

const F32 = 0;
const BF16 = 1;
const E4M3 = 2;
const E5M2 = 3;
const INVALID_ARG = -1;
const DTYPES = [
  { dtype: F32, name: "float32" },
  { dtype: BF16, name: "bfloat16" },
] as const;
const dtypeName = (d: number): string => (d === F32 ? "float32" : "bfloat16");

// ---- helpers ------------------------------------------------------------------

const zeros = (dtype: number, n: number): HostBuffer => buffer(dtype, new Array(n).fill(0));
const dims = (d: number[]): BigInt64Array => BigInt64Array.from(d.map(BigInt));
/** n random values already representable in `dtype`. */
function randomValues(dtype: number, n: number, seed: number, lo = -1, hi = 1): number[] {
  const rnd = random(seed);
  return Array.from({ length: n }, () => roundTo(dtype, rnd(lo, hi)));
}

/** |actual - expected| <= atol + rtol * |expected|, elementwise, naming the first miss. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, what = ""): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      throw new Error(`${what} element ${i}: got ${a}, expected ${e} (rtol ${rtol}, atol ${atol})`);
    }
  }
}

/** |actual - expected| <= tol[i], elementwise (tolerances scaled per element). */
function expectWithin(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: ArrayLike<number>, what = ""): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i]! - expected[i]!) <= tol[i]!)) {
      throw new Error(`${what} element ${i}: got ${actual[i]}, expected ${expected[i]} (tol ${tol[i]})`);
    }
  }
}

const lastError = (): string => String(lib.fp8_last_error() ?? "");

// ---- matmul ---------------------------------------------------------------------

interface MatmulCase {
  abDtype: number;
  cDtype: number;
  biasDtype: number | null;
  batchA: number;
  batchB: number;
  M: number;
  K: number;
  N: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: 0 | 1;
}

/** c = alpha * op(a) @ op(b) + bias + beta * c0 in f64, and per-element error scales. */
function matmulRef(o: MatmulCase, a: number[], b: number[], bias: number[] | null, c0: number[]) {
  const batch = Math.max(o.batchA, o.batchB);
  const { M, K, N } = o;
  const ref: number[] = [];
  const mag: number[] = [];
  for (let p = 0; p < batch; p++) {
    const pa = o.batchA === 1 ? 0 : p;
    const pb = o.batchB === 1 ? 0 : p;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        let abs = 0;
        for (let k = 0; k < K; k++) {
          const av = a[pa * M * K + (o.transA ? k * M + m : m * K + k)]!;
          const bv = b[pb * K * N + (o.transB ? n * K + k : k * N + n)]!;
          acc += av * bv;
          abs += Math.abs(av * bv);
        }
        const i = (p * M + m) * N + n;
        const extra = (bias ? bias[n]! : 0) + (o.beta ? c0[i]! : 0);
        ref.push(f32(o.alpha) * acc + extra);
        mag.push(Math.abs(f32(o.alpha)) * abs + Math.abs(extra));
      }
    }
  }
  return { ref, mag };
}

/** Runs fp8_cpu_matmul on random data for `o` and checks it against matmulRef. */
function checkMatmul(o: MatmulCase, seed: number): void {
  const batch = Math.max(o.batchA, o.batchB);
  const a = randomValues(o.abDtype, o.batchA * o.M * o.K, seed);
  const b = randomValues(o.abDtype, o.batchB * o.K * o.N, seed + 1);
  const bias = o.biasDtype === null ? null : randomValues(o.biasDtype, o.N, seed + 2);
  const c0 = randomValues(o.cDtype, batch * o.M * o.N, seed + 3);
  const c = buffer(o.cDtype, c0);
  const status = lib.fp8_cpu_matmul(
    c, o.cDtype, buffer(o.abDtype, a), buffer(o.abDtype, b), o.abDtype,
    bias === null ? null : buffer(o.biasDtype!, bias), o.biasDtype ?? F32,
    o.batchA, o.batchB, o.M, o.K, o.N, o.transA ? 1 : 0, o.transB ? 1 : 0, o.alpha, o.beta,
  );
  if (status !== 0) throw new Error(`matmul ${JSON.stringify(o)} failed: ${lastError()}`);
  const { ref, mag } = matmulRef(o, a, b, bias, c0);
  // f32 accumulation differs from f64 by ~K ulps of the magnitude; bf16 output
  // adds half an ulp of bf16 (2^-9 relative) on top.
  const tol = ref.map((r, i) => 1e-5 * mag[i]! + (o.cDtype === BF16 ? 2 ** -8 * Math.abs(r) : 0) + 1e-7);
  expectWithin(values(c), ref, tol, JSON.stringify(o));
}

const base = (abDtype: number, cDtype: number): MatmulCase => ({
  abDtype, cDtype, biasDtype: null, batchA: 1, batchB: 1, M: 5, K: 7, N: 6,
  transA: false, transB: false, alpha: 1, beta: 0,
});

describe("fp8_cpu_matmul", () => {
  for (const ab of [F32, BF16]) {
    for (const cd of [F32, BF16]) {
      const label = `${dtypeName(ab)} inputs, ${dtypeName(cd)} output`;

      test(`${label}: every trans_a/trans_b combination matches op(a) @ op(b)`, () => {
        for (const transA of [false, true])
          for (const transB of [false, true]) checkMatmul({ ...base(ab, cd), transA, transB }, 10);
      });

      test(`${label}: a batch of 1 on either side broadcasts against the other`, () => {
        for (const [batchA, batchB] of [[3, 3], [1, 3], [3, 1]] as const)
          for (const transB of [false, true]) checkMatmul({ ...base(ab, cd), batchA, batchB, transB }, 20);
      });

      test(`${label}: alpha, beta=1 and an f32 or bf16 bias combine as alpha*a@b + bias + c`, () => {
        for (const biasDtype of [null, F32, BF16])
          for (const alpha of [1, 0.37])
            for (const beta of [0, 1] as const)
              checkMatmul({ ...base(ab, cd), biasDtype, alpha, beta, batchA: 2, batchB: 2, transA: true }, 30);
      });
    }
  }

  test("every flag combination at once (trans, batch broadcast, bias, alpha, beta) matches the reference", () => {
    let seed = 100;
    for (const ab of [F32, BF16])
      for (const cd of [F32, BF16])
        for (const transA of [false, true])
          for (const transB of [false, true])
            for (const [batchA, batchB] of [[1, 1], [2, 2], [1, 2], [2, 1]] as const)
              for (const biasDtype of [null, BF16])
                for (const [alpha, beta] of [[1, 0], [-2.5, 1]] as const)
                  checkMatmul({ abDtype: ab, cDtype: cd, biasDtype, batchA, batchB, M: 3, K: 4, N: 5, transA, transB, alpha, beta }, seed++);
  });

  test("a larger problem (blocked kernel path) matches the reference", () => {
    checkMatmul({ ...base(BF16, F32), M: 67, K: 129, N: 65, transB: true, biasDtype: F32, alpha: 0.5, beta: 1 }, 40);
    checkMatmul({ ...base(F32, F32), M: 70, K: 100, N: 90, transA: true }, 41);
  });

  for (const ab of [F32, BF16]) {
    test(`${dtypeName(ab)} inputs: bias is added in f32 before the one rounding to bf16`, () => {
      // acc = 257 is a bf16 tie (rounds to 256); 257 + 0.75 = 257.75 rounds to 258.
      // Rounding acc first would give 256 + 0.75 -> 256.
      const a = ab === F32 ? [257] : [256, 1];
      const b = ab === F32 ? [1] : [1, 1];
      const K = a.length;
      const c = zeros(BF16, 1);
      const status = lib.fp8_cpu_matmul(c, BF16, buffer(ab, a), buffer(ab, b), ab, Float32Array.from([0.75]), F32, 1, 1, 1, K, 1, 0, 0, 1, 0);
      expect(status).toBe(0);
      expect(values(c)).toEqual([258]);
    });
  }

  test("beta=1 adds the old bf16 c in f32 before the one rounding", () => {
    // acc 257 + c 0.75 = 257.75 -> 258 (accumulating after rounding acc would give 256).
    const c = buffer(BF16, [0.75]);
    expect(lib.fp8_cpu_matmul(c, BF16, buffer(BF16, [256, 1]), buffer(BF16, [1, 1]), BF16, null, F32, 1, 1, 1, 2, 1, 0, 0, 1, 1)).toBe(0);
    expect(values(c)).toEqual([258]);
  });

  test("K = 0 gives bias + beta * c", () => {
    const c = Float32Array.from([1, 2, 3, 4]);
    const bias = Float32Array.from([10, 20]);
    expect(lib.fp8_cpu_matmul(c, F32, new Float32Array(1), new Float32Array(1), F32, bias, F32, 1, 1, 2, 0, 2, 0, 0, 3, 1)).toBe(0);
    expect(Array.from(c)).toEqual([11, 22, 13, 24]);
  });

  test("M = 0 or N = 0 succeeds and writes nothing", () => {
    const c = Float32Array.from([7]);
    expect(lib.fp8_cpu_matmul(c, F32, new Float32Array(4), new Float32Array(4), F32, null, F32, 1, 1, 0, 2, 2, 0, 0, 1, 0)).toBe(0);
    expect(lib.fp8_cpu_matmul(c, F32, new Float32Array(4), new Float32Array(4), F32, null, F32, 1, 1, 2, 2, 0, 0, 0, 1, 0)).toBe(0);
    expect(c[0]).toBe(7);
  });

  test("repeated calls with a new alpha each time reuse one primitive and use the new alpha", () => {
    const a = buffer(F32, [1, 2]);
    const b = buffer(F32, [3, 4]);
    for (const alpha of [0.5, 2, -1, 1e-3]) {
      const c = new Float32Array(1);
      expect(lib.fp8_cpu_matmul(c, F32, a, b, F32, null, F32, 1, 1, 1, 2, 1, 0, 0, alpha, 0)).toBe(0);
      expect(c[0]).toBe(f32(11 * f32(alpha)));
    }
  });
});

// ---- scaled_mm ------------------------------------------------------------------

/** Exact fp8 decode (independent of the library): e4m3fn bias 7, e5m2 bias 15. */
function decodeFp8(byte: number, dtype: number): number {
  const e4m3 = dtype === E4M3;
  const sign = byte & 0x80 ? -1 : 1;
  const manBits = e4m3 ? 3 : 2;
  const bias = e4m3 ? 7 : 15;
  const e = (byte & 0x7f) >> manBits;
  const m = byte & ((1 << manBits) - 1);
  if (e4m3 && (byte & 0x7f) === 0x7f) return NaN;
  if (!e4m3 && e === 31) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** (1 - bias - manBits);
  return sign * (1 + m / (1 << manBits)) * 2 ** (e - bias);
}

/** n random finite fp8 bytes. */
function randomFp8(n: number, dtype: number, seed: number): Uint8Array {
  const rnd = random(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let v: number;
    do v = Math.floor(rnd(0, 256)); while (!Number.isFinite(decodeFp8(v, dtype)));
    out[i] = v;
  }
  return out;
}

/** The alpha torchao's reciprocal scales give: f32(f32(1/sa) * f32(1/sb)). */
const scaledAlpha = (sa: number, sb: number): number => f32(f32(1 / f32(sa)) * f32(1 / f32(sb)));

describe("fp8_cpu_scaled_mm", () => {
  for (const [aDtype, bDtype] of [[E4M3, E4M3], [E5M2, E4M3], [E4M3, E5M2]] as const) {
    const label = `${aDtype === E4M3 ? "e4m3" : "e5m2"} x ${bDtype === E4M3 ? "e4m3" : "e5m2"}`;
    test(`${label}: every trans combination with bias matches decode-then-f32 to 1e-5 relative`, () => {
      const M = 9, K = 33, N = 11;
      const sa = 3.7, sb = 0.021;
      const alpha = scaledAlpha(sa, sb);
      let seed = 200;
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const a = randomFp8(M * K, aDtype, seed++);
          const b = randomFp8(K * N, bDtype, seed++);
          const bias = randomValues(F32, N, seed++, -5, 5);
          const c = new Float32Array(M * N);
          const status = lib.fp8_cpu_scaled_mm(c, F32, a, aDtype, b, bDtype, Float32Array.of(sa), Float32Array.of(sb),
            Float32Array.from(bias), F32, M, K, N, transA ? 1 : 0, transB ? 1 : 0);
          expect(status).toBe(0);
          const ref: number[] = [];
          const tol: number[] = [];
          for (let m = 0; m < M; m++) {
            for (let n = 0; n < N; n++) {
              let acc = 0, abs = 0;
              for (let k = 0; k < K; k++) {
                const p = decodeFp8(a[transA ? k * M + m : m * K + k]!, aDtype) * decodeFp8(b[transB ? n * K + k : k * N + n]!, bDtype);
                acc += p;
                abs += Math.abs(p);
              }
              ref.push(f32(acc) * alpha + bias[n]!);
              tol.push(1e-5 * (abs * alpha + Math.abs(bias[n]!)));
            }
          }
          expectWithin(c, ref, tol, `${label} transA=${transA} transB=${transB}`);
        }
      }
    });
  }

  test("bf16 output is the f32 result rounded once", () => {
    const M = 4, K = 16, N = 8;
    const a = randomFp8(M * K, E4M3, 300);
    const b = randomFp8(K * N, E4M3, 301);
    const c32 = new Float32Array(M * N);
    const c16 = new Uint16Array(M * N);
    const s = Float32Array.of(1.5);
    expect(lib.fp8_cpu_scaled_mm(c32, F32, a, E4M3, b, E4M3, s, s, null, F32, M, K, N, 0, 0)).toBe(0);
    expect(lib.fp8_cpu_scaled_mm(c16, BF16, a, E4M3, b, E4M3, s, s, null, F32, M, K, N, 0, 0)).toBe(0);
    expect(values(c16)).toEqual(Array.from(c32, bf16));
  });

  for (const dtype of [E4M3, E5M2]) {
    const name = dtype === E4M3 ? "e4m3fn" : "e5m2";
    test(`${name}: decoding is exact for all 256 bytes (NaN and inf included)`, () => {
      // a = every byte as a (256, 1) column, b = [1.0]: c is the decoded value.
      const a = Uint8Array.from({ length: 256 }, (_, i) => i);
      const one = Uint8Array.of(dtype === E4M3 ? 0x38 : 0x3c);
      const c = new Float32Array(256);
      expect(lib.fp8_cpu_scaled_mm(c, F32, a, dtype, one, dtype, Float32Array.of(1), Float32Array.of(1), null, F32, 256, 1, 1, 0, 0)).toBe(0);
      // (-0 comes out as +0: the f32 accumulator starts at +0 and +0 + -0 = +0.)
      const expected = Array.from({ length: 256 }, (_, i) => decodeFp8(i, dtype) + 0);
      expect(Array.from(c, (v) => v + 0)).toEqual(expected);
    });
  }

  test("alpha is f32(1/scale_a) * f32(1/scale_b) rounded to f32, not 1/(scale_a*scale_b)", () => {
    // Find scales where the two formulas differ, then check the library uses the first.
    const rnd = random(400);
    let sa = 0, sb = 0;
    for (let i = 0; i < 10_000; i++) {
      const x = f32(rnd(0.01, 500)), y = f32(rnd(0.01, 500));
      if (scaledAlpha(x, y) !== f32(1 / f32(x * y))) {
        sa = x;
        sb = y;
        break;
      }
    }
    expect(sa).toBeGreaterThan(0);
    const one = Uint8Array.of(0x38);
    const c = new Float32Array(1);
    expect(lib.fp8_cpu_scaled_mm(c, F32, one, E4M3, one, E4M3, Float32Array.of(sa), Float32Array.of(sb), null, F32, 1, 1, 1, 0, 0)).toBe(0);
    expect(c[0]).toBe(scaledAlpha(sa, sb));
  });

  test("new scales on each call are honoured (scratch and primitive reused)", () => {
    const a = randomFp8(6 * 5, E4M3, 500);
    const b = randomFp8(5 * 4, E5M2, 501);
    const c = new Float32Array(24);
    const first = new Float32Array(24);
    expect(lib.fp8_cpu_scaled_mm(first, F32, a, E4M3, b, E5M2, Float32Array.of(1), Float32Array.of(1), null, F32, 6, 5, 4, 0, 0)).toBe(0);
    for (const [sa, sb] of [[2, 4], [0.1, 3], [448, 1 / 57344]]) {
      expect(lib.fp8_cpu_scaled_mm(c, F32, a, E4M3, b, E5M2, Float32Array.of(sa), Float32Array.of(sb), null, F32, 6, 5, 4, 0, 0)).toBe(0);
      expectClose(c, Array.from(first, (v) => v * scaledAlpha(sa, sb)), 1e-6, 0);
    }
  });
});

// ---- eltwise --------------------------------------------------------------------

/** erf by its Taylor series (f64-accurate on the |x| <= 3 used here). */
function erf(x: number): number {
  let term = x, sum = x;
  for (let n = 1; n < 80; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const K_GELU = Math.sqrt(2 / Math.PI);

interface EltwiseRef {
  alg: number;
  name: string;
  lo: number;
  hi: number;
  alpha: number;
  beta: number;
  f: (x: number) => number;
  df: (x: number) => number;
}
const POW_A = 1.5, POW_B = 2.5, LIN_A = -2, LIN_B = 0.25;
const ELTWISE: EltwiseRef[] = [
  { alg: 0, name: "relu", lo: -3, hi: 3, alpha: 0, beta: 0, f: (x) => Math.max(x, 0), df: (x) => (x > 0 ? 1 : 0) },
  {
    alg: 1, name: "gelu_tanh", lo: -3, hi: 3, alpha: 0, beta: 0,
    f: (x) => 0.5 * x * (1 + Math.tanh(K_GELU * (x + 0.044715 * x ** 3))),
    df: (x) => {
      const t = Math.tanh(K_GELU * (x + 0.044715 * x ** 3));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K_GELU * (1 + 3 * 0.044715 * x * x);
    },
  },
  {
    alg: 2, name: "gelu_erf", lo: -3, hi: 3, alpha: 0, beta: 0,
    f: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
    df: (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-x * x / 2)) / Math.sqrt(2 * Math.PI),
  },
  { alg: 3, name: "silu", lo: -4, hi: 4, alpha: 0, beta: 0, f: (x) => x * sigmoid(x), df: (x) => sigmoid(x) * (1 + x * (1 - sigmoid(x))) },
  { alg: 4, name: "tanh", lo: -3, hi: 3, alpha: 0, beta: 0, f: Math.tanh, df: (x) => 1 - Math.tanh(x) ** 2 },
  { alg: 5, name: "exp", lo: -3, hi: 3, alpha: 0, beta: 0, f: Math.exp, df: Math.exp },
  { alg: 6, name: "log", lo: 0.05, hi: 5, alpha: 0, beta: 0, f: Math.log, df: (x) => 1 / x },
  { alg: 7, name: "sqrt", lo: 0.05, hi: 5, alpha: 0, beta: 0, f: Math.sqrt, df: (x) => 0.5 / Math.sqrt(x) },
  { alg: 8, name: "pow", lo: 0.05, hi: 3, alpha: POW_A, beta: POW_B, f: (x) => POW_A * x ** POW_B, df: (x) => POW_A * POW_B * x ** (POW_B - 1) },
  { alg: 9, name: "linear", lo: -3, hi: 3, alpha: LIN_A, beta: LIN_B, f: (x) => LIN_A * x + LIN_B, df: () => LIN_A },
  { alg: 10, name: "abs", lo: -3, hi: 3, alpha: 0, beta: 0, f: Math.abs, df: (x) => Math.sign(x) },
  { alg: 11, name: "sigmoid", lo: -6, hi: 6, alpha: 0, beta: 0, f: sigmoid, df: (x) => sigmoid(x) * (1 - sigmoid(x)) },
];

describe("fp8_cpu_eltwise", () => {
  for (const { dtype, name } of DTYPES) {
    for (const e of ELTWISE) {
      // oneDNN's vector exp/tanh/erf approximations are good to a few f32 ulps;
      // its f32 log is good to ~4e-6 absolute near x = 1 (measured), not relative.
      const rtol = dtype === BF16 ? 2 ** -7 : 2e-5;
      const atol = dtype === BF16 ? 1e-3 : e.name === "log" ? 5e-6 : 1e-6;
      test(`${name} ${e.name}: forward matches the JS formula`, () => {
        const n = 301;
        const x = randomValues(dtype, n, 600 + e.alg, e.lo, e.hi);
        const dst = zeros(dtype, n);
        expect(lib.fp8_cpu_eltwise(dst, buffer(dtype, x), dtype, n, e.alg, e.alpha, e.beta)).toBe(0);
        expectClose(values(dst), x.map(e.f), rtol, atol, e.name);
      });

      test(`${name} ${e.name}: backward is ddst * f'(src)`, () => {
        const n = 301;
        const x = randomValues(dtype, n, 700 + e.alg, e.lo, e.hi);
        const dy = randomValues(dtype, n, 800 + e.alg);
        const dsrc = zeros(dtype, n);
        expect(lib.fp8_cpu_eltwise_backward(dsrc, buffer(dtype, dy), buffer(dtype, x), dtype, n, e.alg, e.alpha, e.beta)).toBe(0);
        expectClose(values(dsrc), x.map((v, i) => dy[i]! * e.df(v)), rtol, atol * 4, e.name);
      });
    }
  }

  test("the JS derivative references agree with finite differences of the forward references", () => {
    for (const e of ELTWISE) {
      for (const x of [e.lo + 0.1, (e.lo + e.hi) / 2 + 0.013, e.hi - 0.1]) {
        const h = 1e-6;
        expect(Math.abs((e.f(x + h) - e.f(x - h)) / (2 * h) - e.df(x))).toBeLessThan(1e-5 * (1 + Math.abs(e.df(x))));
      }
    }
  });

  test("dst may be src (in place)", () => {
    const x = Float32Array.from([-1, 2, -3, 4]);
    expect(lib.fp8_cpu_eltwise(x, x, F32, 4, 0, 0, 0)).toBe(0);
    expect(Array.from(x)).toEqual([0, 2, 0, 4]);
  });

  test("the same alg with a new alpha/beta uses the new values", () => {
    const x = Float32Array.from([1, 2]);
    for (const [a, b] of [[2, 1], [-1, 0.5]]) {
      const y = new Float32Array(2);
      expect(lib.fp8_cpu_eltwise(y, x, F32, 2, 9, a, b)).toBe(0);
      expect(Array.from(y)).toEqual([a! + b!, 2 * a! + b!]);
    }
  });
});

// ---- binary -----------------------------------------------------------------------

const BINARY = [
  { alg: 0, name: "add", f: (x: number, y: number) => x + y },
  { alg: 1, name: "sub", f: (x: number, y: number) => x - y },
  { alg: 2, name: "mul", f: (x: number, y: number) => x * y },
  { alg: 3, name: "div", f: (x: number, y: number) => x / y },
  { alg: 4, name: "max", f: (x: number, y: number) => Math.max(x, y) },
  { alg: 5, name: "min", f: (x: number, y: number) => Math.min(x, y) },
];

/** Numpy broadcasting reference: each op in f32, rounded once to dtype. */
function binaryRef(dtype: number, f: (x: number, y: number) => number, dst: number[], a: number[], aDims: number[], b: number[], bDims: number[]): number[] {
  const n = dst.reduce((p, v) => p * v, 1);
  const strides = (d: number[]) => d.map((_, i) => (d[i] === 1 ? 0 : d.slice(i + 1).reduce((p, v) => p * v, 1)));
  const as = strides(aDims), bs = strides(bDims);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let rem = i, ai = 0, bi = 0;
    for (let d = dst.length - 1; d >= 0; d--) {
      const idx = rem % dst[d]!;
      rem = Math.floor(rem / dst[d]!);
      ai += idx * as[d]!;
      bi += idx * bs[d]!;
    }
    out.push(roundTo(dtype, f32(f(a[ai]!, b[bi]!))));
  }
  return out;
}

function checkBinary(dtype: number, alg: number, dstDims: number[], aDims: number[], bDims: number[], seed: number): void {
  const { f, name } = BINARY[alg]!;
  const count = (d: number[]) => d.reduce((p, v) => p * v, 1);
  const a = randomValues(dtype, count(aDims), seed, -2, 2);
  // keep divisors away from 0
  const b = randomValues(dtype, count(bDims), seed + 1, 0.25, 2).map((v, i) => (i % 2 ? -v : v));
  const dst = zeros(dtype, count(dstDims));
  const status = lib.fp8_cpu_binary(dst, dims(dstDims), buffer(dtype, a), dims(aDims), buffer(dtype, b), dims(bDims), dtype, dstDims.length, alg);
  if (status !== 0) throw new Error(`${name} failed: ${lastError()}`);
  expectClose(values(dst), binaryRef(dtype, f, dstDims, a, aDims, b, bDims), 0, 0, `${name} a${JSON.stringify(aDims)} b${JSON.stringify(bDims)}`);
}

describe("fp8_cpu_binary", () => {
  for (const { dtype, name } of DTYPES) {
    for (const { alg, name: op } of BINARY) {
      test(`${name} ${op}: b broadcast against a full a, each op in f32 rounded once`, () => {
        checkBinary(dtype, alg, [3, 4, 5], [3, 4, 5], [3, 4, 5], 900);
        checkBinary(dtype, alg, [3, 4, 5], [3, 4, 5], [1, 4, 1], 901);
        checkBinary(dtype, alg, [3, 4, 5], [3, 4, 5], [1, 1, 5], 902);
        checkBinary(dtype, alg, [3, 4, 5], [3, 4, 5], [1, 1, 1], 903);
      });

      test(`${name} ${op}: a broadcast against a full b`, () => {
        checkBinary(dtype, alg, [3, 4, 5], [1, 4, 1], [3, 4, 5], 910);
        checkBinary(dtype, alg, [3, 4, 5], [3, 1, 5], [3, 4, 5], 911);
        checkBinary(dtype, alg, [3, 4, 5], [1, 1, 1], [3, 4, 5], 912);
      });

      test(`${name} ${op}: both operands broadcast into a larger dst`, () => {
        checkBinary(dtype, alg, [3, 4], [3, 1], [1, 4], 920);
        checkBinary(dtype, alg, [2, 3, 4, 5], [2, 1, 4, 1], [1, 3, 1, 5], 921);
        checkBinary(dtype, alg, [2, 3], [1, 1], [1, 1], 922);
      });
    }
  }

  test("8-d operands broadcast", () => {
    checkBinary(F32, 2, [2, 1, 2, 3, 1, 2, 2, 3], [2, 1, 1, 3, 1, 1, 2, 3], [1, 1, 2, 1, 1, 2, 1, 3], 930);
    checkBinary(F32, 3, [2, 1, 2, 3, 1, 2, 2, 3], [2, 1, 2, 3, 1, 2, 2, 3], [1, 1, 2, 1, 1, 2, 1, 3], 931);
  });

  test("a zero-size dst succeeds and writes nothing", () => {
    const dst = Float32Array.of(5);
    expect(lib.fp8_cpu_binary(dst, dims([0, 3]), new Float32Array(1), dims([0, 3]), new Float32Array(1), dims([1, 3]), F32, 2, 0)).toBe(0);
    expect(dst[0]).toBe(5);
  });
});

// ---- reduce -----------------------------------------------------------------------

const REDUCE = [
  { alg: 0, name: "sum" },
  { alg: 1, name: "mean" },
  { alg: 2, name: "max" },
  { alg: 3, name: "min" },
];

/** f64 reduction of src over the dims where dstDims is 1 and srcDims is not. */
function reduceRef(alg: number, src: number[], srcDims: number[], dstDims: number[]) {
  const n = dstDims.reduce((p, v) => p * v, 1);
  const acc = new Array(n).fill(alg === 2 ? -Infinity : alg === 3 ? Infinity : 0);
  const abs = new Array(n).fill(0);
  const cnt = new Array(n).fill(0);
  for (let i = 0; i < src.length; i++) {
    let rem = i, o = 0, stride = 1;
    for (let d = srcDims.length - 1; d >= 0; d--) {
      const idx = rem % srcDims[d]!;
      rem = Math.floor(rem / srcDims[d]!);
      if (dstDims[d] !== 1) o += idx * stride;
      stride *= dstDims[d]!;
    }
    const v = src[i]!;
    acc[o] = alg === 2 ? Math.max(acc[o], v) : alg === 3 ? Math.min(acc[o], v) : acc[o] + v;
    abs[o] += Math.abs(v);
    cnt[o]++;
  }
  return { ref: acc.map((v, o) => (alg === 1 ? v / cnt[o] : v)), abs, cnt };
}

describe("fp8_cpu_reduce", () => {
  const cases: [number[], number[]][] = [
    [[2, 3, 4, 5], [1, 3, 4, 5]],
    [[2, 3, 4, 5], [2, 1, 4, 1]],
    [[2, 3, 4, 5], [2, 3, 1, 5]],
    [[2, 3, 4, 5], [2, 3, 4, 1]],
    [[2, 3, 4, 5], [1, 1, 1, 1]],
    [[37, 129], [1, 129]],
    [[37, 129], [37, 1]],
  ];
  for (const { dtype, name } of DTYPES) {
    for (const { alg, name: op } of REDUCE) {
      test(`${name} ${op}: reduces over every dim where dst is 1, accumulating in f32`, () => {
        let seed = 1000;
        for (const [srcDims, dstDims] of cases) {
          const src = randomValues(dtype, srcDims.reduce((p, v) => p * v, 1), seed++, -3, 3);
          const n = dstDims.reduce((p, v) => p * v, 1);
          const dst = zeros(dtype, n);
          const status = lib.fp8_cpu_reduce(dst, dims(dstDims), buffer(dtype, src), dims(srcDims), dtype, srcDims.length, alg);
          expect(status).toBe(0);
          const { ref, abs, cnt } = reduceRef(alg, src, srcDims, dstDims);
          const tol = ref.map((r, o) =>
            (alg === 2 || alg === 3 ? 0 : 1e-6 * (alg === 1 ? abs[o] / cnt[o] : abs[o])) + (dtype === BF16 ? 2 ** -8 * Math.abs(r) : 0));
          expectWithin(values(dst), ref, tol, `${op} ${JSON.stringify(srcDims)} -> ${JSON.stringify(dstDims)}`);
        }
      });
    }
  }

  test("dst dims equal to src dims copy src", () => {
    const src = Float32Array.from([1, 2, 3]);
    const dst = new Float32Array(3);
    expect(lib.fp8_cpu_reduce(dst, dims([3]), src, dims([3]), F32, 1, 0)).toBe(0);
    expect(Array.from(dst)).toEqual([1, 2, 3]);
  });

  test("sum over an empty dim is 0, mean is NaN, max fails", () => {
    const dst = Float32Array.of(7, 7);
    expect(lib.fp8_cpu_reduce(dst, dims([2, 1]), new Float32Array(1), dims([2, 0]), F32, 2, 0)).toBe(0);
    expect(Array.from(dst)).toEqual([0, 0]);
    expect(lib.fp8_cpu_reduce(dst, dims([2, 1]), new Float32Array(1), dims([2, 0]), F32, 2, 1)).toBe(0);
    expect(Number.isNaN(dst[0])).toBe(true);
    expect(lib.fp8_cpu_reduce(dst, dims([2, 1]), new Float32Array(1), dims([2, 0]), F32, 2, 2)).toBe(INVALID_ARG);
    expect(lastError()).toContain("fp8_cpu_reduce");
  });
});

// ---- softmax ----------------------------------------------------------------------

function softmaxRef(x: number[], rows: number, cols: number, log: boolean): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = x.slice(r * cols, (r + 1) * cols);
    const mx = Math.max(...row);
    const s = row.reduce((p, v) => p + Math.exp(v - mx), 0);
    for (const v of row) out.push(log ? v - mx - Math.log(s) : Math.exp(v - mx) / s);
  }
  return out;
}

/** dsrc from ddst and the forward output y (softmax or log-softmax). */
function softmaxBackwardRef(dy: number[], y: number[], rows: number, cols: number, log: boolean): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += log ? dy[r * cols + c]! : dy[r * cols + c]! * y[r * cols + c]!;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      out.push(log ? dy[i]! - Math.exp(y[i]!) * s : y[i]! * (dy[i]! - s));
    }
  }
  return out;
}

describe("fp8_cpu_softmax", () => {
  const rows = 7, cols = 33;
  for (const { dtype, name } of DTYPES) {
    const rtol = dtype === BF16 ? 2 ** -7 : 1e-5;
    const atol = dtype === BF16 ? 1e-3 : 1e-6;
    for (const log of [false, true]) {
      const op = log ? "log_softmax" : "softmax";
      test(`${name} ${op}: forward along the last axis matches the reference`, () => {
        const x = randomValues(dtype, rows * cols, 1100, -4, 4);
        const dst = zeros(dtype, rows * cols);
        expect(lib.fp8_cpu_softmax(dst, buffer(dtype, x), dtype, rows, cols, log ? 1 : 0)).toBe(0);
        expectClose(values(dst), softmaxRef(x, rows, cols, log), rtol, atol, op);
      });

      test(`${name} ${op}: backward from ddst and the forward output matches the reference`, () => {
        const y = softmaxRef(randomValues(dtype, rows * cols, 1200, -4, 4), rows, cols, log).map((v) => roundTo(dtype, v));
        const dy = randomValues(dtype, rows * cols, 1201);
        const dsrc = zeros(dtype, rows * cols);
        expect(lib.fp8_cpu_softmax_backward(dsrc, buffer(dtype, dy), buffer(dtype, y), dtype, rows, cols, log ? 1 : 0)).toBe(0);
        expectClose(values(dsrc), softmaxBackwardRef(dy, y, rows, cols, log), rtol, atol * 4, op);
      });
    }
  }

  test("softmax rows sum to 1 even for large logits", () => {
    const x = Float32Array.from([1000, 1001, 1002, -1000, 0, 1000]);
    const y = new Float32Array(6);
    expect(lib.fp8_cpu_softmax(y, x, F32, 2, 3, 0)).toBe(0);
    expect(y[0]! + y[1]! + y[2]!).toBeCloseTo(1, 6);
    expect(y[3]! + y[4]! + y[5]!).toBeCloseTo(1, 6);
  });
});

// ---- layer norm -------------------------------------------------------------------

function layerNormRef(x: number[], gamma: number[] | null, beta: number[] | null, rows: number, cols: number, eps: number) {
  const y: number[] = [], mean: number[] = [], rstd: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = x.slice(r * cols, (r + 1) * cols);
    const mu = row.reduce((p, v) => p + v, 0) / cols;
    const varc = row.reduce((p, v) => p + (v - mu) ** 2, 0) / cols;
    const rs = 1 / Math.sqrt(varc + eps);
    mean.push(mu);
    rstd.push(rs);
    row.forEach((v, c) => y.push((v - mu) * rs * (gamma ? gamma[c]! : 1) + (beta ? beta[c]! : 0)));
  }
  return { y, mean, rstd };
}

function layerNormBackwardRef(dy: number[], x: number[], mean: number[], rstd: number[], gamma: number[] | null, rows: number, cols: number) {
  const dx: number[] = [];
  const dgamma = new Array(cols).fill(0);
  const dbeta = new Array(cols).fill(0);
  for (let r = 0; r < rows; r++) {
    const xhat = Array.from({ length: cols }, (_, c) => (x[r * cols + c]! - mean[r]!) * rstd[r]!);
    const g = Array.from({ length: cols }, (_, c) => dy[r * cols + c]! * (gamma ? gamma[c]! : 1));
    const mg = g.reduce((p, v) => p + v, 0) / cols;
    const mgx = g.reduce((p, v, c) => p + v * xhat[c]!, 0) / cols;
    for (let c = 0; c < cols; c++) {
      dx.push(rstd[r]! * (g[c]! - mg - xhat[c]! * mgx));
      dgamma[c] += dy[r * cols + c]! * xhat[c]!;
      dbeta[c] += dy[r * cols + c]!;
    }
  }
  return { dx, dgamma, dbeta };
}

describe("fp8_cpu_layer_norm", () => {
  const rows = 6, cols = 40, eps = 1e-5;
  for (const { dtype, name } of DTYPES) {
    const rtol = dtype === BF16 ? 2 ** -7 : 1e-5;
    const atol = dtype === BF16 ? 2e-2 : 1e-5;
    for (const [useGamma, useBeta] of [[true, true], [false, false], [true, false], [false, true]]) {
      const label = useGamma && useBeta ? "with gamma and beta" : useGamma ? "with gamma only" : useBeta ? "with beta only" : "without gamma and beta";
      test(`${name} ${label}: forward gives dst, mean and rstd = 1/sqrt(var + eps)`, () => {
        const x = randomValues(dtype, rows * cols, 1300, -2, 3);
        const gamma = useGamma ? randomValues(dtype, cols, 1301, 0.5, 1.5) : null;
        const beta = useBeta ? randomValues(dtype, cols, 1302) : null;
        const dst = zeros(dtype, rows * cols);
        const mean = new Float32Array(rows), rstd = new Float32Array(rows);
        const status = lib.fp8_cpu_layer_norm(dst, mean, rstd, buffer(dtype, x), gamma && buffer(dtype, gamma), beta && buffer(dtype, beta), dtype, rows, cols, eps);
        expect(status).toBe(0);
        const ref = layerNormRef(x, gamma, beta, rows, cols, f32(eps));
        expectClose(values(dst), ref.y, rtol, atol, "dst");
        expectClose(mean, ref.mean, 1e-5, 1e-6, "mean");
        expectClose(rstd, ref.rstd, 1e-5, 0, "rstd");
      });

      // backward depends on gamma alone, so the mixed variants add nothing there
      if (useGamma !== useBeta) continue;
      test(`${name} ${label}: backward gives dsrc, dgamma and dbeta`, () => {
        const x = randomValues(dtype, rows * cols, 1400, -2, 3);
        const gamma = useGamma ? randomValues(dtype, cols, 1401, 0.5, 1.5) : null;
        const dy = randomValues(dtype, rows * cols, 1402);
        const fwd = layerNormRef(x, null, null, rows, cols, f32(eps));
        const mean = Float32Array.from(fwd.mean), rstd = Float32Array.from(fwd.rstd);
        const dsrc = zeros(dtype, rows * cols), dgamma = zeros(dtype, cols), dbeta = zeros(dtype, cols);
        const status = lib.fp8_cpu_layer_norm_backward(dsrc, dgamma, dbeta, buffer(dtype, dy), buffer(dtype, x), mean, rstd, gamma && buffer(dtype, gamma), dtype, rows, cols);
        expect(status).toBe(0);
        const ref = layerNormBackwardRef(dy, x, Array.from(mean), Array.from(rstd), gamma, rows, cols);
        expectClose(values(dsrc), ref.dx, rtol, atol * 4, "dsrc");
        expectClose(values(dgamma), ref.dgamma, rtol, atol * 4, "dgamma");
        expectClose(values(dbeta), ref.dbeta, rtol, atol * 4, "dbeta");
      });
    }
  }

  test("backward with NULL dgamma and dbeta still gives dsrc", () => {
    const x = randomValues(F32, 2 * 8, 1500);
    const dy = randomValues(F32, 2 * 8, 1501);
    const fwd = layerNormRef(x, null, null, 2, 8, f32(1e-5));
    const dsrc = new Float32Array(16);
    expect(lib.fp8_cpu_layer_norm_backward(dsrc, null, null, Float32Array.from(dy), Float32Array.from(x), Float32Array.from(fwd.mean), Float32Array.from(fwd.rstd), null, F32, 2, 8)).toBe(0);
    expectClose(dsrc, layerNormBackwardRef(dy, x, fwd.mean, fwd.rstd, null, 2, 8).dx, 1e-5, 1e-5);
  });
});

// ---- copy_strided -----------------------------------------------------------------

describe("fp8_cpu_copy_strided", () => {
  const copy = (dst: NodeJS.TypedArray, ds: number[], src: NodeJS.TypedArray, ss: number[], d: number[], elem: number) =>
    lib.fp8_cpu_copy_strided(dst, dims(ds), src, dims(ss), dims(d), d.length, elem);

  test("a transpose of a (5, 7) f32 matrix", () => {
    const src = Float32Array.from({ length: 35 }, (_, i) => i);
    const dst = new Float32Array(35);
    // dst (7, 5) dense; read src (5, 7) with its strides swapped
    expect(copy(dst, [5, 1], src, [1, 7], [7, 5], 4)).toBe(0);
    for (let r = 0; r < 7; r++) for (let c = 0; c < 5; c++) expect(dst[r * 5 + c]).toBe(src[c * 7 + r]!);
  });

  test("a 3-d permute (2, 3, 4) -> (4, 2, 3) of bf16 bits", () => {
    const src = Uint16Array.from({ length: 24 }, (_, i) => 0x3f80 + i);
    const dst = new Uint16Array(24);
    expect(copy(dst, [6, 3, 1], src, [1, 12, 4], [4, 2, 3], 2)).toBe(0);
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 2; j++) for (let k = 0; k < 3; k++) expect(dst[i * 6 + j * 3 + k]).toBe(src[j * 12 + k * 4 + i]!);
  });

  test("a slice [1:3, 2:6] of a (4, 8) matrix into a dense (2, 4)", () => {
    const src = Float32Array.from({ length: 32 }, (_, i) => i);
    const dst = new Float32Array(8);
    expect(copy(dst, [4, 1], src.subarray(1 * 8 + 2), [8, 1], [2, 4], 4)).toBe(0);
    expect(Array.from(dst)).toEqual([10, 11, 12, 13, 18, 19, 20, 21]);
  });

  test("cat of (2, 3) and (2, 2) along the last axis into (2, 5)", () => {
    const a = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const b = Float32Array.from([7, 8, 9, 10]);
    const dst = new Float32Array(10);
    expect(copy(dst, [5, 1], a, [3, 1], [2, 3], 4)).toBe(0);
    expect(copy(dst.subarray(3), [5, 1], b, [2, 1], [2, 2], 4)).toBe(0);
    expect(Array.from(dst)).toEqual([1, 2, 3, 7, 8, 4, 5, 6, 9, 10]);
  });

  test("every 16-bit pattern (bf16 NaN payloads included) survives a transpose bit for bit", () => {
    const src = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const dst = new Uint16Array(65536);
    expect(copy(dst, [256, 1], src, [1, 256], [256, 256], 2)).toBe(0);
    const back = new Uint16Array(65536);
    expect(copy(back, [256, 1], dst, [1, 256], [256, 256], 2)).toBe(0);
    expect(back).toEqual(src);
    expect(dst[1]).toBe(256);
  });

  test("32-bit patterns (f32 signalling NaN included) and bytes copy bit for bit", () => {
    const src32 = Uint32Array.from([0x7f800001, 0xffbfffff, 0x80000000, 1, 0x7fc00000, 42]);
    const dst32 = new Uint32Array(6);
    expect(copy(dst32, [1, 2], src32, [3, 1], [2, 3], 4)).toBe(0);
    expect(Array.from(dst32)).toEqual([0x7f800001, 1, 0xffbfffff, 0x7fc00000, 0x80000000, 42]);
    const src8 = Uint8Array.from({ length: 256 }, (_, i) => i);
    const dst8 = new Uint8Array(256);
    expect(copy(dst8, [16, 1], src8, [1, 16], [16, 16], 1)).toBe(0);
    for (let r = 0; r < 16; r++) for (let c = 0; c < 16; c++) expect(dst8[r * 16 + c]).toBe(c * 16 + r);
  });

  test("a zero source stride broadcasts (expand)", () => {
    const src = Float32Array.from([1, 2, 3]);
    const dst = new Float32Array(6);
    expect(copy(dst, [3, 1], src, [0, 1], [2, 3], 4)).toBe(0);
    expect(Array.from(dst)).toEqual([1, 2, 3, 1, 2, 3]);
  });

  test("size-1 dims may carry any stride, zero included", () => {
    const src = Float32Array.from([1, 2, 3]);
    const dst = new Float32Array(3);
    expect(copy(dst, [0, 1, 99], src, [0, 1, 0], [1, 3, 1], 4)).toBe(0);
    expect(Array.from(dst)).toEqual([1, 2, 3]);
  });

  test("a zero-size region succeeds and writes nothing", () => {
    const dst = Float32Array.of(9);
    expect(copy(dst, [1], Float32Array.of(1), [1], [0], 4)).toBe(0);
    expect(dst[0]).toBe(9);
  });
});

// ---- argument checks: a status, a message naming the function, no crash -----------

/** Each call must fail with INVALID_ARG and a message naming fn and containing `hint`. */
function expectRejected(fn: string, calls: [string, () => number][]): void {
  for (const [hint, call] of calls) {
    const status = call();
    if (status !== INVALID_ARG) throw new Error(`${fn} (${hint}): status ${status}, expected ${INVALID_ARG}`);
    const msg = lastError();
    if (!msg.startsWith(`${fn}:`) || !msg.includes(hint)) throw new Error(`${fn}: message "${msg}" lacks "${hint}"`);
  }
}

describe("argument checks", () => {
  const f = (n: number) => new Float32Array(n);

  test("matmul rejects NULLs, unknown dtypes, bad sizes, mismatched batches and beta not 0/1", () => {
    const mm = (o: Partial<{ c: Float32Array | null; a: Float32Array | null; cd: number; ab: number; bias: Float32Array | null; bd: number; ba: number; bb: number; M: number; K: number; N: number; beta: number }>) =>
      lib.fp8_cpu_matmul("c" in o ? o.c! : f(16), o.cd ?? F32, "a" in o ? o.a! : f(16), f(16), o.ab ?? F32, o.bias ?? null, o.bd ?? F32,
        o.ba ?? 1, o.bb ?? 1, o.M ?? 2, o.K ?? 2, o.N ?? 2, 0, 0, 1, o.beta ?? 0);
    expectRejected("fp8_cpu_matmul", [
      ["c is NULL", () => mm({ c: null })],
      ["a is NULL", () => mm({ a: null })],
      ["ab_dtype float8_e4m3fn (2)", () => mm({ ab: E4M3 })],
      ["c_dtype unknown (42)", () => mm({ cd: 42 })],
      ["bias_dtype", () => mm({ bias: f(2), bd: 7 })],
      ["M=-1", () => mm({ M: -1 })],
      ["batch_a=0", () => mm({ ba: 0 })],
      ["batch_a=2 and batch_b=3", () => mm({ ba: 2, bb: 3 })],
      ["beta=0.5", () => mm({ beta: 0.5 })],
      ["overflows", () => mm({ M: 2 ** 40, K: 2 ** 40 })],
    ]);
  });

  test("scaled_mm rejects NULL scales and non-fp8 operand dtypes", () => {
    const u = new Uint8Array(4);
    const s = Float32Array.of(1);
    expectRejected("fp8_cpu_scaled_mm", [
      ["scale_a is NULL", () => lib.fp8_cpu_scaled_mm(f(4), F32, u, E4M3, u, E4M3, null, s, null, F32, 2, 2, 2, 0, 0)],
      ["a_dtype float32 (0)", () => lib.fp8_cpu_scaled_mm(f(4), F32, u, F32, u, E4M3, s, s, null, F32, 2, 2, 2, 0, 0)],
      ["b_dtype bfloat16 (1)", () => lib.fp8_cpu_scaled_mm(f(4), F32, u, E4M3, u, BF16, s, s, null, F32, 2, 2, 2, 0, 0)],
      ["c_dtype", () => lib.fp8_cpu_scaled_mm(f(4), E5M2, u, E4M3, u, E4M3, s, s, null, F32, 2, 2, 2, 0, 0)],
      ["K=-2", () => lib.fp8_cpu_scaled_mm(f(4), F32, u, E4M3, u, E4M3, s, s, null, F32, 2, -2, 2, 0, 0)],
    ]);
  });

  test("eltwise and its backward reject an unknown alg, dtype, negative n and NULLs", () => {
    expectRejected("fp8_cpu_eltwise", [
      ["unknown alg 12", () => lib.fp8_cpu_eltwise(f(4), f(4), F32, 4, 12, 0, 0)],
      ["dtype float8_e5m2 (3)", () => lib.fp8_cpu_eltwise(f(4), f(4), E5M2, 4, 0, 0, 0)],
      ["n=-4", () => lib.fp8_cpu_eltwise(f(4), f(4), F32, -4, 0, 0, 0)],
      ["src is NULL", () => lib.fp8_cpu_eltwise(f(4), null, F32, 4, 0, 0, 0)],
    ]);
    expectRejected("fp8_cpu_eltwise_backward", [
      ["unknown alg -1", () => lib.fp8_cpu_eltwise_backward(f(4), f(4), f(4), F32, 4, -1, 0, 0)],
      ["ddst is NULL", () => lib.fp8_cpu_eltwise_backward(f(4), null, f(4), F32, 4, 0, 0, 0)],
    ]);
  });

  test("binary rejects shapes that do not broadcast, ndim out of range and an unknown alg", () => {
    expectRejected("fp8_cpu_binary", [
      ["do not broadcast to dst (2,3)", () => lib.fp8_cpu_binary(f(6), dims([2, 3]), f(6), dims([2, 3]), f(2), dims([2, 2]), F32, 2, 0)],
      ["ndim=9", () => lib.fp8_cpu_binary(f(6), dims(new Array(9).fill(1)), f(6), dims(new Array(9).fill(1)), f(6), dims(new Array(9).fill(1)), F32, 9, 0)],
      ["ndim=0", () => lib.fp8_cpu_binary(f(6), dims([1]), f(6), dims([1]), f(6), dims([1]), F32, 0, 0)],
      ["unknown alg 6", () => lib.fp8_cpu_binary(f(6), dims([6]), f(6), dims([6]), f(6), dims([6]), F32, 1, 6)],
      ["a_dims[0]=-1", () => lib.fp8_cpu_binary(f(6), dims([6]), f(6), dims([-1]), f(6), dims([6]), F32, 1, 0)],
      ["b_dims is NULL", () => lib.fp8_cpu_binary(f(6), dims([6]), f(6), dims([6]), f(6), null, F32, 1, 0)],
    ]);
  });

  test("reduce rejects a dst that is not a reduction of src and an unknown alg", () => {
    expectRejected("fp8_cpu_reduce", [
      ["dst (2,2) is not a reduction of src (2,3)", () => lib.fp8_cpu_reduce(f(6), dims([2, 2]), f(6), dims([2, 3]), F32, 2, 0)],
      ["unknown alg 4", () => lib.fp8_cpu_reduce(f(6), dims([1, 3]), f(6), dims([2, 3]), F32, 2, 4)],
      ["dtype", () => lib.fp8_cpu_reduce(f(6), dims([1, 3]), f(6), dims([2, 3]), 4, 2, 0)],
    ]);
  });

  test("softmax, layer norm and their backwards reject NULLs and bad sizes", () => {
    expectRejected("fp8_cpu_softmax", [["rows=-1", () => lib.fp8_cpu_softmax(f(4), f(4), F32, -1, 4, 0)]]);
    expectRejected("fp8_cpu_softmax_backward", [["dst is NULL", () => lib.fp8_cpu_softmax_backward(f(4), f(4), null, F32, 1, 4, 0)]]);
    expectRejected("fp8_cpu_layer_norm", [
      ["rstd is NULL", () => lib.fp8_cpu_layer_norm(f(4), f(1), null, f(4), null, null, F32, 1, 4, 1e-5)],
      ["cols=0", () => lib.fp8_cpu_layer_norm(f(4), f(1), f(1), f(4), null, null, F32, 1, 0, 1e-5)],
      ["eps=-1", () => lib.fp8_cpu_layer_norm(f(4), f(1), f(1), f(4), null, null, F32, 1, 4, -1)],
    ]);
    expectRejected("fp8_cpu_layer_norm_backward", [
      ["mean is NULL", () => lib.fp8_cpu_layer_norm_backward(f(4), null, null, f(4), f(4), null, f(1), null, F32, 1, 4)],
      ["dtype", () => lib.fp8_cpu_layer_norm_backward(f(4), null, null, f(4), f(4), f(1), f(1), null, E4M3, 1, 4)],
    ]);
  });

  test("copy_strided rejects an element size other than 1/2/4, negative strides and ndim out of range", () => {
    expectRejected("fp8_cpu_copy_strided", [
      ["elem_size=8", () => lib.fp8_cpu_copy_strided(f(4), dims([1]), f(4), dims([1]), dims([4]), 1, 8)],
      ["strides must be >= 0", () => lib.fp8_cpu_copy_strided(f(4), dims([-1]), f(4), dims([1]), dims([4]), 1, 4)],
      ["ndim=0", () => lib.fp8_cpu_copy_strided(f(4), dims([1]), f(4), dims([1]), dims([4]), 0, 4)],
      ["dims[0]=-4", () => lib.fp8_cpu_copy_strided(f(4), dims([1]), f(4), dims([1]), dims([-4]), 1, 4)],
    ]);
  });
});
