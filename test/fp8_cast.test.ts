// fp8_cast.test.ts — libfp8's fp8 kernels (libfp8/src/cpu/cast*.c) through the FFI:
// exhaustive agreement with PyTorch's own fp8 tables (test/fixtures/fp8_tables.json),
// f32 encode properties (fast-check), every ISA path bit for bit, scaled
// quantize/dequantize, amax and scale formulas, delayed-scaling history, fp8
// telemetry counts and argument checks.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { lib, nativeAlloc, nativeFree, nativeView } from "../src/ffi/index.ts";
import tables from "./fixtures/fp8_tables.json";
import { uniformStream } from "../src/tensor/random.ts";
import { supportedIsas, withIsa } from "./helpers/isa.ts";

const F32 = 0;
const BF16 = 1;
const E4M3 = 2;
const E5M2 = 3;
const I32 = 4;
const FORMATS = [
  { dtype: E4M3, key: "e4m3", name: "float8_e4m3fn", max: 448, maxCode: 0x7e },
  { dtype: E5M2, key: "e5m2", name: "float8_e5m2", max: 57344, maxCode: 0x7b },
] as const;
const ISA_NAMES = ["portable", "AVX2", "AVX-512"];

// ---- helpers ------------------------------------------------------------------

const f32Box = new Float32Array(1);
const u32Box = new Uint32Array(f32Box.buffer);
const bitsOf = (x: number): number => ((f32Box[0] = x), u32Box[0]!);
const fromBits = (u: number): number => ((u32Box[0] = u >>> 0), f32Box[0]!);
const fromBf16Bits = (h: number): number => fromBits(h << 16);
/** f32 bits -> bf16 bits, round to nearest even, NaN quieted (keeps sign and payload). */
function bf16BitsOfF32Bits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}
/** A number rounded to bf16 bits. JS numbers carry no NaN sign or payload, so
 * tests about NaN bits go through Uint32Array views instead. */
const toBf16Bits = (x: number): number => bf16BitsOfF32Bits(bitsOf(x));
/** f32 values given by their bit patterns (NaN payloads survive). */
const f32FromBits = (bits: ArrayLike<number>): Float32Array => new Float32Array(Uint32Array.from(bits).buffer);

/** torch's decode table (fixture strings: "nan", "inf", "-0.0", ...) as numbers. */
function fixtureDecode(key: "e4m3" | "e5m2"): number[] {
  return tables.decode[key].map((s: string) =>
    s === "nan" ? NaN : s === "inf" ? Infinity : s === "-inf" ? -Infinity : Number(s),
  );
}

const ISAS = supportedIsas();

function convert<T extends Float32Array | Uint16Array | Uint8Array>(
  dst: T,
  dstDtype: number,
  src: Float32Array | Uint16Array | Uint8Array,
  srcDtype: number,
): T {
  expect(lib.fp8_cpu_convert(dst, dstDtype, src, srcDtype, src.length)).toBe(0);
  return dst;
}
const encodeF32 = (dtype: number, xs: Float32Array): Uint8Array =>
  convert(new Uint8Array(xs.length), dtype, xs, F32);
function quantize(dtype: number, src: Float32Array | Uint16Array, scale: number): Uint8Array {
  const out = new Uint8Array(src.length);
  const srcDtype = src instanceof Float32Array ? F32 : BF16;
  expect(lib.fp8_cpu_quantize(out, dtype, src, srcDtype, src.length, Float32Array.of(scale))).toBe(0);
  return out;
}
function dequantize(dtype: number, src: Uint8Array, scale: number): Float32Array {
  const out = new Float32Array(src.length);
  expect(lib.fp8_cpu_dequantize(out, F32, src, dtype, src.length, Float32Array.of(scale))).toBe(0);
  return out;
}
function amax(src: Float32Array | Uint16Array): number {
  const out = new Float32Array(1);
  expect(lib.fp8_cpu_amax(out, src, src instanceof Float32Array ? F32 : BF16, src.length)).toBe(0);
  return out[0]!;
}

/** Deterministic uniform numbers in [0, 1) (the library's mulberry32 stream). */
const uniform = uniformStream;
function randn(n: number, seed: number, std = 1): Float32Array {
  const u = uniform(seed);
  return Float32Array.from({ length: n }, () => std * Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u()));
}
/** Random f32 bit patterns: every class (NaN payloads, inf, subnormals) appears. */
function randomBits(n: number, seed: number): Float32Array {
  const u = uniform(seed);
  const bits = Uint32Array.from({ length: n }, () => (u() * 4294967296) >>> 0);
  return new Float32Array(bits.buffer);
}
const sqnr = (x: ArrayLike<number>, y: ArrayLike<number>): number => {
  let s = 0, e = 0;
  for (let i = 0; i < x.length; i++) (s += x[i]! ** 2), (e += (x[i]! - y[i]!) ** 2);
  return 10 * Math.log10(s / e);
};
const scaleRef = (amaxValue: number, max: number, clampToF16 = false): number => {
  let s = max / Math.max(amaxValue, 1e-12);
  if (clampToF16) s = Math.min(s, 65504);
  return Math.fround(s);
};
const lastError = (): string => String(lib.fp8_last_error() ?? "");

// ---- exhaustive agreement with torch ---------------------------------------------------

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);
const ALL_BF16 = Uint16Array.from({ length: 65536 }, (_, i) => i);

