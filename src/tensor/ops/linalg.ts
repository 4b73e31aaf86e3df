// linalg.ts — matmul and linear on oneDNN (fp8_cpu_matmul), with gradients.
// Transposed operands are passed as flags, except where the CPU's fastest GEMM
// kernel wants them row-major (src/tensor/ops/gemm_layout.ts): there a
// Linear's grad_weight GEMM transposes grad_output first.
import { Float8Error } from "../../errors.ts";
import { record } from "../../autograd/graph.ts";
import type { HighPrecisionDType } from "../dtype.ts";
import { numel } from "../shape.ts";
import { Tensor } from "../tensor.ts";
import * as dev from "../device_ops.ts";
import { describe, floatOperands } from "./common.ts";
import { copyRegion, reshape, reshapeOwned } from "./movement.ts";
import { materializeTransposedA, materializeTransposedB, type LinearGemm } from "./gemm_layout.ts";
import { sum, sumTo } from "./reduce.ts";

/** Options of the raw GEMM. */
export interface GemmArgs {
  batchA?: number;
  batchB?: number;
  M: number;
  K: number;
  N: number;
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor | null;
  alpha?: number;
  outDtype?: HighPrecisionDType;
  /** accumulate into this tensor instead of allocating (beta = 1) */
  accumulateInto?: Tensor;
  op?: string;
}

/**
 * Raw GEMM: out (batch, M, N) = alpha * op(a) @ op(b) + bias [+ out].
 * a is (batchA, M, K) or (batchA, K, M) with transA; b is (batchB, K, N) or (batchB, N, K) with transB.
 */
export function gemm(a: Tensor, b: Tensor, g: GemmArgs): Tensor {
  const op = g.op ?? "matmul";
  floatOperands(op, a, b);
  const batchA = g.batchA ?? 1, batchB = g.batchB ?? 1;
  const batch = Math.max(batchA, batchB);
  const outDtype = g.outDtype ?? (a.dtype as HighPrecisionDType);
  const out = g.accumulateInto ?? Tensor.empty([batch, g.M, g.N], outDtype, a.device);
  if (g.bias) {
    floatOperands(op, g.bias);
    if (g.bias.device !== a.device) throw new Float8Error(op, `bias is on ${g.bias.device}, operands on ${a.device}`);
  }
  if (out.device !== a.device) throw new Float8Error(op, `output is on ${out.device}, operands on ${a.device}`);
  if (out.numel === 0) return out;
  if (g.K === 0) {
    // a sum over nothing: zeros (plus the bias), as torch.mm gives
    if (g.accumulateInto) return out;
    if (!g.bias) {
      dev.fill(out, 0, op);
      return out;
    }
    const b = g.bias.to({ dtype: out.dtype });
    copyRegion(out, 0, [g.M * g.N, g.N, 1], b, 0, [0, 0, 1], [batch, g.M, g.N], op);
    if (b !== g.bias) b.dispose();
    return out;
  }
  dev.matmulInto(out, a, b, {
    M: g.M, K: g.K, N: g.N, batchA, batchB, transA: !!g.transA, transB: !!g.transB, alpha: g.alpha ?? 1, accumulate: !!g.accumulateInto, bias: g.bias ?? null,
  }, op);
  return out;
}

