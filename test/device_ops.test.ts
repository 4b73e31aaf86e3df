// The tensor-level device contract (src/tensor/device_ops.ts; docs/architecture.md,
// "The device contract"): one device check with one message, and the cast's
// options mapping to the kernels that write the same bytes as separate calls.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Float8Error, manualSeed, randn, tensor, zeros, type Device, type Tensor } from "../src/index.ts";
import * as dev from "../src/tensor/device_ops.ts";
import { transpose } from "../src/tensor/ops/movement.ts";
import { emulatedDeviceBackend, setBackend } from "../src/tensor/backend/index.ts";

const bytesOf = (t: Tensor) => t.to({ device: "cpu" }).bytes();

describe("device_ops: the one device check", () => {
  beforeAll(() => setBackend("cuda", emulatedDeviceBackend("cuda")));
  afterAll(() => setBackend("cuda", null));

  test("names the op and every operand's shape, dtype and device; null operands are skipped", () => {
    const a = zeros([2, 3]), s = zeros([1], { device: "cuda" });
    expect(() => dev.sameDevice("myOp", a, null, s, undefined)).toThrow(Float8Error);
    expect(() => dev.sameDevice("myOp", a, null, s)).toThrow("myOp: operands must be on one device, got [2, 3] float32 on cpu, [1] float32 on cuda");
    expect(() => dev.sameDeviceAll("myOp", [s, null, a])).toThrow("myOp: operands must be on one device, got [1] float32 on cuda, [2, 3] float32 on cpu");
    expect(dev.sameDevice("myOp", a, null, zeros([4])).device).toBe("cpu");
    expect(dev.sameDevice("myOp", s, s).device).toBe("cuda");
  });

  test("a disposed operand is refused, naming the op", () => {
    const a = zeros([2]), b = zeros([2]);
    b.dispose();
    expect(() => dev.sameDevice("myOp", a, b)).toThrow("myOp: tensor of shape [2] and dtype float32 was disposed");
    expect(() => dev.requireLive(42, "myOp", "x")).toThrow("myOp: x must be a Tensor, got number");
  });

  test("memory helpers check their ranges and dtypes", () => {
    const t = zeros([4]);
    dev.fillRange(t, 1, 3, 7, "fillRange");
    expect([...t.toArray()]).toEqual([0, 7, 7, 0]);
    expect(() => dev.fillRange(t, 2, 5, 1, "fillRange")).toThrow("fillRange: range [2, 5) is outside tensor [4] float32 on cpu");
    const src = tensor([1, 2, 3, 4]);
    dev.copyElements(t, 0, src, 2, 2, "copyElements");
    expect([...t.toArray()]).toEqual([3, 4, 7, 0]);
    expect(() => dev.copyElements(t, 3, src, 0, 2, "copyElements")).toThrow("copyElements: copy of 2 elements at 0 -> 3 is outside");
    expect(() => dev.copyElements(t, 0, src.to({ dtype: "bfloat16" }), 0, 1, "copyElements")).toThrow("copyElements: copy needs one dtype");
    dev.uploadInto(t, Float32Array.of(9, 8), "uploadInto");
    expect([...t.toArray()]).toEqual([9, 8, 7, 0]);
    expect(() => dev.uploadInto(t, new Float32Array(5), "uploadInto")).toThrow("uploadInto: 20 host bytes do not fit tensor [4] float32 on cpu (16 bytes)");
  });
});

for (const device of ["cpu", "cuda"] as Device[]) {
  describe(`device_ops.quantize on ${device}: each option writes what the separate kernels write`, () => {
    beforeAll(() => setBackend("cuda", emulatedDeviceBackend("cuda")));
    afterAll(() => setBackend("cuda", null));

    test("plain, amaxOut, transposed and (host) decoded / decodedT agree byte for byte", () => {
      manualSeed(7);
      const x = randn([24, 40], { dtype: "bfloat16", device });
      const [scale] = dev.amaxToScale(x, "float8_e4m3fn");
      const plain = dev.quantize(x, scale, "float8_e4m3fn");
      expect(plain.decoded).toBeNull();
      expect(plain.transposed).toBeNull();
      const amax = zeros([1], { device });
      const withAmax = dev.quantize(x, scale, "float8_e4m3fn", { amaxOut: amax });
      expect(bytesOf(withAmax.data)).toEqual(bytesOf(plain.data));
      expect(amax.item()).toBe(dev.amax(x).item());
      expect(amax.item()).toBeGreaterThan(0);
      const tr = dev.quantize(x, scale, "float8_e4m3fn", { transposed: true });
      expect(tr.transposed!.shape).toEqual([40, 24]);
      expect(bytesOf(tr.data)).toEqual(bytesOf(plain.data));
      expect(bytesOf(tr.transposed!)).toEqual(bytesOf(transpose(plain.data, 0, 1)));
      const dec = dev.quantize(x, scale, "float8_e4m3fn", { decoded: true });
      expect(bytesOf(dec.data)).toEqual(bytesOf(plain.data));
      expect(bytesOf(dec.decoded!)).toEqual(bytesOf(plain.data.to({ dtype: "bfloat16" })));
      if (device === "cpu") {
        const both = dev.quantize(x, scale, "float8_e4m3fn", { decoded: true, decodedT: true, amaxOut: amax });
        expect(bytesOf(both.decodedT!)).toEqual(bytesOf(transpose(dec.decoded!, 0, 1)));
        expect(bytesOf(both.decoded!)).toEqual(bytesOf(dec.decoded!));
      } else {
        expect(dev.canDecodeTransposed(x)).toBe(false);
        expect(() => dev.quantize(x, scale, "float8_e4m3fn", { decodedT: true })).toThrow("quantize: a transposed bf16 decode is a host GEMM's input; device cuda has none");
      }
      expect(() => dev.quantize(x, scale, "float8_e4m3fn", { decoded: true, transposed: true })).toThrow(Float8Error);
      expect(() => dev.quantize(randn([4], { device }), scale, "float8_e4m3fn", { transposed: true })).toThrow("quantize: a transposed cast needs a 2-D tensor");
    });
  });
}
