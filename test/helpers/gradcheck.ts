// gradcheck.ts — compares autograd gradients with central finite differences.
import { expect } from "bun:test";
import { Tensor, tensor, noGrad } from "../../src/index.ts";

/**
 * For f(inputs) -> Tensor, checks d(sum(f * r))/d(input) from backward()
 * against central differences, for every float input that requires grad.
 */
export function gradcheck(
  f: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: { eps?: number; atol?: number; rtol?: number } = {},
): void {
  const eps = opts.eps ?? 1e-2, atol = opts.atol ?? 2e-2, rtol = opts.rtol ?? 2e-2;
  const out0 = f(...inputs);
  const r = new Float32Array(out0.numel).map((_, i) => Math.sin(i * 1.7 + 0.3));
  const rT = tensor(r, { shape: out0.shape, dtype: out0.dtype });
  for (const x of inputs) x.grad = null;
  out0.mul(rT).sum().backward();
  const objective = () =>
    noGrad(() => {
      const o = f(...inputs).toArray();
      let s = 0;
      for (let i = 0; i < o.length; i++) s += o[i] * r[i];
      return s;
    });
  for (const x of inputs) {
    if (!x.requiresGrad) continue;
    expect(x.grad).not.toBeNull();
    const analytic = x.grad!.toArray();
    const base = x.toArray();
    const view = new Float32Array(x.rawView(), 0, x.numel);
    for (let i = 0; i < x.numel; i++) {
      view[i] = base[i] + eps;
      const fp = objective();
      view[i] = base[i] - eps;
      const fm = objective();
      view[i] = base[i];
      const numeric = (fp - fm) / (2 * eps);
      const err = Math.abs(numeric - analytic[i]);
      if (err > atol + rtol * Math.abs(numeric)) {
        throw new Error(`gradcheck: input element ${i}: analytic ${analytic[i]} vs numeric ${numeric}`);
      }
    }
  }
}