for (const isa of ISAS) {
  describe(`${ISA_NAMES[isa]} path`, () => {
    for (const f of FORMATS) {
      const expected = fixtureDecode(f.key);

      test(`decodes every ${f.name} byte to the float32 torch gives`, () => {
        const got = withIsa(isa, () => convert(new Float32Array(256), F32, ALL_BYTES, f.dtype));
        for (let b = 0; b < 256; b++) expect([b, got[b]]).toEqual([b, expected[b]!]);
      });

      test(`decodes every ${f.name} byte to the bfloat16 torch gives`, () => {
        const got = withIsa(isa, () => convert(new Uint16Array(256), BF16, ALL_BYTES, f.dtype));
        for (let b = 0; b < 256; b++) expect([b, fromBf16Bits(got[b]!)]).toEqual([b, expected[b]!]);
      });

      test(`encodes every bfloat16 bit pattern to the ${f.name} byte torch gives`, () => {
        const got = withIsa(isa, () => convert(new Uint8Array(65536), f.dtype, ALL_BF16, BF16));
        const want = Uint8Array.from(tables.encode_bf16_saturating[f.key]);
        expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
      });

      test(`encodes every bfloat16 value given as float32 to the ${f.name} byte torch gives`, () => {
        const asF32 = f32FromBits(Array.from(ALL_BF16, (h) => h << 16));
        const got = withIsa(isa, () => encodeF32(f.dtype, asF32));
        const want = Uint8Array.from(tables.encode_bf16_saturating[f.key]);
        expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
      });
    }
  });
}

// ---- every ISA path gives the same bits ----------------------------------------

describe("ISA paths agree bit for bit", () => {
  // Odd length: exercises vector tails; above 64K elements: the threaded split too.
  const n = (1 << 17) + 37;
  const bits = randomBits(n, 1);
  const normal = randn(n, 2, 100);
  const bf16Src = Uint16Array.from(normal, toBf16Bits);
  const codes = new Uint8Array(randomBits((n + 3) >> 2, 3).buffer, 0, n);
  type Case = [string, () => ArrayBufferView];
  const cases: Case[] = [];
  for (const f of FORMATS) {
    cases.push([`${f.name} quantize of float32 bit patterns`, () => quantize(f.dtype, bits, 1.5)]);
    cases.push([`${f.name} quantize of float32 randn`, () => quantize(f.dtype, normal, 0.37)]);
    cases.push([`${f.name} quantize of bfloat16 randn`, () => quantize(f.dtype, bf16Src, 3.1)]);
    cases.push([`${f.name} dequantize to float32`, () => dequantize(f.dtype, codes, 0.3)]);
    cases.push([
      `${f.name} dequantize to bfloat16`,
      () => {
        const out = new Uint16Array(n);
        expect(lib.fp8_cpu_dequantize(out, BF16, codes, f.dtype, n, Float32Array.of(7e-3))).toBe(0);
        return out;
      },
    ]);
    cases.push([`${f.name} decode to bfloat16 (unscaled, table lookup on AVX-512)`, () => convert(new Uint16Array(n), BF16, codes, f.dtype)]);
    cases.push([`${f.name} quantize with its bfloat16 decode`, () => {
      const q = new Uint8Array(n), d = new Uint16Array(n);
      expect(lib.fp8_cpu_quantize_decode(q, d, f.dtype, bf16Src, BF16, n, Float32Array.of(3.1))).toBe(0);
      return Buffer.concat([Buffer.from(q), Buffer.from(d.buffer)]);
    }]);
    cases.push([`${f.name} stats`, () => {
      const z = new BigInt64Array(1), s = new BigInt64Array(1), q = new BigInt64Array(1);
      expect(lib.fp8_cpu_fp8_stats(z, s, q, codes, f.dtype, n)).toBe(0);
      return BigInt64Array.of(z[0]!, s[0]!, q[0]!);
    }]);
  }
  cases.push(["float32 -> bfloat16", () => convert(new Uint16Array(n), BF16, bits, F32)]);
  cases.push(["bfloat16 -> float32", () => convert(new Float32Array(n), F32, bf16Src, BF16)]);
  cases.push(["e5m2 -> e4m3fn", () => convert(new Uint8Array(n), E4M3, codes, E5M2)]);
  cases.push(["amax of float32 randn", () => Float32Array.of(amax(normal))]);
  cases.push(["amax of bfloat16 randn", () => Float32Array.of(amax(bf16Src))]);

  // From 4M elements quantize streams its output (non-temporal stores after an
  // unaligned head); an odd offset into the output exercises the peeling.
  const big = randn((1 << 22) + 3, 4, 50);
  cases.push(["e4m3fn streaming quantize into an unaligned output", () => {
    const out = new Uint8Array(big.length + 1);
    expect(lib.fp8_cpu_quantize(out.subarray(1), E4M3, big, F32, big.length, Float32Array.of(1.7))).toBe(0);
    return out;
  }]);

  for (const [name, run] of cases) {
    test(`${name} is identical on every path`, () => {
      const results = ISAS.map((isa) => Buffer.from(withIsa(isa, run).buffer as ArrayBuffer));
      for (const r of results.slice(1)) expect(r.equals(results[0]!)).toBe(true);
    });
  }
});

// ---- float32 encode properties ------------------------------------------------------

