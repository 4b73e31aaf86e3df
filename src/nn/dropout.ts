// dropout.ts — Dropout: zeroes elements with probability p in training mode and
// scales the rest by 1/(1-p) (torch.nn.Dropout); the identity in eval mode.
// The mask comes from the seeded global generator (manualSeed).
import { Float8Error } from "../errors.ts";
import { randomUniform } from "../tensor/random.ts";
import { Tensor, tensor } from "../tensor/tensor.ts";
import { Module } from "./module.ts";

/** Functional dropout; `training` false makes it the identity. */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  if (!(p >= 0 && p <= 1)) throw new Float8Error("dropout", `p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  const keep = new Float32Array(x.numel);
  const scale = p === 1 ? 0 : 1 / (1 - p);
  for (let i = 0; i < keep.length; i++) keep[i] = randomUniform() >= p ? scale : 0;
  // the mask stays alive with the graph: mul's backward multiplies by it
  const mask = tensor(keep, { shape: x.shape, dtype: x.dtype === "bfloat16" ? "bfloat16" : "float32" });
  return x.mul(mask);
}

/** torch.nn.Dropout(p). */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new Float8Error("Dropout", `p must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
  extraRepr(): string {
    return `p=${this.p}`;
  }
}
