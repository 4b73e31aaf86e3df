// One rule, one implementation: the places that used to carry their own copy of
// a rule now share it, and these tests pin the shared rule against every user.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { float8 } from "../src/index.ts";
import { cpuBackend, roundPow2Bits } from "../src/tensor/backend/index.ts";
import { nativeView } from "../src/ffi/index.ts";

describe("power-of-2 scale rounding (roundPow2Bits)", () => {
  test("float8.roundScaleDownToPowerOf2 and the backend's roundScalesToPowerOf2 agree on every f32 bit pattern class", () => {
    const n = 4096;
    const p = cpuBackend.alloc(n * 4);
    try {
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: n, maxLength: n }), (patterns) => {
          const mem = new Uint32Array(nativeView(p, n * 4));
          mem.set(patterns);
          cpuBackend.roundScalesToPowerOf2(p, n, "test");
          const asF32 = new Float32Array(new Uint32Array(patterns).buffer);
          for (let i = 0; i < n; i++) {
            const s = asF32[i];
            const fromTs = float8.roundScaleDownToPowerOf2(s);
            const fromBackend = new Float32Array(mem.buffer, mem.byteOffset + i * 4, 1)[0];
            // NaN == NaN for this purpose; otherwise the same value (and the same sign of zero)
            if (!(Number.isNaN(fromTs) && Number.isNaN(fromBackend))) expect(Object.is(fromTs, fromBackend)).toBe(true);
          }
        }),
        { numRuns: 5 },
      );
    } finally {
      cpuBackend.free(p);
    }
  });

  test("the rule itself: normals lose their mantissa, everything else is left", () => {
    const bitsOf = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0];
    expect(roundPow2Bits(bitsOf(448 / 3))).toBe(bitsOf(128));
    expect(roundPow2Bits(bitsOf(1))).toBe(bitsOf(1));
    for (const x of [0, -0, -3, Infinity, NaN, 1e-45]) expect(roundPow2Bits(bitsOf(x))).toBe(bitsOf(x));
  });
});