for (const f of FORMATS) {
  describe(`float32 -> ${f.name}`, () => {
    const decode = fixtureDecode(f.key);
    const finiteCodes = ALL_BYTES.filter((b) => Number.isFinite(decode[b]!));
    const enc1 = (x: number): number => encodeF32(f.dtype, Float32Array.of(x))[0]!;
    const enc1Bits = (u: number): number => encodeF32(f.dtype, f32FromBits([u]))[0]!;
    const inRange = fc.float({ min: -f.max, max: f.max, noNaN: true });

    test("gives the nearest representable value, ties to even", () => {
      fc.assert(
        fc.property(inRange, (x) => {
          const code = enc1(x);
          const got = Math.abs(decode[code]! - x);
          for (const b of finiteCodes) {
            const d = Math.abs(decode[b]! - x);
            if (d < got) return false;
            // A tie between two values: the chosen code has an even mantissa.
            if (d === got && decode[b] !== decode[code] && (code & 1) !== 0) return false;
          }
          return true;
        }),
        { numRuns: 2000 },
      );
    });

    test("is monotone", () => {
      fc.assert(
        fc.property(fc.float({ noNaN: true }), fc.float({ noNaN: true }), (a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          return decode[enc1(lo)]! <= decode[enc1(hi)]!;
        }),
        { numRuns: 2000 },
      );
    });

    test("saturates at +-max for magnitudes beyond it, infinities included", () => {
      fc.assert(
        fc.property(fc.float({ min: Math.fround(f.max * 1.0625), noNaN: true }), (x) => {
          return enc1(x) === f.maxCode && enc1(-x) === (f.maxCode | 0x80);
        }),
      );
      expect(enc1(Infinity)).toBe(f.maxCode);
      expect(enc1(-Infinity)).toBe(f.maxCode | 0x80);
    });

    test("is sign symmetric for every float32 bit pattern", () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 0x7fffffff }), (u) => {
          return (enc1Bits(u) | 0x80) === enc1Bits((u | 0x80000000) >>> 0);
        }),
        { numRuns: 2000 },
      );
    });

    test("keeps NaN as NaN with its sign, whatever the payload", () => {
      fc.assert(
        fc.property(fc.integer({ min: 0x7f800001, max: 0x7fffffff }), fc.boolean(), (u, neg) => {
          return enc1Bits(neg ? (u | 0x80000000) >>> 0 : u) === (neg ? 0xff : 0x7f);
        }),
      );
    });

    test("rounds subnormals instead of flushing them", () => {
      const smallest = f.dtype === E4M3 ? 2 ** -9 : 2 ** -16;
      expect(enc1(smallest)).toBe(0x01);
      expect(enc1(smallest * 0.5)).toBe(0x00); // tie -> even (zero)
      expect(enc1(Math.fround(smallest * 0.5000001))).toBe(0x01);
      expect(enc1(smallest * 1.5)).toBe(0x02); // tie -> even (2)
      expect(enc1(-smallest * 3)).toBe(0x83);
    });
  });
}

// ---- scaled quantize / dequantize -------------------------------------------------

describe("scaled casts", () => {
  const x = randn(1 << 16, 7, 3);

  for (const f of FORMATS) {
    test(`${f.name} quantize multiplies by scale in float32 before rounding`, () => {
      const scale = 0.37;
      const scaled = Float32Array.from(x, (v) => Math.fround(v * Math.fround(scale)));
      expect(Buffer.from(quantize(f.dtype, x, scale)).equals(Buffer.from(encodeF32(f.dtype, scaled)))).toBe(true);
    });

    test(`${f.name} dequantize divides by scale (true division, not a reciprocal)`, () => {
      const scale = Math.fround(0.3); // 1/0.3 is inexact, so a reciprocal multiply would differ
      const decoded = convert(new Float32Array(256), F32, ALL_BYTES, f.dtype);
      const got = dequantize(f.dtype, ALL_BYTES, scale);
      for (let b = 0; b < 256; b++) expect(got[b]).toBe(Math.fround(decoded[b]! / scale));
    });

    test(`${f.name} dequantize to bfloat16 rounds the float32 quotient to nearest even`, () => {
      const scale = Math.fround(0.3);
      const decoded = convert(new Float32Array(256), F32, ALL_BYTES, f.dtype);
      const out = new Uint16Array(256);
      expect(lib.fp8_cpu_dequantize(out, BF16, ALL_BYTES, f.dtype, 256, Float32Array.of(scale))).toBe(0);
      for (let b = 0; b < 256; b++) {
        // NaN keeps the fp8 sign (x86 division propagates the NaN operand, as in torch).
        const want = Number.isNaN(decoded[b]) ? (b & 0x80) << 8 | 0x7fc0 : toBf16Bits(Math.fround(decoded[b]! / scale));
        expect([b, out[b]]).toEqual([b, want]);
      }
    });
  }

  test("float8_e4m3fn round trip of randn keeps SQNR >= 25 dB", () => {
    const scale = scaleRef(amax(x), 448);
    expect(sqnr(x, dequantize(E4M3, quantize(E4M3, x, scale), scale))).toBeGreaterThanOrEqual(25);
  });

  test("float8_e5m2 round trip of randn keeps SQNR >= 25 dB", () => {
    const scale = scaleRef(amax(x), 57344);
    expect(sqnr(x, dequantize(E5M2, quantize(E5M2, x, scale), scale))).toBeGreaterThanOrEqual(25);
  });

  test("bfloat16 input quantizes like the same values given as float32", () => {
    const asBf16 = Uint16Array.from(x, toBf16Bits);
    const asF32 = Float32Array.from(asBf16, fromBf16Bits);
    expect(Buffer.from(quantize(E4M3, asBf16, 2.5)).equals(Buffer.from(quantize(E4M3, asF32, 2.5)))).toBe(true);
  });
});

