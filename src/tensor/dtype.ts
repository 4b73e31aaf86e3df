// dtype.ts — tensor element types, with torch's names, and their native codes.
import { Float8Error } from "../errors.ts";

/**
 * Element types. fp8 types follow torch: e4m3fn (max 448, no inf), e5m2 (max 57344), and
 * AMD MI300's fnuz formats e4m3fnuz (max 240) and e5m2fnuz (max 57344): no inf, no negative
 * zero, one NaN (0x80); the fnuz formats run on the CPU only.
 */
export type DType = "float32" | "bfloat16" | "float16" | "float8_e4m3fn" | "float8_e5m2" | "float8_e4m3fnuz" | "float8_e5m2fnuz" | "int32";
/** The float8 subset of DType. */
export type Float8DType = "float8_e4m3fn" | "float8_e5m2" | "float8_e4m3fnuz" | "float8_e5m2fnuz";
/** The high-precision float dtypes a model computes in (float16: CPU only; its fp8 scales are clamped to 65504). */
export type HighPrecisionDType = "float32" | "bfloat16" | "float16";

/** Native enum value (fp8.h FP8_DTYPE_*) of each dtype. */
export const DTYPE_CODE: Record<DType, number> = {
  float32: 0,
  bfloat16: 1,
  float8_e4m3fn: 2,
  float8_e5m2: 3,
  int32: 4,
  float8_e4m3fnuz: 9,
  float8_e5m2fnuz: 10,
  float16: 11,
};

/** Bytes per element. */
export const ITEM_SIZE: Record<DType, number> = {
  float32: 4,
  bfloat16: 2,
  float8_e4m3fn: 1,
  float8_e5m2: 1,
  int32: 4,
  float8_e4m3fnuz: 1,
  float8_e5m2fnuz: 1,
  float16: 2,
};

/** Largest finite value of each float8 dtype. */
export const FP8_MAX: Record<Float8DType, number> = {
  float8_e4m3fn: 448,
  float8_e5m2: 57344,
  float8_e4m3fnuz: 240,
  float8_e5m2fnuz: 57344,
};

/** True for the float8 dtypes (e4m3fn, e5m2 and the fnuz pair). */
export function isFloat8(d: DType): d is Float8DType {
  return d === "float8_e4m3fn" || d === "float8_e5m2" || d === "float8_e4m3fnuz" || d === "float8_e5m2fnuz";
}

/** True for the fnuz float8 dtypes (float8_e4m3fnuz, float8_e5m2fnuz), which only the CPU runs. */
export function isFnuz(d: DType): boolean {
  return d === "float8_e4m3fnuz" || d === "float8_e5m2fnuz";
}

/** True for float32, bfloat16 and float16. */
export function isHighPrecision(d: DType): d is HighPrecisionDType {
  return d === "float32" || d === "bfloat16" || d === "float16";
}

/** Throws a Float8Error naming `op` when d is not a known dtype (own keys only: "toString" is not a dtype). */
export function assertDType(d: unknown, op: string): asserts d is DType {
  if (typeof d !== "string" || !Object.hasOwn(DTYPE_CODE, d)) {
    throw new Float8Error(op, `unknown dtype ${String(d)}; expected one of ${Object.keys(DTYPE_CODE).join(", ")}`);
  }
}
