// Bad input gets a thrown Float8Error naming the op, shapes and dtypes; the process survives.
import { describe, expect, test } from "bun:test";
import { Float8Error, cuda, nn, tensor, zeros, randn, Tensor } from "../src/index.ts";
import { cudaProbe, lib } from "../src/ffi/index.ts";
import { expectThrowsFloat8 } from "./helpers/host.ts";


describe("bad input", () => {
  test("shape mismatch in a broadcasting op names op, shapes and dtypes", () => {
    expectThrowsFloat8(() => zeros([2, 3]).add(zeros([4])), /add \(shapes \[2, 3\] and \[4\], dtypes float32 and float32\): shapes \[2, 3\] and \[4\] cannot be broadcast/);
  });

  test("matmul shape mismatch", () => {
    expectThrowsFloat8(() => zeros([2, 3]).matmul(zeros([4, 5])), /matmul: shapes cannot be multiplied \(shapes \[2, 3\] and \[4, 5\], dtypes float32 and float32\)/);
  });

  test("dtype mismatch", () => {
    expectThrowsFloat8(() => zeros([2]).mul(zeros([2], { dtype: "bfloat16" })), /mul: dtype mismatch: shapes \[2\] and \[2\], dtypes float32 and bfloat16/);
  });

  test("float8 tensors are rejected by high-precision ops", () => {
    expectThrowsFloat8(() => zeros([2], { dtype: "float8_e4m3fn" }).exp(), /exp: expects float32 or bfloat16 tensors, got shape \[2\], dtype float8_e4m3fn/);
  });

  test("a disposed tensor", () => {
    const t = zeros([3]);
    t.dispose();
    expectThrowsFloat8(() => t.add(1), /add: tensor of shape \[3\] and dtype float32 was disposed/);
    expectThrowsFloat8(() => t.toArray(), /was disposed/);
  });

  test("Linear with the wrong input width", () => {
    expectThrowsFloat8(() => new nn.Linear(4, 2).forward(randn([3, 5])), /linear: expects x \(\.\.\., K\), weight \(N, K\), bias \(N\); got shapes \[3, 5\] and \[2, 4\] and \[2\]/);
  });

  test("crossEntropy with a target out of range does not crash", () => {
    expectThrowsFloat8(() => nn.crossEntropy(randn([2, 3]), [0, 7]), /fp8_cpu_cross_entropy.*7/);
  });

  test("embedding index out of range does not crash", () => {
    expectThrowsFloat8(() => nn.embedding([0, 99], randn([4, 2])), /99/);
  });

  test("reshape to an incompatible shape", () => {
    expectThrowsFloat8(() => zeros([6]).reshape([4, -1]), /reshape: cannot reshape \[6\] \(6 elements\) to \[4, -1\]/);
  });

  test("invalid dims and shapes", () => {
    expectThrowsFloat8(() => zeros([2, 3]).sum(5), /sum: dim 5 is out of range for a tensor with 2 dims/);
    expectThrowsFloat8(() => zeros([2, -1]), /invalid shape/);
    expectThrowsFloat8(() => tensor([1, 2, 3], { shape: [2, 2] }), /shape \[2, 2\] needs 4 values, got 3/);
  });

  test.skipIf(cudaProbe().available)("device cuda without a usable GPU gives a clear error naming the missing piece", () => {
    // the reason is the probe's: library not built, no driver, no GPU
    expectThrowsFloat8(() => zeros([2], { device: "cuda" }), "device 'cuda' is not available", cudaProbe().reason);
    expectThrowsFloat8(() => zeros([2]).to({ device: "cuda" }), "to: device 'cuda' is not available");
  });

  test("an unknown device and a bad GPU index are errors that say what is expected", () => {
    expectThrowsFloat8(() => zeros([2], { device: "gpu" as never }), "unknown device 'gpu' (expected 'cpu' or 'cuda')");
    expectThrowsFloat8(() => zeros([2]).to({ device: "tpu" as never }), "to: unknown device 'tpu'");
    expectThrowsFloat8(() => cuda.setDevice(-1), "cuda.setDevice: device index must be a non-negative integer, got -1");
  });

  test("native entry points reject null pointers and negative sizes with a status", () => {
    expect(lib.fp8_cpu_convert(null, 0, null, 1, 4)).toBeLessThan(0);
    expect(String(lib.fp8_last_error())).toMatch(/fp8_cpu_convert/);
    expect(lib.fp8_cpu_eltwise(new Float32Array(1), new Float32Array(1), 0, -5, 0, 0, 0)).toBeLessThan(0);
    expect(String(lib.fp8_last_error())).toMatch(/fp8_cpu_eltwise/);
    expect(lib.fp8_cpu_matmul(new Float32Array(4), 0, new Float32Array(4), new Float32Array(4), 9, null, 0, 1, 1, 2, 2, 2, 0, 0, 1, 0)).toBeLessThan(0);
    expect(String(lib.fp8_last_error())).toMatch(/fp8_cpu_matmul/);
    // and the library still works afterwards
    expect([...tensor([1, 2]).add(1).toArray()]).toEqual([2, 3]);
  });

  test("errors are Float8Error instances with the op name", () => {
    try {
      zeros([2]).matmul(zeros([2]));
    } catch (e) {
      expect((e as Float8Error).op).toBe("matmul");
      return;
    }
    throw new Error("expected a throw");
  });

  test("a tensor of the wrong kind in an optimizer", () => {
    const p = zeros([2], { dtype: "float8_e4m3fn" }) as Tensor;
    expect(() => new (require("../src/index.ts").optim.SGD)([p], { lr: 0.1 })).toThrow(/parameters must be float32, bfloat16 or float16, got float8_e4m3fn/);
  });
});