/**
 * Matrix product with torch.matmul's shapes for ndim >= 2:
 * a (..., M, K) @ b (..., K, N) -> (..., M, N). Leading batch dims must be
 * equal, or one side has none (or all ones) and is broadcast.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  floatOperands("matmul", a, b);
  if (a.ndim < 2 || b.ndim < 2) {
    throw new Float8Error("matmul", `both operands need at least 2 dims, got ${describe(a, b)}`);
  }
  const [M, K] = a.shape.slice(-2);
  const [K2, N] = b.shape.slice(-2);
  const batchDimsA = a.shape.slice(0, -2), batchDimsB = b.shape.slice(0, -2);
  const batchA = numel(batchDimsA), batchB = numel(batchDimsB);
  const batchOk = batchA === 1 || batchB === 1 ||
    (batchDimsA.length === batchDimsB.length && batchDimsA.every((d, i) => d === batchDimsB[i]));
  if (K !== K2 || !batchOk) {
    throw new Float8Error("matmul", `shapes cannot be multiplied (${describe(a, b)})`);
  }
  const batchShape = batchA >= batchB ? batchDimsA : batchDimsB;
  const outShape = [...batchShape, M, N];
  // A 2-D right operand folds a's batch into M: one big GEMM.
  const fold = batchB === 1 && batchA > 1;
  const raw = fold
    ? gemm(a, b, { M: batchA * M, K, N })
    : gemm(a, b, { batchA, batchB, M, K, N });
  const out = reshapeOwned(raw, outShape);
  return record(out, "matmul", [a, b], (g) => {
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (a.requiresGrad) {
      // dA = g @ B^T
      ga = fold
        ? gemm(g, b, { M: batchA * M, K: N, N: K, transB: true, op: "matmul.backward" })
        : gemm(g, b, { batchA: Math.max(batchA, batchB), batchB, M, K: N, N: K, transB: true, op: "matmul.backward" });
      ga = batchA === 1 && batchB > 1 ? sum(reshape(ga, [batchB, M, K]), 0) : ga;
      ga = reshapeOwned(ga, a.shape);
    }
    if (b.requiresGrad) {
      // dB = A^T @ g
      gb = fold
        ? gemm(a, g, { M: K, K: batchA * M, N, transA: true, op: "matmul.backward" })
        : gemm(a, g, { batchA, batchB: Math.max(batchA, batchB), M: K, K: M, N, transA: true, op: "matmul.backward" });
      gb = reshapeOwned(gb, b.shape);
    }
    return [ga, gb];
  });
}

/** y = x @ w^T + bias, x (..., K), w (N, K), bias (N). The bias is fused into the GEMM. */
export function linear(x: Tensor, w: Tensor, bias?: Tensor | null): Tensor {
  const ts = bias ? [x, w, bias] : [x, w];
  floatOperands("linear", ...ts);
  const K = x.shape[x.ndim - 1];
  if (x.ndim < 1 || w.ndim !== 2 || w.shape[1] !== K || (bias && (bias.ndim !== 1 || bias.shape[0] !== w.shape[0]))) {
    throw new Float8Error("linear", `expects x (..., K), weight (N, K), bias (N); got ${describe(...ts)}`);
  }
  const N = w.shape[0];
  const M = numel(x.shape.slice(0, -1));
  const out = reshapeOwned(linearGemm("forward", x, w, { M, K, N, bias }), [...x.shape.slice(0, -1), N]);
  return record(out, "linear", [x, w, bias ?? null], (g) => linearBackward(g, x, w, bias ?? null, M, K, N));
}

/** Gradients of linear: dx = g @ w, dw = g^T @ x, db = sum of g over rows. */
export function linearBackward(g: Tensor, x: Tensor, w: Tensor, bias: Tensor | null, M: number, K: number, N: number): (Tensor | null)[] {
  const op = "linear.backward";
  const gx = x.requiresGrad ? reshapeOwned(linearGemm("grad_input", g, w, { M, K, N, op }), x.shape) : null;
  const gw = w.requiresGrad ? reshapeOwned(linearGemm("grad_weight", g, x, { M, K, N, op }), w.shape) : null;
  const gb = bias?.requiresGrad ? sumTo(reshape(g, [M, N]), [N]) : null;
  return [gx, gw, gb];
}

/** a (rows, cols) stored row-major, copied to a new (cols, rows) row-major tensor (one pass; not recorded). */
export function transposed2d(a: Tensor, rows: number, cols: number, op: string): Tensor {
  const t = Tensor.empty([cols, rows], a.dtype, a.device);
  copyRegion(t, 0, [1, rows], a, 0, [cols, 1], [rows, cols], op);
  return t;
}

/**
 * One of the three GEMMs of a Linear y = x @ w^T + bias (x (M, K), w (N, K), g = dL/dy (M, N)),
 * in the operand layouts that src/tensor/ops/gemm_layout.ts picks for this device:
 *   "forward"      linearGemm("forward", x, w)      -> (M, N), bias fused
 *   "grad_input"   linearGemm("grad_input", g, w)   -> (M, K) = g @ w
 *   "grad_weight"  linearGemm("grad_weight", g, x)  -> (N, K) = g^T @ x
 * Returns a raw (1, rows, cols) tensor (reshape it).
 */
export function linearGemm(which: LinearGemm, a: Tensor, b: Tensor, d: { M: number; K: number; N: number; bias?: Tensor | null; op?: string }): Tensor {
  const { M, K, N } = d;
  if (which === "forward") {
    const fwd = { M, K, N, bias: d.bias ?? null, op: d.op ?? "linear" };
    if (M * N === 0 || !materializeTransposedB(a.device, { P: M, R: K, Q: N, dtype: a.dtype as HighPrecisionDType })) {
      return gemm(a, b, { ...fwd, transB: true });
    }
    const wt = transposed2d(b, N, K, fwd.op); // w^T (K, N) row-major
    try {
      return gemm(a, wt, fwd);
    } finally {
      wt.dispose();
    }
  }
  const op = d.op ?? "linear.backward";
  if (which === "grad_input") return gemm(a, b, { M, K: N, N: K, op });
  if (M * N === 0 || !materializeTransposedA(a.device, { P: N, R: M, Q: K, dtype: a.dtype as HighPrecisionDType })) {
    return gemm(a, b, { M: N, K: M, N: K, transA: true, op });
  }
  const gt = transposed2d(a, M, N, op);
  try {
    return gemm(gt, b, { M: N, K: M, N: K, op });
  } finally {
    gt.dispose();
  }
}