// ---- plain conversions ----------------------------------------------------------------

describe("convert", () => {
  test("float32 -> bfloat16 rounds to nearest even and quiets NaN", () => {
    const src = randomBits(4096, 11);
    const got = convert(new Uint16Array(src.length), BF16, src, F32);
    const bits = new Uint32Array(src.buffer);
    for (let i = 0; i < src.length; i++) expect(got[i]).toBe(bf16BitsOfF32Bits(bits[i]!));
  });

  test("float8_e5m2 -> float8_e4m3fn saturates large values and infinity to 448", () => {
    const src = Uint8Array.of(0x7b, 0x7c, 0xfc, 0x5f, 0x3c, 0x7f);
    const got = convert(new Uint8Array(6), E4M3, src, E5M2);
    expect(Array.from(got)).toEqual([0x7e, 0x7e, 0xfe, 0x7e, 0x38, 0x7f]);
  });

  test("same-dtype conversion copies the bytes", () => {
    const src = randomBits(100, 12);
    const got = convert(new Float32Array(100), F32, src, F32);
    expect(Buffer.from(got.buffer).equals(Buffer.from(src.buffer))).toBe(true);
  });
});

// ---- amax and scale -------------------------------------------------------------------------

describe("amax", () => {
  test("is max |x| over a float32 buffer (threaded size)", () => {
    const x = randn(200_003, 21);
    x[123_456] = -17.5;
    expect(amax(x)).toBe(17.5);
  });

  test("is max |x| over a bfloat16 buffer", () => {
    const x = Uint16Array.from(randn(1001, 22), toBf16Bits);
    const want = Math.max(...Array.from(x, (h) => Math.abs(fromBf16Bits(h))));
    expect(amax(x)).toBe(want);
  });

  test("propagates NaN like torch.max", () => {
    const x = randn(100_000, 23);
    x[99_999] = NaN;
    expect(amax(x)).toBeNaN();
    expect(amax(Uint16Array.of(0x3f80, 0xffc1))).toBeNaN();
  });

  test("counts infinity", () => {
    expect(amax(Float32Array.of(1, -Infinity, 2))).toBe(Infinity);
  });

  test("is 0 for an empty buffer", () => {
    expect(amax(new Float32Array(0))).toBe(0);
  });
});

describe("amax_to_scale", () => {
  function amaxToScale(x: Float32Array, dtype: number, clamp: boolean): [number, number] {
    const a = new Float32Array(1), s = new Float32Array(1);
    expect(lib.fp8_cpu_amax_to_scale(a, s, x, F32, x.length, dtype, clamp ? 1 : 0)).toBe(0);
    return [a[0]!, s[0]!];
  }

  test("is f32(fp8_max / max(amax, 1e-12)) computed in double", () => {
    fc.assert(
      fc.property(fc.float({ min: 0, max: Math.fround(1e30), noNaN: true }), fc.constantFrom(...FORMATS), (a, f) => {
        const [gotAmax, gotScale] = amaxToScale(Float32Array.of(0.5 * a, -a), f.dtype, false);
        return gotAmax === a && gotScale === scaleRef(a, f.max);
      }),
      { numRuns: 500 },
    );
  });

  test("uses 1e-12 for a zero amax", () => {
    expect(amaxToScale(new Float32Array(8), E4M3, false)).toEqual([0, Math.fround(448e12)]);
  });

  test("clamps the scale to 65504 for float16 originals", () => {
    expect(amaxToScale(Float32Array.of(1e-3), E4M3, true)[1]).toBe(65504);
    expect(amaxToScale(Float32Array.of(1e-3), E4M3, false)[1]).toBe(scaleRef(Math.fround(1e-3), 448));
    expect(amaxToScale(Float32Array.of(100), E5M2, true)[1]).toBe(Math.fround(573.44));
  });
});

