// device.ts — the CUDA device as TypeScript sees it: whether it is there (and
// if not, which piece is missing), one context per GPU (stream, cuBLASLt
// handle, GEMM plan cache), and DeviceBuffer, a dense row-major array in GPU
// memory that is freed deterministically (dispose(), `using`).
//
// Nothing here loads libfp8_cuda until a function is called, so importing the
// package on a CPU-only machine costs nothing.
import { Float8Error } from "../../errors.ts";
import { checkCuda, cudaLib, cudaProbe, type CudaProbe, type NativePtr } from "../../ffi/index.ts";
import { DTYPE_CODE, ITEM_SIZE, type DType } from "../dtype.ts";

let probed: CudaProbe | null = null;

/** The probe of library, driver and GPUs (cached after the first call). Never throws. */
export function probe(): CudaProbe {
  probed ??= cudaProbe();
  return probed;
}

/** True when libfp8_cuda loads, a driver is present and at least one GPU is visible. */
export function isAvailable(): boolean {
  return probe().available;
}

/** Static facts about one GPU. */
export interface DeviceInfo {
  readonly index: number;
  readonly name: string;
  readonly computeCapability: readonly [number, number];
  readonly smCount: number;
  readonly totalMemoryBytes: number;
}

/** Facts about GPU `index`; throws Float8Error("cuda", why) where there is none. */
export function deviceInfo(index = 0): DeviceInfo {
  requireAvailable(`cuda.deviceInfo(${index})`);
  const major = new Int32Array(1), minor = new Int32Array(1), sms = new Int32Array(1);
  const mem = new BigInt64Array(1), name = new Uint8Array(256);
  checkCuda(cudaLib().fp8_cuda_device_info(index, major, minor, sms, mem, name, name.length), "cuda.deviceInfo");
  const end = name.indexOf(0);
  return {
    index,
    name: new TextDecoder().decode(name.subarray(0, end < 0 ? name.length : end)),
    computeCapability: [major[0], minor[0]],
    smCount: sms[0],
    totalMemoryBytes: Number(mem[0]),
  };
}

function requireAvailable(op: string): void {
  const p = probe();
  if (!p.available) throw new Float8Error(op, `CUDA device requested but not available: ${p.reason}`);
}

/** Why a pointer comes back as a number: device addresses fit in 53 bits. */
function outPtr(): BigUint64Array {
  return new BigUint64Array(1);
}

