// gemm_layout.ts — which operand layouts the CPU GEMMs of a Linear take
// (docs/architecture.md, "GEMM operand layouts").
//
// A Linear's grad_weight GEMM, g^T @ x, reads g (M, N) transposed. oneDNN
// takes that as a strided ("ba") descriptor, and on some CPUs its fastest
// kernel for a transposed A is much slower than for a row-major one: oneDNN
// 2.6's AMX brgemm ran the backward GEMMs at about half the forward's speed on
// an Intel Xeon (issue 14). There a transpose (one memory pass) before the GEMM
// (many passes) pays for itself, and Float8Linear's cast of grad_output writes
// the transposed layout in its own pass. On AMD Zen 4 (AVX512-BF16, no AMX) the
// strided descriptor measured as fast as a materialised transpose plus a
// row-major GEMM (bench/gemm_layouts.ts), so nothing changes there.
//
// The policy, process-wide:
//   "auto"         materialise where the CPU has AMX (amx_bf16), strided descriptors elsewhere
//   "descriptor"   always hand the transpose to oneDNN as strides (the layout before issue 14)
//   "materialize"  always write the transposed operand row-major first
// Default "auto", or the FLOAT8_CPU_GEMM_LAYOUT environment variable.
import { Float8Error } from "../../errors.ts";

/** How a CPU GEMM reads an operand stored transposed. */
export type GemmLayoutPolicy = "auto" | "descriptor" | "materialize";

/** The three GEMMs of a Linear (and Float8Linear). */
export type LinearGemm = "forward" | "grad_input" | "grad_weight";

const POLICIES: readonly GemmLayoutPolicy[] = ["auto", "descriptor", "materialize"];

function fromEnv(): GemmLayoutPolicy {
  const v = typeof process !== "undefined" ? process.env.FLOAT8_CPU_GEMM_LAYOUT : undefined;
  if (v === undefined || v === "") return "auto";
  if (!POLICIES.includes(v as GemmLayoutPolicy)) {
    throw new Float8Error("FLOAT8_CPU_GEMM_LAYOUT", `must be one of ${POLICIES.join(", ")}, got "${v}"`);
  }
  return v as GemmLayoutPolicy;
}

let policy: GemmLayoutPolicy = fromEnv();
let cpuHasAmx: boolean | null = null;

/** Whether this CPU has AMX for bf16 (Linux: `amx_bf16` in /proc/cpuinfo's flags; false elsewhere). */
export function cpuHasAmxBf16(): boolean {
  if (cpuHasAmx === null) {
    try {
      const fs = require("node:fs") as typeof import("node:fs");
      const flags = /^flags\s*:\s*(.*)$/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "";
      cpuHasAmx = flags.split(/\s+/).includes("amx_bf16");
    } catch {
      cpuHasAmx = false;
    }
  }
  return cpuHasAmx;
}

/**
 * Sets how CPU GEMMs read transposed operands ("auto", "descriptor" or
 * "materialize"; see the top of src/tensor/ops/gemm_layout.ts) and returns the
 * previous policy. Results are the same either way up to the GEMM kernel's
 * summation order (bit-identical on the CPUs tested).
 */
export function setGemmLayoutPolicy(p: GemmLayoutPolicy): GemmLayoutPolicy {
  if (!POLICIES.includes(p)) throw new Float8Error("setGemmLayoutPolicy", `policy must be one of ${POLICIES.join(", ")}, got ${String(p)}`);
  const prev = policy;
  policy = p;
  return prev;
}

/** The current GEMM layout policy. */
export function gemmLayoutPolicy(): GemmLayoutPolicy {
  return policy;
}

/**
 * Whether a CPU GEMM should read its A operand, stored transposed, from a
 * row-major copy written first (true) or through a strided descriptor (false).
 */
export function materializeTransposedA(device: string): boolean {
  if (device !== "cpu") return false;
  if (policy === "descriptor") return false;
  if (policy === "materialize") return true;
  return cpuHasAmxBf16();
}