describe("quantize_amax (delayed scaling's cast: amax recorded in the cast's pass)", () => {
  test("equals fp8_cpu_amax + quantize_decode bit for bit, with or without the decode (sizes across the threaded split)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 1, max: 1 << 30 }), fc.constantFrom(...FORMATS), fc.boolean(), fc.boolean(),
        fc.constantFrom(0.37, 1, 448, 3e4), fc.integer({ min: -1, max: 2 }),
        (n, seed, f, bf16, decode, scale, special) => {
          const x32 = randn(n, seed, 3);
          if (n > 0 && special >= 0) x32[seed % n] = [NaN, -Infinity, 0][special]!;
          const x = bf16 ? Uint16Array.from(x32, toBf16Bits) : x32;
          const code = bf16 ? BF16 : F32, s = Float32Array.of(scale);
          const wantA = new Float32Array(1), wantQ = new Uint8Array(n), wantD = new Uint16Array(n);
          expect(lib.fp8_cpu_amax(wantA, x, code, n)).toBe(0);
          expect(lib.fp8_cpu_quantize_decode(wantQ, wantD, f.dtype, x, code, n, s)).toBe(0);
          const a = new Float32Array(1), q = new Uint8Array(n), d = new Uint16Array(n);
          expect(lib.fp8_cpu_quantize_amax(q, decode ? d : null, f.dtype, x, code, n, s, a)).toBe(0);
          return Buffer.from(a.buffer).equals(Buffer.from(wantA.buffer)) && Buffer.from(q).equals(Buffer.from(wantQ)) &&
            (!decode || Buffer.from(d.buffer).equals(Buffer.from(wantD.buffer)));
        },
      ),
      { numRuns: 60 },
    );
  });

  const f4 = new Float32Array(4), b4 = new Uint8Array(4), s1 = Float32Array.of(1), a1 = new Float32Array(1);
  const bad: [string, () => number][] = [
    ["a NULL amax out", () => lib.fp8_cpu_quantize_amax(b4, null, E4M3, f4, F32, 4, s1, null)],
    ["a NULL scale", () => lib.fp8_cpu_quantize_amax(b4, null, E4M3, f4, F32, 4, null, a1)],
    ["a NULL src", () => lib.fp8_cpu_quantize_amax(b4, null, E4M3, null, F32, 4, s1, a1)],
    ["a bfloat16 target", () => lib.fp8_cpu_quantize_amax(b4, null, BF16, f4, F32, 4, s1, a1)],
    ["n < 0", () => lib.fp8_cpu_quantize_amax(b4, null, E5M2, f4, F32, -3, s1, a1)],
  ];
  for (const [what, call] of bad) {
    test(`rejects ${what} with an error naming fp8_cpu_quantize_amax`, () => {
      expect(call()).toBe(-1);
      expect(lastError()).toStartWith("fp8_cpu_quantize_amax:");
    });
  }
});

