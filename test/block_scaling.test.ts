// block_scaling.test.ts — libfp8's block-scaled casts (libfp8/src/cpu/block_cast.c):
// 1x128 / 128x128 blocks with f32 scales and MX blocks with e8m0 scales (FLOOR, RCEIL).
// Checked bit for bit on every ISA path against (a) fixtures computed with torch
// (test/fixtures/gen_block_scaling.py, torchao's numerics in plain torch ops) and (b) a
// scalar reference written here from the OCP MX spec and torchao's rules; exhaustive
// over every bf16 amax for the e8m0 rule and every bf16 value for MX quantisation;
// property tests (fast-check) over shapes, block sizes and magnitudes; argument checks.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { lib } from "../src/ffi/index.ts";
import fixture from "./fixtures/block_scaling.json";
import { supportedIsas, withIsa } from "./helpers/isa.ts";

const F32 = 0;
const BF16 = 1;
const E4M3 = 2;
const E5M2 = 3;
const FLOOR = 0;
const RCEIL = 1;
const DT: Record<string, number> = { float32: F32, bfloat16: BF16, float8_e4m3fn: E4M3, float8_e5m2: E5M2 };

// ---- scalar reference (from the spec, independent of libfp8) -------------------

const f32Box = new Float32Array(1);
const u32Box = new Uint32Array(f32Box.buffer);
const bitsOf = (x: number): number => ((f32Box[0] = x), u32Box[0]!);
const fromBits = (u: number): number => ((u32Box[0] = u >>> 0), f32Box[0]!);
const f32 = Math.fround;

const FMT = {
  [E4M3]: { max: 448, mant: 3, emin: -6, emax: 8 },
  [E5M2]: { max: 57344, mant: 2, emin: -14, emax: 15 },
} as Record<number, { max: number; mant: number; emin: number; emax: number }>;

/** Value of each fp8 byte (exact, by the format's definition). */
function decodeTable(dt: number): number[] {
  const { mant } = FMT[dt]!;
  const ebits = 7 - mant, bias = (1 << (ebits - 1)) - 1;
  return Array.from({ length: 256 }, (_, b) => {
    const s = b & 0x80 ? -1 : 1, e = (b >> mant) & ((1 << ebits) - 1), m = b & ((1 << mant) - 1);
    if (dt === E4M3 && (b & 0x7f) === 0x7f) return NaN;
    if (dt === E5M2 && e === 31) return m === 0 ? s * Infinity : NaN;
    return e === 0 ? s * m * 2 ** (1 - bias - mant) : s * (1 + m / (1 << mant)) * 2 ** (e - bias);
  });
}
const DECODE = { [E4M3]: decodeTable(E4M3), [E5M2]: decodeTable(E5M2) } as Record<number, number[]>;
const CODE = Object.fromEntries(
  [E4M3, E5M2].map((dt) => [dt, new Map(DECODE[dt]!.map((v, b) => [Object.is(v, -0) ? "-0" : String(v), b]))]),
) as Record<number, Map<string, number>>;

