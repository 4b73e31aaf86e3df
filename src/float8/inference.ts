// inference.ts — float8 inference: quantizeForInference swaps Linear layers for
// Float8InferenceLinear, whose weight is frozen in float8 with its scales
// (torchao's float8_weight_only / float8_dynamic_activation_float8_weight in our
// idiom; docs/architecture.md, float8 inference).
//
// The forward of a small batch (M <= 16 rows: decoding one token at a time) runs
// libfp8's fp8-weight GEMV, which reads each weight byte once and decodes it in
// registers: it is bound by the weight's bytes, half of bf16's. Larger M decodes
// the weight (scales applied) and runs oneDNN's GEMM.
import { Float8Error } from "../errors.ts";
import { noGrad } from "../autograd/graph.ts";
import { type Float8DType, type HighPrecisionDType } from "../tensor/dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import * as dev from "../tensor/device_ops.ts";
import { reshape, reshapeOwned } from "../tensor/ops/movement.ts";
import { gemm } from "../tensor/ops/linalg.ts";
import { Linear } from "../nn/layers.ts";
import { Module } from "../nn/module.ts";
import type { ModuleFilterFn } from "./convert.ts";

/** How the frozen weight is scaled: one scale, one per output feature, or 128x128 blocks. */
export type InferenceRecipe = "tensorwise" | "rowwise" | "blockwise";
/** "none": weight-only fp8 (activations stay high precision); "dynamic": activations cast to fp8 per row at run time. */
export type InferenceActivation = "dynamic" | "none";

/** Options of quantizeForInference. */
export interface QuantizeForInferenceOptions {
  /** weight scaling (default "rowwise", torchao's PerRow) */
  recipe?: InferenceRecipe;
  /** activation cast (default "none": weight-only) */
  activation?: InferenceActivation;
  /** which Linear layers to convert: (module, fqn) -> boolean (default all) */
  moduleFilterFn?: ModuleFilterFn;
  /** weight dtype (default float8_e4m3fn) */
  float8Dtype?: Float8DType;
}

/** Rows of x up to which the forward takes the fp8-weight GEMV (libfp8's limit). */
export const GEMV_MAX_M = 16;
const BLOCK = 128;
const SCALE_MODE = { tensorwise: 1, rowwise: 2, blockwise: 3 } as const;

/** Block shape (rows, cols) of a recipe's weight scales for an (N, K) weight. */
function blockOf(recipe: InferenceRecipe, N: number, K: number): [number, number] {
  return recipe === "tensorwise" ? [N, K] : recipe === "rowwise" ? [1, K] : [BLOCK, BLOCK];
}

/**
 * A Linear with a frozen float8 weight (buffers `weight` fp8 (N, K) and
 * `weight_scale` f32, the dequantize multiplier: value = fp8 * weight_scale;
 * one scale, (N) per row, or (N/128, K/128) blocks), and a high-precision `bias`.
 */
