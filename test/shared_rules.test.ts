// One rule, one implementation: the places that used to carry their own copy of
// a rule now share it, and these tests pin the shared rule against every user.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { float8 } from "../src/index.ts";
import { cpuBackend, roundPow2Bits } from "../src/tensor/backend/index.ts";
import { lib, libraryPath, nativeView } from "../src/ffi/index.ts";
import { symbols as cudaSymbols } from "../src/ffi/cuda.ts";
import { dlopen } from "bun:ffi";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

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

describe("cast argument checks (libfp8/src/core/cast_checks.h): the CPU entry points and their CUDA twins answer a bad call in the same words", () => {
  const emuPath = join(dirname(libraryPath), "libfp8_cuda_emu.so");
  test.skipIf(!existsSync(emuPath))("each bad call gives one message, up to the function name and the d_ prefix of device pointers", () => {
    const emu = dlopen(emuPath, cudaSymbols).symbols;
    const F32 = 0, E4M3 = 2;
    const src = new Float32Array(4), scale = new Float32Array([1]), dst = new Uint8Array(4);
    const tables = new BigUint64Array(1), ints = new Int32Array(1);
    const cases: [string, () => number, () => number][] = [
      ["quantize: NULL destination", () => lib.fp8_cpu_quantize(null, E4M3, src, F32, 4, scale), () => emu.fp8_cuda_quantize(null, null, E4M3, src, F32, 4, scale)],
      ["quantize: not an fp8 dtype", () => lib.fp8_cpu_quantize(dst, F32, src, F32, 4, scale), () => emu.fp8_cuda_quantize(null, dst, F32, src, F32, 4, scale)],
      ["quantize: negative n", () => lib.fp8_cpu_quantize(dst, E4M3, src, F32, -1, scale), () => emu.fp8_cuda_quantize(null, dst, E4M3, src, F32, -1, scale)],
      ["quantize: NULL scale", () => lib.fp8_cpu_quantize(dst, E4M3, src, F32, 4, null), () => emu.fp8_cuda_quantize(null, dst, E4M3, src, F32, 4, null)],
      ["dequantize: NULL scale", () => lib.fp8_cpu_dequantize(src, F32, dst, E4M3, 4, null), () => emu.fp8_cuda_dequantize(null, src, F32, dst, E4M3, 4, null)],
      ["dequantize: fp8 destination", () => lib.fp8_cpu_dequantize(src, E4M3, dst, E4M3, 4, scale), () => emu.fp8_cuda_dequantize(null, src, E4M3, dst, E4M3, 4, scale)],
      ["convert: unknown dtype", () => lib.fp8_cpu_convert(dst, 99, src, F32, 4), () => emu.fp8_cuda_convert(null, dst, 99, src, F32, 4)],
      ["convert: NULL source", () => lib.fp8_cpu_convert(dst, E4M3, null, F32, 4), () => emu.fp8_cuda_convert(null, dst, E4M3, null, F32, 4)],
      ["amax: NULL source", () => lib.fp8_cpu_amax(scale, null, F32, 3), () => emu.fp8_cuda_amax(null, scale, null, F32, 3)],
      ["amax_to_scale: not an fp8 dtype", () => lib.fp8_cpu_amax_to_scale(scale, scale, src, F32, 4, 1, 0), () => emu.fp8_cuda_amax_to_scale(null, scale, scale, src, F32, 4, 1, 0)],
      ["sync_amax_history: history_len 0", () => lib.fp8_cpu_sync_amax_history(tables, tables, tables, ints, ints, 1, 0), () => emu.fp8_cuda_sync_amax_history(null, tables, tables, tables, ints, ints, 1, 0)],
      ["sync_amax_history: NULL table", () => lib.fp8_cpu_sync_amax_history(tables, null, tables, ints, ints, 1, 4), () => emu.fp8_cuda_sync_amax_history(null, tables, null, tables, ints, ints, 1, 4)],
    ];
    // The dtype sets are the device's (the CPU also takes float16 and the fnuz formats; cast_checks.h's
    // FP8_CHECKS_* hooks), so the list after "must be" may differ; the rule and the rest of the words may not.
    const dtypeList = /must be .*?, got /;
    const norm = (m: string) => m.replace(/^fp8_(cpu|cuda)_/, "").replace(/\bd_/g, "").replace(dtypeList, "must be <device dtypes>, got ");
    for (const [what, cpu, dev] of cases) {
      expect([what, cpu()]).toEqual([what, -1]);
      const cpuMsg = String(lib.fp8_last_error());
      expect([what, dev()]).toEqual([what, -1]);
      const devMsg = String(emu.fp8_cuda_last_error());
      expect([what, norm(devMsg)]).toEqual([what, norm(cpuMsg)]);
      expect(devMsg.startsWith("fp8_cuda_")).toBe(true);
    }
  });
});
