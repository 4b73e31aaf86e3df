// library.ts — the only place that imports bun:ffi. Loads libfp8 and holds its
// typed symbol table; `check` turns a status code into a Float8Error.
//
// The library is opened lazily, on the first native call, so importing the
// package (types, `--help` of a script) works before libfp8 is built.
// It is found at $FLOAT8_LIB, else <package>/build/libfp8.so: built by
// `bun scripts/prepare.ts` in this repository (`bun run test` and `bun run demo`
// call it), or by `bunx float8 build` where float8 is installed as a dependency.
import { dlopen, FFIType, toArrayBuffer, type Pointer } from "bun:ffi";
import { existsSync } from "node:fs";
import { join, sep } from "node:path";
import { Float8Error } from "../errors.ts";

const { ptr: P, i32, i64_fast: I64, f32, f64, cstring } = FFIType;

/** Symbol table: argument and return types of every fp8.h function. */
export const symbols = {
  fp8_last_error: { args: [], returns: cstring },
  fp8_version: { args: [P], returns: i32 },
  fp8_alloc: { args: [I64, P], returns: i32 },
  fp8_free: { args: [P], returns: i32 },
  fp8_memory_stats: { args: [P, P], returns: i32 },
  fp8_memory_cached: { args: [P], returns: i32 },
  fp8_empty_cache: { args: [], returns: i32 },
  fp8_set_num_threads: { args: [i32], returns: i32 },
  fp8_get_num_threads: { args: [P], returns: i32 },
  fp8_cpu_get_isa: { args: [P], returns: i32 },
  fp8_cpu_set_isa: { args: [i32], returns: i32 },

  fp8_cpu_convert: { args: [P, i32, P, i32, I64], returns: i32 },
  fp8_cpu_quantize: { args: [P, i32, P, i32, I64, P], returns: i32 },
  fp8_cpu_dequantize: { args: [P, i32, P, i32, I64, P], returns: i32 },
  fp8_cpu_amax: { args: [P, P, i32, I64], returns: i32 },
  fp8_cpu_amax_to_scale: { args: [P, P, P, i32, I64, i32, i32], returns: i32 },
  fp8_cpu_sync_amax_history: { args: [P, P, P, P, P, I64, I64], returns: i32 },
  fp8_cpu_fp8_stats: { args: [P, P, P, P, i32, I64], returns: i32 },
  fp8_cpu_quantize_decode: { args: [P, P, i32, P, i32, I64, P], returns: i32 },
  fp8_cpu_quantize_amax: { args: [P, P, i32, P, i32, I64, P, P], returns: i32 },
  fp8_cpu_quantize_transpose: { args: [P, P, P, P, i32, P, i32, I64, I64, P], returns: i32 },
  fp8_cpu_quantize_dynamic: { args: [P, P, i32, P, i32, I64, P, P, i32, i32], returns: i32 },
  fp8_cpu_cast_stats: { args: [P, P, P, P, P, i32, P, i32, P, i32, I64, I64], returns: i32 },

  fp8_cpu_quantize_rowwise: { args: [P, P, i32, P, i32, I64, I64, i32], returns: i32 },
  fp8_cpu_scaled_mm_rowwise: {
    args: [P, i32, P, i32, P, i32, P, P, P, i32, I64, I64, I64, i32, i32],
    returns: i32,
  },

  // block scaling (libfp8/src/cpu/block_cast.c)
  fp8_cpu_quantize_blockwise: { args: [P, P, i32, P, i32, I64, I64, I64, I64], returns: i32 },
  fp8_cpu_dequantize_blockwise: { args: [P, i32, P, i32, P, I64, I64, I64, I64], returns: i32 },
  fp8_cpu_quantize_mx: { args: [P, P, i32, P, i32, I64, I64, I64, i32], returns: i32 },
  fp8_cpu_dequantize_mx: { args: [P, i32, P, i32, P, I64, I64, I64], returns: i32 },
  fp8_cpu_bf16_native: { args: [P], returns: i32 },
  fp8_cpu_mx_scale: { args: [P, f32, i32, i32], returns: i32 },
  // fp8-weight GEMV for inference (libfp8/src/cpu/gemv_fp8.c)
  fp8_cpu_gemv_fp8w: { args: [P, i32, P, i32, I64, I64, P, i32, I64, i32, P, I64, I64, P, i32], returns: i32 },

  fp8_cpu_matmul: {
    args: [P, i32, P, P, i32, P, i32, I64, I64, I64, I64, I64, i32, i32, f32, f32],
    returns: i32,
  },
  fp8_cpu_scaled_mm: {
    args: [P, i32, P, i32, P, i32, P, P, P, i32, I64, I64, I64, i32, i32],
    returns: i32,
  },
  fp8_cpu_scaled_mm_path: { args: [P, i32, i32, i32, i32, I64, I64, I64, i32, i32], returns: i32 },

  fp8_cpu_eltwise: { args: [P, P, i32, I64, i32, f32, f32], returns: i32 },
  fp8_cpu_eltwise_backward: { args: [P, P, P, i32, I64, i32, f32, f32], returns: i32 },
  fp8_cpu_binary: { args: [P, P, P, P, P, P, i32, i32, i32], returns: i32 },
  fp8_cpu_reduce: { args: [P, P, P, P, i32, i32, i32], returns: i32 },
  fp8_cpu_softmax: { args: [P, P, i32, I64, I64, i32], returns: i32 },
  fp8_cpu_softmax_backward: { args: [P, P, P, i32, I64, I64, i32], returns: i32 },
  fp8_cpu_layer_norm: { args: [P, P, P, P, P, P, i32, I64, I64, f32], returns: i32 },
  fp8_cpu_layer_norm_backward: { args: [P, P, P, P, P, P, P, P, i32, I64, I64], returns: i32 },
  fp8_cpu_rms_norm: { args: [P, P, P, P, i32, I64, I64, f32], returns: i32 },
  fp8_cpu_rms_norm_backward: { args: [P, P, P, P, P, P, i32, I64, I64], returns: i32 },

  fp8_cpu_copy_strided: { args: [P, P, P, P, P, i32, i32], returns: i32 },
  fp8_cpu_fill: { args: [P, i32, I64, f64], returns: i32 },
  fp8_cpu_masked_fill: { args: [P, P, P, i32, I64, I64, f32], returns: i32 },
  fp8_cpu_embedding: { args: [P, P, P, i32, I64, I64, I64], returns: i32 },
  fp8_cpu_embedding_backward: { args: [P, P, P, i32, I64, I64, I64], returns: i32 },
  fp8_cpu_cross_entropy: { args: [P, P, P, P, i32, I64, I64, i32], returns: i32 },
  fp8_cpu_cross_entropy_backward: { args: [P, P, P, f32, i32, I64, I64, i32], returns: i32 },

  fp8_cpu_onednn_version: { args: [P, P, P], returns: i32 },
  fp8_cpu_onednn_ref_count: { args: [P], returns: i32 },
  fp8_cpu_onednn_report: { args: [], returns: cstring },

  fp8_cpu_sgd_step: { args: [P, P, P, i32, I64, f32, f32, f32, f32, i32, i32], returns: i32 },
  fp8_cpu_adamw_step: {
    args: [P, P, P, P, i32, I64, f32, f32, f32, f32, f32, I64],
    returns: i32,
  },
} as const;

