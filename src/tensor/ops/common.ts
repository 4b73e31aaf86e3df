// common.ts — argument checks and error text shared by the ops.
import { Float8Error } from "../../errors.ts";
import { isHighPrecision } from "../dtype.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { sameDeviceAll } from "../device_ops.ts";

/** "shapes [2, 3] and [4], dtypes float32 and bfloat16" for error messages. */
export function describe(...ts: Tensor[]): string {
  const shapes = ts.map((t) => fmtShape(t.shape)).join(" and ");
  const dtypes = ts.map((t) => t.dtype).join(" and ");
  return ts.length === 1 ? `shape ${shapes}, dtype ${dtypes}` : `shapes ${shapes}, dtypes ${dtypes}`;
}

/** Checks the tensors are alive, float32/bfloat16, same dtype and device (one device check: device_ops.sameDeviceAll). */
export function floatOperands(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    t.ptrFor(op);
    if (!isHighPrecision(t.dtype)) {
      throw new Float8Error(op, `expects float32 or bfloat16 tensors, got ${describe(...ts)}`);
    }
  }
  if (ts.some((t) => t.dtype !== ts[0].dtype)) {
    throw new Float8Error(op, `dtype mismatch: ${describe(...ts)}`);
  }
  sameDeviceAll(op, ts);
}

/**
 * Integer index/target data as an Int32Array. Plain numbers are checked as they
 * are converted (the only pass over them): a non-integer, non-finite or out of
 * int32 range value is an error naming `op` and its position, never coerced
 * (1.7 is not row 1, 2^32 + 1 is not row 1, NaN is not 0).
 */
export function indexData(idx: Tensor | Int32Array | ArrayLike<number>, op: string): Int32Array {
  if (idx instanceof Int32Array) return idx;
  if (Array.isArray(idx) || ArrayBuffer.isView(idx)) {
    const src = idx as ArrayLike<unknown>;
    const out = new Int32Array(src.length);
    for (let i = 0; i < src.length; i++) {
      const v = src[i];
      if (typeof v !== "number" || !Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
        throw new Float8Error(op, `index ${typeof v === "number" ? v : typeof v} at position ${i} is not an integer in the int32 range`);
      }
      out[i] = v;
    }
    return out;
  }
  const t = idx as Tensor;
  if (t === null || typeof t !== "object" || typeof t.toInt32Array !== "function") {
    throw new Float8Error(op, `indices must be an int32 Tensor, an Int32Array or an array of integers, got ${t === null ? "null" : typeof t}`);
  }
  if (t.dtype !== "int32") throw new Float8Error(op, `indices must be int32, got dtype ${t.dtype}`);
  return t.toInt32Array();
}
