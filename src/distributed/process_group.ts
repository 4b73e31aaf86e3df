// process_group.ts — the process group (one per process, over every rank that
// mpirun started) and the collectives on Tensors, torch.distributed-style.
//
// Collectives run in libfp8_dist: host tensors through MPI, cuda tensors
// through NCCL (backend "nccl"). Every rank must call the same collectives in
// the same order. A collective that waits longer than `timeoutMs` fails with an
// error naming it. The `key` option names a call site: the first time a
// (collective, key) pair is used, the ranks compare dtype and shape and a
// mismatch is an error on every rank instead of a hang.
import { Float8Error } from "../errors.ts";
import { distLib, checkDist } from "../ffi/index.ts";
import { DTYPE_CODE } from "../tensor/dtype.ts";
import { fmtShape } from "../tensor/shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { setAmaxReducer } from "../float8/convert.ts";

export type Backend = "mpi" | "nccl";
export type ReduceOp = "sum" | "max" | "avg";
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
  if (!(backend in BACKEND_CODE)) throw new Float8Error(op, `unknown backend '${String(backend)}'; expected "mpi" or "nccl"`);
  const timeoutMs = opts.timeoutMs ?? Number(process.env.FLOAT8_DIST_TIMEOUT_MS ?? 300000);
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new Float8Error(op, `timeoutMs must be >= 0, got ${timeoutMs}`);
  const check = opts.shapeCheck ?? "first";
  if (!(check in CHECK_CODE)) throw new Float8Error(op, `shapeCheck must be "first", "always" or "off", got '${String(check)}'`);
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
  setAmaxReducer((amaxes) => allReduceArray(amaxes, "max", { key: "float8.syncAmaxAndScaleHistory" }));
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
  setAmaxReducer(null);
  checkDist(distLib().fp8_dist_finalize(), "destroyProcessGroup");
}

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

function where(t: Tensor): number {
  return t.device === "cuda" ? 1 : 0;
}

function checkReducible(t: Tensor, op: string, reduce: ReduceOp): void {
  t.ptrFor(op);
  if (t.dtype !== "float32" && t.dtype !== "bfloat16") {
    throw new Float8Error(op, `reductions need float32 or bfloat16, got shape ${fmtShape(t.shape)} dtype ${t.dtype}`);
  }
  if (!(reduce in OP_CODE)) throw new Float8Error(op, `op must be "sum", "max" or "avg", got '${String(reduce)}'`);
}

/** Reduces t over all ranks, in place (every rank gets the result). Returns t. Not differentiable. */
export function allReduce(t: Tensor, op: ReduceOp = "sum", opts: CollectiveOptions = {}): Tensor {
  requireGroup("allReduce");
  checkReducible(t, "allReduce", op);
  const [shape, ndim] = shapeArgs(t.shape, t.numel);
  run("allReduce", opts.key, (tag) =>
    distLib().fp8_dist_all_reduce(t.ptrFor("allReduce"), DTYPE_CODE[t.dtype], t.numel, OP_CODE[op], where(t), tag, shape, ndim));
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
export function allGather(t: Tensor, opts: CollectiveOptions = {}): Tensor {
  const { size } = requireGroup("allGather");
  t.ptrFor("allGather");
  const outShape = t.ndim === 0 ? [size] : [size * t.shape[0], ...t.shape.slice(1)];
  const out = Tensor.empty(outShape, t.dtype, t.device);
  const [shape, ndim] = shapeArgs(t.shape, t.numel);
  try {
    run("allGather", opts.key, (tag) =>
      distLib().fp8_dist_all_gather(out.ptrFor("allGather"), t.ptrFor("allGather"), DTYPE_CODE[t.dtype], t.numel, where(t), tag, shape, ndim));
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/**
 * Reduces t over all ranks and keeps this rank's block of dim 0:
 * [worldSize * d, ...] -> [d, ...]. dim 0 must divide by the world size.
 */
export function reduceScatter(t: Tensor, op: ReduceOp = "sum", opts: CollectiveOptions = {}): Tensor {
  const { size } = requireGroup("reduceScatter");
  checkReducible(t, "reduceScatter", op);
  if (t.ndim === 0 || t.shape[0] % size !== 0) {
    throw new Float8Error("reduceScatter", `dim 0 of shape ${fmtShape(t.shape)} (${t.dtype}) must divide by the world size ${size}`);
  }
  const out = Tensor.empty([t.shape[0] / size, ...t.shape.slice(1)], t.dtype, t.device);
  const [shape, ndim] = shapeArgs(t.shape, t.numel);
  try {
    run("reduceScatter", opts.key, (tag) =>
      distLib().fp8_dist_reduce_scatter(out.ptrFor("reduceScatter"), t.ptrFor("reduceScatter"), DTYPE_CODE[t.dtype], out.numel, OP_CODE[op],
        where(t), tag, shape, ndim));
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/** Copies rank `src`'s t into t on every rank, in place. Returns t. */
export function broadcast(t: Tensor, src = 0, opts: CollectiveOptions = {}): Tensor {
  const { size } = requireGroup("broadcast");
  if (!Number.isInteger(src) || src < 0 || src >= size) throw new Float8Error("broadcast", `src ${src} is not a rank of a group of ${size}`);
  const [shape, ndim] = shapeArgs(t.shape, t.numel);
  run("broadcast", opts.key, (tag) =>
    distLib().fp8_dist_broadcast(t.ptrFor("broadcast"), DTYPE_CODE[t.dtype], t.numel, src, where(t), tag, shape, ndim));
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

