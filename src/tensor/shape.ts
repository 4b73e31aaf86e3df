// shape.ts — shape arithmetic shared by the ops: numel, strides, broadcasting, dims.
import { Float8Error } from "../errors.ts";

/** A tensor shape: one non-negative size per dim. */
export type Shape = readonly number[];

/** Number of elements of a shape (1 for a scalar). */
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (d === 0) return 0; // not Infinity * 0 when other dims are huge
    n *= d;
  }
  return n;
}

/** Row-major strides, in elements. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** "[2, 3]": a shape as error messages print it. */
export function fmtShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

/** Whether two shapes are equal. */
export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Numpy broadcasting of two shapes; throws naming the op when incompatible. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Float8Error(op, `shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** shape padded with leading 1s to n dims. */
export function padShape(shape: Shape, n: number): number[] {
  return [...new Array<number>(n - shape.length).fill(1), ...shape];
}

/** Normalises a possibly negative dim; throws naming the op when out of range. */
export function normDim(dim: number, ndim: number, op: string): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= Math.max(ndim, 1)) {
    throw new Float8Error(op, `dim ${dim} is out of range for a tensor with ${ndim} dims`);
  }
  return d;
}

/**
 * The most elements, and the most bytes, one tensor may have: 2^46 (64 TiB),
 * libfp8's own bound (FP8_MAX_ELEMS in libfp8/src/core/internal.h). Below it every
 * element and byte count is an exact JS integer and fits the C ABI's int64.
 */
export const MAX_TENSOR_ELEMENTS = 2 ** 46;

/**
 * Validates a shape where it is made (factories, reshape, every op's output via
 * Tensor.empty): an array of non-negative safe-integer dims whose element count,
 * and byte count at `itemSize` bytes per element, are at most 2^46. Throws a
 * Float8Error naming `op` otherwise; never lets a wrapped size reach the allocator.
 */
export function checkShape(shape: readonly number[], op: string, itemSize = 1): number[] {
  if (!Array.isArray(shape)) {
    throw new Float8Error(op, `invalid shape ${describe(shape)}: expected an array of dims`);
  }
  let n = 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      throw new Float8Error(op, `invalid shape ${describe(shape)}: dim ${i} is ${describe(d)}; dims must be non-negative integers`);
    }
    // capped at 2^47 so that it stays exact (and never Infinity or NaN); a dim of 0 still makes it 0
    n = Math.min(n * d, 2 * MAX_TENSOR_ELEMENTS);
  }
  if (n > MAX_TENSOR_ELEMENTS || n * itemSize > MAX_TENSOR_ELEMENTS) {
    throw new Float8Error(op, `shape ${describe(shape)} has more than 2^46 elements or bytes (${itemSize} bytes per element): too large`);
  }
  return [...shape];
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(describe).join(", ")}]`;
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "bigint") return `${v}n`;
  return v === null ? "null" : typeof v;
}