/** Folder of this package (the one holding package.json, src/ and build/). */
export const packageRoot: string = join(import.meta.dir, "..", "..");

/** Path of the shared library this process loads. */
export const libraryPath: string = process.env.FLOAT8_LIB ?? join(packageRoot, "build", "libfp8.so");

/**
 * The command that builds the native libraries, as a user types it: from their own
 * project folder when float8 is installed as a dependency, else from this checkout.
 */
export function buildCommand(): string {
  const installed = packageRoot.split(sep).includes("node_modules");
  return installed
    ? `bunx float8 build   (run it in your project folder, ${process.cwd()})`
    : `bun run build   (run it in ${packageRoot})`;
}

type LibSymbols = ReturnType<typeof dlopen<typeof symbols>>["symbols"];

function open(): LibSymbols {
  if (!existsSync(libraryPath)) {
    const how = process.env.FLOAT8_LIB
      ? "FLOAT8_LIB names a file that does not exist; unset it or point it at a built libfp8.so"
      : `build it with: ${buildCommand()}`;
    throw new Float8Error("load", `libfp8 not found at ${libraryPath}; ${how}`);
  }
  return dlopen(libraryPath, symbols).symbols;
}

/**
 * Raw native functions; pass TypedArrays or numeric pointers as `ptr` arguments.
 * Every property starts as a getter that opens libfp8 on first use and then
 * replaces all of them by the plain native functions (no cost after the first call).
 */