describe("quantize_transpose (both fp8 layouts and both bf16 decodes in one pass)", () => {
  /** (rows, cols) row-major -> (cols, rows) row-major. */
  function transposeOf<T extends Uint8Array | Uint16Array>(a: T, rows: number, cols: number): T {
    const out = new (a.constructor as new (n: number) => T)(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
    return out;
  }
  const eq = (a: ArrayBufferView, b: ArrayBufferView) =>
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

  for (const isa of ISAS) {
    test(`equals quantize_decode and its transpose bit for bit on the ${ISA_NAMES[isa]} path (edge tiles, NaN/inf, both dtypes, any subset of outputs)`, () => {
      withIsa(isa, () =>
        fc.assert(
          fc.property(
            fc.integer({ min: 0, max: 150 }), fc.integer({ min: 0, max: 150 }), fc.integer({ min: 1, max: 1 << 30 }), fc.constantFrom(...FORMATS),
            fc.boolean(), fc.constantFrom(0.37, 1, 448, 3e4), fc.integer({ min: -1, max: 2 }), fc.integer({ min: 1, max: 15 }),
            (rows, cols, seed, f, bf16, scale, special, mask) => {
              const n = rows * cols;
              const x32 = randn(n, seed, 3);
              if (n > 0 && special >= 0) x32[seed % n] = [NaN, -Infinity, 0][special]!;
              const x = bf16 ? Uint16Array.from(x32, toBf16Bits) : x32;
              const code = bf16 ? BF16 : F32, s = Float32Array.of(scale);
              const wantQ = new Uint8Array(n), wantD = new Uint16Array(n);
              expect(lib.fp8_cpu_quantize_decode(wantQ, wantD, f.dtype, x, code, n, s)).toBe(0);
              const q = new Uint8Array(n).fill(0xa5), qt = new Uint8Array(n).fill(0xa5);
              const d = new Uint16Array(n).fill(0xa5a5), dt = new Uint16Array(n).fill(0xa5a5);
              const [wq, wqt, wd, wdt] = [1, 2, 4, 8].map((b) => (mask & b) !== 0);
              expect(lib.fp8_cpu_quantize_transpose(wq ? q : null, wqt ? qt : null, wd ? d : null, wdt ? dt : null, f.dtype, x, code, rows, cols, s)).toBe(0);
              return (!wq || eq(q, wantQ)) && (!wqt || eq(qt, transposeOf(wantQ, rows, cols))) &&
                (!wd || eq(d, wantD)) && (!wdt || eq(dt, transposeOf(wantD, rows, cols)));
            },
          ),
          { numRuns: 40 },
        ),
      );
    });
  }

  // the last two are past the 16 MiB of transposed decode from which it is streamed past the
  // cache (aligned columns when rows % 8 == 0, ordinary stores for the others)
  test("large shapes across the threaded split match too (1000 x 700, 64 x 4099, 2056 x 4100, 2049 x 4097)", () => {
    for (const [rows, cols] of [[1000, 700], [64, 4099], [2056, 4100], [2049, 4097]]) {
      const n = rows * cols;
      const x = randn(n, rows + cols, 2);
      const s = Float32Array.of(100);
      const wantQ = new Uint8Array(n), wantD = new Uint16Array(n);
      expect(lib.fp8_cpu_quantize_decode(wantQ, wantD, E5M2, x, F32, n, s)).toBe(0);
      const q = new Uint8Array(n), qt = new Uint8Array(n), d = new Uint16Array(n), dt = new Uint16Array(n);
      expect(lib.fp8_cpu_quantize_transpose(q, qt, d, dt, E5M2, x, F32, rows, cols, s)).toBe(0);
      expect(eq(q, wantQ)).toBe(true);
      expect(eq(qt, transposeOf(wantQ, rows, cols))).toBe(true);
      expect(eq(d, wantD)).toBe(true);
      expect(eq(dt, transposeOf(wantD, rows, cols))).toBe(true);
    }
  });

  const f4 = new Float32Array(4), b4 = new Uint8Array(4), s1 = Float32Array.of(1);
  const bad: [string, () => number][] = [
    ["no output at all", () => lib.fp8_cpu_quantize_transpose(null, null, null, null, E4M3, f4, F32, 2, 2, s1)],
    ["a NULL scale", () => lib.fp8_cpu_quantize_transpose(b4, null, null, null, E4M3, f4, F32, 2, 2, null)],
    ["a NULL src", () => lib.fp8_cpu_quantize_transpose(b4, null, null, null, E4M3, null, F32, 2, 2, s1)],
    ["a bfloat16 target", () => lib.fp8_cpu_quantize_transpose(b4, null, null, null, BF16, f4, F32, 2, 2, s1)],
    ["an fp8 source", () => lib.fp8_cpu_quantize_transpose(b4, null, null, null, E4M3, b4, E5M2, 2, 2, s1)],
    ["rows < 0", () => lib.fp8_cpu_quantize_transpose(b4, null, null, null, E5M2, f4, F32, -2, 2, s1)],
    ["rows x cols overflowing int64", () => lib.fp8_cpu_quantize_transpose(b4, null, null, null, E5M2, f4, F32, 2 ** 40, 2 ** 40, s1)],
  ];
  for (const [what, call] of bad) {
    test(`rejects ${what} with an error naming fp8_cpu_quantize_transpose`, () => {
      expect(call()).toBe(-1);
      expect(lastError()).toStartWith("fp8_cpu_quantize_transpose:");
    });
  }
});

describe("quantize_dynamic (amax, scale and cast in one call)", () => {
  /** The two-call path it replaces: amax_to_scale, [round down to 2^k], quantize_decode. */
  function twoCalls(x: Float32Array | Uint16Array, dtype: number, clamp: number, pow2: number) {
    const code = x instanceof Float32Array ? F32 : BF16, n = x.length;
    const a = new Float32Array(1), s = new Float32Array(1), q = new Uint8Array(n), d = new Uint16Array(n);
    expect(lib.fp8_cpu_amax_to_scale(a, s, x, code, n, dtype, clamp)).toBe(0);
    const bits = new Uint32Array(s.buffer); // 2^floor(log2 s) of a positive normal s: clear its mantissa
    if (pow2 && s[0]! >= 2 ** -126 && Number.isFinite(s[0]!)) bits[0] = (bits[0]! & 0xff800000) >>> 0;
    expect(lib.fp8_cpu_quantize_decode(q, d, dtype, x, code, n, s)).toBe(0);
    return { amax: a[0]!, scale: s[0]!, q, d };
  }
  function oneCall(x: Float32Array | Uint16Array, dtype: number, clamp: number, pow2: number) {
    const code = x instanceof Float32Array ? F32 : BF16, n = x.length;
    const a = new Float32Array(1), s = new Float32Array(1), q = new Uint8Array(n), d = new Uint16Array(n);
    expect(lib.fp8_cpu_quantize_dynamic(q, d, dtype, x, code, n, a, s, clamp, pow2)).toBe(0);
    return { amax: a[0]!, scale: s[0]!, q, d };
  }
  const same = (u: ReturnType<typeof oneCall>, v: ReturnType<typeof oneCall>) =>
    Object.is(u.amax, v.amax) && Object.is(u.scale, v.scale) && Buffer.from(u.q).equals(Buffer.from(v.q)) &&
    Buffer.from(u.d.buffer).equals(Buffer.from(v.d.buffer));

  test("equals amax_to_scale + quantize_decode bit for bit (sizes across the threaded split, both dtypes, clamp, 2^k)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 1, max: 1 << 30 }), fc.double({ min: -30, max: 30, noNaN: true }),
        fc.constantFrom(...FORMATS), fc.boolean(), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 1 }),
        (n, seed, log2std, f, bf16, clamp, pow2) => {
          const x32 = randn(n, seed, 2 ** log2std);
          const x = bf16 ? Uint16Array.from(x32, toBf16Bits) : x32;
          return same(oneCall(x, f.dtype, clamp, pow2), twoCalls(x, f.dtype, clamp, pow2));
        },
      ),
      { numRuns: 60 },
    );
  });

  test("rounds the scale down to a power of two when asked, and a NaN input gives a NaN amax and scale", () => {
    const { scale } = oneCall(Float32Array.of(3, -5), E4M3, 0, 1);
    expect(scale).toBe(64); // 448 / 5 = 89.6 -> 2^6
    const nan = oneCall(Float32Array.of(1, NaN, 2), E5M2, 0, 1);
    expect(nan.amax).toBeNaN();
    expect(nan.scale).toBeNaN();
  });

  test("an empty input gives amax 0 and the scale of amax 1e-12", () => {
    const s = new Float32Array(1);
    expect(lib.fp8_cpu_quantize_dynamic(null, null, E4M3, null, F32, 0, null, s, 0, 0)).toBe(0);
    expect(s[0]).toBe(Math.fround(448e12));
  });

  const f4 = new Float32Array(4), b4 = new Uint8Array(4), s1 = new Float32Array(1);
  const bad: [string, () => number][] = [
    ["a NULL scale out", () => lib.fp8_cpu_quantize_dynamic(b4, null, E4M3, f4, F32, 4, null, null, 0, 0)],
    ["a NULL dst", () => lib.fp8_cpu_quantize_dynamic(null, null, E4M3, f4, F32, 4, null, s1, 0, 0)],
    ["a float32 target", () => lib.fp8_cpu_quantize_dynamic(b4, null, F32, f4, F32, 4, null, s1, 0, 0)],
    ["an fp8 source", () => lib.fp8_cpu_quantize_dynamic(b4, null, E4M3, b4, E5M2, 4, null, s1, 0, 0)],
    ["n < 0", () => lib.fp8_cpu_quantize_dynamic(b4, null, E4M3, f4, F32, -1, null, s1, 0, 0)],
  ];
  for (const [what, call] of bad) {
    test(`rejects ${what} with an error naming fp8_cpu_quantize_dynamic`, () => {
      expect(call()).toBe(-1);
      expect(lastError()).toStartWith("fp8_cpu_quantize_dynamic:");
    });
  }
});

