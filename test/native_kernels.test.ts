// native_kernels.test.ts — libfp8's hand-written CPU kernels (nn_kernels.c,
// optim.c) called straight through the FFI and compared with plain JS
// references: RMS norm, fill, masked fill, embedding, cross entropy, SGD and
// AdamW, in float32 and bfloat16, plus their argument checks.
import { describe, expect, test } from "bun:test";
import { lib } from "../src/ffi/index.ts";
import { buffer, f32, random, roundTo, values } from "./helpers/host.ts";

const F32 = 0;
const BF16 = 1;
const I32 = 4;
const INVALID_ARG = -1;
const DTYPES = [
  { dtype: F32, name: "float32" },
  { dtype: BF16, name: "bfloat16" },
] as const;

// ---- helpers ------------------------------------------------------------------

/** n random values already representable in `dtype`. */
function randomValues(dtype: number, n: number, seed: number, lo = -1, hi = 1): number[] {
  const rnd = random(seed);
  return Array.from({ length: n }, () => roundTo(dtype, rnd(lo, hi)));
}

/** |actual - expected| <= atol + rtol * |expected|, elementwise, naming the first miss. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      throw new Error(`element ${i}: got ${a}, expected ${e} (rtol ${rtol}, atol ${atol})`);
    }
  }
}

const lastError = (): string => String(lib.fp8_last_error() ?? "");

/** Central finite difference of f at x (f64), one coordinate at a time. */
function finiteDifferences(f: (x: number[]) => number, x: number[], h = 1e-6): number[] {
  return x.map((_, i) => {
    const up = x.slice();
    const down = x.slice();
    up[i]! += h;
    down[i]! -= h;
    return (f(up) - f(down)) / (2 * h);
  });
}

// ---- references (f64 unless stated) --------------------------------------------

function rmsNormRef(x: number[], gamma: number[] | null, rows: number, cols: number, eps: number): number[] {
  const y: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = x.slice(r * cols, (r + 1) * cols);
    const rstd = 1 / Math.sqrt(row.reduce((s, v) => s + v * v, 0) / cols + eps);
    row.forEach((v, c) => y.push(v * rstd * (gamma ? gamma[c]! : 1)));
  }
  return y;
}

/** log_softmax rows and the mean NLL over rows whose target is not ignored. */
function crossEntropyRef(logits: number[], targets: number[], rows: number, cols: number, ignore: number) {
  const logp: number[] = [];
  let nll = 0;
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const row = logits.slice(r * cols, (r + 1) * cols);
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((s, v) => s + Math.exp(v - mx), 0));
    row.forEach((v) => logp.push(v - lse));
    if (targets[r] !== ignore) {
      nll -= logp[r * cols + targets[r]!]!;
      count++;
    }
  }
  return { logp, loss: nll / count };
}

// ---- RMS norm -------------------------------------------------------------------

describe("fp8_cpu_rms_norm", () => {
  for (const { dtype, name } of DTYPES) {
    test(`${name}: matches src * rstd * gamma with rstd = 1/sqrt(mean(src^2) + eps)`, () => {
      const rows = 16, cols = 40, eps = 1e-5;
      const x = randomValues(dtype, rows * cols, 1, -2, 2);
      const gamma = randomValues(dtype, cols, 2, 0.5, 1.5);
      const dst = buffer(dtype, new Array(rows * cols).fill(0));
      const rstd = new Float32Array(rows);
      expect(lib.fp8_cpu_rms_norm(dst, rstd, buffer(dtype, x), buffer(dtype, gamma), dtype, rows, cols, eps)).toBe(0);

      // Bit-exact: the sum of squares is a double sum in column order (each
      // square is exact in f64), rstd is rounded once to f32, products are f32.
      const expectedRstd = Array.from({ length: rows }, (_, r) => {
        const row = x.slice(r * cols, (r + 1) * cols);
        return f32(1 / Math.sqrt(row.reduce((s, v) => s + v * v, 0) / cols + f32(eps)));
      });
      expect(Array.from(rstd)).toEqual(expectedRstd);
      // torch rounds the normalised value to the input dtype before the gamma multiply.
      const expected = x.map((v, i) => {
        const normed = roundTo(dtype, v * expectedRstd[Math.floor(i / cols)]!);
        return roundTo(dtype, normed * gamma[i % cols]!);
      });
      expect(values(dst)).toEqual(expected);
    });
  }

  test("float32: without gamma the output is src * rstd", () => {
    const rows = 3, cols = 8, eps = 1e-6;
    const x = randomValues(F32, rows * cols, 3, -3, 3);
    const dst = new Float32Array(rows * cols);
    const rstd = new Float32Array(rows);
    expect(lib.fp8_cpu_rms_norm(dst, rstd, Float32Array.from(x), null, F32, rows, cols, eps)).toBe(0);
    expectClose(dst, rmsNormRef(x, null, rows, cols, eps), 1e-6, 1e-7);
  });

  test("float32: a large input (parallel path) matches the reference", () => {
    const rows = 300, cols = 130, eps = 1e-5;
    const x = randomValues(F32, rows * cols, 4, -2, 2);
    const gamma = randomValues(F32, cols, 5);
    const dst = new Float32Array(rows * cols);
    const rstd = new Float32Array(rows);
    expect(lib.fp8_cpu_rms_norm(dst, rstd, Float32Array.from(x), Float32Array.from(gamma), F32, rows, cols, eps)).toBe(0);
    expectClose(dst, rmsNormRef(x, gamma, rows, cols, eps), 1e-5, 1e-6);
  });
});

