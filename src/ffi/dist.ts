// dist.ts — loads libfp8_dist (collectives over MPI, NCCL plugin for GPUs)
// lazily: only a program that creates a process group opens it, so libfp8
// never drags MPI into a single-process run.
//
// The library is found at $FLOAT8_DIST_LIB, else next to libfp8 (same folder
// as $FLOAT8_LIB or build/libfp8.so). Its errors come from fp8_dist_last_error.
import { dlopen, FFIType } from "bun:ffi";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { Float8Error } from "../errors.ts";
import { libraryPath } from "./library.ts";
import { openWithRuntimeDeps, preloadLibrary } from "./runtime_deps.ts";

const { ptr: P, i32, i64_fast: I64, cstring } = FFIType;

/** Symbol table of the "distributed" section of fp8.h. */
export const symbols = {
  fp8_dist_last_error: { args: [], returns: cstring },
  fp8_dist_init: { args: [i32, I64], returns: i32 },
  fp8_dist_finalize: { args: [], returns: i32 },
  fp8_dist_rank: { args: [P], returns: i32 },
  fp8_dist_size: { args: [P], returns: i32 },
  fp8_dist_local_rank: { args: [P], returns: i32 },
  fp8_dist_has_nccl: { args: [P], returns: i32 },
  fp8_dist_set_timeout: { args: [I64], returns: i32 },
  fp8_dist_set_shape_check: { args: [i32], returns: i32 },
  fp8_dist_set_stream: { args: [P], returns: i32 },
  fp8_dist_all_reduce: { args: [P, i32, I64, i32, i32, I64, P, i32], returns: i32 },
  fp8_dist_all_gather: { args: [P, P, i32, I64, i32, I64, P, i32], returns: i32 },
  fp8_dist_reduce_scatter: { args: [P, P, i32, I64, i32, i32, I64, P, i32], returns: i32 },
  fp8_dist_broadcast: { args: [P, i32, I64, i32, i32, I64, P, i32], returns: i32 },
  fp8_dist_barrier: { args: [], returns: i32 },
  fp8_dist_bytes_sent: { args: [i32, P, P], returns: i32 },
  fp8_dist_reset_counters: { args: [], returns: i32 },
} as const;

/** Path of libfp8_dist this process loads (or would load). */
export const distLibraryPath: string = process.env.FLOAT8_DIST_LIB ?? join(dirname(libraryPath), "libfp8_dist.so");

type DistSymbols = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let loaded: DistSymbols | null = null;

/** The native fp8_dist_* functions, opened on first use. */
export function distLib(): DistSymbols {
  if (loaded) return loaded;
  if (!existsSync(distLibraryPath)) {
    throw new Float8Error(
      "distributed",
      `libfp8_dist not found at ${distLibraryPath}; it is built with libfp8 when CMake finds MPI ` +
        "(apt install libopenmpi-dev openmpi-bin, then 'bun run build'), or set FLOAT8_DIST_LIB",
    );
  }
  loaded = dlopen(distLibraryPath, symbols).symbols;
  return loaded;
}

/** Throws Float8Error(op, message) when a fp8_dist_* call returned a non-zero status. */
export function checkDist(status: number, op: string): void {
  if (status !== 0) {
    const msg = String(distLib().fp8_dist_last_error() ?? "");
    throw new Float8Error(op, msg || `native call failed with status ${status}`);
  }
}

/** Path of the NCCL plugin libfp8_dist opens for the "nccl" backend. */
export const ncclPluginPath: string = process.env.FP8_DIST_NCCL_LIB ?? join(dirname(distLibraryPath), "libfp8_dist_nccl.so");

/**
 * Before the "nccl" backend starts: opens the NCCL plugin once so that NCCL and the
 * CUDA runtime it links are found without LD_LIBRARY_PATH (its $ORIGIN-relative run
 * paths, then $FP8_NCCL_ROOT, then a Python environment's nvidia/<wheel>/lib; see
 * runtime_deps.ts). libfp8_dist's own dlopen of the plugin then reuses this copy.
 * A missing plugin is left to libfp8_dist, whose error says how it is built.
 */
export function prepareNcclPlugin(): void {
  if (!existsSync(ncclPluginPath)) return;
  try {
    openWithRuntimeDeps(ncclPluginPath, "nccl", () => {
      const failure = preloadLibrary(ncclPluginPath);
      if (failure !== null) throw new Error(failure);
    });
  } catch (e) {
    throw new Float8Error("distributed", (e as Error).message);
  }
}
