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