describe("fp8_cpu_rms_norm_backward", () => {
  /** Runs forward then backward natively for L = sum(ddst * y); returns the grads. */
  function nativeGrads(dtype: number, x: number[], gamma: number[] | null, dy: number[], rows: number, cols: number, eps: number) {
    const src = buffer(dtype, x);
    const g = gamma ? buffer(dtype, gamma) : null;
    const rstd = new Float32Array(rows);
    expect(lib.fp8_cpu_rms_norm(buffer(dtype, x), rstd, src, g, dtype, rows, cols, eps)).toBe(0);
    const dsrc = buffer(dtype, new Array(rows * cols).fill(0));
    const dgamma = gamma ? buffer(dtype, new Array(cols).fill(123)) : null;
    expect(lib.fp8_cpu_rms_norm_backward(dsrc, dgamma, buffer(dtype, dy), src, rstd, g, dtype, rows, cols)).toBe(0);
    return { dsrc: values(dsrc), dgamma: dgamma ? values(dgamma) : null };
  }

  for (const { dtype, name } of DTYPES) {
    const tol = dtype === BF16 ? { rtol: 2 ** -7, atol: 2e-3 } : { rtol: 1e-4, atol: 1e-5 };

    test(`${name}: dsrc matches finite differences of sum(ddst * y)`, () => {
      const rows = 3, cols = 7, eps = 1e-5;
      const x = randomValues(dtype, rows * cols, 10, -2, 2);
      const gamma = randomValues(dtype, cols, 11, 0.5, 1.5);
      const dy = randomValues(dtype, rows * cols, 12);
      const loss = (xs: number[]) => rmsNormRef(xs, gamma, rows, cols, eps).reduce((s, v, i) => s + v * dy[i]!, 0);
      const { dsrc } = nativeGrads(dtype, x, gamma, dy, rows, cols, eps);
      expectClose(dsrc, finiteDifferences(loss, x), tol.rtol, tol.atol);
    });

    test(`${name}: dgamma (overwritten) matches finite differences of sum(ddst * y)`, () => {
      const rows = 4, cols = 37, eps = 1e-5; // 37 columns span two column blocks
      const x = randomValues(dtype, rows * cols, 13, -2, 2);
      const gamma = randomValues(dtype, cols, 14, 0.5, 1.5);
      const dy = randomValues(dtype, rows * cols, 15);
      const loss = (gs: number[]) => rmsNormRef(x, gs, rows, cols, eps).reduce((s, v, i) => s + v * dy[i]!, 0);
      const { dgamma } = nativeGrads(dtype, x, gamma, dy, rows, cols, eps);
      expectClose(dgamma!, finiteDifferences(loss, gamma), tol.rtol, tol.atol);
    });
  }

  test("float32: without gamma dsrc matches finite differences", () => {
    const rows = 2, cols = 9, eps = 1e-6;
    const x = randomValues(F32, rows * cols, 16, -2, 2);
    const dy = randomValues(F32, rows * cols, 17);
    const loss = (xs: number[]) => rmsNormRef(xs, null, rows, cols, eps).reduce((s, v, i) => s + v * dy[i]!, 0);
    const { dsrc } = nativeGrads(F32, x, null, dy, rows, cols, eps);
    expectClose(dsrc, finiteDifferences(loss, x), 1e-4, 1e-5);
  });

  test("float32: a large input (parallel path) matches the analytic gradient", () => {
    const rows = 300, cols = 130, eps = 1e-5;
    const x = randomValues(F32, rows * cols, 18, -2, 2);
    const gamma = randomValues(F32, cols, 19, 0.5, 1.5);
    const dy = randomValues(F32, rows * cols, 20);
    const { dsrc, dgamma } = nativeGrads(F32, x, gamma, dy, rows, cols, eps);
    const expDsrc: number[] = [];
    const expDgamma = new Array(cols).fill(0);
    for (let r = 0; r < rows; r++) {
      const at = (c: number) => r * cols + c;
      let sumsq = 0, dot = 0;
      for (let c = 0; c < cols; c++) sumsq += x[at(c)]! ** 2;
      const rs = 1 / Math.sqrt(sumsq / cols + eps);
      for (let c = 0; c < cols; c++) dot += dy[at(c)]! * gamma[c]! * x[at(c)]!;
      for (let c = 0; c < cols; c++) {
        expDsrc.push(rs * gamma[c]! * dy[at(c)]! - (x[at(c)]! * rs ** 3 * dot) / cols);
        expDgamma[c] += dy[at(c)]! * x[at(c)]! * rs;
      }
    }
    expectClose(dsrc, expDsrc, 1e-4, 1e-5);
    expectClose(dgamma!, expDgamma, 1e-4, 1e-4);
  });
});

