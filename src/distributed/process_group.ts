// process_group.ts — the process group (one per process, over every rank that
// mpirun started) and the collectives on Tensors, torch.distributed-style.
//
// Collectives run in libfp8_dist: CPU tensors through MPI; GPU buffers
// (cuda.DeviceBuffer) through NCCL (backend "nccl"), ordered on the stream of
// the buffer's CUDA context. Every rank must call the same collectives in
// the same order. A collective that waits longer than `timeoutMs` fails with an
// error naming it. The `key` option names a call site: the first time a
// (collective, key) pair is used, the ranks compare dtype and shape and a
// mismatch is an error on every rank instead of a hang.
import { Float8Error } from "../errors.ts";
import { distLib, checkDist, checkCuda, cudaLib, cudaProbe, prepareNcclPlugin, type NativePtr } from "../ffi/index.ts";
import { DTYPE_CODE, type DType } from "../tensor/dtype.ts";
import { fmtShape } from "../tensor/shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { setAmaxReducer } from "../float8/convert.ts";
import { DeviceBuffer, device as cudaDevice, type CudaContext } from "../tensor/backend/cuda_device.ts";
import { currentCudaDevice, setCudaDevice } from "../tensor/backend/index.ts";

/** Collective engine: MPI for host tensors, NCCL for device buffers. */
export type Backend = "mpi" | "nccl";
/** Reduction of allReduce / reduceScatter. */
export type ReduceOp = "sum" | "max" | "avg";
/** The collectives counted by the byte counters. */
export type CollectiveKind = "allReduce" | "allGather" | "reduceScatter" | "broadcast" | "barrier";

/** Options of initProcessGroup. */
export interface ProcessGroupOptions {
  /** "mpi" (CPU tensors; default) or "nccl" (cuda tensors through NCCL, CPU tensors still through MPI) */
  backend?: Backend;
  /** how long a collective waits for the other ranks before it fails, in ms (0 = forever);
   * default $FLOAT8_DIST_TIMEOUT_MS or 300000 */
  timeoutMs?: number;
  /** cross-rank dtype/shape check: on the first use of each call site (default), always, or off */
  shapeCheck?: "first" | "always" | "off";
}

/** Options shared by the collectives. */
export interface CollectiveOptions {
  /** names the call site for the first-use shape check (equal on every rank) */
  key?: string;
}

const BACKEND_CODE: Record<Backend, number> = { mpi: 0, nccl: 1 };
const OP_CODE: Record<ReduceOp, number> = { sum: 0, max: 1, avg: 2 };
const CHECK_CODE = { off: 0, first: 1, always: 2 } as const;
const KINDS: CollectiveKind[] = ["allReduce", "allGather", "reduceScatter", "broadcast", "barrier"];

let group: { rank: number; size: number; localRank: number; backend: Backend } | null = null;
/** fp8_dist_init was called: MPI may be running even if the init then failed (e.g. NCCL without a GPU). */
let mpiStarted = false;

function requireGroup(op: string): { rank: number; size: number } {
  if (!group) throw new Float8Error(op, "no process group: call initProcessGroup() first (and run under mpirun, e.g. 'bun run launch -n 2 script.ts')");
  return group;
}

function readInt(fn: (out: Int32Array) => number, op: string): number {
  const out = new Int32Array(1);
  checkDist(fn(out), op);
  return out[0];
}

/**
 * Joins the job that mpirun started (a process started without mpirun is a
 * world of one). Installs the cross-rank MAX used by
 * syncFloat8AmaxAndScaleHistory. Returns this rank and the world size.
 */
