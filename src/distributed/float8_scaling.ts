// float8_scaling.ts — float8 casts whose scale comes from the MAX over ranks.
// A tensor sharded across ranks (an FSDP weight shard, a tensor-parallel
// weight or activation) must be cast with the scale of the whole tensor, or
// every rank would quantize its piece differently from a single process.
import { Float8Error } from "../errors.ts";
import type { Float8DType, HighPrecisionDType } from "../tensor/dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
import {
  Float8Tensor, amaxToScale, roundScaleDownToPowerOf2, scalarTensor, tensorToAmax, toFloat8Saturated, type GemmInputRole,
} from "../float8/float8_tensor.ts";
import type { RoleScaling } from "../float8/float8_linear.ts";
import { ScalingGranularity, ScalingType } from "../float8/config.ts";
import { allReduceArray } from "./process_group.ts";

/** max |x| of a float32/bfloat16 tensor (local, no communication). */
export function localAmax(x: Tensor): number {
  const t = tensorToAmax(x);
  const v = t.item(); // (on a device: one read back, for the cross-rank MAX that follows)
  t.dispose();
  return v;
}

/** The tensorwise scale of `st` for an amax (rounded down to a power of 2 when the recipe asks). */
export function scaleForAmax(amax: number, st: RoleScaling): number {
  const s = amaxToScale(amax, st.float8Dtype);
  return st.roundPow2 ? roundScaleDownToPowerOf2(s) : s;
}

/** Casts x (this rank's piece) with a given scale into a Float8Tensor. */
export function castWithScale(x: Tensor, scale: number, float8Dtype: Float8DType, role: GemmInputRole, origDtype?: HighPrecisionDType): Float8Tensor {
  const scaleT = scalarTensor(scale, x.device);
  return new Float8Tensor(toFloat8Saturated(x, scaleT, float8Dtype), scaleT, origDtype ?? (x.dtype as HighPrecisionDType), role);
}

/** Dynamic tensorwise cast of a sharded tensor: one MAX all-reduce of the amax, then a local cast. */
export function castWithGlobalAmax(x: Tensor, st: RoleScaling, key: string): Float8Tensor {
  const amax = allReduceArray(Float32Array.of(localAmax(x)), "max", { key })[0];
  return castWithScale(x, scaleForAmax(amax, st), st.float8Dtype, st.role);
}

/** Throws unless every cast of the layer is tensorwise (what the distributed float8 paths support). */
export function requireTensorwise(config: { isSimpleTensorwise: boolean; scalingRepr(): string }, op: string, fqn: string): void {
  if (!config.isSimpleTensorwise) {
    throw new Float8Error(op, `${fqn}: float8 with ${config.scalingRepr()} is not supported here; use tensorwise scaling (the default recipe)`);
  }
}

/** Whether a role casts with a per-call dynamic tensorwise scale. */
export function isDynamicTensorwise(st: RoleScaling): boolean {
  return st.config.scalingType === ScalingType.DYNAMIC && st.config.scalingGranularity === ScalingGranularity.TENSORWISE;
}