/** A captured sequence of GPU work on one context, replayed with `launch()`. */
export class CudaGraph {
  #handle: NativePtr | null;
  constructor(readonly ctx: CudaContext, handle: NativePtr) {
    this.#handle = handle;
  }
  launch(): void {
    if (this.#handle === null) throw new Float8Error("CudaGraph.launch", "graph used after dispose()");
    checkCuda(cudaLib().fp8_cuda_graph_launch(this.ctx.handle, this.#handle), "CudaGraph.launch");
  }
  dispose(): void {
    if (this.#handle === null) return;
    checkCuda(cudaLib().fp8_cuda_graph_destroy(this.#handle), "CudaGraph.dispose");
    this.#handle = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** The fp8 encoder variant of a context's casts (see fp8_cuda_set_cast_kernel). */
export type CastKernel = "reference" | "hardware";

/** How a context's row-scaled GEMMs apply the row scales (see fp8_cuda_set_rowwise_gemm):
 * "auto" takes cuBLASLt's outer-vector scale mode where it is available, else "epilogue". */
export type RowwiseGemmPath = "auto" | "outer-vector" | "epilogue";
const ROWWISE_PATHS: readonly RowwiseGemmPath[] = ["auto", "outer-vector", "epilogue"];

/** One GPU's context: stream, cuBLASLt handle, workspace and GEMM plan cache. */
export class CudaContext {
  readonly info: DeviceInfo;
  #handle: NativePtr | null;
  #castKernel: CastKernel = "reference";
  #rowwiseGemm: RowwiseGemmPath = "auto";

  /** Prefer `cuda.device(index)`, which shares one context per GPU. */
  constructor(index = 0) {
    this.info = deviceInfo(index);
    const out = outPtr();
    checkCuda(cudaLib().fp8_cuda_ctx_create(index, out), `cuda.device(${index})`);
    this.#handle = Number(out[0]) as NativePtr;
    const k = new Int32Array(1);
    checkCuda(cudaLib().fp8_cuda_get_cast_kernel(this.#handle, k), `cuda.device(${index})`);
    this.#castKernel = k[0] === 1 ? "hardware" : "reference";
  }

  get index(): number {
    return this.info.index;
  }

  /** The native fp8_cuda_ctx_t; throws after dispose(). */
  get handle(): NativePtr {
    if (this.#handle === null) throw new Float8Error("cuda", `context of device ${this.index} used after dispose()`);
    return this.#handle;
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  /** Waits for all queued work; asynchronous GPU errors surface here. */
  synchronize(): void {
    checkCuda(cudaLib().fp8_cuda_synchronize(this.handle), "cuda.synchronize");
  }

  /**
   * The first out-of-range embedding index or cross-entropy target a kernel met on this context since
   * the last call (kernels record it on the device without a host sync), or null; reading clears it.
   * Meaningful after a synchronisation (a download or synchronize()).
   */
  takeIndexError(): { op: number; index: number; limit: number } | null {
    const op = new Int32Array(1), index = new BigInt64Array(1), limit = new BigInt64Array(1);
    checkCuda(cudaLib().fp8_cuda_take_index_error(this.handle, op, index, limit), "cuda.takeIndexError");
    return op[0] === 0 ? null : { op: op[0], index: Number(index[0]), limit: Number(limit[0]) };
  }

  /** Live device bytes and allocations made through this context. */
  memoryStats(): { liveBytes: number; liveAllocs: number } {
    const b = new BigInt64Array(1), a = new BigInt64Array(1);
    checkCuda(cudaLib().fp8_cuda_memory_stats(this.handle, b, a), "cuda.memoryStats");
    return { liveBytes: Number(b[0]), liveAllocs: Number(a[0]) };
  }

  /** Cached cuBLASLt plans (one per GEMM shape/dtype/epilogue seen). */
  gemmPlans(): number {
    const out = new BigInt64Array(1);
    checkCuda(cudaLib().fp8_cuda_gemm_plans(this.handle, out), "cuda.gemmPlans");
    return Number(out[0]);
  }

  /**
   * Compares the hardware fp8 encoder with the reference on the device: every `step`-th bit pattern of
   * `src` (float32: 2^32 patterns, bfloat16: 2^16), each multiplied by `scale` as the casts do. Returns the
   * number of patterns whose fp8 bytes differ and the first such pattern (null when none).
   */
  encoderCheck(fp8: "float8_e4m3fn" | "float8_e5m2", src: "float32" | "bfloat16", scale: number, step = 1): { mismatches: number; first: number | null } {
    const res = new Uint32Array(2);
    checkCuda(cudaLib().fp8_cuda_encoder_check(this.handle, fp8 === "float8_e5m2" ? 3 : 2, src === "bfloat16" ? 1 : 0, scale, step, res), "cuda.encoderCheck");
    return { mismatches: res[0]!, first: res[0] === 0 ? null : res[1]! };
  }

  get castKernel(): CastKernel {
    return this.#castKernel;
  }
  set castKernel(k: CastKernel) {
    if (k !== "reference" && k !== "hardware") throw new TypeError(`cuda.castKernel: expected "reference" or "hardware", got ${String(k)}`);
    checkCuda(cudaLib().fp8_cuda_set_cast_kernel(this.handle, k === "hardware" ? 1 : 0), "cuda.castKernel");
    this.#castKernel = k;
  }

  get rowwiseGemm(): RowwiseGemmPath {
    return this.#rowwiseGemm;
  }
  set rowwiseGemm(p: RowwiseGemmPath) {
    const code = ROWWISE_PATHS.indexOf(p);
    if (code < 0) throw new TypeError(`cuda.rowwiseGemm: expected "auto", "outer-vector" or "epilogue", got ${String(p)}`);
    checkCuda(cudaLib().fp8_cuda_set_rowwise_gemm(this.handle, code), "cuda.rowwiseGemm");
    this.#rowwiseGemm = p;
  }

  /** GPU milliseconds of the work `fn` queues (CUDA events around it; waits at the end). */
  timeMs(fn: () => void): number {
    checkCuda(cudaLib().fp8_cuda_timer_start(this.handle), "cuda.timeMs");
    fn();
    const ms = new Float32Array(1);
    checkCuda(cudaLib().fp8_cuda_timer_stop(this.handle, ms), "cuda.timeMs");
    return ms[0];
  }

  /** Records the GPU work `fn` queues (it does not run) into a replayable graph. */
  capture(fn: () => void): CudaGraph {
    checkCuda(cudaLib().fp8_cuda_graph_begin(this.handle), "cuda.capture");
    let failure: unknown = null;
    try {
      fn();
    } catch (e) {
      failure = e;
    }
    const out = outPtr();
    const status = cudaLib().fp8_cuda_graph_end(this.handle, out); // always end the capture
    if (failure !== null) {
      if (status === 0) cudaLib().fp8_cuda_graph_destroy(Number(out[0]) as NativePtr);
      throw failure;
    }
    checkCuda(status, "cuda.capture");
    return new CudaGraph(this, Number(out[0]) as NativePtr);
  }

  /** Frees the context and every buffer still allocated on it. */
  dispose(): void {
    if (this.#handle === null) return;
    const h = this.#handle;
    this.#handle = null;
    contexts.delete(this.index);
    checkCuda(cudaLib().fp8_cuda_ctx_destroy(h), "cuda.dispose");
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

const contexts = new Map<number, CudaContext>();

/** The shared context of GPU `index`, created on first use. Throws Float8Error naming the
 * missing piece (library not built, no driver, no GPU) where CUDA is not available. */
export function device(index = 0): CudaContext {
  let ctx = contexts.get(index);
  if (ctx === undefined || ctx.isDisposed) {
    requireAvailable(`cuda.device(${index})`);
    ctx = new CudaContext(index);
    contexts.set(index, ctx);
  }
  return ctx;
}

/** Host arrays that can hold each dtype's raw elements. */
export type HostArray = Float32Array | Uint16Array | Uint8Array | Int32Array;

function hostArrayFor(dtype: DType, n: number): HostArray {
  switch (dtype) {
    case "float32": return new Float32Array(n);
    case "bfloat16": return new Uint16Array(n);
    case "int32": return new Int32Array(n);
    default: return new Uint8Array(n);
  }
}

const shapeString = (s: readonly number[]) => `(${s.join(", ")})`;

/** Safety net only: frees a buffer the program forgot to dispose. */
const leaks = new FinalizationRegistry<{ ctx: CudaContext; ptr: NativePtr }>(({ ctx, ptr }) => {
  if (!ctx.isDisposed) cudaLib().fp8_cuda_free(ctx.handle, ptr);
});

/** A dense row-major array in device memory. bfloat16 elements travel as raw bits
 * (Uint16Array), float8 as bytes (Uint8Array). */
export class DeviceBuffer {
  readonly numel: number;
  readonly nbytes: number;
  #ptr: NativePtr | null;

  private constructor(readonly ctx: CudaContext, readonly shape: readonly number[], readonly dtype: DType) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Float8Error("DeviceBuffer", `bad shape ${shapeString(shape)} (${dtype})`);
    }
    this.numel = shape.reduce((a, b) => a * b, 1);
    this.nbytes = this.numel * ITEM_SIZE[dtype];
    const out = outPtr();
    checkCuda(cudaLib().fp8_cuda_malloc(ctx.handle, this.nbytes, out), `DeviceBuffer ${shapeString(shape)} ${dtype}`);
    this.#ptr = Number(out[0]) as NativePtr;
    leaks.register(this, { ctx, ptr: this.#ptr }, this);
  }

  /** Uninitialised device memory of `shape` and `dtype`. */
  static empty(ctx: CudaContext, shape: readonly number[], dtype: DType): DeviceBuffer {
    return new DeviceBuffer(ctx, [...shape], dtype);
  }

  /** A device copy of `data` (raw elements of `dtype`, numel = product of shape). */
  static from(ctx: CudaContext, data: HostArray, shape: readonly number[], dtype: DType): DeviceBuffer {
    const b = new DeviceBuffer(ctx, [...shape], dtype);
    try {
      b.upload(data);
    } catch (e) {
      b.dispose();
      throw e;
    }
    return b;
  }

  get ptr(): NativePtr {
    if (this.#ptr === null) throw new Float8Error("DeviceBuffer", `${shapeString(this.shape)} ${this.dtype} used after dispose()`);
    return this.#ptr;
  }

  get isDisposed(): boolean {
    return this.#ptr === null;
  }

  toString(): string {
    return `DeviceBuffer${shapeString(this.shape)} ${this.dtype} on cuda:${this.ctx.index}`;
  }

  /** Copies host `data` (its bytes must equal nbytes) into the buffer; returns when done. */
  upload(data: HostArray): void {
    if (data.byteLength !== this.nbytes) {
      throw new Float8Error("DeviceBuffer.upload", `${this} needs ${this.nbytes} bytes, got ${data.byteLength}`);
    }
    checkCuda(cudaLib().fp8_cuda_memcpy_h2d(this.ctx.handle, this.ptr, data, this.nbytes), "DeviceBuffer.upload");
  }

  /** A host copy of the raw elements (waits for queued work). */
  toHost(): HostArray {
    const out = hostArrayFor(this.dtype, this.numel);
    checkCuda(cudaLib().fp8_cuda_memcpy_d2h(this.ctx.handle, out, this.ptr, this.nbytes), "DeviceBuffer.toHost");
    return out;
  }

  dispose(): void {
    if (this.#ptr === null) return;
    const p = this.#ptr;
    this.#ptr = null;
    leaks.unregister(this);
    if (!this.ctx.isDisposed) checkCuda(cudaLib().fp8_cuda_free(this.ctx.handle, p), "DeviceBuffer.dispose");
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** The fp8.h dtype code of a buffer's dtype. */
export function code(b: DeviceBuffer): number {
  return DTYPE_CODE[b.dtype];
}
