// bench/gpu/encoders.ts — the hardware fp8 encoder (cvt.rn.satfinite) against the reference
// (fp8_ref.h's integer code) on the device, for every float32 and bfloat16 bit pattern, each
// multiplied by every scale of SCALES as the casts do (fp8_cuda_encoder_check). bench/gpu/check.sh
// runs it first: the hardware encoder is libfp8_cuda's default, and when this finds any difference
// check.sh reports it and runs everything else with FP8_CUDA_CAST_KERNEL=reference.
//   bun bench/gpu/encoders.ts [--step N]     (--step: every N-th f32 pattern, for the emulator)
// Prints one line per case and a verdict; exit 0 when the encoders agree everywhere, 3 when not.
import { cuda } from "../../src/index.ts";

/** Unit scale, powers of two either way, and scales of the form fp8_max / amax that dynamic scaling computes. */
const SCALES = [1, 2 ** -8, 2 ** 8, 2 ** -30, 2 ** 30, 448 / 3.1415927, 57344 / 123.456, 448 / 1e-3, 1 / 7];

const stepArg = process.argv.indexOf("--step");
const f32Step = stepArg >= 0 ? Number(process.argv[stepArg + 1]) : 1;
if (!Number.isInteger(f32Step) || f32Step < 1) throw new Error(`--step: expected a positive integer, got ${process.argv[stepArg + 1]}`);

const ctx = cuda.device(0);
let differ = 0, cases = 0;
const t0 = performance.now();
for (const fp8 of ["float8_e4m3fn", "float8_e5m2"] as const) {
  for (const src of ["float32", "bfloat16"] as const) {
    const step = src === "float32" ? f32Step : 1;
    for (const scale of SCALES) {
      const { mismatches, first } = ctx.encoderCheck(fp8, src, scale, step);
      cases++;
      if (mismatches > 0) {
        differ++;
        console.log(`DIFFER ${src} -> ${fp8} scale ${scale}: ${mismatches} patterns, first 0x${first!.toString(16).padStart(src === "float32" ? 8 : 4, "0")}`);
      }
    }
  }
}
const patterns = f32Step === 1 ? "every" : `every ${f32Step}th`;
const s = ((performance.now() - t0) / 1000).toFixed(1);
if (differ === 0) console.log(`encoders: AGREE on ${patterns} f32 and every bf16 pattern, ${cases} cases (${SCALES.length} scales x 2 fp8 x 2 sources), ${s} s`);
else console.log(`encoders: DIFFER in ${differ} of ${cases} cases (${patterns} f32 / every bf16 pattern), ${s} s`);
process.exit(differ === 0 ? 0 : 3);
