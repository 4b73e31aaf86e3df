// Random shapes and arguments never crash the process: every op either
// returns a result of the expected shape or throws a Float8Error (fast-check).
import { expect, test } from "bun:test";
import fc from "fast-check";
import { Float8Error, cat, float8, nn, zeros, type Tensor } from "../src/index.ts";

const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 4 });
const dtypeArb = fc.constantFrom("float32" as const, "bfloat16" as const, "float8_e4m3fn" as const);

/** Runs fn; a thrown error must be a Float8Error; returns the result or null. */
function safely<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof Float8Error)) throw e;
    return null;
  }
}

function numpyBroadcast(a: number[], b: number[]): number[] | null {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1, y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(x === 1 ? y : x);
  }
  return out;
}

test("binary ops on random shapes and dtypes broadcast like numpy or throw a Float8Error", () => {
  fc.assert(
    fc.property(shapeArb, shapeArb, dtypeArb, dtypeArb, fc.constantFrom("add", "sub", "mul", "div"), (sa, sb, da, db, op) => {
      const a = zeros(sa, { dtype: da }), b = zeros(sb, { dtype: db });
      const r = safely(() => (a as unknown as Record<string, (o: Tensor) => Tensor>)[op](b));
      const want = numpyBroadcast(sa, sb);
      const valid = want !== null && da === db && da !== "float8_e4m3fn";
      if (valid) expect(r?.shape).toEqual(want!);
      else expect(r).toBeNull();
    }),
    { numRuns: 300 },
  );
});

test("matmul, reshape, transpose, sum and cat on random shapes never crash", () => {
  fc.assert(
    fc.property(shapeArb, shapeArb, fc.integer({ min: -5, max: 5 }), fc.integer({ min: -5, max: 5 }), (sa, sb, d0, d1) => {
      const a = zeros(sa), b = zeros(sb);
      const count = (s: number[]) => s.reduce((p, d) => p * d, 1);
      const inRange = (d: number) => d >= -Math.max(sa.length, 1) && d < Math.max(sa.length, 1);
      // reshape succeeds exactly when the element counts agree
      expect(safely(() => a.reshape(sb)) !== null).toBe(count(sa) === count(sb));
      // transpose succeeds exactly when both dims are in range (a 0-d tensor has none)
      const t = safely(() => a.transpose(d0, d1));
      expect(t !== null).toBe(sa.length > 0 && inRange(d0) && inRange(d1));
      // the rest either work or throw a Float8Error; results have valid shapes
      for (const r of [safely(() => a.matmul(b)), safely(() => a.sum(d0)), safely(() => a.softmax(d0)), safely(() => cat([a, b], d0)), safely(() => a.slice(d0, d1))]) {
        if (r) expect(r.shape.every((d) => Number.isInteger(d) && d >= 0)).toBe(true);
      }
    }),
    { numRuns: 300 },
  );
});

test("Float8 casts, scaledMm and Linear on random shapes never crash", () => {
  fc.assert(
    fc.property(shapeArb, shapeArb, fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 8 }), (sa, sb, k, n) => {
      const a = zeros(sa), b = zeros(sb);
      const fa = safely(() => float8.hpTensorToFloat8Dynamic(a, "float8_e4m3fn", "input"));
      const fb = safely(() => float8.hpTensorToFloat8Dynamic(b, "float8_e5m2", "grad_output"));
      // the casts work on any shape (fp8 of the same shape)
      expect(fa?.shape).toEqual(sa);
      expect(fb?.shape).toEqual(sb);
      const mm = safely(() => float8.scaledMm(fa!, fb!));
      const ok2d = sa.length === 2 && sb.length === 2 && sa[1] === sb[0];
      expect(mm !== null).toBe(ok2d);
      safely(() => float8.hpTensorToFloat8Axiswise(a, "float8_e4m3fn", "input"));
      const lin = float8.Float8Linear.fromFloat(new nn.Linear(k, n));
      const y = safely(() => lin.forward(a));
      expect(y !== null).toBe(sa.length >= 1 && sa[sa.length - 1] === k);
      safely(() => nn.crossEntropy(a, [0, 1]));
      safely(() => nn.layerNorm(a, zeros([k])));
    }),
    { numRuns: 200 },
  );
});
