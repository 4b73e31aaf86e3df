// elementwise.ts — broadcasting binary ops (add/sub/mul/div) and unary ops
// (oneDNN eltwise), each with its gradient rule; dtype conversion.
import { Float8Error } from "../../errors.ts";
import { record } from "../../autograd/graph.ts";
import { isHighPrecision, type DType } from "../dtype.ts";
import { broadcastShapes } from "../shape.ts";
import { Tensor } from "../tensor.ts";
import * as dev from "../device_ops.ts";
import { describe, floatOperands } from "./common.ts";
import { sumTo } from "./reduce.ts";

const ADD = 0, SUB = 1, MUL = 2, DIV = 3;
const E = { RELU: 0, GELU_TANH: 1, GELU_ERF: 2, SILU: 3, TANH: 4, EXP: 5, LOG: 6, SQRT: 7, POW: 8, LINEAR: 9, ABS: 10, SIGMOID: 11 };
const NAMES = ["add", "sub", "mul", "div"];

function binaryRaw(a: Tensor, b: Tensor, alg: number): Tensor {
  const op = NAMES[alg];
  floatOperands(op, a, b);
  const shape = broadcastShapes(a.shape, b.shape, `${op} (${describe(a, b)})`);
  const out = Tensor.empty(shape, a.dtype, a.device);
  if (out.numel === 0) return out;
  dev.binaryInto(out, a, b, alg, op);
  return out;
}

/** alpha * x + beta elementwise (scalar arithmetic in f32). */
function linear(x: Tensor, alpha: number, beta: number, op: string): Tensor {
  return eltwiseRaw(x, E.LINEAR, alpha, beta, op);
}

function eltwiseRaw(x: Tensor, alg: number, alpha: number, beta: number, op: string): Tensor {
  floatOperands(op, x);
  const out = Tensor.empty(x.shape, x.dtype, x.device);
  dev.eltwiseInto(out, x, alg, alpha, beta, op);
  return out;
}

function eltwiseBackward(g: Tensor, x: Tensor, alg: number, alpha: number, beta: number, op: string): Tensor {
  const gg = g.dtype === x.dtype ? g : g.to({ dtype: x.dtype });
  floatOperands(op, gg, x);
  const out = Tensor.empty(x.shape, x.dtype, x.device);
  dev.eltwiseBackwardInto(out, gg, x, alg, alpha, beta, op);
  return out;
}

function unary(x: Tensor, alg: number, alpha: number, beta: number, op: string): Tensor {
  const out = eltwiseRaw(x, alg, alpha, beta, op);
  return record(out, op, [x], (g) => [eltwiseBackward(g, x, alg, alpha, beta, `${op}.backward`)]);
}

/** a + b (broadcasting; b may be a number). */
export function add(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === "number") return record(linear(a, 1, b, "add"), "add", [a], (g) => [g]);
  const out = binaryRaw(a, b, ADD);
  return record(out, "add", [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

/** a - b (broadcasting; b may be a number). */
export function sub(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === "number") return record(linear(a, 1, -b, "sub"), "sub", [a], (g) => [g]);
  const out = binaryRaw(a, b, SUB);
  return record(out, "sub", [a, b], (g) => [sumTo(g, a.shape), sumTo(neg(g), b.shape)]);
}

/** a * b (broadcasting; b may be a number). */
export function mul(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === "number") return record(linear(a, b, 0, "mul"), "mul", [a], (g) => [mul(g, b)]);
  const out = binaryRaw(a, b, MUL);
  return record(out, "mul", [a, b], (g) => [
    a.requiresGrad ? sumTo(mul(g, b), a.shape) : null,
    b.requiresGrad ? sumTo(mul(g, a), b.shape) : null,
  ]);
}

/** a / b (broadcasting; b may be a number). */
export function div(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === "number") return record(linear(a, 1 / b, 0, "div"), "div", [a], (g) => [mul(g, 1 / b)]);
  const out = binaryRaw(a, b, DIV);
  return record(out, "div", [a, b], (g) => [
    a.requiresGrad ? sumTo(div(g, b), a.shape) : null,
    b.requiresGrad ? sumTo(neg(div(mul(g, out), b)), b.shape) : null,
  ]);
}

/** -x */
export function neg(x: Tensor): Tensor {
  return record(linear(x, -1, 0, "neg"), "neg", [x], (g) => [neg(g)]);
}
/** e^x */
export const exp = (x: Tensor) => unary(x, E.EXP, 0, 0, "exp");
/** natural log */
export const log = (x: Tensor) => unary(x, E.LOG, 0, 0, "log");
/** square root */
export const sqrt = (x: Tensor) => unary(x, E.SQRT, 0, 0, "sqrt");
/** x ** exponent */
export const pow = (x: Tensor, exponent: number) => unary(x, E.POW, 1, exponent, "pow");
/** |x| */
export const abs = (x: Tensor) => unary(x, E.ABS, 0, 0, "abs");
/** max(x, 0) */
export const relu = (x: Tensor) => unary(x, E.RELU, 0, 0, "relu");
/** GELU, exact (erf) or tanh approximation, as torch's approximate= */
export const gelu = (x: Tensor, approximate: "none" | "tanh" = "none") =>
  unary(x, approximate === "tanh" ? E.GELU_TANH : E.GELU_ERF, 0, 0, "gelu");
/** x * sigmoid(x) */
export const silu = (x: Tensor) => unary(x, E.SILU, 1, 0, "silu");
/** tanh */
export const tanh = (x: Tensor) => unary(x, E.TANH, 0, 0, "tanh");
/** 1 / (1 + e^-x) */
export const sigmoid = (x: Tensor) => unary(x, E.SIGMOID, 0, 0, "sigmoid");

/** dtype conversion (round to nearest even; fp8 saturates). Differentiable between float dtypes. */
export function convert(x: Tensor, dtype: DType): Tensor {
  dev.requireLive(x, "to", "x");
  if (x.dtype === "int32" || dtype === "int32") {
    throw new Float8Error("to", `conversion between ${x.dtype} and ${dtype} is not supported`);
  }
  const out = Tensor.empty(x.shape, dtype, x.device);
  dev.convertInto(out, x, "to");
  if (!isHighPrecision(x.dtype) || !isHighPrecision(dtype)) return out;
  return record(out, "to", [x], (g) => [g.dtype === x.dtype ? g : convert(g, x.dtype)]);
}