// ---- fill, masked fill -------------------------------------------------------------

describe("fp8_cpu_fill", () => {
  for (const { dtype, name } of DTYPES) {
    test(`${name}: every element becomes the value rounded to the dtype`, () => {
      const dst = buffer(dtype, [1, 2, 3, 4, 5]);
      expect(lib.fp8_cpu_fill(dst, dtype, 5, 0.1)).toBe(0);
      expect(values(dst)).toEqual(new Array(5).fill(roundTo(dtype, 0.1)));
    });
  }

  test("int32: the value is truncated toward zero", () => {
    const dst = new Int32Array(4);
    expect(lib.fp8_cpu_fill(dst, I32, 4, -7.9)).toBe(0);
    expect(Array.from(dst)).toEqual([-7, -7, -7, -7]);
  });

  test("a large buffer (parallel path) is filled completely", () => {
    const dst = new Float32Array(100_003);
    expect(lib.fp8_cpu_fill(dst, F32, dst.length, 2.5)).toBe(0);
    expect(dst.every((v) => v === 2.5)).toBe(true);
  });
});

describe("fp8_cpu_masked_fill", () => {
  for (const { dtype, name } of DTYPES) {
    test(`${name}: the mask broadcasts over the leading rows`, () => {
      const rows = 4, cols = 6;
      const x = randomValues(dtype, rows * cols, 30);
      const mask = Uint8Array.from([1, 0, 0, 1, 0, 1]);
      const dst = buffer(dtype, new Array(rows * cols).fill(0));
      expect(lib.fp8_cpu_masked_fill(dst, buffer(dtype, x), mask, dtype, rows * cols, cols, -1e9)).toBe(0);
      expect(values(dst)).toEqual(x.map((v, i) => (mask[i % cols] ? roundTo(dtype, -1e9) : v)));
    });
  }

  test("float32: works in place (dst == src) with a full-size mask", () => {
    const x = randomValues(F32, 10, 31);
    const mask = Uint8Array.from(x.map((_, i) => (i % 3 === 0 ? 2 : 0))); // any non-zero byte is true
    const buf = Float32Array.from(x);
    expect(lib.fp8_cpu_masked_fill(buf, buf, mask, F32, 10, 10, 0)).toBe(0);
    expect(Array.from(buf)).toEqual(x.map((v, i) => (i % 3 === 0 ? 0 : v)));
  });
});

