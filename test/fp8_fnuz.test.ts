// fp8_fnuz.test.ts — float8_e4m3fnuz / float8_e5m2fnuz (AMD MI300's formats) in libfp8's
// CPU kernels: exhaustive agreement with torch's own conversions
// (test/fixtures/fp8_fnuz_tables.json, made by scripts/gen_fnuz_tables.py with torch 2.13)
// on every ISA path, the formats' rules (no negative zero, one NaN 0x80, saturation at
// 240 / 57344), every path bit for bit, scales, stats, and fp8 <-> fp8 conversion.
import { describe, expect, test } from "bun:test";
import { lib } from "../src/ffi/index.ts";
import tables from "./fixtures/fp8_fnuz_tables.json";
import { uniformStream } from "../src/tensor/random.ts";
import { supportedIsas, withIsa } from "./helpers/isa.ts";

const F32 = 0, BF16 = 1, E4M3 = 2, E4M3FNUZ = 9, E5M2FNUZ = 10;
const FORMATS = [
  { dtype: E4M3FNUZ, key: "e4m3fnuz", name: "float8_e4m3fnuz", max: 240 },
  { dtype: E5M2FNUZ, key: "e5m2fnuz", name: "float8_e5m2fnuz", max: 57344 },
] as const;
const ISA_NAMES = ["portable", "AVX2", "AVX-512"];

const u32 = new Uint32Array(1), f32 = new Float32Array(u32.buffer);
const fromBits = (u: number) => ((u32[0] = u >>> 0), f32[0]!);
const decodeFixture = (key: "e4m3fnuz" | "e5m2fnuz") => tables.decode[key].map((s: string) => (s === "nan" ? NaN : Number(s)));
const encodeFixture = (key: "e4m3fnuz" | "e5m2fnuz") => new Uint8Array(Buffer.from(tables.encode_bf16_saturating[key], "base64"));

const ISAS = supportedIsas();
function convert<T extends Float32Array | Uint16Array | Uint8Array>(dst: T, dstDtype: number, src: Float32Array | Uint16Array | Uint8Array, srcDtype: number): T {
  expect(lib.fp8_cpu_convert(dst, dstDtype, src, srcDtype, src.length)).toBe(0);
  return dst;
}
function quantize(dtype: number, src: Float32Array | Uint16Array, scale: number): Uint8Array {
  const out = new Uint8Array(src.length);
  expect(lib.fp8_cpu_quantize(out, dtype, src, src instanceof Float32Array ? F32 : BF16, src.length, Float32Array.of(scale))).toBe(0);
  return out;
}

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);
// 65536 bf16 patterns, repeated to pass the threaded split (64K elements) with a ragged tail
const ALL_BF16 = Uint16Array.from({ length: 65536 }, (_, i) => i);

test("the fixture is torch's: 0x80 is the only NaN, no negative zero, max 240 / 57344", () => {
  for (const f of FORMATS) {
    const d = decodeFixture(f.key);
    expect(d.filter(Number.isNaN).length).toBe(1);
    expect(Number.isNaN(d[0x80])).toBe(true);
    expect(Object.is(d[0], 0)).toBe(true);
    expect(d[0x7f]).toBe(f.max);
    expect(d[0xff]).toBe(-f.max);
  }
});

for (const isa of ISAS) {
  describe(`${ISA_NAMES[isa]} path`, () => {
    for (const f of FORMATS) {
      const want = decodeFixture(f.key);
      const wantEnc = encodeFixture(f.key);
      test(`decodes every ${f.name} byte to the float32 torch gives`, () => {
        const got = withIsa(isa, () => convert(new Float32Array(256), F32, ALL_BYTES, f.dtype));
        for (let b = 0; b < 256; b++) expect([b, got[b]]).toEqual([b, want[b]]);
        expect(new Uint32Array(got.buffer)[0x80]).toBe(0x7fc00000); // torch's quiet NaN
      });
      test(`decodes every ${f.name} byte to the bfloat16 torch gives (unscaled and divided by 1)`, () => {
        for (const viaDequantize of [false, true]) {
          const got = withIsa(isa, () => {
            const out = new Uint16Array(256);
            if (viaDequantize) expect(lib.fp8_cpu_dequantize(out, BF16, ALL_BYTES, f.dtype, 256, Float32Array.of(1))).toBe(0);
            else convert(out, BF16, ALL_BYTES, f.dtype);
            return out;
          });
          for (let b = 0; b < 256; b++) expect([b, fromBits(got[b]! << 16)]).toEqual([b, want[b]]);
          expect(got[0x80]).toBe(0x7fc0);
        }
      });
      test(`encodes every bfloat16 bit pattern to the ${f.name} byte torch gives (bf16 and f32 sources)`, () => {
        const fromBf16 = withIsa(isa, () => convert(new Uint8Array(65536), f.dtype, ALL_BF16, BF16));
        expect(Buffer.from(fromBf16).equals(Buffer.from(wantEnc))).toBe(true);
        const asF32 = new Float32Array(Uint32Array.from(ALL_BF16, (h) => h << 16).buffer);
        const fromF32 = withIsa(isa, () => convert(new Uint8Array(65536), f.dtype, asF32, F32));
        expect(Buffer.from(fromF32).equals(Buffer.from(wantEnc))).toBe(true);
      });
      test(`${f.name} quantize multiplies by the scale in float32 first (threaded size, ragged tail)`, () => {
        const n = 3 * 65536 + 11;
        const src = Uint16Array.from({ length: n }, (_, i) => i & 0xffff);
        const got = withIsa(isa, () => quantize(f.dtype, src, 0.5));
        // x * 0.5 is exact, and its bf16 pattern is in the table: torch's byte for it
        const half = new Uint32Array(1), hf = new Float32Array(half.buffer);
        for (let i = 0; i < n; i += 97) {
          hf[0] = fromBits((i & 0xffff) << 16) * 0.5;
          const bf = Number.isNaN(hf[0]) ? (i & 0xffff) : half[0]! >>> 16; // exact: low half is zero
          expect([i, got[i]]).toEqual([i, wantEnc[bf]]);
        }
      });
    }
  });
}

