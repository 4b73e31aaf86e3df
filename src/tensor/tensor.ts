// tensor.ts — Tensor: metadata (shape, dtype, device) + a native storage handle.
//
// Every tensor is dense and row-major. reshape() shares storage; everything
// else makes a new buffer. Ops live in src/tensor/ops/*; the methods here
// forward to them so that user code reads like torch (`x.matmul(w).relu()`).
import { Float8Error } from "../errors.ts";
import { lib, check, type NativePtr } from "../ffi/index.ts";
import { record, runBackward, setBackwardScopeHooks, type Node } from "../autograd/graph.ts";
import { DTYPE_CODE, ITEM_SIZE, assertDType, isFloat8, type DType } from "./dtype.ts";
import { Storage, escapeScope, outsideScope, tidy, track, type Disposable } from "./storage.ts";
import { backendFor, type Backend, type Device } from "./backend/index.ts";
import { checkShape, fmtShape, numel, sameShape, type Shape } from "./shape.ts";
import { fillNormal, fillUniform } from "./random.ts";
import * as ew from "./ops/elementwise.ts";
import * as red from "./ops/reduce.ts";
import * as mv from "./ops/movement.ts";
import * as la from "./ops/linalg.ts";
import * as nnf from "./ops/nn.ts";

export type { Device } from "./backend/index.ts";

/** Options accepted by tensor factories. */
export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function checkDevice(device: Device | undefined, op: string): Device {
  return backendFor(device, op).device;
}

/** A dense n-dimensional array in native memory, with autograd. */
export class Tensor implements Disposable {
  readonly shape: readonly number[];
  readonly numel: number;
  dtype: DType;
  device: Device;
  requiresGrad = false;
  grad: Tensor | null = null;
  gradFn: Node | null = null;
  kept = false;
  private storage: Storage | null;

  /** Wraps an existing storage (internal; use the factories). */
  constructor(storage: Storage, shape: Shape, dtype: DType, device: Device = "cpu") {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.numel = numel(shape);
    this.dtype = dtype;
    this.device = device;
    storage.retain();
    track(this);
  }

  /** An uninitialised tensor. */
  static empty(shape: Shape, dtype: DType = "float32", device: Device = "cpu"): Tensor {
    assertDType(dtype, "empty");
    const s = checkShape(shape as number[], "empty", ITEM_SIZE[dtype]);
    checkDevice(device, "empty");
    return new Tensor(new Storage(numel(s) * ITEM_SIZE[dtype], device), s, dtype, device);
  }

  /** A tensor over a copy of raw storage bytes (e.g. fp8 bytes, bf16 bits). */
  static fromBytes(bytes: Uint8Array, opts: { shape: Shape; dtype: DType; device?: Device }): Tensor {
    assertDType(opts.dtype, "fromBytes");
    const shape = checkShape(opts.shape as number[], "fromBytes", ITEM_SIZE[opts.dtype]);
    const need = numel(shape) * ITEM_SIZE[opts.dtype];
    if (bytes.byteLength !== need) {
      throw new Float8Error(
        "fromBytes",
        `got ${bytes.byteLength} bytes but shape ${fmtShape(shape)} of dtype ${opts.dtype} needs ${need}`,
      );
    }
    const t = Tensor.empty(shape, opts.dtype, opts.device);
    t.backend.upload(t.ptrFor("fromBytes"), bytes, need);
    return t;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.storage === null;
  }

  /** A leaf is a tensor that no recorded op produced. */
  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  /** Size of dim d (negative counts from the end). */
  size(d: number): number {
    return this.shape[d < 0 ? d + this.ndim : d];
  }

  /** The backend of this tensor's device (its memory and kernels). */
  get backend(): Backend {
    return backendFor(this.device, "backend");
  }

  /** Native pointer; throws if disposed. `op` names the caller for the error. */
  ptrFor(op: string): NativePtr {
    if (!this.storage) {
      throw new Float8Error(op, `tensor of shape ${fmtShape(this.shape)} and dtype ${this.dtype} was disposed`);
    }
    return this.storage.ptr;
  }

