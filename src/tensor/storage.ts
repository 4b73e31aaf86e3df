// storage.ts — native buffers behind tensors, and deterministic freeing.
//
// A Storage is a refcounted fp8_alloc'd block; tensors that share it (reshape
// views) each hold one reference. Memory is released by dispose(), by `using`,
// or when a tidy() scope ends; a FinalizationRegistry is only a safety net.
import { nativeView, type NativePtr } from "../ffi/index.ts";
import { backendFor, type Backend, type Device } from "./backend/index.ts";
import { Float8Error } from "../errors.ts";
import { MAX_TENSOR_ELEMENTS } from "./shape.ts";

const registry = new FinalizationRegistry<{ backend: Backend; ptr: NativePtr }>(({ backend, ptr }) => {
  try {
    backend.free(ptr);
  } catch {
    // already freed, or the device is gone: nothing to do in a finalizer
  }
});

/** A refcounted buffer in one device's memory. */
export class Storage {
  readonly ptr: NativePtr;
  readonly nbytes: number;
  readonly backend: Backend;
  private refs = 0;

  constructor(nbytes: number, device: Device = "cpu") {
    // bun:ffi turns an int64 argument >= 2^64, Infinity or NaN into 0: never pass one on
    if (!Number.isSafeInteger(nbytes) || nbytes < 0 || nbytes > MAX_TENSOR_ELEMENTS) {
      throw new Float8Error("alloc", `invalid size of ${nbytes} bytes (must be an integer in 0..2^46)`);
    }
    this.nbytes = nbytes;
    this.backend = backendFor(device, "alloc");
    this.ptr = this.backend.alloc(nbytes);
    registry.register(this, { backend: this.backend, ptr: this.ptr }, this);
  }

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (--this.refs === 0) {
      registry.unregister(this);
      this.backend.free(this.ptr);
    }
  }

  get alive(): boolean {
    return this.refs > 0;
  }

  /** The raw bytes, as a view (no copy); host memory only. Valid while the storage is alive. */
  view(): ArrayBuffer {
    return nativeView(this.ptr, this.nbytes);
  }
}

/** Something a scope can dispose: tensors. */
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
  kept: boolean;
}

const scopes: Set<Disposable>[] = [];

/** Called by every new tensor: it belongs to the innermost tidy() scope, if any. */
export function track(t: Disposable): void {
  scopes[scopes.length - 1]?.add(t);
}

function collect(result: unknown, out: Set<unknown>, depth = 0): void {
  if (result === null || typeof result !== "object" || depth > 4) return;
  if ("dispose" in result && "isDisposed" in result) {
    out.add(result);
    return;
  }
  const values = Array.isArray(result) ? result : result instanceof Map ? [...result.values()] : Object.values(result);
  for (const v of values) collect(v, out, depth + 1);
}

/**
 * Runs fn and disposes every tensor created inside it, except the tensors it
 * returns (directly, or in an array/object) and those marked with keep().
 * Returned tensors move to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  scopes.push(new Set());
  let result: T;
  try {
    result = fn();
  } catch (e) {
    for (const t of scopes.pop()!) if (!t.kept && !t.isDisposed) t.dispose();
    throw e;
  }
  if (result instanceof Promise) throw new Error("tidy: fn must be synchronous (got a Promise)");
  const scope = scopes.pop()!;
  const returned = new Set<unknown>();
  collect(result, returned);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (returned.has(t)) parent?.add(t);
    else if (!t.kept && !t.isDisposed) t.dispose();
  }
  return result;
}

/**
 * Runs fn with the innermost tidy() scope set aside: tensors fn creates belong
 * to the enclosing scope (or to none). Used by backward() around user code (a
 * custom Function's backward may keep what it makes, as a torch hook may).
 */
export function outsideScope<T>(fn: () => T): T {
  const top = scopes.pop();
  try {
    return fn();
  } finally {
    if (top) scopes.push(top);
  }
}

/** Moves t from the innermost tidy() scope to the enclosing one (it outlives the inner scope). */
export function escapeScope(t: Disposable): void {
  const top = scopes[scopes.length - 1];
  if (top?.delete(t)) scopes[scopes.length - 2]?.add(t);
}

/** Exempts t from disposal by any tidy() scope (parameters, grads, optimizer state). */
export function keep<T extends Disposable>(t: T): T {
  t.kept = true;
  return t;
}

/**
 * Native memory: bytes and allocations held by live tensors (for leak checks),
 * and bytes the allocator keeps cached for reuse (freed large blocks).
 */
export function memoryStats(device: Device = "cpu"): { liveBytes: number; liveAllocs: number; cachedBytes: number } {
  return backendFor(device, "memoryStats").memoryStats();
}

/** Returns the allocator's cached blocks of `device` (default cpu) to the system (like torch.cuda.empty_cache). */
export function emptyCache(device: Device = "cpu"): void {
  backendFor(device, "emptyCache").emptyCache();
}

/** Steps the growth watch looks back over, and the least growth over them that it reports. */
const WATCH_STEPS = 64;
const WATCH_MIN_GROWTH = 16 * 2 ** 20;
const watched = new Map<Device, number[]>();
let tidyWarned = false;

/**
 * Called once per training step (by every optimizer's step()). Outside tidy(),
 * when the live native memory of `device` has grown in at least 90 % of the
 * last 64 steps and by at least 16 MiB in all, warns once that tensors are
 * leaking and names tidy(). Inside tidy() it does nothing (the scope frees the
 * step's tensors). FLOAT8_MEMORY_WARNING=0 turns the warning off.
 */
export function watchStepMemory(device: Device = "cpu"): void {
  if (tidyWarned || scopes.length > 0 || process.env.FLOAT8_MEMORY_WARNING === "0") return;
  const live = backendFor(device, "memoryStats").memoryStats().liveBytes;
  let h = watched.get(device);
  if (!h) watched.set(device, (h = []));
  h.push(live);
  if (h.length > WATCH_STEPS + 1) h.shift();
  if (h.length <= WATCH_STEPS) return;
  let rises = 0;
  for (let i = 1; i < h.length; i++) if (h[i] > h[i - 1]) rises++;
  const growth = h[h.length - 1] - h[0];
  if (rises >= 0.9 * WATCH_STEPS && growth >= WATCH_MIN_GROWTH) {
    tidyWarned = true;
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    console.warn(
      `float8: live ${device} memory grew in ${rises} of the last ${WATCH_STEPS} optimizer steps, by ${mib(growth)} MiB ` +
        `(${mib(growth / WATCH_STEPS)} MiB/step, ${mib(live)} MiB live now). JavaScript cannot free a step's tensors by itself: ` +
        "wrap each step in tidy(() => { ... }) (or dispose() them) to keep memory flat. (This warning is shown once; FLOAT8_MEMORY_WARNING=0 hides it.)",
    );
  }
}