/** Saturating round-to-nearest-even f32 -> fp8 byte; NaN -> 0x7F with x's sign. */
function encode(x: number, dt: number, xBits: number): number {
  const sign = xBits & 0x80000000 ? 0x80 : 0;
  if (Number.isNaN(x)) return 0x7f | sign;
  const { max, mant, emin } = FMT[dt]!;
  let a = Math.min(Math.abs(x), max);
  if (a === 0) return sign;
  const e = Math.max(Math.floor(Math.log2(a)), emin);
  const ulp = 2 ** (e - mant);
  let q = a / ulp;
  const fl = Math.floor(q), fr = q - fl;
  q = fr > 0.5 || (fr === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
  a = Math.min(q * ulp, max);
  if (a === 0) return sign;
  return CODE[dt]!.get(String(a))! | sign;
}

/** e8m0 rule (OCP MX 6.3 FLOOR, or RCEIL). */
function mxScale(amax: number, dt: number, mode: number): number {
  if (mode === RCEIL) {
    const d = f32(amax * f32(1 / FMT[dt]!.max));
    const u = bitsOf(d) & 0x7fffffff;
    if (u >= 0x7f800000) return 255;
    const e = u >>> 23, m = u & 0x7fffff;
    return e + (e === 0 ? (m > 0x400000 ? 1 : 0) : m !== 0 ? 1 : 0);
  }
  const u = bitsOf(amax) & 0x7fffffff;
  if (u >= 0x7f800000) return 255;
  const unb = Math.min(Math.max((u >>> 23) - 127 - FMT[dt]!.emax, -127), 128);
  return unb + 127;
}
const e8m0Value = (e: number): number => (e === 255 ? NaN : 2 ** (e - 127));

function loadF32(src: Float32Array | Uint16Array, i: number): { v: number; bits: number } {
  const bits = src instanceof Float32Array ? bitsOf(src[i]!) : (src[i]! << 16) >>> 0;
  return { v: fromBits(bits), bits };
}

function amaxOf(src: Float32Array | Uint16Array, idx: number[]): number {
  let m = 0;
  for (const i of idx) {
    const { v } = loadF32(src, i);
    if (Number.isNaN(v)) return NaN;
    m = Math.max(m, Math.abs(v));
  }
  return m;
}

function refBlockwise(src: Float32Array | Uint16Array, rows: number, cols: number, br: number, bc: number, dt: number) {
  const nbr = Math.ceil(rows / br), nbc = Math.ceil(cols / bc);
  const q = new Uint8Array(rows * cols), inv = new Float32Array(nbr * nbc);
  for (let b = 0; b < nbr * nbc; b++) {
    const r0 = Math.floor(b / nbc) * br, c0 = (b % nbc) * bc;
    const idx: number[] = [];
    for (let r = r0; r < Math.min(r0 + br, rows); r++) for (let c = c0; c < Math.min(c0 + bc, cols); c++) idx.push(r * cols + c);
    const amax = amaxOf(src, idx);
    const scale = Number.isNaN(amax) ? NaN : f32(FMT[dt]!.max / Math.max(amax, 1e-12));
    inv[b] = f32(1 / scale);
    for (const i of idx) {
      const { v, bits } = loadF32(src, i);
      // a NaN element keeps its sign (x * scale on x86 returns the first NaN operand)
      if (Number.isNaN(v)) q[i] = 0x7f | ((bits >>> 24) & 0x80);
      else {
        const y = f32(v * scale);
        q[i] = encode(y, dt, bitsOf(y));
      }
    }
  }
  return { q, inv };
}

function refMx(src: Float32Array | Uint16Array, rows: number, cols: number, block: number, dt: number, mode: number) {
  const nbc = Math.ceil(cols / block);
  const q = new Uint8Array(rows * cols), e = new Uint8Array(rows * nbc);
  for (let r = 0; r < rows; r++)
    for (let cb = 0; cb < nbc; cb++) {
      const idx: number[] = [];
      for (let c = cb * block; c < Math.min(cb * block + block, cols); c++) idx.push(r * cols + c);
      const s = mxScale(amaxOf(src, idx), dt, mode);
      e[r * nbc + cb] = s;
      const mult = s === 255 ? NaN : 2 ** (127 - s);
      for (const i of idx) {
        const { v, bits } = loadF32(src, i);
        if (s === 255) q[i] = 0x7f | (Number.isNaN(v) ? (bits >>> 24) & 0x80 : 0);
        else {
          const y = f32(v * mult);
          q[i] = encode(y, dt, bitsOf(y));
        }
      }
    }
  return { q, e };
}

// ---- libfp8 calls ----------------------------------------------------------------

const ISAS = supportedIsas();
const srcDtype = (src: Float32Array | Uint16Array) => (src instanceof Float32Array ? F32 : BF16);

function libBlockwise(src: Float32Array | Uint16Array, rows: number, cols: number, br: number, bc: number, dt: number) {
  const q = new Uint8Array(rows * cols), inv = new Float32Array(Math.ceil(rows / br) * Math.ceil(cols / bc));
  expect(lib.fp8_cpu_quantize_blockwise(q, inv, dt, src, srcDtype(src), rows, cols, br, bc)).toBe(0);
  return { q, inv };
}
function libMx(src: Float32Array | Uint16Array, rows: number, cols: number, block: number, dt: number, mode: number) {
  const q = new Uint8Array(rows * cols), e = new Uint8Array(rows * Math.ceil(cols / block));
  expect(lib.fp8_cpu_quantize_mx(q, e, dt, src, srcDtype(src), rows, cols, block, mode)).toBe(0);
  return { q, e };
}
const hex = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("hex");
const fromHex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const sameBits = (a: Float32Array, b: Float32Array) => expect(hex(a)).toBe(hex(b));

// ---- tests -------------------------------------------------------------------------

describe("block scaling: torch fixtures (test/fixtures/gen_block_scaling.py), every ISA", () => {
  for (const c of fixture.cases as any[]) {
    const name = `${c.kind} ${c.kind === "mx" ? `${c.block} ${c.mode}` : `${c.blockRows}x${c.blockCols}`} ${c.src} -> ${c.fp8}`;
    test(name, () => {
      const raw = fromHex(c.x);
      const src = c.src === "float32" ? new Float32Array(raw.buffer) : new Uint16Array(raw.buffer);
      for (const isa of ISAS)
        withIsa(isa, () => {
          const got =
            c.kind === "mx"
              ? (({ q, e }) => ({ q, s: e }))(libMx(src, c.rows, c.cols, c.block, DT[c.fp8]!, c.mode === "rceil" ? RCEIL : FLOOR))
              : (({ q, inv }) => ({ q, s: inv }))(libBlockwise(src, c.rows, c.cols, c.blockRows, c.blockCols, DT[c.fp8]!));
          expect(hex(got.q)).toBe(c.q);
          expect(hex(got.s)).toBe(c.scale);
        });
      // the scalar reference agrees with torch too
      const ref =
        c.kind === "mx"
          ? refMx(src, c.rows, c.cols, c.block, DT[c.fp8]!, c.mode === "rceil" ? RCEIL : FLOOR)
          : refBlockwise(src, c.rows, c.cols, c.blockRows, c.blockCols, DT[c.fp8]!);
      expect(hex(ref.q)).toBe(c.q);
      expect(hex("e" in ref ? ref.e : ref.inv)).toBe(c.scale);
    });
  }
});

describe("block scaling: exhaustive", () => {
  test("the e8m0 rule for every bf16 amax (FLOOR and RCEIL, e4m3 and e5m2)", () => {
    const out = new Uint8Array(1);
    for (const dt of [E4M3, E5M2])
      for (const mode of [FLOOR, RCEIL])
        for (let h = 0; h < 0x10000; h++) {
          const amax = fromBits(h << 16);
          expect(lib.fp8_cpu_mx_scale(out, amax, dt, mode)).toBe(0);
          if (out[0] !== mxScale(amax, dt, mode)) throw new Error(`amax bits ${h.toString(16)}: ${out[0]} vs ${mxScale(amax, dt, mode)}`);
        }
  });

  test("MX quantize of every bf16 value in 32-element blocks, every ISA", () => {
    // each block: 32 consecutive bit patterns, so amaxes and values span every exponent
    const src = new Uint16Array(0x10000).map((_, i) => i);
    for (const dt of [E4M3, E5M2])
      for (const mode of [FLOOR, RCEIL]) {
        const ref = refMx(src, 2048, 32, 32, dt, mode);
        for (const isa of ISAS)
          withIsa(isa, () => {
            const got = libMx(src, 2048, 32, 32, dt, mode);
            expect(hex(got.e)).toBe(hex(ref.e));
            expect(hex(got.q)).toBe(hex(ref.q));
          });
      }
  });

  test("1x128 blockwise quantize of every bf16 value, every ISA", () => {
    const src = new Uint16Array(0x10000).map((_, i) => i);
    for (const dt of [E4M3, E5M2]) {
      const ref = refBlockwise(src, 512, 128, 1, 128, dt);
      for (const isa of ISAS)
        withIsa(isa, () => {
          const got = libBlockwise(src, 512, 128, 1, 128, dt);
          sameBits(got.inv, ref.inv);
          expect(hex(got.q)).toBe(hex(ref.q));
        });
    }
  });
});

const arbCase = fc.record({
  rows: fc.integer({ min: 1, max: 40 }),
  cols: fc.integer({ min: 1, max: 300 }),
  br: fc.integer({ min: 1, max: 48 }),
  bc: fc.integer({ min: 1, max: 160 }),
  dt: fc.constantFrom(E4M3, E5M2),
  bf16: fc.boolean(),
  mode: fc.constantFrom(FLOOR, RCEIL),
  seed: fc.integer(),
  spread: fc.integer({ min: 0, max: 60 }),
});

function randomInput(rows: number, cols: number, bf16: boolean, seed: number, spread: number): Float32Array | Uint16Array {
  let s = seed >>> 0 || 1;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 2 ** 32);
  const x = new Float32Array(rows * cols);
  for (let i = 0; i < x.length; i++) x[i] = (rnd() * 2 - 1) * 2 ** Math.floor((rnd() - 0.5) * spread);
  if (!bf16) return x;
  const u = new Uint32Array(x.buffer);
  return Uint16Array.from(u, (v) => ((v + 0x7fff + ((v >>> 16) & 1)) >>> 16) & 0xffff);
}

