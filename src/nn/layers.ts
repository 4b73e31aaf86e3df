// layers.ts — the standard layers: Linear, containers, activations, Embedding, norms.
import { Float8Error } from "../errors.ts";
import type { HighPrecisionDType } from "../tensor/dtype.ts";
import { Tensor, rand, randn, ones, zeros } from "../tensor/tensor.ts";
import { linear } from "../tensor/ops/linalg.ts";
import { embedding, layerNorm, rmsNorm } from "../tensor/ops/nn.ts";
import { Module } from "./module.ts";

function checkDim(op: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) throw new Float8Error(op, `${name} must be a positive integer, got ${v}`);
}

/** y = x W^T + b. Weight (out, in) and bias (out) are initialised U(-1/sqrt(in), 1/sqrt(in)) as in torch. */
export class Linear extends Module {
  /** Features of the weight this Linear holds (tensor parallelism sets them to its shard's). */
  inFeatures: number;
  outFeatures: number;
  weight: Tensor;
  bias: Tensor | null;

  constructor(
    inFeatures: number,
    outFeatures: number,
    opts: { bias?: boolean; dtype?: HighPrecisionDType; /** adopt these tensors instead of initialising */ weight?: Tensor; biasTensor?: Tensor | null } = {},
  ) {
    super();
    checkDim("Linear", "inFeatures", inFeatures);
    checkDim("Linear", "outFeatures", outFeatures);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const bound = 1 / Math.sqrt(inFeatures);
    const dtype = opts.dtype ?? "float32";
    this.weight = this.registerParameter("weight", opts.weight ?? rand([outFeatures, inFeatures], { low: -bound, high: bound, dtype }));
    const bias = opts.biasTensor !== undefined ? opts.biasTensor : opts.bias === false ? null : rand([outFeatures], { low: -bound, high: bound, dtype });
    this.bias = bias ? this.registerParameter("bias", bias) : null;
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }

  extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias !== null ? "True" : "False"}`; // torch's wording
  }
}

/** Runs children in order. */
export class Sequential extends Module {
  constructor(...layers: Module[]) {
    super();
    layers.forEach((m, i) => this.registerModule(String(i), m));
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const [, m] of this.namedChildren()) y = m.forward(y);
    return y;
  }

  /** The i-th child. */
  at(i: number): Module {
    const m = this._modules.get(String(i));
    if (!m) throw new Float8Error("Sequential.at", `index ${i} out of range (${this._modules.size} layers)`);
    return m;
  }

  get length(): number {
    return this._modules.size;
  }
}

/** A list of submodules named "0", "1", ... (no forward of its own). */
export class ModuleList extends Module {
  constructor(modules: Module[] = []) {
    super();
    modules.forEach((m) => this.push(m));
  }

  push(m: Module): void {
    this.registerModule(String(this._modules.size), m);
  }

  at(i: number): Module {
    const m = this._modules.get(String(i));
    if (!m) throw new Float8Error("ModuleList.at", `index ${i} out of range (${this._modules.size} modules)`);
    return m;
  }

  get length(): number {
    return this._modules.size;
  }

  [Symbol.iterator](): IterableIterator<Module> {
    return this._modules.values();
  }

  forward(): never {
    throw new Float8Error("ModuleList.forward", "a ModuleList has no forward; iterate over it");
  }
}

/** max(x, 0) */
export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}

/** GELU (exact, or tanh approximation). */
export class GELU extends Module {
  constructor(readonly approximate: "none" | "tanh" = "none") {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.gelu(this.approximate);
  }
}

/** x * sigmoid(x) */
export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return x.silu();
  }
}

/** A lookup table (num, dim), initialised N(0, 1) as in torch. */
export class Embedding extends Module {
  weight: Tensor;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, opts: { dtype?: HighPrecisionDType } = {}) {
    super();
    checkDim("Embedding", "numEmbeddings", numEmbeddings);
    checkDim("Embedding", "embeddingDim", embeddingDim);
    this.weight = this.registerParameter("weight", randn([numEmbeddings, embeddingDim], { dtype: opts.dtype ?? "float32" }));
  }
  forward(indices: Tensor | Int32Array | number[]): Tensor {
    return embedding(indices, this.weight);
  }
  extraRepr(): string {
    return `${this.numEmbeddings}, ${this.embeddingDim}`;
  }
}

/** Layer norm over the last dim with learnable weight (1s) and bias (0s). */
export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor;
  constructor(readonly dim: number, readonly eps = 1e-5, opts: { dtype?: HighPrecisionDType } = {}) {
    super();
    checkDim("LayerNorm", "dim", dim);
    this.weight = this.registerParameter("weight", ones([dim], { dtype: opts.dtype ?? "float32" }));
    this.bias = this.registerParameter("bias", zeros([dim], { dtype: opts.dtype ?? "float32" }));
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
  extraRepr(): string {
    return `${this.dim}, eps=${this.eps}`;
  }
}

/** RMS norm over the last dim with learnable weight (1s). */
export class RMSNorm extends Module {
  weight: Tensor;
  constructor(readonly dim: number, readonly eps = 1e-6, opts: { dtype?: HighPrecisionDType } = {}) {
    super();
    checkDim("RMSNorm", "dim", dim);
    this.weight = this.registerParameter("weight", ones([dim], { dtype: opts.dtype ?? "float32" }));
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
  extraRepr(): string {
    return `${this.dim}, eps=${this.eps}`;
  }
}
