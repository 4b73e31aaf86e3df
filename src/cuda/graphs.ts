// graphs.ts — CUDA graphs for Tensor programs (torch.cuda.graph): capture one
// training or inference step of "cuda" tensors once, then replay it with one
// launch, so a small model stops paying a bun:ffi call and a kernel launch per
// op per step.
//
//   model.to({ device: "cuda" }); const opt = new optim.AdamW(model.parameters());
//   const x = zeros([B, D], { device: "cuda" }), y = ...;        // static inputs
//   step();                                                     // one eager step first
//   const g = cuda.captureGraph(() => step());                  // recorded, not run
//   for (const batch of data) { x.copyFrom(batch.x); y.copyFrom(batch.y); g.replay(); }
//
// What the captured function may do: launch work on "cuda" tensors (every op,
// autograd, Float8Linear with any scaling, syncFloat8AmaxAndScaleHistory,
// AdamW and SGD steps; float8 telemetry skips captured forwards). What it must
// not do: move data between host and device (.item(), toArray(), tensors made
// from host data, host-side dropout masks), or create optimizer or float8 state
// (run one step eagerly first). Those fail
// with a Float8Error and the capture is abandoned. Memory the step allocates
// comes from the graph's pool; tensors the step returns (and gradients it
// leaves on parameters) live there and are rewritten by each replay. Memory
// that existed before the capture (parameters, optimizer state, inputs) is
// not handed out again until the graph is disposed, even if freed earlier.
import { Float8Error } from "../errors.ts";
import { checkCuda, cudaLib, type NativePtr } from "../ffi/index.ts";
import { cudaTensorBytes, currentCudaDevice, liveCudaPointers, resetCudaPeakBytes } from "../tensor/backend/cuda.ts";
import { activeCapture, holdForGraph, registerPoolBlock, releaseHolds, setActiveCapture, type CaptureState } from "../tensor/backend/capture.ts";
import { tidy } from "../tensor/storage.ts";
import { device, type CudaContext } from "../tensor/backend/cuda_device.ts";

const ALIGN = 256;
const MIB = 1 << 20;

/** Pools still holding device memory (a new graph keeps each of them until it goes). */
const pools = new Set<GraphPool>();

/**
 * A graph's memory: one device allocation carved first-fit into blocks. It is
 * only allocated from while its graph is captured; blocks freed later return to
 * it, and the allocation goes back to CUDA once the graph is disposed and the
 * last block is freed.
 */
class GraphPool {
  readonly base: NativePtr;
  /** free ranges [offset, length], sorted by offset, coalesced */
  private free: [number, number][];
  private liveBlocks = 0;
  private graphDisposed = false;
  private dropped = false;
  /** later graphs, which may read this pool's tensors (the pool outlives them) */
  private users = 0;

  constructor(readonly ctx: CudaContext, readonly size: number) {
    const out = new BigUint64Array(1);
    checkCuda(cudaLib().fp8_cuda_malloc(ctx.handle, size, out), "cuda.captureGraph (pool)");
    this.base = Number(out[0]) as NativePtr;
    this.free = [[0, size]];
    pools.add(this);
  }

  /** A graph captured after this pool's may use its tensors: keep the pool until that graph goes. */
  addUser(): void {
    this.users++;
  }
  removeUser(): void {
    this.users--;
    this.maybeDrop();
  }

  alloc(nbytes: number): NativePtr {
    const need = Math.max(ALIGN, Math.ceil(nbytes / ALIGN) * ALIGN);
    const i = this.free.findIndex(([, len]) => len >= need);
    if (i < 0) {
      const largest = Math.max(0, ...this.free.map(([, len]) => len));
      throw new Float8Error(
        "cuda.captureGraph",
        `the graph's memory pool of ${(this.size / MIB).toFixed(1)} MiB is full (a request of ${nbytes} bytes; largest free block ${largest} bytes): pass a larger { poolBytes }`,
      );
    }
    const [off, len] = this.free[i];
    if (len === need) this.free.splice(i, 1);
    else this.free[i] = [off + need, len - need];
    const p = (this.base + off) as NativePtr;
    this.liveBlocks++;
    registerPoolBlock(p, () => this.release(off, need));
    return p;
  }

  private release(off: number, len: number): void {
    let i = this.free.findIndex(([o]) => o > off);
    if (i < 0) i = this.free.length;
    this.free.splice(i, 0, [off, len]);
    if (i + 1 < this.free.length && off + len === this.free[i + 1][0]) {
      this.free[i][1] += this.free[i + 1][1];
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1][0] + this.free[i - 1][1] === off) {
      this.free[i - 1][1] += this.free[i][1];
      this.free.splice(i, 1);
    }
    this.liveBlocks--;
    this.maybeDrop();
  }

  /** The graph is gone: the pool goes too once no tensor lives in it. */
  graphGone(): void {
    this.graphDisposed = true;
    this.maybeDrop();
  }

  private maybeDrop(): void {
    if (!this.graphDisposed || this.liveBlocks > 0 || this.users > 0 || this.dropped) return;
    this.dropped = true;
    pools.delete(this);
    const drop = () => {
      if (!this.ctx.isDisposed) checkCuda(cudaLib().fp8_cuda_free(this.ctx.handle, this.base), "cuda.captureGraph (pool)");
    };
    const capture = activeCapture(); // its last tensor was freed inside another capture: no frees there
    if (capture) capture.retain(drop);
    else drop();
  }
}