describe("block scaling: properties (fast-check)", () => {
  test("blockwise quantize == scalar reference on every ISA; decode == fp8 value * inv_scale", () => {
    fc.assert(
      fc.property(arbCase, ({ rows, cols, br, bc, dt, bf16, seed, spread }) => {
        const src = randomInput(rows, cols, bf16, seed, spread);
        const ref = refBlockwise(src, rows, cols, br, bc, dt);
        for (const isa of ISAS)
          withIsa(isa, () => {
            const got = libBlockwise(src, rows, cols, br, bc, dt);
            expect(hex(got.q)).toBe(hex(ref.q));
            sameBits(got.inv, ref.inv);
            const dec = new Float32Array(rows * cols);
            expect(lib.fp8_cpu_dequantize_blockwise(dec, F32, got.q, dt, got.inv, rows, cols, br, bc)).toBe(0);
            const nbc = Math.ceil(cols / bc);
            for (let i = 0; i < dec.length; i++) {
              const r = Math.floor(i / cols), c = i % cols;
              const want = f32(DECODE[dt]![got.q[i]!]! * got.inv[Math.floor(r / br) * nbc + Math.floor(c / bc)]!);
              if (!Object.is(dec[i], want)) throw new Error(`decode ${i}: ${dec[i]} vs ${want}`);
            }
            // the bf16 decode is that f32 value rounded to nearest even
            const dec16 = new Uint16Array(rows * cols);
            expect(lib.fp8_cpu_dequantize_blockwise(dec16, BF16, got.q, dt, got.inv, rows, cols, br, bc)).toBe(0);
            const u = new Uint32Array(dec.buffer);
            for (let i = 0; i < dec16.length; i++) {
              const v = u[i]!;
              const want = (v & 0x7fffffff) > 0x7f800000 ? ((v >>> 16) | 0x40) & 0xffff : ((v + 0x7fff + ((v >>> 16) & 1)) >>> 16) & 0xffff;
              if (dec16[i] !== want) throw new Error(`bf16 decode ${i}`);
            }
          });
      }),
      { numRuns: 60 },
    );
  });

  test("MX quantize == scalar reference on every ISA; decode == fp8 value * 2^(E-127); error bounded", () => {
    fc.assert(
      fc.property(arbCase, ({ rows, cols, bc, dt, bf16, mode, seed, spread }) => {
        const src = randomInput(rows, cols, bf16, seed, spread);
        const ref = refMx(src, rows, cols, bc, dt, mode);
        for (const isa of ISAS)
          withIsa(isa, () => {
            const got = libMx(src, rows, cols, bc, dt, mode);
            expect(hex(got.e)).toBe(hex(ref.e));
            expect(hex(got.q)).toBe(hex(ref.q));
            const dec = new Float32Array(rows * cols);
            expect(lib.fp8_cpu_dequantize_mx(dec, F32, got.q, dt, got.e, rows, cols, bc)).toBe(0);
            const nbc = Math.ceil(cols / bc);
            for (let i = 0; i < dec.length; i++) {
              const e = got.e[Math.floor(i / cols) * nbc + Math.floor((i % cols) / bc)]!;
              const want = f32(DECODE[dt]![got.q[i]!]! * e8m0Value(e));
              if (!Object.is(dec[i], want)) throw new Error(`decode ${i}: ${dec[i]} vs ${want}`);
              // |x - decode| <= half an fp8 ulp at the element's binade (+ the smallest subnormal step), except saturation
              const x = loadF32(src, i).v;
              const step = 2 ** (Math.max(Math.floor(Math.log2(Math.abs(x) || 1e-45)), FMT[dt]!.emin + e - 127) - FMT[dt]!.mant);
              if (e !== 255 && Math.abs(x) <= FMT[dt]!.max * e8m0Value(e) && Math.abs(x - dec[i]!) > step / 2)
                throw new Error(`error at ${i}: x ${x} dec ${dec[i]} step ${step}`);
            }
          });
      }),
      { numRuns: 60 },
    );
  });
});