// ---- embedding -------------------------------------------------------------------

describe("fp8_cpu_embedding", () => {
  for (const { dtype, name } of DTYPES) {
    test(`${name}: gathers weight rows by index, repeats included`, () => {
      const num = 5, dim = 3;
      const w = randomValues(dtype, num * dim, 40);
      const idx = Int32Array.from([4, 0, 4, 2, 4]);
      const dst = buffer(dtype, new Array(idx.length * dim).fill(0));
      expect(lib.fp8_cpu_embedding(dst, buffer(dtype, w), idx, dtype, idx.length, num, dim)).toBe(0);
      expect(values(dst)).toEqual(Array.from(idx).flatMap((i) => w.slice(i * dim, (i + 1) * dim)));
    });
  }
});

describe("fp8_cpu_embedding_backward", () => {
  /** dweight + scatter(ddst), summed in f32 in position order, rounded once to dtype. */
  function scatterRef(dtype: number, dweight: number[], ddst: number[], idx: Int32Array, dim: number): number[] {
    const acc = dweight.slice();
    idx.forEach((row, i) => {
      for (let c = 0; c < dim; c++) acc[row * dim + c] = f32(acc[row * dim + c]! + ddst[i * dim + c]!);
    });
    return acc.map((v) => roundTo(dtype, v));
  }

  for (const { dtype, name } of DTYPES) {
    test(`${name}: adds ddst rows into dweight, summing repeated indices`, () => {
      const num = 6, dim = 4;
      const idx = Int32Array.from([1, 3, 1, 1, 5, 3]);
      const dweight = randomValues(dtype, num * dim, 41);
      const ddst = randomValues(dtype, idx.length * dim, 42);
      const out = buffer(dtype, dweight);
      expect(lib.fp8_cpu_embedding_backward(out, buffer(dtype, ddst), idx, dtype, idx.length, num, dim)).toBe(0);
      expect(values(out)).toEqual(scatterRef(dtype, dweight, ddst, idx, dim));
    });
  }

  test("float32: a large scatter (parallel path) equals the serial sum exactly", () => {
    const num = 16, dim = 300, n = 512;
    const rnd = random(43);
    const idx = Int32Array.from({ length: n }, () => Math.floor(rnd(0, num)));
    const dweight = randomValues(F32, num * dim, 44);
    const ddst = randomValues(F32, n * dim, 45);
    const out = Float32Array.from(dweight);
    expect(lib.fp8_cpu_embedding_backward(out, Float32Array.from(ddst), idx, F32, n, num, dim)).toBe(0);
    expect(Array.from(out)).toEqual(scatterRef(F32, dweight, ddst, idx, dim));
  });
});

// ---- cross entropy ---------------------------------------------------------------

describe("fp8_cpu_cross_entropy", () => {
  for (const { dtype, name } of DTYPES) {
    test(`${name}: loss is the mean NLL of log_softmax over rows not ignored`, () => {
      const rows = 6, cols = 9, ignore = -100;
      const logits = randomValues(dtype, rows * cols, 50, -4, 4);
      const targets = Int32Array.from([3, -100, 0, 8, -100, 5]);
      const logp = buffer(dtype, new Array(rows * cols).fill(0));
      const loss = new Float32Array(1);
      expect(lib.fp8_cpu_cross_entropy(loss, logp, buffer(dtype, logits), targets, dtype, rows, cols, ignore)).toBe(0);
      const ref = crossEntropyRef(logits, Array.from(targets), rows, cols, ignore);
      const tol = dtype === BF16 ? 2 ** -7 : 1e-6;
      expectClose(values(logp), ref.logp, tol, 1e-6);
      expectClose(loss, [ref.loss], tol, 1e-6);
    });
  }

  test("float32: an ignore_index inside [0, cols) ignores that class", () => {
    const rows = 3, cols = 4, ignore = 2;
    const logits = randomValues(F32, rows * cols, 51, -3, 3);
    const targets = Int32Array.from([2, 1, 3]);
    const loss = new Float32Array(1);
    expect(lib.fp8_cpu_cross_entropy(loss, new Float32Array(rows * cols), Float32Array.from(logits), targets, F32, rows, cols, ignore)).toBe(0);
    expectClose(loss, [crossEntropyRef(logits, [2, 1, 3], rows, cols, ignore).loss], 1e-6, 0);
  });

  test("float32: the loss is NaN when every target is ignored, as in torch", () => {
    const loss = new Float32Array(1);
    const targets = Int32Array.from([-100, -100]);
    expect(lib.fp8_cpu_cross_entropy(loss, new Float32Array(6), new Float32Array(6), targets, F32, 2, 3, -100)).toBe(0);
    expect(Number.isNaN(loss[0])).toBe(true);
  });

  test("float32: a large batch (parallel path) matches the reference", () => {
    const rows = 256, cols = 200, ignore = -1;
    const logits = randomValues(F32, rows * cols, 52, -6, 6);
    const rnd = random(53);
    const targets = Int32Array.from({ length: rows }, (_, r) => (r % 7 === 0 ? ignore : Math.floor(rnd(0, cols))));
    const logp = new Float32Array(rows * cols);
    const loss = new Float32Array(1);
    expect(lib.fp8_cpu_cross_entropy(loss, logp, Float32Array.from(logits), targets, F32, rows, cols, ignore)).toBe(0);
    const ref = crossEntropyRef(logits, Array.from(targets), rows, cols, ignore);
    expectClose(logp, ref.logp, 1e-6, 1e-6);
    expectClose(loss, [ref.loss], 1e-6, 0);
  });
});

