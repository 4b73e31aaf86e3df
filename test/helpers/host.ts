// host.ts — host-side references shared by the native-kernel tests: bf16
// rounding done in JS, typed host buffers of a dtype, seeded random numbers,
// and a Float8Error assertion.
import { expect } from "bun:test";
import { Float8Error } from "../../src/index.ts";
import { uniformStream } from "../../src/tensor/random.ts";

const F32 = 0;
const BF16 = 1;

export const f32 = Math.fround;
const bitsF32 = new Float32Array(1);
const bitsU32 = new Uint32Array(bitsF32.buffer);

/** float -> bf16 bits, round to nearest even (NaN stays NaN). */
export function toBf16Bits(x: number): number {
  bitsF32[0] = x;
  const u = bitsU32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}
export function fromBf16Bits(h: number): number {
  bitsU32[0] = h << 16;
  return bitsF32[0]!;
}
/** x rounded to the nearest bf16 value. */
export const bf16 = (x: number): number => fromBf16Bits(toBf16Bits(x));
/** x rounded to what a buffer of `dtype` (0 float32, 1 bfloat16) stores. */
export const roundTo = (dtype: number, x: number): number => (dtype === BF16 ? bf16(x) : f32(x));

export type HostBuffer = Float32Array | Uint16Array;

/** A host buffer of `dtype` holding `values` (rounded to the dtype). */
export function buffer(dtype: number, values: ArrayLike<number>): HostBuffer {
  if (dtype === F32) return Float32Array.from(values);
  return Uint16Array.from(Array.from(values, toBf16Bits));
}
/** The values of a host buffer as numbers. */
export function values(buf: HostBuffer): number[] {
  return buf instanceof Float32Array ? Array.from(buf) : Array.from(buf, fromBf16Bits);
}

/** Deterministic uniform numbers in [lo, hi) from a seed. */
export function random(seed: number): (lo?: number, hi?: number) => number {
  const u = uniformStream(seed);
  return (lo = -1, hi = 1) => lo + (hi - lo) * u();
}

/** Asserts fn throws a Float8Error whose message contains (string) or matches (RegExp) every fragment. */
export function expectThrowsFloat8(fn: () => unknown, ...fragments: (string | RegExp)[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(Float8Error);
  for (const f of fragments) {
    if (typeof f === "string") expect((err as Error).message).toContain(f);
    else expect((err as Error).message).toMatch(f);
  }
}