/** The tensors in a captured function's result (a tensor, or arrays/objects of them). */
function tensorsIn(result: unknown, out: { dispose(): void; kept: boolean }[] = [], depth = 0): typeof out {
  if (result === null || typeof result !== "object" || depth > 4) return out;
  if ("dispose" in result && "isDisposed" in result && "kept" in result) {
    out.push(result as { dispose(): void; kept: boolean });
    return out;
  }
  for (const v of Array.isArray(result) ? result : Object.values(result)) tensorsIn(v, out, depth + 1);
  return out;
}

/**
 * A captured step of Tensor work on the current GPU. replay() runs it again with
 * one launch (after the hooks that refresh per-step arguments, such as AdamW's
 * step count); `result` is what the captured function returned, rewritten by
 * every replay. The graph owns those tensors: tidy() scopes leave them alone
 * and dispose() frees them.
 */
export class TensorGraph<T = unknown> {
  #graph: NativePtr | null;
  readonly #ctx: CudaContext;
  readonly #pool: GraphPool;
  readonly #hooks: (() => void)[];
  readonly #retained: (() => void)[];
  /** Earlier graphs' pools, whose tensors this graph's replays may use. */
  readonly #otherPools: GraphPool[];
  /** How many times replay() ran. */
  replays = 0;

  /** @internal use captureGraph() */
  constructor(ctx: CudaContext, graph: NativePtr, pool: GraphPool, hooks: (() => void)[], retained: (() => void)[], readonly result: T) {
    this.#ctx = ctx;
    this.#graph = graph;
    this.#pool = pool;
    this.#hooks = hooks;
    this.#retained = retained;
    for (const t of tensorsIn(result)) t.kept = true;
    // what the replays may use is not handed out again while the graph lives
    holdForGraph(this, liveCudaPointers());
    this.#otherPools = [...pools].filter((p) => p !== pool);
    for (const p of this.#otherPools) p.addUser();
  }

  /** Bytes of device memory reserved for the graph's tensors. */
  get poolBytes(): number {
    return this.#pool.size;
  }

  /** Runs the captured work once more (queued on the GPU's stream; read results with toArray()/item()). */
  replay(): void {
    if (this.#graph === null) throw new Float8Error("TensorGraph.replay", "graph used after dispose()");
    if (activeCapture()) throw new Float8Error("TensorGraph.replay", "cannot replay a graph while another is being captured");
    for (const hook of this.#hooks) hook();
    checkCuda(cudaLib().fp8_cuda_graph_launch(this.#ctx.handle, this.#graph), "TensorGraph.replay");
    this.replays++;
  }

  /** Frees the graph, its result tensors, the memory it held on to, and its pool once no tensor lives there. */
  dispose(): void {
    if (this.#graph === null) return;
    const g = this.#graph;
    this.#graph = null;
    if (!this.#ctx.isDisposed) {
      this.#ctx.synchronize(); // a replay in flight may still use what is released below
      checkCuda(cudaLib().fp8_cuda_graph_destroy(g), "TensorGraph.dispose");
    }
    for (const t of tensorsIn(this.result)) t.dispose();
    releaseHolds(this);
    for (const release of this.#retained.splice(0)) release();
    this.#pool.graphGone();
    for (const p of this.#otherPools.splice(0)) p.removeUser();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Captures the GPU work of `fn` (run once, recorded, not executed) into a
 * TensorGraph on the current GPU. Run the step eagerly at least once first, so
 * that optimizer state, float8 scales and GEMM plans exist. `poolBytes` sizes
 * the graph's memory; by default it is 1.5x the most tensor memory that came
 * and went since the last capture (the eager step's temporaries: the peak of
 * live "cuda" tensor bytes minus those live now), plus 16 MiB.
 */
export function captureGraph<T>(fn: () => T, opts: { poolBytes?: number } = {}): TensorGraph<T> {
  const op = "cuda.captureGraph";
  if (activeCapture()) throw new Float8Error(op, "a capture is already in progress");
  if (typeof fn !== "function") throw new Float8Error(op, "expects a function to capture");
  const ctx = device(currentCudaDevice());
  const { live, peak } = cudaTensorBytes();
  const poolBytes = opts.poolBytes ?? Math.ceil((1.5 * Math.max(0, peak - live)) / MIB) * MIB + 16 * MIB;
  if (!Number.isInteger(poolBytes) || poolBytes <= 0) throw new Float8Error(op, `poolBytes must be a positive integer, got ${poolBytes}`);
  const pool = new GraphPool(ctx, poolBytes);
  const hooks: (() => void)[] = [];
  const retained: (() => void)[] = [];
  const state: CaptureState = {
    alloc: (nbytes) => pool.alloc(nbytes),
    retain: (release) => void retained.push(release),
    beforeReplay: (hook) => void hooks.push(hook),
  };
  checkCuda(cudaLib().fp8_cuda_graph_begin(ctx.handle), op);
  setActiveCapture(state);
  let result: T | undefined;
  let failure: unknown = null;
  try {
    result = tidy(fn);
  } catch (e) {
    failure = e;
  }
  setActiveCapture(null);
  resetCudaPeakBytes(); // the next capture sizes its pool from the steps run after this one
  const out = new BigUint64Array(1);
  const status = cudaLib().fp8_cuda_graph_end(ctx.handle, out); // always end the capture
  if (failure !== null || status !== 0) {
    if (status === 0) cudaLib().fp8_cuda_graph_destroy(Number(out[0]) as NativePtr);
    for (const release of retained) release();
    pool.graphGone();
    if (failure !== null) {
      const why = failure instanceof Error ? failure.message : String(failure);
      throw new Float8Error(op, `the captured function failed, so nothing was captured (tensors it left behind hold undefined values): ${why}`);
    }
    checkCuda(status, op);
  }
  return new TensorGraph(ctx, Number(out[0]) as NativePtr, pool, hooks, retained, result as T);
}