  /** Bytes of storage (numel * itemsize). */
  get nbytes(): number {
    return this.numel * ITEM_SIZE[this.dtype];
  }

  /** A live view of the raw storage (no copy). Internal; prefer bytes(). */
  rawView(): ArrayBuffer {
    this.ptrFor("rawView");
    if (!this.backend.hostAccessible) {
      throw new Float8Error("rawView", `tensor of shape ${fmtShape(this.shape)} and dtype ${this.dtype} is in ${this.device} memory; copy it with .to({ device: "cpu" }) first`);
    }
    return this.storage!.view();
  }

  /** Frees the native buffer now (idempotent). The tensor is unusable afterwards. */
  dispose(): void {
    if (this.storage) {
      const s = this.storage;
      this.storage = null;
      s.release();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Exempts this tensor from tidy() disposal; returns it. */
  keep(): this {
    this.kept = true;
    return this;
  }

  /** A tensor sharing this storage with another shape (same numel). Internal. */
  shareWith(shape: Shape): Tensor {
    this.ptrFor("reshape");
    return new Tensor(this.storage!, shape, this.dtype, this.device);
  }

  /** Makes this tensor take over `other`'s storage and dtype (in-place
   * replacement that keeps identity, used by Module.to). */
  assign(other: Tensor): void {
    if (!sameShape(this.shape, other.shape)) {
      throw new Float8Error("assign", `shape ${fmtShape(other.shape)} does not match ${fmtShape(this.shape)}`);
    }
    other.ptrFor("assign");
    const s = (other as unknown as { storage: Storage }).storage;
    s.retain();
    this.storage?.release();
    this.storage = s;
    this.dtype = other.dtype;
    this.device = other.device;
  }

  /**
   * Copies `src`'s values into this tensor's own memory (torch's copy_): same
   * shape and dtype, any devices. The storage stays where it is, which is what
   * a captured CUDA graph needs of its inputs (refill them, then replay). Not
   * recorded by autograd.
   */
  copyFrom(src: Tensor): this {
    const op = "copyFrom";
    if (!(src instanceof Tensor)) throw new Float8Error(op, "expects a Tensor");
    if (!sameShape(this.shape, src.shape) || this.dtype !== src.dtype) {
      throw new Float8Error(op, `source of shape ${fmtShape(src.shape)} and dtype ${src.dtype} does not match ${fmtShape(this.shape)} ${this.dtype}`);
    }
    const dst = this.ptrFor(op), from = src.ptrFor(op), n = this.nbytes;
    if (n === 0 || dst === from) return this;
    if (this.device === src.device) this.backend.copy(dst, from, n);
    else if (src.backend.hostAccessible) this.backend.upload(dst, from, n);
    else if (this.backend.hostAccessible) src.backend.download(dst, from, n);
    else {
      const host = src.to({ device: "cpu" });
      this.backend.upload(dst, host.ptrFor(op), n);
      host.dispose();
    }
    return this;
  }

  /** Decoded values as a new Float32Array (fp8 and bf16 decode exactly). */
  toArray(): Float32Array {
    const out = new Float32Array(this.numel);
    if (this.numel === 0) return out;
    if (!this.backend.hostAccessible) return this.onHost((h) => h.toArray());
    if (this.dtype === "int32") {
      out.set(new Int32Array(this.rawView(), 0, this.numel));
      return out;
    }
    check(lib.fp8_cpu_convert(out, 0, this.ptrFor("toArray"), DTYPE_CODE[this.dtype], this.numel), "toArray");
    return out;
  }

  /** Values of an int32 tensor. */
  toInt32Array(): Int32Array {
    if (this.dtype !== "int32") throw new Float8Error("toInt32Array", `dtype is ${this.dtype}, expected int32`);
    if (!this.backend.hostAccessible) return this.onHost((h) => h.toInt32Array());
    return new Int32Array(this.rawView(), 0, this.numel).slice();
  }

  /** A copy of the raw storage bytes. */
  bytes(): Uint8Array {
    if (this.numel === 0) return new Uint8Array(0);
    if (!this.backend.hostAccessible) {
      const out = new Uint8Array(this.nbytes);
      this.backend.download(out, this.ptrFor("bytes"), this.nbytes);
      return out;
    }
    return new Uint8Array(this.rawView(), 0, this.nbytes).slice();
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) throw new Float8Error("item", `tensor of shape ${fmtShape(this.shape)} has ${this.numel} elements, not 1`);
    return this.toArray()[0];
  }

  /** fn of a host copy of this tensor (disposed afterwards). */
  private onHost<T>(fn: (h: Tensor) => T): T {
    const h = transfer(this, "cpu");
    try {
      return fn(h);
    } finally {
      h.dispose();
    }
  }

  /**
   * Converts dtype (round to nearest even; fp8 saturates) and/or moves to a
   * device ("cpu" or "cuda"). Returns this tensor when nothing changes.
   * Differentiable between float dtypes and across devices.
   */
  to(opts: { dtype?: DType; device?: Device }): Tensor {
    const device = checkDevice(opts.device ?? this.device, "to");
    const dtype = opts.dtype ?? this.dtype;
    assertDType(dtype, "to");
    const converted = dtype === this.dtype ? this : ew.convert(this, dtype);
    if (device === this.device) return converted;
    const moved = transfer(converted, device);
    const from = this.device;
    return record(moved, "to", [converted], (g) => [transfer(g, from)]);
  }

  /** A new tensor with the same values, detached from the graph. */
  detach(): Tensor {
    const out = Tensor.empty(this.shape, this.dtype, this.device);
    if (this.nbytes > 0) this.backend.copy(out.ptrFor("detach"), this.ptrFor("detach"), this.nbytes);
    return out;
  }

  /** A copy that stays in the graph. */
  clone(): Tensor {
    const src = this;
    return record(this.detach(), "clone", [this], (g) => [g.dtype === src.dtype ? g : g.to({ dtype: src.dtype })]);
  }

  /**
   * Backpropagates from this tensor (a scalar unless `gradient`, of this
   * tensor's shape, is given). Gradients accumulate into the leaves' `.grad`.
   * Every intermediate gradient is freed when it returns, and, as in torch
   * without retain_graph, each graph node frees what it saved for backward
   * once used; pass `{ retainGraph: true }` to backpropagate through the
   * graph again.
   */
  backward(gradient?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    tidy(() => runBackward(this, gradient, opts));
  }

  /** Ones with this tensor's shape and dtype. */
  onesLike(): Tensor {
    return full(this.shape, 1, { dtype: this.dtype, device: this.device });
  }

  /** Zeros with this tensor's shape and dtype. */
  zerosLike(): Tensor {
    return full(this.shape, 0, { dtype: this.dtype, device: this.device });
  }

  toString(): string {
    const head = this.numel <= 8 && !this.isDisposed ? ` values=[${[...this.toArray()].map((v) => +v.toPrecision(5)).join(", ")}]` : "";
    return `Tensor(shape=${fmtShape(this.shape)}, dtype=${this.dtype}, device=${this.device}${this.requiresGrad ? ", requiresGrad" : ""}${head})`;
  }

  // ---- ops (defined in src/tensor/ops) ----
  add(o: Tensor | number): Tensor { return ew.add(this, o); }
  sub(o: Tensor | number): Tensor { return ew.sub(this, o); }
  mul(o: Tensor | number): Tensor { return ew.mul(this, o); }
  div(o: Tensor | number): Tensor { return ew.div(this, o); }
  neg(): Tensor { return ew.neg(this); }
  exp(): Tensor { return ew.exp(this); }
  log(): Tensor { return ew.log(this); }
  sqrt(): Tensor { return ew.sqrt(this); }
  pow(exponent: number): Tensor { return ew.pow(this, exponent); }
  abs(): Tensor { return ew.abs(this); }
  relu(): Tensor { return ew.relu(this); }
  gelu(approximate: "none" | "tanh" = "none"): Tensor { return ew.gelu(this, approximate); }
  silu(): Tensor { return ew.silu(this); }
  tanh(): Tensor { return ew.tanh(this); }
  sigmoid(): Tensor { return ew.sigmoid(this); }
  sum(dim?: number | number[], keepdim = false): Tensor { return red.sum(this, dim, keepdim); }
  mean(dim?: number | number[], keepdim = false): Tensor { return red.mean(this, dim, keepdim); }
  max(dim?: number | number[], keepdim = false): Tensor { return red.max(this, dim, keepdim); }
  softmax(dim = -1): Tensor { return nnf.softmax(this, dim); }
  logSoftmax(dim = -1): Tensor { return nnf.logSoftmax(this, dim); }
  matmul(o: Tensor): Tensor { return la.matmul(this, o); }
  reshape(shape: readonly number[]): Tensor { return mv.reshape(this, shape); }
  view(shape: readonly number[]): Tensor { return mv.reshape(this, shape); }
  flatten(startDim = 0, endDim = -1): Tensor { return mv.flatten(this, startDim, endDim); }
  unsqueeze(dim: number): Tensor { return mv.unsqueeze(this, dim); }
  squeeze(dim?: number): Tensor { return mv.squeeze(this, dim); }
  argmax(dim = -1): Tensor { return red.argmax(this, dim); }
  transpose(d0: number, d1: number): Tensor { return mv.transpose(this, d0, d1); }
  get T(): Tensor { return mv.transpose(this, -2, -1); }
  permute(dims: readonly number[]): Tensor { return mv.permute(this, dims); }
  slice(dim: number, start: number, end?: number): Tensor { return mv.slice(this, dim, start, end); }
  maskedFill(mask: Tensor, value: number): Tensor { return nnf.maskedFill(this, mask, value); }
}

setBackwardScopeHooks({ outside: outsideScope, escape: escapeScope });

/** A copy of x in `device` memory (not recorded for autograd). */
function transfer(x: Tensor, device: Device): Tensor {
  const out = Tensor.empty(x.shape, x.dtype, device);
  const n = x.nbytes;
  if (n === 0) return out;
  const src = x.backend, dst = out.backend;
  if (src.hostAccessible) dst.upload(out.ptrFor("to"), x.ptrFor("to"), n);
  else if (dst.hostAccessible) src.download(out.ptrFor("to"), x.ptrFor("to"), n);
  else {
    const staged = new Uint8Array(n); // between two devices: through the host
    src.download(staged, x.ptrFor("to"), n);
    dst.upload(out.ptrFor("to"), staged, n);
  }
  return out;
}

/** A Float32Array of n elements, or a Float8Error naming op when JS cannot allocate it. */
function hostFloats(n: number, op: string): Float32Array {
  try {
    return new Float32Array(n);
  } catch (e) {
    throw new Float8Error(op, `cannot allocate ${n} float32 values in host memory (${(e as Error).message})`);
  }
}

function toFloat32(data: ArrayLike<number>, op: string): Float32Array {
  if (data instanceof Float32Array) return data;
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (typeof v !== "number") throw new Float8Error(op, `data[${i}] is ${typeof v}, expected a number`);
    out[i] = v;
  }
  return out;
}

