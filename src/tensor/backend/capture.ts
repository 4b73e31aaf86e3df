// capture.ts — what a CUDA-graph capture in progress asks of the rest of the
// library (src/cuda/graphs.ts starts and ends captures).
//
// While a graph is captured, kernels are recorded, not run, and replays reuse
// their addresses. So the cuda backend serves allocations from the graph's own
// pool (fixed addresses that nothing else reuses while the graph lives), and a
// free of older memory during the capture is held until the graph is disposed
// (a replay may still read it). Code whose arguments change from step to step
// registers a hook that runs before every replay (AdamW uploads the next step's
// constants; SGD checks that its learning rate did not change).
import type { NativePtr } from "../../ffi/index.ts";

/** The capture in progress, as the backend and the optimizers see it. */
export interface CaptureState {
  /** An allocation from the graph's pool (throws Float8Error when the pool is full). */
  alloc(nbytes: number): NativePtr;
  /** Holds a free of memory made before the capture until the graph is disposed. */
  retain(release: () => void): void;
  /** Runs `hook` before every replay, in the order registered. */
  beforeReplay(hook: () => void): void;
}

let active: CaptureState | null = null;

/** The capture in progress on this thread, or null. */
export function activeCapture(): CaptureState | null {
  return active;
}

/** Starts (state) or ends (null) the capture that activeCapture() reports. */
export function setActiveCapture(state: CaptureState | null): void {
  active = state;
}

/** Per pointer, the release of a block that came from a graph's pool (see graphs.ts). */
const poolBlocks = new Map<number, () => void>();

/** Files p as a pool block whose free is `release`. */
export function registerPoolBlock(p: NativePtr, release: () => void): void {
  poolBlocks.set(p, release);
}

/** If p is a pool block: returns it to its pool and says true; else false. */
export function freePoolBlock(p: NativePtr): boolean {
  const release = poolBlocks.get(p);
  if (!release) return false;
  poolBlocks.delete(p);
  release();
  return true;
}

/**
 * Memory made before a capture and still live at its end may be read or written by every replay
 * (parameters, optimizer state, static inputs). While such a graph lives, freeing that memory is
 * deferred until the graph is disposed, so a replay after, say, model.dispose() writes into memory
 * that nothing else has been given.
 */
const holders = new Map<number, Set<object>>();
const heldBy = new Map<object, number[]>();
const deferred = new Map<number, () => void>();

/** `graph` may use each of `ptrs` until releaseHolds(graph). */
export function holdForGraph(graph: object, ptrs: readonly number[]): void {
  heldBy.set(graph, [...ptrs]);
  for (const p of ptrs) {
    let set = holders.get(p);
    if (!set) holders.set(p, (set = new Set()));
    set.add(graph);
  }
}

/** `graph` is gone: frees deferred while it lived happen now, once no other graph holds them. */
export function releaseHolds(graph: object): void {
  for (const p of heldBy.get(graph) ?? []) {
    const set = holders.get(p);
    set?.delete(graph);
    if (set && set.size > 0) continue;
    holders.delete(p);
    const release = deferred.get(p);
    deferred.delete(p);
    release?.();
  }
  heldBy.delete(graph);
}

/** If a live graph holds p: keeps `release` for later and says true; else false. */
export function deferIfHeld(p: NativePtr, release: () => void): boolean {
  if (!holders.has(p)) return false;
  deferred.set(p, release);
  return true;
}
