// gemm_layout.ts — which operand layouts the CPU GEMMs of a Linear take
// (docs/architecture.md, "GEMM operand layouts").
//
// A Linear's grad_weight GEMM, g^T @ x, reads g (M, N) transposed, and its
// forward, x @ w^T, reads w (N, K) transposed. oneDNN takes either as a
// strided ("ba") descriptor, and on some CPUs its fastest kernel for a
// transposed operand is much slower than for a row-major one: oneDNN 2.6's AMX
// brgemm ran the backward GEMMs, whose A is transposed, at about half the
// forward's speed on an Intel Xeon (issue 14). There a transpose (one memory
// pass) before the GEMM (many passes) pays for itself, and Float8Linear's casts
// write the transposed layout in their own pass (grad_output for grad_weight,
// the weight for the forward). On AMD Zen 4 (AVX512-BF16, no AMX) the strided
// descriptors measured as fast as a materialised transpose plus a row-major
// GEMM (bench/gemm_layouts.ts), so nothing changes there.
//
// The policy, process-wide:
//   "auto"         "measure" where the CPU has AMX (amx_bf16), "descriptor" elsewhere
//   "descriptor"   always hand the transpose to oneDNN as strides (the layout before issue 14)
//   "materialize"  always write the transposed operand row-major first
//   "measure"      per GEMM shape, dtype and transposed operand (a or b), time both once (on
//                  zero-filled scratch operands, the first time the problem comes up) and
//                  materialise only where that is at least 10 % faster; the choice is cached for
//                  the process (gemmLayoutChoices())
// Default "auto", or the FLOAT8_CPU_GEMM_LAYOUT environment variable.
import { Float8Error } from "../../errors.ts";
import type { HighPrecisionDType } from "../dtype.ts";
import { zeros } from "../tensor.ts";
import { gemm, transposed2d } from "./linalg.ts";

/** How a CPU GEMM reads an operand stored transposed. */
export type GemmLayoutPolicy = "auto" | "descriptor" | "materialize" | "measure";

/** The three GEMMs of a Linear (and Float8Linear). */
export type LinearGemm = "forward" | "grad_input" | "grad_weight";

const POLICIES: readonly GemmLayoutPolicy[] = ["auto", "descriptor", "materialize", "measure"];

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
 * Sets how CPU GEMMs read transposed operands ("auto", "descriptor",
 * "materialize" or "measure"; see the top of src/tensor/ops/gemm_layout.ts) and returns the
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

/** A GEMM problem op(a) (P, R) @ b (R, Q) whose a is stored transposed (R, P). */
export interface TransposedAProblem {
  P: number;
  R: number;
  Q: number;
  dtype: HighPrecisionDType;
}

/** A GEMM problem a (P, R) @ op(b) (R, Q) whose b is stored transposed (Q, R). */
export type TransposedBProblem = TransposedAProblem;

const choices = new Map<string, { materialize: boolean; descriptorMs: number; materializeMs: number }>();

/** What the "measure" policy chose so far, per GEMM problem: "P,R,Q,dtype" for a transposed a,
 * "P,R,Q,dtype,transB" for a transposed b (times in ms, best of 2). */
export function gemmLayoutChoices(): Record<string, { materialize: boolean; descriptorMs: number; materializeMs: number }> {
  return Object.fromEntries(choices);
}

function measured(p: TransposedAProblem, operand: "a" | "b"): boolean {
  const key = `${p.P},${p.R},${p.Q},${p.dtype}${operand === "b" ? ",transB" : ""}`;
  const hit = choices.get(key);
  if (hit) return hit.materialize;
  const op = "gemmLayout.measure";
  // the transposed operand as stored: a (R, P) or b (Q, R); the other row-major
  const a = operand === "a" ? zeros([p.R, p.P], { dtype: p.dtype }) : zeros([p.P, p.R], { dtype: p.dtype });
  const b = operand === "a" ? zeros([p.R, p.Q], { dtype: p.dtype }) : zeros([p.Q, p.R], { dtype: p.dtype });
  const time = (fn: () => void) => {
    const t0 = performance.now();
    fn();
    return performance.now() - t0;
  };
  const dims = { M: p.P, K: p.R, N: p.Q, op };
  const viaStrides = () => gemm(a, b, { ...dims, transA: operand === "a", transB: operand === "b" }).dispose();
  const viaCopy = () => {
    const t = operand === "a" ? transposed2d(a, p.R, p.P, op) : transposed2d(b, p.Q, p.R, op);
    (operand === "a" ? gemm(t, b, dims) : gemm(a, t, dims)).dispose();
    t.dispose();
  };
  try {
    viaStrides(); // warm-up: primitive creation, first touch
    viaCopy();
    let d = Infinity, m = Infinity;
    for (let i = 0; i < 2; i++) {
      d = Math.min(d, time(viaStrides));
      m = Math.min(m, time(viaCopy));
    }
    const choice = { materialize: m < 0.9 * d, descriptorMs: d, materializeMs: m };
    choices.set(key, choice);
    return choice.materialize;
  } finally {
    a.dispose();
    b.dispose();
  }
}

function materialize(device: string, problem: TransposedAProblem | undefined, operand: "a" | "b"): boolean {
  if (device !== "cpu") return false;
  const mode = policy === "auto" ? (cpuHasAmxBf16() ? "measure" : "descriptor") : policy;
  if (mode === "descriptor") return false;
  if (mode === "materialize") return true;
  return problem !== undefined && problem.P * problem.R * problem.Q > 0 && measured(problem, operand);
}

/**
 * Whether a CPU GEMM should read its A operand, stored transposed, from a
 * row-major copy written first (true) or through a strided descriptor (false).
 * `problem` lets the "measure" policy decide per shape (without it, false).
 */
export function materializeTransposedA(device: string, problem?: TransposedAProblem): boolean {
  return materialize(device, problem, "a");
}

/**
 * Whether a CPU GEMM should read its B operand, stored transposed (a Linear's
 * weight in the forward GEMM), from a row-major copy written first (true) or
 * through a strided descriptor (false). `problem` lets the "measure" policy
 * decide per shape (without it, false).
 */
export function materializeTransposedB(device: string, problem?: TransposedBProblem): boolean {
  return materialize(device, problem, "b");
}