export function initProcessGroup(opts: ProcessGroupOptions = {}): { rank: number; worldSize: number } {
  const op = "initProcessGroup";
  if (group) throw new Float8Error(op, "the process group is already initialised");
  const backend = opts.backend ?? "mpi";
  if (typeof backend !== "string" || !Object.hasOwn(BACKEND_CODE, backend)) throw new Float8Error(op, `unknown backend '${String(backend)}'; expected "mpi" or "nccl"`);
  const timeoutMs = opts.timeoutMs ?? Number(process.env.FLOAT8_DIST_TIMEOUT_MS ?? 300000);
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new Float8Error(op, `timeoutMs must be >= 0, got ${timeoutMs}`);
  const check = opts.shapeCheck ?? "first";
  if (typeof check !== "string" || !Object.hasOwn(CHECK_CODE, check)) throw new Float8Error(op, `shapeCheck must be "first", "always" or "off", got '${String(check)}'`);
  if (backend === "nccl") prepareNcclPlugin(); // NCCL found without LD_LIBRARY_PATH (src/ffi/runtime_deps.ts)
  const d = distLib();
  if (!mpiStarted) process.once("exit", finalizeOnCleanExit);
  mpiStarted = true;
  checkDist(d.fp8_dist_init(BACKEND_CODE[backend], Math.round(timeoutMs)), op);
  checkDist(d.fp8_dist_set_shape_check(CHECK_CODE[check]), op);
  group = {
    rank: readInt((o) => d.fp8_dist_rank(o), op),
    size: readInt((o) => d.fp8_dist_size(o), op),
    localRank: readInt((o) => d.fp8_dist_local_rank(o), op),
    backend,
  };
  // one collective for every layer's amaxes, on their device (NCCL: on the compute stream)
  setAmaxReducer((packed) => void allReduce(packed, "max", { key: "float8.syncAmaxAndScaleHistory" }));
  // NCCL binds this rank to GPU local_rank % count: "cuda" tensors live there too
  if (backend === "nccl") setCudaDevice(group.localRank % Math.max(1, cudaProbe().deviceCount));
  return { rank: group.rank, worldSize: group.size };
}

// A script that ends without destroyProcessGroup() still leaves MPI cleanly
// (mpirun reports ranks that exit without MPI_Finalize). After a failure the
// other ranks may be stuck, so then we leave it to mpirun to end the job.
function finalizeOnCleanExit(code: number): void {
  if (mpiStarted && code === 0) {
    try {
      destroyProcessGroup();
    } catch {
      // exiting anyway
    }
  }
}

/** Leaves the group (MPI_Finalize). One process group per process. */
export function destroyProcessGroup(): void {
  if (!mpiStarted) return;
  mpiStarted = false;
  group = null;
  streamOf = null;
  setAmaxReducer(null);
  checkDist(distLib().fp8_dist_finalize(), "destroyProcessGroup");
}

/** Whether initProcessGroup has run (and destroyProcessGroup has not). */
export function isInitialized(): boolean {
  return group !== null;
}

/** This process's rank, 0..worldSize-1. */
export function getRank(): number {
  return requireGroup("getRank").rank;
}

/** Number of processes in the group. */
export function getWorldSize(): number {
  return requireGroup("getWorldSize").size;
}

/** Rank among the processes on this machine (which GPU a rank uses). */
export function getLocalRank(): number {
  requireGroup("getLocalRank");
  return group!.localRank;
}

/** The backend the group was created with. */
export function getBackend(): Backend {
  requireGroup("getBackend");
  return group!.backend;
}

/** Changes the collective timeout (ms; 0 = forever). */
export function setCollectiveTimeout(timeoutMs: number): void {
  if (!(timeoutMs >= 0)) throw new Float8Error("setCollectiveTimeout", `timeoutMs must be >= 0, got ${timeoutMs}`);
  checkDist(distLib().fp8_dist_set_timeout(Math.round(timeoutMs)), "setCollectiveTimeout");
}