describe("fp8_cpu_cross_entropy_backward", () => {
  for (const { dtype, name } of DTYPES) {
    test(`${name}: dlogits matches finite differences of dloss * loss, zero on ignored rows`, () => {
      const rows = 5, cols = 6, ignore = -100, dloss = 1.5;
      const logits = randomValues(dtype, rows * cols, 60, -3, 3);
      const targets = Int32Array.from([1, -100, 5, 0, 2]);
      const logp = buffer(dtype, new Array(rows * cols).fill(0));
      const loss = new Float32Array(1);
      expect(lib.fp8_cpu_cross_entropy(loss, logp, buffer(dtype, logits), targets, dtype, rows, cols, ignore)).toBe(0);
      const dlogits = buffer(dtype, new Array(rows * cols).fill(7));
      expect(lib.fp8_cpu_cross_entropy_backward(dlogits, logp, targets, dloss, dtype, rows, cols, ignore)).toBe(0);

      const f = (xs: number[]) => dloss * crossEntropyRef(xs, Array.from(targets), rows, cols, ignore).loss;
      const expected = finiteDifferences(f, logits);
      const got = values(dlogits);
      if (dtype === BF16) expectClose(got, expected, 2 ** -6, 2e-3);
      else expectClose(got, expected, 1e-4, 1e-6);
      expect(got.slice(cols, 2 * cols)).toEqual(new Array(cols).fill(0));
    });
  }
});

// ---- optimizers ------------------------------------------------------------------

type SgdOptions = { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean };

/** torch.optim.SGD's update in f64 over `grads.length` steps; params rounded to dtype each step. */
function sgdRef(dtype: number, param: number[], grads: number[][], o: SgdOptions): number[] {
  let p = param.slice();
  let buf: number[] | null = null;
  for (const grad of grads) {
    let d = grad.map((g, i) => (o.weightDecay !== 0 ? g + o.weightDecay * p[i]! : g));
    if (o.momentum !== 0) {
      buf = buf === null ? d.slice() : buf.map((b, i) => o.momentum * b + (1 - o.dampening) * d[i]!);
      d = o.nesterov ? d.map((v, i) => v + o.momentum * buf![i]!) : buf;
    }
    p = p.map((v, i) => roundTo(dtype, v - o.lr * d[i]!));
  }
  return p;
}

