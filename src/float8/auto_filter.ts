// auto_filter.ts — automatic per-layer float8/bf16 choice: a moduleFilterFn
// that keeps a Linear in float8 only where the roofline model (measured on the
// device when it can be) predicts a forward+backward speedup > 1.
import { Float8Error } from "../errors.ts";
import { Linear } from "../nn/layers.ts";
import type { Module } from "../nn/module.ts";
import type { Float8RecipeName } from "./config.ts";
import type { ModuleFilterFn } from "./convert.ts";
import { deviceGemmTimer, measureMemcpyBandwidth } from "./gemm_timer.ts";
import { deviceSpec, explainDecision, predictLinearSpeedup, type MeasureGemmTimes } from "./roofline.ts";

/** One decision of an auto filter. */
export interface AutoFilterDecision {
  fqn: string;
  float8: boolean;
  reason: string;
}

/** A moduleFilterFn that also records why it decided what it did. */
export interface AutoFilterFn extends ModuleFilterFn {
  readonly decisions: AutoFilterDecision[];
}

/** Options of autoFilterForRecipe. */
export interface AutoFilterOptions {
  /** tokens per step: the GEMM's M (batch size x sequence length) */
  M: number;
  /** "h100" | "h200" (roofline peak rates) or "cpu" (GEMMs measured on this machine); default "h100" */
  device?: string;
  /** layers whose fqn contains any of these strings stay in high precision (e.g. "output") */
  filterFqns?: readonly string[];
  /** measured GEMM times for the device; calibrates the model instead of peak rates */
  measureGemmTimes?: MeasureGemmTimes;
  /** print each decision with its reason */
  explain?: boolean;
}

/**
 * Returns a moduleFilterFn for convertToFloat8Training that converts a Linear
 * (in=K, out=N) only where the model predicts float8 beats bf16 at M tokens.
 * The overhead part of the model counts tensorwise amax/cast bytes; the rowwise
 * recipes move the same bytes per element (one amax read, one cast read+write),
 * so the same count serves them.
 */
export function autoFilterForRecipe(recipe: Float8RecipeName, opts: AutoFilterOptions): AutoFilterFn {
  if (!["tensorwise", "rowwise", "rowwise_with_gw_hp"].includes(recipe)) {
    throw new Float8Error("autoFilterForRecipe", `unknown recipe '${String(recipe)}'`);
  }
  if (!Number.isInteger(opts.M) || opts.M <= 0) throw new Float8Error("autoFilterForRecipe", `M must be a positive integer, got ${opts.M}`);
  const device = (opts.device ?? "h100").toLowerCase();
  let spec = deviceSpec(device);
  let measure = opts.measureGemmTimes;
  if (device === "cpu") {
    measure ??= deviceGemmTimer("cpu");
    spec = { ...spec, memBandwidthBytesPerSec: measureMemcpyBandwidth() };
  }
  const decisions: AutoFilterDecision[] = [];
  const fn = ((m: Module, fqn: string) => {
    const skip = (opts.filterFqns ?? []).find((f) => fqn.includes(f));
    let decision: AutoFilterDecision;
    if (skip !== undefined) {
      decision = { fqn, float8: false, reason: `fqn matches filter '${skip}'` };
    } else if (!(m instanceof Linear)) {
      decision = { fqn, float8: false, reason: "not a Linear" };
    } else {
      const p = predictLinearSpeedup(opts.M, m.inFeatures, m.outFeatures, spec, measure ? { measureGemmTimes: measure } : {});
      decision = { fqn, float8: p.speedup > 1, reason: `${recipe}: ${explainDecision(p)}` };
    }
    decisions.push(decision);
    if (opts.explain) console.log(`autoFilter ${fqn}: ${decision.float8 ? "float8" : "high precision"} (${decision.reason})`);
    return decision.float8;
  }) as AutoFilterFn;
  Object.defineProperty(fn, "decisions", { value: decisions });
  return fn;
}