// ---- delayed scaling history ------------------------------------------------------

describe("sync_amax_history", () => {
  test("rolls each history, writes the new amax at slot 0 and rescales from the max", () => {
    const HIST = 3;
    // Two tensors; each needs amax (1 float), history (3 floats) and scale (1 float).
    const mem = nativeAlloc(2 * (1 + HIST + 1) * 4);
    try {
      const f = new Float32Array(nativeView(mem, 2 * (1 + HIST + 1) * 4));
      const at = (i: number) => BigInt(mem + 4 * i);
      // tensor 0: amax 2, history [5, 1, 9] -> [2, 5, 1], max 5, e4m3
      // tensor 1: amax 1e-3, history [1e-4, 0, 0] -> [1e-3, 1e-4, 0], max 1e-3, e5m2, f16 clamp
      f.set([2, 5, 1, 9, 0, Math.fround(1e-3), Math.fround(1e-4), 0, 0, 0]);
      const amaxPtrs = BigUint64Array.of(at(0), at(5));
      const histPtrs = BigUint64Array.of(at(1), at(6));
      const scalePtrs = BigUint64Array.of(at(4), at(9));
      const status = lib.fp8_cpu_sync_amax_history(
        amaxPtrs, histPtrs, scalePtrs, Int32Array.of(E4M3, E5M2), Int32Array.of(0, 1), 2, HIST,
      );
      expect(status).toBe(0);
      expect(Array.from(f.subarray(1, 4))).toEqual([2, 5, 1]);
      expect(f[4]).toBe(Math.fround(448 / 5));
      expect(Array.from(f.subarray(6, 9))).toEqual([Math.fround(1e-3), Math.fround(1e-4), 0]);
      expect(f[9]).toBe(65504); // 57344 / 1e-3 > 65504
    } finally {
      nativeFree(mem);
    }
  });

  test("changes nothing when one tensor's arguments are invalid", () => {
    const mem = nativeAlloc(4 * 4);
    try {
      const f = new Float32Array(nativeView(mem, 16));
      f.set([3, 1, 2, 7]);
      const p = (i: number) => BigInt(mem + 4 * i);
      const status = lib.fp8_cpu_sync_amax_history(
        BigUint64Array.of(p(0), p(0)), BigUint64Array.of(p(1), p(1)), BigUint64Array.of(p(3), p(3)),
        Int32Array.of(E4M3, F32), Int32Array.of(0, 0), 2, 2,
      );
      expect(status).not.toBe(0);
      expect(lastError()).toContain("fp8_cpu_sync_amax_history");
      expect(Array.from(f)).toEqual([3, 1, 2, 7]);
    } finally {
      nativeFree(mem);
    }
  });
});

// ---- telemetry ---------------------------------------------------------------------------

describe("fp8_stats", () => {
  for (const f of FORMATS) {
    test(`counts ${f.name} zeros, saturated values and NaNs`, () => {
      // +-0 x3, +-max x2, NaNs (e4m3: 0x7f/0xff; e5m2 also 0x7d, 0x7e), other values.
      const nanCodes = f.dtype === E4M3 ? [0x7f, 0xff, 0x7f] : [0x7d, 0xfe, 0x7f, 0xff];
      const bytes = [0x00, 0x80, 0x00, f.maxCode, f.maxCode | 0x80, ...nanCodes, 0x01, 0x38, 0x7c];
      const src = new Uint8Array(70_000 * bytes.length);
      for (let i = 0; i < src.length; i++) src[i] = bytes[i % bytes.length]!;
      const z = new BigInt64Array(1), s = new BigInt64Array(1), q = new BigInt64Array(1);
      expect(lib.fp8_cpu_fp8_stats(z, s, q, src, f.dtype, src.length)).toBe(0);
      // e5m2 0x7c is +inf: neither saturated nor NaN; for e4m3 it is an ordinary value.
      expect([z[0], s[0], q[0]]).toEqual([210_000n, 140_000n, BigInt(70_000 * nanCodes.length)]);
    });
  }
});

// ---- ISA control and argument checks ----------------------------------------------------