export class Float8InferenceLinear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly recipe: InferenceRecipe;
  readonly activation: InferenceActivation;
  /** dtype of inputs and outputs (the original Linear's) */
  readonly dtype: HighPrecisionDType;
  weight: Tensor;
  weightScale: Tensor;
  bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, opts: {
    recipe?: InferenceRecipe; activation?: InferenceActivation; dtype?: HighPrecisionDType; bias?: boolean; float8Dtype?: Float8DType;
  } = {}) {
    super();
    const op = "Float8InferenceLinear";
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.recipe = opts.recipe ?? "rowwise";
    if (!(this.recipe in SCALE_MODE)) throw new Float8Error(op, `recipe must be tensorwise, rowwise or blockwise, got '${String(this.recipe)}'`);
    this.activation = opts.activation ?? "none";
    if (this.activation !== "none" && this.activation !== "dynamic") throw new Float8Error(op, `activation must be 'dynamic' or 'none', got '${String(this.activation)}'`);
    this.dtype = opts.dtype ?? "bfloat16";
    const fp8 = opts.float8Dtype ?? "float8_e4m3fn";
    const [br, bc] = blockOf(this.recipe, outFeatures, inFeatures);
    this.weight = this.registerBuffer("weight", Tensor.empty([outFeatures, inFeatures], fp8));
    this.weightScale = this.registerBuffer("weight_scale", Tensor.empty(
      this.recipe === "tensorwise" ? [1] : this.recipe === "rowwise" ? [outFeatures] : [Math.ceil(outFeatures / br), Math.ceil(inFeatures / bc)], "float32"));
    this.bias = opts.bias === false ? null : this.registerBuffer("bias", Tensor.empty([outFeatures], this.dtype));
  }

  /** A Float8InferenceLinear holding `linear`'s weight quantised (and its bias copied). */
  static fromLinear(linear: Linear, opts: { recipe?: InferenceRecipe; activation?: InferenceActivation; float8Dtype?: Float8DType } = {}): Float8InferenceLinear {
    const op = "Float8InferenceLinear.fromLinear";
    const w = linear.weight;
    if (!w.backend.hostAccessible) throw new Float8Error(op, `float8 inference runs on the CPU; the weight is on ${w.device}`);
    const m = new Float8InferenceLinear(linear.inFeatures, linear.outFeatures, {
      ...opts, dtype: w.dtype as HighPrecisionDType, bias: linear.bias !== null,
    });
    const [N, K] = w.shape;
    const [br, bc] = blockOf(m.recipe, N, K);
    dev.quantizeBlockwiseInto(m.weight, m.weightScale, w, { blockRows: br, blockCols: bc }, op);
    if (linear.bias && m.bias) m.bias.copyFrom(linear.bias);
    return m;
  }

  /** The weight decoded to `dtype` with its scales applied. */
  dequantizeWeight(dtype: HighPrecisionDType = "float32"): Tensor {
    const op = "Float8InferenceLinear.dequantizeWeight";
    const [N, K] = this.weight.shape;
    const [br, bc] = blockOf(this.recipe, N, K);
    const out = Tensor.empty([N, K], dtype);
    dev.dequantizeBlockwiseInto(out, this.weight, this.weightScale, { blockRows: br, blockCols: bc }, op);
    return out;
  }

  forward(x: Tensor): Tensor {
    const op = "Float8InferenceLinear.forward";
    const K = this.inFeatures, N = this.outFeatures;
    if (x.shape[x.ndim - 1] !== K || (x.dtype !== "float32" && x.dtype !== "bfloat16")) {
      throw new Float8Error(op, `input of shape [${x.shape.join(", ")}] and dtype ${x.dtype} does not fit weight [${N}, ${K}]`);
    }
    if (!x.backend.hostAccessible) throw new Float8Error(op, `float8 inference runs on the CPU; the input is on ${x.device}`);
    const M = x.shape.slice(0, -1).reduce((p, d) => p * d, 1);
    return noGrad(() => {
      const x2 = reshape(x, [M, K]);
      const xa = this.activation === "dynamic" ? castActivationRowwise(x2, this.weight.dtype as Float8DType) : x2;
      const outShape = [...x.shape.slice(0, -1), N];
      try {
        if (M <= GEMV_MAX_M) {
          const y = Tensor.empty([M, N], x.dtype);
          const [br, bc] = blockOf(this.recipe, N, K);
          dev.gemvFp8wInto(y, xa, this.weight, this.weightScale, { scaleMode: SCALE_MODE[this.recipe], blockRows: br, blockCols: bc, bias: this.bias }, op);
          return reshapeOwned(y, outShape);
        }
        // large M: compute-bound, oneDNN on the decoded weight (in the input's dtype)
        const wd = this.dequantizeWeight(xa.dtype as HighPrecisionDType);
        try {
          return reshapeOwned(gemm(xa, wd, { M, K, N, transB: true, bias: this.bias, outDtype: x.dtype as HighPrecisionDType, op }), outShape);
        } finally {
          wd.dispose();
        }
      } finally {
        if (xa !== x2) xa.dispose();
      }
    });
  }

  get name(): string {
    return "Float8InferenceLinear";
  }

  extraRepr(): string {
    return `in=${this.inFeatures}, out=${this.outFeatures}, bias=${this.bias !== null}, recipe=${this.recipe}, activation=${this.activation}, weight=${this.weight.dtype}`;
  }
}

/** x (M, K) cast to fp8 with one scale per row and decoded back (f32): what an fp8 activation contributes to the GEMM. */
function castActivationRowwise(x: Tensor, fp8: Float8DType): Tensor {
  const op = "Float8InferenceLinear.castActivation";
  const [M, K] = x.shape;
  const q = Tensor.empty([M, K], fp8);
  const inv = Tensor.empty([M, 1], "float32");
  const out = Tensor.empty([M, K], "float32");
  try {
    dev.quantizeBlockwiseInto(q, inv, x, { blockRows: 1, blockCols: K }, op);
    dev.dequantizeBlockwiseInto(out, q, inv, { blockRows: 1, blockCols: K }, op);
  } finally {
    q.dispose();
    inv.dispose();
  }
  return out;
}

/**
 * Converts every nn.Linear the filter accepts into a Float8InferenceLinear with a
 * frozen float8 weight and its scales (for serving; the result does not train).
 * Returns the (root) module: the same object, unless the root itself is a Linear.
 * The converted model saves to and loads from safetensors with F8_E4M3 weights
 * (io.save / io.load; build the same model, convert it, then load).
 */
export function quantizeForInference<M extends Module>(model: M, opts: QuantizeForInferenceOptions = {}): M | Float8InferenceLinear {
  const op = "quantizeForInference";
  const known = new Set(["recipe", "activation", "moduleFilterFn", "float8Dtype"]);
  for (const k of Object.keys(opts)) if (!known.has(k)) throw new Float8Error(op, `unknown option '${k}'`);
  const filter = opts.moduleFilterFn ?? (() => true);
  const conv = { recipe: opts.recipe ?? "rowwise", activation: opts.activation ?? "none", float8Dtype: opts.float8Dtype };
  if (!(conv.recipe in SCALE_MODE)) throw new Float8Error(op, `recipe must be tensorwise, rowwise or blockwise, got '${String(conv.recipe)}'`);
  if (conv.activation !== "none" && conv.activation !== "dynamic") throw new Float8Error(op, `activation must be 'dynamic' or 'none', got '${String(conv.activation)}'`);
  const isLinear = (m: Module) => m instanceof Linear;
  if (isLinear(model)) return filter(model, "") ? Float8InferenceLinear.fromLinear(model as unknown as Linear, conv) : model;
  const targets = [...model.namedModules()].filter(([fqn, m]) => fqn !== "" && isLinear(m) && filter(m, fqn));
  for (const [fqn, m] of targets) model.setSubmodule(fqn, Float8InferenceLinear.fromLinear(m as Linear, conv));
  return model;
}