describe("fp8_cpu_sgd_step", () => {
  const variants: [string, SgdOptions][] = [
    ["plain", { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false }],
    ["weight decay", { lr: 0.05, momentum: 0, dampening: 0, weightDecay: 0.01, nesterov: false }],
    ["momentum", { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false }],
    ["momentum with dampening and weight decay", { lr: 0.1, momentum: 0.9, dampening: 0.3, weightDecay: 0.02, nesterov: false }],
    ["nesterov with weight decay", { lr: 0.1, momentum: 0.8, dampening: 0, weightDecay: 0.01, nesterov: true }],
  ];
  for (const { dtype, name } of DTYPES) {
    for (const [label, o] of variants) {
      test(`${name}: ${label} matches torch's formulas over 3 steps`, () => {
        const n = 33;
        const p0 = randomValues(dtype, n, 70);
        const grads = [71, 72, 73].map((seed) => randomValues(dtype, n, seed));
        const param = buffer(dtype, p0);
        const buf = o.momentum !== 0 ? new Float32Array(n) : null;
        grads.forEach((g, step) => {
          const status = lib.fp8_cpu_sgd_step(param, buffer(dtype, g), buf, dtype, n, o.lr, o.momentum, o.dampening, o.weightDecay, o.nesterov ? 1 : 0, step === 0 ? 1 : 0);
          expect(status).toBe(0);
        });
        // Args travel as f32, so the reference uses the f32 hyperparameters.
        const of32 = { ...o, lr: f32(o.lr), momentum: f32(o.momentum), dampening: f32(o.dampening), weightDecay: f32(o.weightDecay) };
        const expected = sgdRef(dtype, p0, grads, of32);
        expectClose(values(param), expected, dtype === BF16 ? 2 ** -8 : 1e-6, 1e-7);
      });
    }
  }
});

type AdamWOptions = { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };

/** torch.optim.AdamW's update in f64 over `grads.length` steps; params rounded to dtype each step. */
function adamwRef(dtype: number, param: number[], grads: number[][], o: AdamWOptions): number[] {
  let p = param.slice();
  let m = new Array(p.length).fill(0);
  let v = new Array(p.length).fill(0);
  grads.forEach((grad, k) => {
    const step = k + 1;
    p = p.map((x) => x * (1 - o.lr * o.weightDecay));
    m = m.map((mi, i) => o.beta1 * mi + (1 - o.beta1) * grad[i]!);
    v = v.map((vi, i) => o.beta2 * vi + (1 - o.beta2) * grad[i]! ** 2);
    const bc1 = 1 - o.beta1 ** step;
    const bc2 = 1 - o.beta2 ** step;
    p = p.map((x, i) => roundTo(dtype, x - (o.lr / bc1) * (m[i]! / (Math.sqrt(v[i]! / bc2) + o.eps))));
  });
  return p;
}