describe("fnuz rules", () => {
  for (const f of FORMATS) {
    test(`${f.name}: NaN of either sign -> 0x80, -0 and negative underflow -> 0x00, +-inf and overflow saturate`, () => {
      const xs = new Float32Array(new Uint32Array([0xffc00001, 0x7f800001, 0x80000000, 0x80000001, 0x7f800000, 0xff800000]).buffer);
      const ys = Float32Array.of(1e30, -1e30, f.max * 1.01, -1e-30);
      for (const isa of ISAS) {
        const got = withIsa(isa, () => convert(new Uint8Array(xs.length + ys.length), f.dtype, Float32Array.from([...xs, ...ys]), F32));
        expect(Array.from(got)).toEqual([0x80, 0x80, 0x00, 0x00, 0x7f, 0xff, 0x7f, 0xff, 0x7f, 0x00]);
      }
    });
  }

  test("every ISA path agrees bit for bit on random float32 bit patterns, both formats, quantize and decode", () => {
    const u = uniformStream(5);
    const n = (1 << 17) + 29;
    const bits = new Float32Array(Uint32Array.from({ length: n }, () => (u() * 4294967296) >>> 0).buffer);
    const codes = Uint8Array.from({ length: n }, () => (u() * 256) | 0);
    for (const f of FORMATS) {
      const runs = ISAS.map((isa) => withIsa(isa, () => {
        const q = quantize(f.dtype, bits, 1.25);
        const d32 = new Float32Array(n), d16 = new Uint16Array(n);
        expect(lib.fp8_cpu_dequantize(d32, F32, codes, f.dtype, n, Float32Array.of(0.3))).toBe(0);
        expect(lib.fp8_cpu_dequantize(d16, BF16, codes, f.dtype, n, Float32Array.of(7e-3))).toBe(0);
        const q2 = new Uint8Array(n), dec = new Uint16Array(n);
        expect(lib.fp8_cpu_quantize_decode(q2, dec, f.dtype, bits, F32, n, Float32Array.of(3))).toBe(0);
        return Buffer.concat([Buffer.from(q), Buffer.from(d32.buffer), Buffer.from(d16.buffer), Buffer.from(q2), Buffer.from(dec.buffer)]);
      }));
      for (const r of runs.slice(1)) expect(r.equals(runs[0]!)).toBe(true);
    }
  });

  test("amax_to_scale uses the fnuz max (240 and 57344)", () => {
    const amax = new Float32Array(1), scale = new Float32Array(1);
    expect(lib.fp8_cpu_amax_to_scale(amax, scale, Float32Array.of(-3, 2), F32, 2, E4M3FNUZ, 0)).toBe(0);
    expect([amax[0], scale[0]]).toEqual([3, 80]);
    expect(lib.fp8_cpu_amax_to_scale(amax, scale, Float32Array.of(4), F32, 1, E5M2FNUZ, 0)).toBe(0);
    expect(scale[0]).toBe(14336);
  });

  test("stats count 0x00 as zero, 0x7f/0xff as saturated and 0x80 as the one NaN, on every path", () => {
    const pattern = [0x00, 0x80, 0x7f, 0xff, 0x01, 0x81, 0x7e];
    const src = Uint8Array.from({ length: 70_001 * pattern.length }, (_, i) => pattern[i % pattern.length]!);
    for (const f of FORMATS) {
      for (const isa of ISAS) {
        const z = new BigInt64Array(1), s = new BigInt64Array(1), q = new BigInt64Array(1);
        withIsa(isa, () => expect(lib.fp8_cpu_fp8_stats(z, s, q, src, f.dtype, src.length)).toBe(0));
        expect([z[0], s[0], q[0]]).toEqual([70_001n, 140_002n, 70_001n]);
      }
    }
  });

  test("fp8 -> fp8 conversion between fnuz and e4m3fn goes through the exact value", () => {
    // e4m3fn 448 saturates to 240 in e4m3fnuz; e4m3fnuz NaN 0x80 -> e4m3fn NaN 0x7f; -0 (e4m3fn 0x80) -> 0x00
    const fromFn = convert(new Uint8Array(3), E4M3FNUZ, Uint8Array.of(0x7e, 0x80, 0x38), E4M3);
    expect(Array.from(fromFn)).toEqual([0x7f, 0x00, 0x40]); // 1.0 is 0x38 in e4m3fn, 0x40 in e4m3fnuz
    const toFn = convert(new Uint8Array(2), E4M3, Uint8Array.of(0x80, 0x40), E4M3FNUZ);
    expect(Array.from(toFn)).toEqual([0x7f, 0x38]);
  });

  test("an unknown fp8 code is rejected with a message naming the four formats", () => {
    expect(lib.fp8_cpu_quantize(new Uint8Array(1), 99, Float32Array.of(1), F32, 1, Float32Array.of(1))).toBe(-1);
    expect(String(lib.fp8_last_error())).toContain("must be float8_e4m3fn, float8_e5m2, float8_e4m3fnuz or float8_e5m2fnuz, got unknown (99)");
  });
});
