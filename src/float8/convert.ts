// convert.ts — convertToFloat8Training (the one-call module swap) and
// syncFloat8AmaxAndScaleHistory (delayed scaling's per-step update, one
// batched native call for every layer).
import { Float8Error } from "../errors.ts";
import { Linear } from "../nn/layers.ts";
import type { Module } from "../nn/module.ts";
import { Tensor, zeros } from "../tensor/tensor.ts";
import * as dev from "../tensor/device_ops.ts";
import { Float8LinearConfig, ScalingType } from "./config.ts";
import { Float8Linear, type RoleScaling } from "./float8_linear.ts";

/** Decides per module whether it is converted: (module, fqn) -> boolean. */
export type ModuleFilterFn = (module: Module, fqn: string) => boolean;

/**
 * Swaps every nn.Linear in the tree whose (module, fqn) the filter accepts for
 * a Float8Linear that shares its weight and bias. Returns the (root) module:
 * the same object, unless the root itself is a Linear.
 */
export function convertToFloat8Training<M extends Module>(
  module: M,
  opts: { moduleFilterFn?: ModuleFilterFn; config?: Float8LinearConfig } = {},
): M | Float8Linear {
  const config = opts.config ?? new Float8LinearConfig();
  if (!(config instanceof Float8LinearConfig)) throw new Float8Error("convertToFloat8Training", "config must be a Float8LinearConfig");
  const filter = opts.moduleFilterFn ?? (() => true);
  if (typeof filter !== "function") {
    throw new Float8Error("convertToFloat8Training", `moduleFilterFn must be a function (module, fqn) => boolean, got ${filter === null ? "null" : typeof filter}`);
  }
  if (module === null || typeof module !== "object" || typeof (module as Module).namedModules !== "function") {
    throw new Float8Error("convertToFloat8Training", `expects an nn.Module, got ${module === null ? "null" : typeof module}`);
  }
  const isPlainLinear = (m: Module) => m instanceof Linear && !(m instanceof Float8Linear);
  if (isPlainLinear(module) && filter(module, "")) {
    // torchao's swap_linear_layers: a root Linear with children would lose them in the swap
    const children = [...module.namedChildren()];
    if (children.length > 0) {
      throw new Float8Error("convertToFloat8Training", `does not support a root nn.Linear with children (${children.map(([f]) => f).join(", ")})`);
    }
    return Float8Linear.fromFloat(module as unknown as Linear, config);
  }
  // a root Linear the filter rejects: its Linear children may still be swapped (as torchao)
  const targets = [...module.namedModules()].filter(([fqn, m]) => fqn !== "" && isPlainLinear(m) && filter(m, fqn));
  for (const [fqn, m] of targets) module.setSubmodule(fqn, Float8Linear.fromFloat(m as Linear, config));
  return module;
}

/** Every Float8Linear in the tree. */
export function float8Layers(model: Module): Float8Linear[] {
  return [...model.namedModules()].map(([, m]) => m).filter((m): m is Float8Linear => m instanceof Float8Linear);
}

/**
 * A hook that reduces all amaxes across ranks before the sync (set by src/distributed): it gets
 * one float32 tensor [n] holding every delayed-scaling amax of one device, and reduces it in
 * place (one collective; on a GPU with NCCL, stream-ordered on the device, no host read).
 */
export type AmaxReducer = (packed: Tensor) => void;
let amaxReducer: AmaxReducer | null = null;

/** Installs (or clears) the cross-rank MAX reduction used by the sync. */
export function setAmaxReducer(fn: AmaxReducer | null): void {
  amaxReducer = fn;
}

/**
 * Every state's amax into one float32 buffer on their device, reduced there by the reducer,
 * and back: device-to-device copies around one collective, so nothing reads the device from
 * the host and the whole sync can be captured in a CUDA graph (issue 16).
 */
function reduceAmaxes(states: readonly RoleScaling[], reducer: AmaxReducer, op: string): void {
  for (const device of new Set(states.map((s) => s.amax!.device))) {
    const on = states.filter((s) => s.amax!.device === device);
    const packed = zeros([on.length], { dtype: "float32", device });
    try {
      on.forEach((st, i) => dev.copyElements(packed, i, st.amax!, 0, 1, op));
      reducer(packed);
      on.forEach((st, i) => dev.copyElements(st.amax!, 0, packed, i, 1, op));
    } finally {
      packed.dispose();
    }
  }
}

/**
 * Delayed scaling's per-step update, for every Float8Linear in the model:
 * each amax history rolls by one, takes the latest amax in slot 0, and the
 * scale becomes amaxToScale(max(history)). One native call for all layers.
 */
export function syncFloat8AmaxAndScaleHistory(model: Module): void {
  const layers = float8Layers(model).filter((l) => l.config.hasAnyDelayedScaling);
  const byLen = new Map<number, RoleScaling[]>();
  const clampOf = new Map<RoleScaling, boolean>(); // float16 layers clamp their scales to 65504 (torchao)
  for (const l of layers) {
    // overrides equal to a main cast share its RoleScaling: visit each state once
    for (const st of new Set(Object.values(l.scaling))) {
      if (st.config.scalingType !== ScalingType.DELAYED) continue;
      const len = st.history!.numel;
      clampOf.set(st, l.weight.dtype === "float16");
      byLen.set(len, [...(byLen.get(len) ?? []), st]);
    }
  }
  if (amaxReducer) reduceAmaxes([...byLen.values()].flat(), amaxReducer, "syncFloat8AmaxAndScaleHistory");
  for (const [len, states] of byLen) {
    const op = "syncFloat8AmaxAndScaleHistory";
    // one call per device (a model normally lives on one)
    for (const device of new Set(states.map((s) => s.amax!.device))) {
      const on = states.filter((s) => s.amax!.device === device);
      dev.syncAmaxHistory(
        on.map((s) => ({ amax: s.amax!, history: s.history!, scale: s.scale!, float8Dtype: s.float8Dtype, clampToFloat16: clampOf.get(s) ?? false })),
        len, op,
      );
    }
  }
  for (const l of layers) l.amaxAndScaleSynced = true;
}
