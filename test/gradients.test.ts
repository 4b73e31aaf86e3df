// Gradient of every differentiable op against central finite differences (float32).
import { describe, expect, test } from "bun:test";
import { Tensor, randn, rand, tensor, manualSeed, cat, nn } from "../src/index.ts";
import { expand } from "../src/tensor/index.ts";
import { gradcheck } from "./helpers/gradcheck.ts";

const req = (t: Tensor) => {
  t.requiresGrad = true;
  return t;
};
const rn = (shape: number[]) => req(randn(shape));
const pos = (shape: number[]) => req(rand(shape, { low: 0.5, high: 2 }));

describe("gradients match finite differences", () => {
  manualSeed(42);
  test("add with broadcasting both ways", () => gradcheck((a, b) => a.add(b), [rn([3, 1, 4]), rn([2, 1])]));
  test("sub with broadcasting", () => gradcheck((a, b) => a.sub(b), [rn([4]), rn([3, 4])]));
  test("mul with broadcasting", () => gradcheck((a, b) => a.mul(b), [rn([3, 4]), rn([1, 4])]));
  test("div with broadcasting", () => gradcheck((a, b) => a.div(b), [rn([3, 4]), pos([3, 1])]));
  test("scalar add/sub/mul/div", () => gradcheck((a) => a.add(2).sub(0.5).mul(3).div(4), [rn([5])]));
  test("neg", () => gradcheck((a) => a.neg(), [rn([5])]));
  test("exp", () => gradcheck((a) => a.exp(), [rn([6])]));
  test("log", () => gradcheck((a) => a.log(), [pos([6])]));
  test("sqrt", () => gradcheck((a) => a.sqrt(), [pos([6])]));
  test("pow", () => gradcheck((a) => a.pow(3), [rn([6])]));
  test("relu", () => gradcheck((a) => a.relu(), [req(tensor([-1.5, -0.3, 0.4, 2.0]))]));
  test("gelu (erf and tanh)", () => {
    gradcheck((a) => a.gelu(), [rn([8])]);
    gradcheck((a) => a.gelu("tanh"), [rn([8])]);
  });
  test("silu", () => gradcheck((a) => a.silu(), [rn([8])]));
  test("tanh", () => gradcheck((a) => a.tanh(), [rn([8])]));
  test("sigmoid", () => gradcheck((a) => a.sigmoid(), [rn([8])]));
  test("sum over dims and all", () => {
    gradcheck((a) => a.sum(1), [rn([3, 4, 2])]);
    gradcheck((a) => a.sum([0, 2], true), [rn([3, 4, 2])]);
    gradcheck((a) => a.sum(), [rn([3, 4])]);
  });
  test("mean over dims", () => gradcheck((a) => a.mean(-1), [rn([3, 5])]));
  test("max over a dim", () => gradcheck((a) => a.max(1), [rn([3, 5])]));
  test("matmul 2-D", () => gradcheck((a, b) => a.matmul(b), [rn([3, 4]), rn([4, 5])]));
  test("matmul batched with a 2-D right operand", () => gradcheck((a, b) => a.matmul(b), [rn([2, 3, 4]), rn([4, 5])]));
  test("matmul batched both sides", () => gradcheck((a, b) => a.matmul(b), [rn([2, 2, 3, 4]), rn([2, 2, 4, 3])]));
  test("matmul with a broadcast left operand", () => gradcheck((a, b) => a.matmul(b), [rn([3, 4]), rn([2, 4, 5])]));
  test("linear with bias", () => gradcheck((x, w, b) => nn.linear(x, w, b), [rn([2, 3, 4]), rn([5, 4]), rn([5])]));
  test("softmax and logSoftmax on last and inner dims", () => {
    gradcheck((a) => a.softmax(-1), [rn([3, 5])]);
    gradcheck((a) => a.logSoftmax(-1), [rn([3, 5])]);
    gradcheck((a) => a.softmax(0), [rn([3, 5])]);
  });
  test("crossEntropy", () => gradcheck((a) => nn.crossEntropy(a, [1, 0, 4]), [rn([3, 5])]));
  test("mseLoss", () => gradcheck((a, b) => nn.mseLoss(a, b), [rn([3, 4]), rn([3, 4])]));
  test("layerNorm with weight and bias", () => gradcheck((x, w, b) => nn.layerNorm(x, w, b), [rn([3, 6]), rn([6]), rn([6])], { atol: 3e-2 }));
  test("rmsNorm with weight", () => gradcheck((x, w) => nn.rmsNorm(x, w), [rn([3, 6]), rn([6])], { atol: 3e-2 }));
  test("embedding", () => gradcheck((w) => nn.embedding([2, 0, 2, 1], w), [rn([3, 4])]));
  test("reshape, transpose, permute", () => {
    gradcheck((a) => a.reshape([6, 2]).mul(a.reshape([6, 2])), [rn([3, 4])]);
    gradcheck((a) => a.transpose(0, 2), [rn([2, 3, 4])]);
    gradcheck((a) => a.permute([1, 2, 0]), [rn([2, 3, 4])]);
  });
  test("slice and cat", () => {
    gradcheck((a) => a.slice(1, 1, 3), [rn([2, 4])]);
    gradcheck((a, b) => cat([a, b], 1), [rn([2, 3]), rn([2, 2])]);
  });
  test("maskedFill", () => {
    const mask = tensor([0, 1, 0, 0, 1, 1], { shape: [2, 3] });
    gradcheck((a) => a.maskedFill(mask, -1e9).softmax(-1), [rn([4, 2, 3])]);
  });
  test("expand", () => gradcheck((a) => expand(a, [3, 2, 4]), [rn([2, 1])]));
  test("to bfloat16 passes the gradient through, converted back to float32", () => {
    // finite differences are meaningless through rounding, so check the rule directly
    const a = rn([4]);
    const w = tensor([1, 2, 3, 4], { dtype: "bfloat16" });
    a.to({ dtype: "bfloat16" }).mul(w).sum().backward();
    expect(a.grad!.dtype).toBe("float32");
    expect([...a.grad!.toArray()]).toEqual([1, 2, 3, 4]);
  });
});
