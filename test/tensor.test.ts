// Tensor creation, interop (values, raw bytes, dtype conversion) and op values.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Tensor, tensor, zeros, ones, full, randn, manualSeed, cat, tidy, memoryStats, emptyCache } from "../src/index.ts";

describe("creation and interop", () => {
  test("tensor() infers the shape of nested arrays", () => {
    const t = tensor([[1, 2, 3], [4, 5, 6]]);
    expect(t.shape).toEqual([2, 3]);
    expect([...t.toArray()]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test("tensor() rounds to bfloat16 with round-to-nearest-even", () => {
    // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to even (1)
    // 1 + 3*2^-8 is halfway between 1+2^-7 and 1+2^-6: ties go to even (1 + 2^-6)
    const t = tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8], { dtype: "bfloat16" });
    expect([...t.toArray()]).toEqual([1, 1 + 2 ** -6]);
    expect([...t.bytes()]).toEqual([0x80, 0x3f, 0x82, 0x3f]);
  });

  test("tensor() to float8 saturates and keeps NaN", () => {
    const t = tensor([1000, -1000, NaN, 0.5], { dtype: "float8_e4m3fn" });
    const v = t.toArray();
    expect(v[0]).toBe(448);
    expect(v[1]).toBe(-448);
    expect(Number.isNaN(v[2])).toBe(true);
    expect(v[3]).toBe(0.5);
  });

  test("fromBytes copies raw storage and bytes() returns it", () => {
    const t = Tensor.fromBytes(new Uint8Array([0x38, 0xb8, 0x7e]), { shape: [3], dtype: "float8_e4m3fn" });
    expect([...t.toArray()]).toEqual([1, -1, 448]);
    expect([...t.bytes()]).toEqual([0x38, 0xb8, 0x7e]);
  });

  test("fromBytes rejects a byte count that does not fit the shape", () => {
    expect(() => Tensor.fromBytes(new Uint8Array(5), { shape: [2], dtype: "bfloat16" })).toThrow(/fromBytes: got 5 bytes but shape \[2\] of dtype bfloat16 needs 4/);
  });

  test("to() converts between every float dtype pair", () => {
    const x = tensor([0.1, -2.5, 3.75, 100]);
    for (const d of ["float32", "bfloat16", "float8_e4m3fn", "float8_e5m2"] as const) {
      const y = x.to({ dtype: d });
      expect(y.dtype).toBe(d);
      const back = y.to({ dtype: "float32" }).toArray();
      for (let i = 0; i < 4; i++) expect(Math.abs(back[i] - x.toArray()[i])).toBeLessThanOrEqual(Math.abs(x.toArray()[i]) * 0.125 + 1e-6);
    }
  });

  test("zeros, ones, full", () => {
    expect([...zeros([2]).toArray()]).toEqual([0, 0]);
    expect([...ones([2], { dtype: "bfloat16" }).toArray()]).toEqual([1, 1]);
    expect([...full([3], 2.5, { dtype: "float8_e5m2" }).toArray()]).toEqual([2.5, 2.5, 2.5]);
  });

  test("randn is reproducible from manualSeed and roughly standard normal", () => {
    manualSeed(7);
    const a = randn([10000]).toArray();
    manualSeed(7);
    const b = randn([10000]).toArray();
    expect([...a]).toEqual([...b]);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
  });

  test("bfloat16 round trip of float32 values is the nearest bf16 (property)", () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true, min: Math.fround(-1e30), max: Math.fround(1e30) }), (v) => {
        const r = tensor([v], { dtype: "bfloat16" }).toArray()[0];
        const f = Math.fround(v);
        if (r === f) return true;
        // nearest: neither bf16 neighbour (one step up or down in magnitude) is closer
        const bits = new Uint32Array(new Float32Array([r]).buffer)[0];
        const sign = bits & 0x80000000, mag = bits & 0x7fffffff;
        const asF = (b: number) => new Float32Array(new Uint32Array([b >>> 0]).buffer)[0];
        const up = asF(sign | (mag + 0x10000));
        const down = mag === 0 ? asF((sign ^ 0x80000000) | 0x10000) : asF(sign | (mag - 0x10000));
        return Math.abs(f - r) <= Math.abs(f - up) && Math.abs(f - r) <= Math.abs(f - down);
      }),
      { numRuns: 300 },
    );
  });
});