/** A stable 32-bit FNV-1a hash of a call-site key (the native tag). */
function tagOf(key: string | undefined): number {
  if (!key) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Runs one native collective; errors name the call-site key instead of its hash. */
function run(op: string, key: string | undefined, call: (tag: number) => number): void {
  const tag = tagOf(key);
  const status = call(tag);
  if (status !== 0) {
    const msg = String(distLib().fp8_dist_last_error() ?? `native call failed with status ${status}`);
    throw new Float8Error(op, msg.replace(`tag ${tag}`, key ? `key '${key}'` : "the default key"));
  }
}

function shapeArgs(shape: readonly number[], numel: number): [BigInt64Array, number] {
  const s = shape.length === 0 || shape.length > 8 ? [numel] : shape;
  return [BigInt64Array.from(s.map(BigInt)), s.length];
}

/** What the native collectives need to know about a Tensor or a DeviceBuffer. */
interface Operand {
  ptr: NativePtr;
  dtype: DType;
  numel: number;
  shape: readonly number[];
  /** 0: host memory (MPI), 1: device memory (NCCL) */
  where: number;
}

/** A collective on GPU buffers runs on the stream of their context, after the work queued there. */
let streamOf: CudaContext | null = null;

/** NCCL collectives on ctx's buffers run on ctx's stream, after the work queued there. */
function useStreamOf(ctx: CudaContext, what: string, op: string): void {
  if (getBackend() !== "nccl") throw new Float8Error(op, `${what} is GPU memory: initProcessGroup({ backend: "nccl" }) first`);
  if (streamOf !== ctx) {
    const out = new BigUint64Array(1);
    checkCuda(cudaLib().fp8_cuda_ctx_stream(ctx.handle, out), op);
    checkDist(distLib().fp8_dist_set_stream(Number(out[0]) as NativePtr), op);
    streamOf = ctx;
  }
}

function operand(t: Tensor | DeviceBuffer, op: string): Operand {
  if (t instanceof DeviceBuffer) {
    useStreamOf(t.ctx, String(t), op);
    return { ptr: t.ptr, dtype: t.dtype, numel: t.numel, shape: t.shape, where: 1 };
  }
  const ptr = t.ptrFor(op);
  if (t.backend.nativeMemory === "device") {
    useStreamOf(cudaDevice(currentCudaDevice()), `a ${t.device} tensor of shape ${fmtShape(t.shape)}`, op);
    return { ptr, dtype: t.dtype, numel: t.numel, shape: t.shape, where: 1 };
  }
  return { ptr, dtype: t.dtype, numel: t.numel, shape: t.shape, where: 0 };
}

/** An uninitialised buffer like t (same kind, device and dtype) of another shape. */
function emptyLike(t: Tensor | DeviceBuffer, shape: number[]): Tensor | DeviceBuffer {
  return t instanceof DeviceBuffer ? DeviceBuffer.empty(t.ctx, shape, t.dtype) : Tensor.empty(shape, t.dtype, t.device);
}

function checkReducible(o: Operand, op: string, reduce: ReduceOp): void {
  if (o.dtype !== "float32" && o.dtype !== "bfloat16") {
    throw new Float8Error(op, `reductions need float32 or bfloat16, got shape ${fmtShape(o.shape)} dtype ${o.dtype}`);
  }
  if (typeof reduce !== "string" || !Object.hasOwn(OP_CODE, reduce)) throw new Float8Error(op, `op must be "sum", "max" or "avg", got '${String(reduce)}'`);
}

/** Reduces t over all ranks, in place (every rank gets the result). Returns t. Not differentiable. */
export function allReduce<T extends Tensor | DeviceBuffer>(t: T, op: ReduceOp = "sum", opts: CollectiveOptions = {}): T {
  requireGroup("allReduce");
  const o = operand(t, "allReduce");
  checkReducible(o, "allReduce", op);
  const [shape, ndim] = shapeArgs(o.shape, o.numel);
  run("allReduce", opts.key, (tag) => distLib().fp8_dist_all_reduce(o.ptr, DTYPE_CODE[o.dtype], o.numel, OP_CODE[op], o.where, tag, shape, ndim));
  return t;
}

/** Reduces a host Float32Array over all ranks, in place (amaxes, scalars, metrics). */
export function allReduceArray(values: Float32Array, op: ReduceOp = "sum", opts: CollectiveOptions = {}): Float32Array {
  requireGroup("allReduce");
  if (values.length === 0) return values;
  const [shape, ndim] = shapeArgs([values.length], values.length);
  run("allReduce", opts.key, (tag) => distLib().fp8_dist_all_reduce(values, DTYPE_CODE.float32, values.length, OP_CODE[op], 0, tag, shape, ndim));
  return values;
}

/**
 * Concatenates t from every rank along dim 0, in rank order: shape
 * [d0, ...] -> [worldSize * d0, ...] (a 0-d tensor gives [worldSize]). Any
 * dtype; the bytes travel as they are (float8 as one byte an element).
 */
export function allGather<T extends Tensor | DeviceBuffer>(t: T, opts: CollectiveOptions = {}): T {
  const { size } = requireGroup("allGather");
  const o = operand(t, "allGather");
  const out = emptyLike(t, o.shape.length === 0 ? [size] : [size * o.shape[0], ...o.shape.slice(1)]);
  const [shape, ndim] = shapeArgs(o.shape, o.numel);
  try {
    const dst = operand(out, "allGather");
    run("allGather", opts.key, (tag) => distLib().fp8_dist_all_gather(dst.ptr, o.ptr, DTYPE_CODE[o.dtype], o.numel, o.where, tag, shape, ndim));
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out as T;
}

/**
 * Reduces t over all ranks and keeps this rank's block of dim 0:
 * [worldSize * d, ...] -> [d, ...]. dim 0 must divide by the world size.
 */
export function reduceScatter<T extends Tensor | DeviceBuffer>(t: T, op: ReduceOp = "sum", opts: CollectiveOptions = {}): T {
  const { size } = requireGroup("reduceScatter");
  const o = operand(t, "reduceScatter");
  checkReducible(o, "reduceScatter", op);
  if (o.shape.length === 0 || o.shape[0] % size !== 0) {
    throw new Float8Error("reduceScatter", `dim 0 of shape ${fmtShape(o.shape)} (${o.dtype}) must divide by the world size ${size}`);
  }
  const out = emptyLike(t, [o.shape[0] / size, ...o.shape.slice(1)]);
  const [shape, ndim] = shapeArgs(o.shape, o.numel);
  try {
    const dst = operand(out, "reduceScatter");
    run("reduceScatter", opts.key, (tag) =>
      distLib().fp8_dist_reduce_scatter(dst.ptr, o.ptr, DTYPE_CODE[o.dtype], dst.numel, OP_CODE[op], o.where, tag, shape, ndim));
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out as T;
}

/** Copies rank `src`'s t into t on every rank, in place. Returns t. */
export function broadcast<T extends Tensor | DeviceBuffer>(t: T, src = 0, opts: CollectiveOptions = {}): T {
  const { size } = requireGroup("broadcast");
  if (!Number.isInteger(src) || src < 0 || src >= size) throw new Float8Error("broadcast", `src ${src} is not a rank of a group of ${size}`);
  const o = operand(t, "broadcast");
  const [shape, ndim] = shapeArgs(o.shape, o.numel);
  run("broadcast", opts.key, (tag) => distLib().fp8_dist_broadcast(o.ptr, DTYPE_CODE[o.dtype], o.numel, src, o.where, tag, shape, ndim));
  return t;
}

/** Waits until every rank has reached this barrier. */
export function barrier(): void {
  requireGroup("barrier");
  run("barrier", undefined, () => distLib().fp8_dist_barrier());
}

/** Payload bytes this rank put into each kind of collective, and the calls, since init or the last reset. */
export function collectiveStats(): Record<CollectiveKind, { bytes: number; calls: number }> {
  requireGroup("collectiveStats");
  const out = {} as Record<CollectiveKind, { bytes: number; calls: number }>;
  KINDS.forEach((kind, i) => {
    const b = new BigInt64Array(1), c = new BigInt64Array(1);
    checkDist(distLib().fp8_dist_bytes_sent(i, b, c), "collectiveStats");
    out[kind] = { bytes: Number(b[0]), calls: Number(c[0]) };
  });
  return out;
}

/** Zeroes the counters of collectiveStats(). */
export function resetCollectiveStats(): void {
  requireGroup("resetCollectiveStats");
  checkDist(distLib().fp8_dist_reset_counters(), "resetCollectiveStats");
}