export const lib = {} as LibSymbols;
function loadInto(): void {
  const opened = open();
  for (const name of Object.keys(symbols) as (keyof LibSymbols)[]) {
    Object.defineProperty(lib, name, { value: opened[name], enumerable: true, writable: true, configurable: true }); // writable: tests wrap them (test/backend_contract.test.ts)
  }
}
for (const name of Object.keys(symbols) as (keyof LibSymbols)[]) {
  Object.defineProperty(lib, name, {
    enumerable: true,
    configurable: true,
    get() {
      loadInto();
      return lib[name];
    },
  });
}

/** True once libfp8 has been opened (a native call was made). */
export function libraryLoaded(): boolean {
  return Object.getOwnPropertyDescriptor(lib, "fp8_last_error")?.get === undefined;
}

/** Throws Float8Error(op, message) when a native call returned a non-zero status. */
export function check(status: number, op: string): void {
  if (status !== 0) {
    const msg = String(lib.fp8_last_error() ?? "");
    throw new Float8Error(op, msg || `native call failed with status ${status}`);
  }
}

/** A native pointer (a branded number; what `ptr` arguments accept). */
export type NativePtr = Pointer;

/** p advanced by `bytes`. */
export function offsetPtr(p: NativePtr, bytes: number): NativePtr {
  return (p + bytes) as NativePtr;
}

/** Allocates `nbytes` of 64-byte aligned native memory. */
export function nativeAlloc(nbytes: number): NativePtr {
  const out = new BigUint64Array(1);
  check(lib.fp8_alloc(nbytes, out), "alloc");
  return Number(out[0]) as NativePtr;
}

/** Frees memory from nativeAlloc. */
export function nativeFree(p: NativePtr): void {
  check(lib.fp8_free(p), "free");
}

/** A view of native memory as an ArrayBuffer (no copy). Valid until freed. */
export function nativeView(p: NativePtr, nbytes: number): ArrayBuffer {
  if (nbytes === 0) return new ArrayBuffer(0);
  return toArrayBuffer(p, 0, nbytes);
}

/** Live bytes and allocations of native memory, and bytes held by the allocator's cache. */
export function nativeMemoryStats(): { liveBytes: number; liveAllocs: number; cachedBytes: number } {
  const b = new BigInt64Array(1);
  const a = new BigInt64Array(1);
  const c = new BigInt64Array(1);
  check(lib.fp8_memory_stats(b, a), "memoryStats");
  check(lib.fp8_memory_cached(c), "memoryStats");
  return { liveBytes: Number(b[0]), liveAllocs: Number(a[0]), cachedBytes: Number(c[0]) };
}

/** Returns the allocator's cached blocks to the system. */
export function nativeEmptyCache(): void {
  check(lib.fp8_empty_cache(), "emptyCache");
}