describe("fp8_cpu_adamw_step", () => {
  const variants: [string, AdamWOptions][] = [
    ["defaults", { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }],
    ["large weight decay and eps", { lr: 0.05, beta1: 0.8, beta2: 0.95, eps: 1e-3, weightDecay: 0.5 }],
    ["beta1 below 0.5", { lr: 0.01, beta1: 0.3, beta2: 0.9, eps: 1e-6, weightDecay: 0 }],
  ];
  for (const { dtype, name } of DTYPES) {
    for (const [label, o] of variants) {
      test(`${name}: ${label} matches torch's formulas with bias correction over 3 steps`, () => {
        const n = 29;
        const p0 = randomValues(dtype, n, 80);
        const grads = [81, 82, 83].map((seed) => randomValues(dtype, n, seed));
        const param = buffer(dtype, p0);
        const m = new Float32Array(n);
        const v = new Float32Array(n);
        grads.forEach((g, k) => {
          const status = lib.fp8_cpu_adamw_step(param, buffer(dtype, g), m, v, dtype, n, o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, k + 1);
          expect(status).toBe(0);
        });
        const of32 = { lr: f32(o.lr), beta1: f32(o.beta1), beta2: f32(o.beta2), eps: f32(o.eps), weightDecay: f32(o.weightDecay) };
        expectClose(values(param), adamwRef(dtype, p0, grads, of32), dtype === BF16 ? 2 ** -8 : 1e-5, 1e-7);
      });
    }
  }

  test("float32: a large parameter (parallel path) matches the reference", () => {
    const n = 70_001;
    const o = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
    const p0 = randomValues(F32, n, 84);
    const g = randomValues(F32, n, 85);
    const param = Float32Array.from(p0);
    expect(lib.fp8_cpu_adamw_step(param, Float32Array.from(g), new Float32Array(n), new Float32Array(n), F32, n, o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, 1)).toBe(0);
    const of32 = { lr: f32(o.lr), beta1: f32(o.beta1), beta2: f32(o.beta2), eps: f32(o.eps), weightDecay: f32(o.weightDecay) };
    expectClose(param, adamwRef(F32, p0, [g], of32), 1e-5, 1e-7);
  });

  // The AVX-512 loop (libfp8/src/cpu/optim.c) must give the portable loop's bits: every size
  // around the 16-lane tail, the parallel size, both lerp forms, and values that stress the
  // bf16 rounding (ties, overflow to inf, NaN and inf gradients).
  test("the AVX-512 path gives the portable path's bits (f32 and bf16, tails, NaN/inf, both lerp forms)", () => {
    const isa = new Int32Array(1);
    expect(lib.fp8_cpu_get_isa(isa)).toBe(0);
    const sizes = [...Array.from({ length: 40 }, (_, i) => i + 1), 4096 + 17, 70_001];
    const opts: AdamWOptions[] = [
      { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 },
      { lr: 0.5, beta1: 0.3, beta2: 0.9, eps: 1e-30, weightDecay: 0 },
    ];
    let compared = 0;
    try {
      for (const { dtype } of DTYPES) {
        for (const o of opts) {
          for (const n of sizes) {
            const p0 = randomValues(dtype, n, 90 + n, -3e38, 3e38).map((x, i) => (i % 7 === 0 ? x * 1e-38 : i % 5 === 0 ? x * 1e-30 : x));
            const grads = [91, 92].map((seed) => randomValues(dtype, n, seed + n).map((x, i) => (i === 3 ? NaN : i === 5 ? Infinity : i === 11 ? 1e30 : x)));
            const runs = [2, 0].map((cap) => {
              expect(lib.fp8_cpu_set_isa(cap)).toBe(0);
              const param = buffer(dtype, p0);
              const m = new Float32Array(n);
              const v = new Float32Array(n);
              grads.forEach((g, k) => {
                expect(lib.fp8_cpu_adamw_step(param, buffer(dtype, g), m, v, dtype, n, o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, k + 1)).toBe(0);
              });
              return [new Uint8Array(param.buffer), new Uint8Array(m.buffer), new Uint8Array(v.buffer)];
            });
            for (let b = 0; b < 3; b++) {
              if (!Bun.deepEquals(runs[0]![b], runs[1]![b])) throw new Error(`dtype ${dtype} n=${n} lr=${o.lr}: buffer ${b} differs between AVX-512 and portable`);
            }
            compared++;
          }
        }
      }
    } finally {
      lib.fp8_cpu_set_isa(2);
    }
    expect(compared).toBe(DTYPES.length * opts.length * sizes.length);
  });
});

// ---- argument checks: a status, a message naming the function, no crash -----------