describe("op values", () => {
  test("broadcasting add matches the JS reference", () => {
    const a = tensor([1, 2, 3], { shape: [3, 1] });
    const b = tensor([10, 20], { shape: [1, 2] });
    expect([...a.add(b).toArray()]).toEqual([11, 21, 12, 22, 13, 23]);
    expect([...b.sub(a).toArray()]).toEqual([9, 19, 8, 18, 7, 17]);
    expect([...b.div(a).toArray()].map((v) => +v.toFixed(4))).toEqual([10, 20, 5, 10, 3.3333, 6.6667]);
  });

  test("matmul matches the JS reference", () => {
    const a = tensor([[1, 2], [3, 4], [5, 6]]);
    const b = tensor([[1, 0, 2], [0, 1, 3]]);
    expect([...a.matmul(b).toArray()]).toEqual([1, 2, 8, 3, 4, 18, 5, 6, 28]);
  });

  test("bfloat16 matmul accumulates in float32", () => {
    // 256 products of 1 * (1 + 2^-7): a bf16 accumulator would stall, f32 does not
    const k = 256;
    const a = tensor(new Float32Array(k).fill(1), { shape: [1, k], dtype: "bfloat16" });
    const b = tensor(new Float32Array(k).fill(1 + 2 ** -7), { shape: [k, 1], dtype: "bfloat16" });
    const c = a.matmul(b).to({ dtype: "float32" }).item();
    expect(c).toBe(258); // 258 = bf16(256 * (1 + 2^-7)) exactly
  });

  test("sum, mean, max over dims", () => {
    const x = tensor([[1, 5, 3], [4, 2, 6]]);
    expect([...x.sum(0).toArray()]).toEqual([5, 7, 9]);
    expect([...x.mean(1).toArray()]).toEqual([3, 4]);
    expect([...x.max(1).toArray()]).toEqual([5, 6]);
    expect(x.sum().item()).toBe(21);
    expect(x.sum(1, true).shape).toEqual([2, 1]);
  });

  test("reductions of empty tensors follow torch: sum 0, mean NaN, max an error", () => {
    const e = zeros([0, 3]);
    expect([...e.sum(0).toArray()]).toEqual([0, 0, 0]);
    expect(Number.isNaN(e.mean().item())).toBe(true);
    expect(() => e.max()).toThrow(/cannot take the max of an empty tensor of shape \[0, 3\]/);
    expect(e.sum(1).shape).toEqual([0]);
  });

  test("softmax rows sum to one", () => {
    const s = tensor([[1, 2, 3], [0, 0, 0]]).softmax(-1).toArray();
    expect(s[0] + s[1] + s[2]).toBeCloseTo(1, 6);
    expect(s[3]).toBeCloseTo(1 / 3, 6);
  });

  test("transpose, permute, slice, cat move data correctly", () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]]);
    expect([...x.transpose(0, 1).toArray()]).toEqual([1, 4, 2, 5, 3, 6]);
    expect([...x.slice(1, 1).toArray()]).toEqual([2, 3, 5, 6]);
    expect([...x.slice(0, -1).toArray()]).toEqual([4, 5, 6]);
    expect([...cat([x, x.slice(1, 0, 1)], 1).toArray()]).toEqual([1, 2, 3, 1, 4, 5, 6, 4]);
    const y = tensor(Array.from({ length: 24 }, (_, i) => i), { shape: [2, 3, 4] });
    const p = y.permute([2, 0, 1]);
    expect(p.shape).toEqual([4, 2, 3]);
    expect(p.toArray()[1 * 6 + 1 * 3 + 2]).toBe(y.toArray()[1 * 12 + 2 * 4 + 1]);
  });

  test("argmax picks the first largest value along a dim", () => {
    const x = tensor([[1, 5, 5], [7, 2, 0]]);
    expect([...x.argmax(1).toInt32Array()]).toEqual([1, 0]);
    expect([...x.argmax(0).toInt32Array()]).toEqual([1, 0, 0]);
    expect(x.argmax(1).dtype).toBe("int32");
  });

  test("unsqueeze and squeeze add and remove size-1 dims", () => {
    const x = zeros([2, 3]);
    expect(x.unsqueeze(0).shape).toEqual([1, 2, 3]);
    expect(x.unsqueeze(-1).shape).toEqual([2, 3, 1]);
    expect(zeros([1, 2, 1]).squeeze().shape).toEqual([2]);
    expect(zeros([1, 2, 1]).squeeze(0).shape).toEqual([2, 1]);
    expect(zeros([1, 2, 1]).squeeze(1).shape).toEqual([1, 2, 1]);
  });

  test("maskedFill fills where the mask is set, broadcasting over leading dims", () => {
    const x = tensor([1, 2, 3, 4, 5, 6, 7, 8], { shape: [2, 2, 2] });
    const m = tensor([0, 1, 0, 0], { shape: [2, 2] });
    expect([...x.maskedFill(m, -1).toArray()]).toEqual([1, -1, 3, 4, 5, -1, 7, 8]);
  });
});

describe("memory", () => {
  test("dispose frees native memory and reshape views share it", () => {
    const before = memoryStats().liveBytes;
    const t = zeros([1024]);
    const v = t.reshape([32, 32]);
    expect(memoryStats().liveBytes - before).toBe(4096);
    t.dispose();
    expect(memoryStats().liveBytes - before).toBe(4096);
    v.dispose();
    expect(memoryStats().liveBytes - before).toBe(0);
  });

  test("tidy frees intermediates and keeps the returned tensor", () => {
    const before = memoryStats().liveBytes;
    const out = tidy(() => ones([256]).mul(2).add(1).exp());
    expect(memoryStats().liveBytes - before).toBe(1024);
    out.dispose();
    expect(memoryStats().liveBytes - before).toBe(0);
  });

  test("freed large blocks are cached for reuse and emptyCache releases them", () => {
    emptyCache();
    const before = memoryStats();
    const t = zeros([1 << 20]); // 4 MiB: large enough to be cached
    const ptr = t.ptrFor("test");
    t.dispose();
    const mid = memoryStats();
    expect(mid.liveBytes).toBe(before.liveBytes);
    expect(mid.cachedBytes).toBeGreaterThanOrEqual(4 << 20);
    const u = zeros([1 << 20]);
    expect(u.ptrFor("test")).toBe(ptr); // the same block, without new page faults
    u.dispose();
    emptyCache();
    expect(memoryStats().cachedBytes).toBe(0);
  });

  test("using disposes at the end of the block", () => {
    const before = memoryStats().liveBytes;
    {
      using t = zeros([100]);
      expect(t.numel).toBe(100);
    }
    expect(memoryStats().liveBytes - before).toBe(0);
  });
});

test("disposing a Linear's output frees its memory at once (no hidden intermediate keeps it)", async () => {
  const { nn } = await import("../src/index.ts");
  const lin = new nn.Linear(64, 256);
  const x = zeros([32, 64]);
  const before = memoryStats().liveBytes;
  const y = lin.forward(x);
  expect(memoryStats().liveBytes - before).toBe(32 * 256 * 4);
  y.dispose();
  expect(memoryStats().liveBytes).toBe(before);
});