describe("argument checks", () => {
  test("set_isa rejects paths other than 0, 1 and 2", () => {
    expect(lib.fp8_cpu_set_isa(3)).not.toBe(0);
    expect(lastError()).toContain("fp8_cpu_set_isa");
    expect(lib.fp8_cpu_set_isa(-1)).not.toBe(0);
  });

  test("get_isa reports the capped path", () => {
    const out = new Int32Array(1);
    withIsa(0, () => expect(lib.fp8_cpu_get_isa(out)).toBe(0));
    expect(out[0]).toBe(0);
    expect(lib.fp8_cpu_get_isa(null)).not.toBe(0);
  });

  const f = new Float32Array(4), h = new Uint16Array(4), b = new Uint8Array(4), sc = Float32Array.of(1);
  const i64 = new BigInt64Array(1), f1 = new Float32Array(1);
  const bad: [string, string, () => number][] = [
    ["fp8_cpu_convert", "a NULL dst", () => lib.fp8_cpu_convert(null, E4M3, f, F32, 4)],
    ["fp8_cpu_convert", "a NULL src", () => lib.fp8_cpu_convert(b, E4M3, null, F32, 4)],
    ["fp8_cpu_convert", "n < 0", () => lib.fp8_cpu_convert(b, E4M3, f, F32, -1)],
    ["fp8_cpu_convert", "an unknown dtype", () => lib.fp8_cpu_convert(b, 99, f, F32, 4)],
    ["fp8_cpu_convert", "an int32 source", () => lib.fp8_cpu_convert(b, E4M3, f, I32, 4)],
    ["fp8_cpu_quantize", "a NULL scale", () => lib.fp8_cpu_quantize(b, E4M3, f, F32, 4, null)],
    ["fp8_cpu_quantize", "a NULL dst", () => lib.fp8_cpu_quantize(null, E4M3, f, F32, 4, sc)],
    ["fp8_cpu_quantize", "a float32 target", () => lib.fp8_cpu_quantize(b, F32, f, F32, 4, sc)],
    ["fp8_cpu_quantize", "an fp8 source", () => lib.fp8_cpu_quantize(b, E4M3, b, E5M2, 4, sc)],
    ["fp8_cpu_quantize", "n < 0", () => lib.fp8_cpu_quantize(b, E4M3, f, F32, -5, sc)],
    ["fp8_cpu_dequantize", "a NULL scale", () => lib.fp8_cpu_dequantize(f, F32, b, E4M3, 4, null)],
    ["fp8_cpu_dequantize", "a NULL src", () => lib.fp8_cpu_dequantize(f, F32, null, E4M3, 4, sc)],
    ["fp8_cpu_dequantize", "an fp8 target", () => lib.fp8_cpu_dequantize(b, E5M2, b, E4M3, 4, sc)],
    ["fp8_cpu_dequantize", "a bfloat16 source", () => lib.fp8_cpu_dequantize(f, F32, h, BF16, 4, sc)],
    ["fp8_cpu_amax", "a NULL out", () => lib.fp8_cpu_amax(null, f, F32, 4)],
    ["fp8_cpu_amax", "a NULL src", () => lib.fp8_cpu_amax(f1, null, F32, 4)],
    ["fp8_cpu_amax", "an fp8 source", () => lib.fp8_cpu_amax(f1, b, E4M3, 4)],
    ["fp8_cpu_amax", "n < 0", () => lib.fp8_cpu_amax(f1, f, F32, -1)],
    ["fp8_cpu_amax_to_scale", "a NULL scale out", () => lib.fp8_cpu_amax_to_scale(f1, null, f, F32, 4, E4M3, 0)],
    ["fp8_cpu_amax_to_scale", "a float32 fp8 dtype", () => lib.fp8_cpu_amax_to_scale(f1, sc, f, F32, 4, F32, 0)],
    ["fp8_cpu_amax_to_scale", "a uint8 source", () => lib.fp8_cpu_amax_to_scale(f1, sc, b, 5, 4, E4M3, 0)],
    ["fp8_cpu_sync_amax_history", "count < 0", () => lib.fp8_cpu_sync_amax_history(null, null, null, null, null, -1, 4)],
    ["fp8_cpu_sync_amax_history", "history_len 0", () => lib.fp8_cpu_sync_amax_history(null, null, null, null, null, 0, 0)],
    ["fp8_cpu_sync_amax_history", "NULL pointer arrays", () => lib.fp8_cpu_sync_amax_history(null, null, null, null, null, 1, 4)],
    ["fp8_cpu_sync_amax_history", "a NULL tensor pointer", () =>
      lib.fp8_cpu_sync_amax_history(BigUint64Array.of(0n), BigUint64Array.of(0n), BigUint64Array.of(0n), Int32Array.of(E4M3), Int32Array.of(0), 1, 4)],
    ["fp8_cpu_fp8_stats", "a NULL count", () => lib.fp8_cpu_fp8_stats(i64, null, i64, b, E4M3, 4)],
    ["fp8_cpu_fp8_stats", "a bfloat16 source", () => lib.fp8_cpu_fp8_stats(i64, i64, i64, h, BF16, 4)],
    ["fp8_cpu_fp8_stats", "n < 0", () => lib.fp8_cpu_fp8_stats(i64, i64, i64, b, E5M2, -2)],
  ];
  for (const [fn, what, call] of bad) {
    test(`${fn} rejects ${what} with an error naming it`, () => {
      expect(call()).toBe(-1);
      expect(lastError()).toStartWith(`${fn}:`);
    });
  }

  test("empty buffers are accepted with n = 0", () => {
    expect(lib.fp8_cpu_quantize(null, E4M3, null, F32, 0, sc)).toBe(0);
    expect(lib.fp8_cpu_convert(null, F32, null, E5M2, 0)).toBe(0);
    expect(lib.fp8_cpu_sync_amax_history(null, null, null, null, null, 0, 16)).toBe(0);
  });
});
