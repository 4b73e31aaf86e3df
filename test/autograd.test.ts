// Autograd behaviour: accumulation, noGrad, custom Functions, errors.
import { describe, expect, test } from "bun:test";
import { Function, FunctionCtx, Tensor, noGrad, tensor, ones } from "../src/index.ts";

describe("autograd", () => {
  test("gradients accumulate across backward calls", () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    x.mul(x).sum().backward();
    x.mul(x).sum().backward();
    expect([...x.grad!.toArray()]).toEqual([4, 8, 12]);
  });

  test("a tensor used twice gets both contributions", () => {
    const x = tensor([3], { requiresGrad: true });
    x.mul(2).add(x.mul(x)).sum().backward();
    expect(x.grad!.item()).toBe(2 + 6);
  });

  test("noGrad records no graph", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = noGrad(() => x.mul(3));
    expect(y.requiresGrad).toBe(false);
    expect(y.gradFn).toBeNull();
  });

  test("backward on a tensor that does not require grad throws naming the op, shape and dtype", () => {
    const y = tensor([1, 2]).sum();
    expect(() => y.backward()).toThrow(/backward: tensor of shape \[\] and dtype float32 does not require grad/);
  });

  test("backward without a gradient needs a one-element output", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    expect(() => x.mul(2).backward()).toThrow(/one-element outputs, got shape \[2\]/);
  });

  test("backward with an explicit gradient", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    x.mul(3).backward(tensor([1, 10]));
    expect([...x.grad!.toArray()]).toEqual([3, 30]);
  });

  test("a custom Function's forward and backward are used", () => {
    class Cube extends Function {
      forward(ctx: FunctionCtx, x: Tensor): Tensor {
        ctx.saveForBackward(x);
        return x.mul(x).mul(x);
      }
      backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
        const [x] = ctx.savedTensors;
        return [g.mul(x.mul(x).mul(3))];
      }
    }
    const x = tensor([2, -1], { requiresGrad: true });
    const y = Cube.apply(x);
    expect([...y.toArray()]).toEqual([8, -1]);
    expect(y.gradFn?.name).toBe("Cube");
    y.sum().backward();
    expect([...x.grad!.toArray()]).toEqual([12, 3]);
  });

  test("custom Function sees which inputs need grad; non-tensor args get null", () => {
    let seen: boolean[] = [];
    class Scale extends Function {
      forward(ctx: FunctionCtx, x: Tensor, w: Tensor, k: number): Tensor {
        seen = ctx.needsInputGrad;
        ctx.data.k = k;
        return x.mul(w).mul(k);
      }
      backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
        return [g.mul(ctx.data.k as number), null, null];
      }
    }
    const x = tensor([1, 2], { requiresGrad: true });
    Scale.apply(x, ones([2]), 5).sum().backward();
    expect(seen).toEqual([true, false, false]);
    expect([...x.grad!.toArray()]).toEqual([5, 5]);
  });
});