describe("argument checks", () => {
  test("embedding: an out-of-range index fails, names index and position, writes nothing", () => {
    const dst = new Float32Array(6).fill(-1);
    const status = lib.fp8_cpu_embedding(dst, new Float32Array(8), Int32Array.from([0, 1, 4]), F32, 3, 4, 2);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toContain("fp8_cpu_embedding");
    expect(lastError()).toContain("index 4 at position 2");
    expect(Array.from(dst)).toEqual(new Array(6).fill(-1));
  });

  test("embedding: a negative index fails", () => {
    const status = lib.fp8_cpu_embedding(new Float32Array(4), new Float32Array(8), Int32Array.from([-1, 0]), F32, 2, 4, 2);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toContain("index -1 at position 0");
  });

  test("embedding_backward: an out-of-range index fails and leaves dweight untouched", () => {
    const dweight = new Float32Array(8).fill(3);
    const status = lib.fp8_cpu_embedding_backward(dweight, new Float32Array(6).fill(1), Int32Array.from([1, 2, 9]), F32, 3, 4, 2);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toContain("fp8_cpu_embedding_backward");
    expect(lastError()).toContain("index 9 at position 2");
    expect(Array.from(dweight)).toEqual(new Array(8).fill(3));
  });

  test("cross_entropy: an out-of-range target fails and leaves loss and logp untouched", () => {
    const loss = Float32Array.from([42]);
    const logp = new Float32Array(6).fill(5);
    const status = lib.fp8_cpu_cross_entropy(loss, logp, new Float32Array(6), Int32Array.from([0, 3]), F32, 2, 3, -100);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toContain("fp8_cpu_cross_entropy");
    expect(lastError()).toContain("target 3 at row 1");
    expect(loss[0]).toBe(42);
    expect(Array.from(logp)).toEqual(new Array(6).fill(5));
  });

  test("cross_entropy_backward: an out-of-range target fails and leaves dlogits untouched", () => {
    const dlogits = new Float32Array(6).fill(5);
    const status = lib.fp8_cpu_cross_entropy_backward(dlogits, new Float32Array(6), Int32Array.from([-5, 0]), 1, F32, 2, 3, -100);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toContain("fp8_cpu_cross_entropy_backward");
    expect(Array.from(dlogits)).toEqual(new Array(6).fill(5));
  });

  test("rms_norm: a NULL src fails naming it", () => {
    const status = lib.fp8_cpu_rms_norm(new Float32Array(4), new Float32Array(2), null, null, F32, 2, 2, 1e-5);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toBe("fp8_cpu_rms_norm: src is NULL");
  });

  test("rms_norm: an unknown dtype fails", () => {
    const status = lib.fp8_cpu_rms_norm(new Float32Array(4), new Float32Array(2), new Float32Array(4), null, 9, 2, 2, 1e-5);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toContain("fp8_cpu_rms_norm: dtype");
  });

  test("rms_norm_backward: dgamma without gamma fails", () => {
    const b = () => new Float32Array(4);
    const status = lib.fp8_cpu_rms_norm_backward(b(), b(), b(), b(), new Float32Array(2), null, F32, 2, 2);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toContain("fp8_cpu_rms_norm_backward");
  });

  test("fill: a negative n fails", () => {
    expect(lib.fp8_cpu_fill(new Float32Array(1), F32, -1, 0)).toBe(INVALID_ARG);
    expect(lastError()).toContain("fp8_cpu_fill: n must be >= 0");
  });

  test("masked_fill: n that is not a multiple of mask_n fails", () => {
    const status = lib.fp8_cpu_masked_fill(new Float32Array(5), new Float32Array(5), new Uint8Array(2), F32, 5, 2, 0);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toContain("fp8_cpu_masked_fill");
  });

  test("sgd_step: a negative n fails", () => {
    const status = lib.fp8_cpu_sgd_step(new Float32Array(1), new Float32Array(1), null, F32, -3, 0.1, 0, 0, 0, 0, 1);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toContain("fp8_cpu_sgd_step");
  });

  test("sgd_step: momentum without a buffer fails", () => {
    const status = lib.fp8_cpu_sgd_step(new Float32Array(1), new Float32Array(1), null, F32, 1, 0.1, 0.9, 0, 0, 0, 1);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toContain("buf is NULL");
  });

  test("sgd_step: nesterov without momentum fails", () => {
    const status = lib.fp8_cpu_sgd_step(new Float32Array(1), new Float32Array(1), null, F32, 1, 0.1, 0, 0, 0, 1, 1);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toContain("nesterov");
  });

  test("adamw_step: step 0 fails", () => {
    const b = () => new Float32Array(1);
    const status = lib.fp8_cpu_adamw_step(b(), b(), b(), b(), F32, 1, 1e-3, 0.9, 0.999, 1e-8, 0, 0);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toContain("fp8_cpu_adamw_step: step must be >= 1");
  });

  test("adamw_step: a NULL exp_avg_sq fails naming it", () => {
    const b = () => new Float32Array(1);
    const status = lib.fp8_cpu_adamw_step(b(), b(), b(), null, F32, 1, 1e-3, 0.9, 0.999, 1e-8, 0, 1);
    expect(status).toBe(INVALID_ARG);
    expect(lastError()).toBe("fp8_cpu_adamw_step: exp_avg_sq is NULL");
  });

  test("the process survives failed calls and the next valid call succeeds", () => {
    expect(lib.fp8_cpu_embedding(null, null, null, F32, 1, 1, 1)).toBe(INVALID_ARG);
    const dst = new Float32Array(3);
    expect(lib.fp8_cpu_fill(dst, F32, 3, 1)).toBe(0);
    expect(Array.from(dst)).toEqual([1, 1, 1]);
  });
});
