// shape.ts — shape arithmetic shared by the ops: numel, strides, broadcasting, dims.
import { Float8Error } from "../errors.ts";

/** A tensor shape: one non-negative size per dim. */
export type Shape = readonly number[];

/** Number of elements of a shape (1 for a scalar). */
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
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

/** Validates a user-supplied shape. */
export function checkShape(shape: readonly number[], op: string): number[] {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Float8Error(op, `invalid shape ${JSON.stringify(shape)}: dims must be non-negative integers`);
  }
  return [...shape];
}