function flattenNested(data: unknown, shape: number[], out: number[], depth: number, op: string): void {
  if (Array.isArray(data)) {
    if (shape.length <= depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new Float8Error(op, "ragged nested array: rows have different lengths");
    for (const d of data) flattenNested(d, shape, out, depth + 1, op);
  } else {
    if (depth !== shape.length) throw new Float8Error(op, "ragged nested array: mixed depths");
    if (typeof data !== "number") throw new Float8Error(op, `expected a number, got ${typeof data}`);
    out.push(data);
  }
}

/**
 * Creates a tensor from values (numbers, nested arrays, or a Float32Array /
 * Int32Array), converted to `dtype` with round-to-nearest-even.
 */
export function tensor(
  data: ArrayLike<number> | number | readonly unknown[],
  opts: TensorOptions & { shape?: readonly number[] } = {},
): Tensor {
  const dtype = opts.dtype ?? (data instanceof Int32Array ? "int32" : "float32");
  assertDType(dtype, "tensor");
  let values: ArrayLike<number>;
  let inferred: number[];
  if (typeof data === "number") {
    values = [data];
    inferred = [];
  } else if (Array.isArray(data) && data.some((d) => Array.isArray(d))) {
    const flat: number[] = [];
    inferred = [];
    flattenNested(data, inferred, flat, 0, "tensor");
    values = flat;
  } else {
    values = data as ArrayLike<number>;
    inferred = [values.length];
  }
  const shape = checkShape(opts.shape ?? inferred, "tensor", ITEM_SIZE[dtype]);
  if (numel(shape) !== values.length) {
    throw new Float8Error("tensor", `shape ${fmtShape(shape)} needs ${numel(shape)} values, got ${values.length}`);
  }
  const device = checkDevice(opts.device, "tensor");
  if (device !== "cpu") {
    const host = tensor(values, { dtype, shape });
    const t = transfer(host, device);
    host.dispose();
    t.requiresGrad = !!opts.requiresGrad;
    return t;
  }
  const t = Tensor.empty(shape, dtype, device);
  if (t.numel > 0) {
    if (dtype === "int32") {
      const view = new Int32Array(t.rawView(), 0, t.numel);
      for (let i = 0; i < t.numel; i++) {
        const v = values[i];
        if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
          throw new Float8Error("tensor", `int32 data[${i}] = ${v} is not an integer in the int32 range`);
        }
        view[i] = v;
      }
    } else {
      check(lib.fp8_cpu_convert(t.ptrFor("tensor"), DTYPE_CODE[dtype], toFloat32(values, "tensor"), 0, t.numel), "tensor");
    }
  }
  t.requiresGrad = !!opts.requiresGrad;
  return t;
}