describe("block scaling: argument checks", () => {
  const q = new Uint8Array(64), s = new Float32Array(4), e = new Uint8Array(4), x = new Float32Array(64);
  const lastError = () => String(lib.fp8_last_error());
  test("bad dtypes, modes and block sizes are errors naming the function", () => {
    expect(lib.fp8_cpu_quantize_blockwise(q, s, F32, x, F32, 8, 8, 1, 4)).not.toBe(0);
    expect(lastError()).toContain("fp8_cpu_quantize_blockwise");
    expect(lib.fp8_cpu_quantize_blockwise(q, s, E4M3, x, E5M2, 8, 8, 1, 4)).not.toBe(0);
    expect(lib.fp8_cpu_quantize_blockwise(q, s, E4M3, x, F32, 8, 8, 0, 4)).not.toBe(0);
    expect(lastError()).toContain("block");
    expect(lib.fp8_cpu_quantize_mx(q, e, E4M3, x, F32, 2, 32, 32, 7)).not.toBe(0);
    expect(lastError()).toContain("mode");
    expect(lib.fp8_cpu_quantize_mx(q, e, E4M3, x, F32, -1, 32, 32, 0)).not.toBe(0);
    expect(lib.fp8_cpu_dequantize_mx(x, E4M3, q, E4M3, e, 2, 32, 32)).not.toBe(0);
    expect(lastError()).toContain("fp8_cpu_dequantize_mx");
    expect(lib.fp8_cpu_dequantize_blockwise(x, F32, null, E4M3, s, 2, 32, 1, 32)).not.toBe(0);
    expect(lastError()).toContain("NULL");
    expect(lib.fp8_cpu_mx_scale(e, 1, E4M3, 2)).not.toBe(0);
  });
});
