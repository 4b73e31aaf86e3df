// onednn.ts — what oneDNN runs underneath the CPU backend: its version, every
// primitive it ran with a slow reference ("ref...") implementation, and which
// path each fp8 matmul took (libfp8/src/cpu/onednn_check.cpp).
import { lib, check } from "../../ffi/index.ts";

/** A oneDNN primitive that runs its reference (plain C++) implementation. */
export interface OnednnRefPrimitive {
  /** libfp8's name for the op ("reduction", "matmul", ...). */
  op: string;
  /** oneDNN's implementation name (impl_info_str()), e.g. "ref:any". */
  impl: string;
  /** Shapes and dtypes of the problem. */
  problem: string;
}

/** How one fp8 matmul problem runs: oneDNN's native fp8 kernel or decode to bf16. */
export interface OnednnFp8MatmulChoice {
  problem: string;
  path: "native" | "decode_bf16";
  /** The native primitive's implementation, "" when oneDNN offers none. */
  nativeImpl: string;
  reason: string;
}

/** The oneDNN state of this process. */
export interface OnednnInfo {
  /** The oneDNN release loaded at run time, "major.minor.patch". */
  version: string;
  /** The oneDNN API major version libfp8 was compiled against (2 or 3). */
  api: number;
  /** Primitives created so far with a reference implementation (empty on a healthy step). */
  refPrimitives: OnednnRefPrimitive[];
  /** fp8 matmul path decisions made so far. */
  fp8Matmul: OnednnFp8MatmulChoice[];
}

/** Reports the oneDNN version and what it has run so far (reference implementations, fp8 matmul paths). */
export function onednnInfo(): OnednnInfo {
  const report = String(lib.fp8_cpu_onednn_report() ?? "");
  if (!report) check(1, "onednnInfo");
  const r = JSON.parse(report) as {
    version: string;
    api: number;
    ref: OnednnRefPrimitive[];
    fp8_matmul: { problem: string; path: "native" | "decode_bf16"; native_impl: string; reason: string }[];
  };
  return {
    version: r.version,
    api: r.api,
    refPrimitives: r.ref,
    fp8Matmul: r.fp8_matmul.map((c) => ({ problem: c.problem, path: c.path, nativeImpl: c.native_impl, reason: c.reason })),
  };
}