/** A tensor filled with `value`. */
export function full(shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
  const dtype = opts.dtype ?? "float32";
  assertDType(dtype, "full");
  if (typeof value !== "number") throw new Float8Error("full", `fill value is ${typeof value}, expected a number`);
  if (dtype === "int32" && !(Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31)) {
    throw new Float8Error("full", `fill value ${value} is not an int32`);
  }
  const t = Tensor.empty(checkShape(shape, "full", ITEM_SIZE[dtype]), dtype, checkDevice(opts.device, "full"));
  if (isFloat8(dtype)) {
    const tmp = tensor(new Float32Array(t.numel).fill(value), { shape, dtype });
    t.backend.upload(t.ptrFor("full"), tmp.ptrFor("full"), t.nbytes);
    tmp.dispose();
  } else if (t.numel > 0) {
    t.backend.fill(t.ptrFor("full"), DTYPE_CODE[dtype], t.numel, value, "full");
  }
  t.requiresGrad = !!opts.requiresGrad;
  return t;
}

/** Zeros. */
export function zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return full(shape, 0, opts);
}

/** Ones. */
export function ones(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return full(shape, 1, opts);
}

/** Standard normal samples from the seeded global generator (see manualSeed). */
export function randn(shape: readonly number[], opts: TensorOptions & { mean?: number; std?: number } = {}): Tensor {
  const v = hostFloats(numel(checkShape(shape, "randn", 4)), "randn");
  fillNormal(v, opts.mean ?? 0, opts.std ?? 1);
  return tensor(v, { ...opts, shape });
}

/** Uniform samples in [low, high) from the seeded global generator. */
export function rand(shape: readonly number[], opts: TensorOptions & { low?: number; high?: number } = {}): Tensor {
  const v = hostFloats(numel(checkShape(shape, "rand", 4)), "rand");
  fillUniform(v, opts.low ?? 0, opts.high ?? 1);
  return tensor(v, { ...opts, shape });
}

/** Stacks/joins tensors along an existing dim. Differentiable. */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return mv.cat(tensors, dim);
}
