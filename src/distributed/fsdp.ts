// fsdp.ts — fullyShard: fully sharded data parallel (torch's FSDP2 fully_shard),
// with torchao's float8 all-gather.
//
// Each parameter is flattened, padded to a multiple of the world size and cut
// into equal pieces; rank r keeps piece r as the registered parameter (so the
// optimizer and its state are sharded too). Every module that owns parameters
// is a unit:
//   before its forward   all-gather its parameters (unshard)
//   after its forward    free the gathered storage (reshardAfterForward)
//   before its backward  all-gather again (a hook on the unit's output)
//   after its backward   reduce-scatter (avg) each gradient into the shard's
//                        grad and free the gathered storage
// The gather is an autograd Function (AllGatherParam): its backward is the
// reduce-scatter, so gradients reach the shards through ordinary autograd.
//
// Float8 all-gather (Float8LinearConfig.enableFsdpFloat8AllGather): a
// Float8Linear's weight shard is cast to e4m3 with ONE scale for the whole
// weight (the MAX of the shards' amaxes over ranks) and the fp8 bytes are
// gathered: half the bytes of a bf16 gather. The layer then uses the gathered
// Float8Tensor as its weight cast (RoleScaling.castOverride) and the
// high-precision unsharded weight is never materialised.
// precomputeFloat8DynamicScaleForFsdp(model), called after optimizer.step(),
// finds every such layer's amax in one MAX all-reduce instead of one per layer.
import { Float8Error } from "../errors.ts";
import { Function, isGradEnabled, noGrad, type FunctionCtx } from "../autograd/graph.ts";
import { Module } from "../nn/module.ts";
import type { HighPrecisionDType } from "../tensor/dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import * as dev from "../tensor/device_ops.ts";
import { copyRegion, reshape } from "../tensor/ops/movement.ts";
import { Float8Tensor, scalarTensor } from "../float8/float8_tensor.ts";
import { Float8Linear } from "../float8/float8_linear.ts";
import { ScalingType } from "../float8/config.ts";
import { allGather, allReduceArray, getRank, getWorldSize, reduceScatter } from "./process_group.ts";
import { broadcastCoalesced } from "./ddp.ts";
import { castWithScale, localAmax, requireTensorwise, scaleForAmax } from "./float8_scaling.ts";

/** Dtypes FSDP computes and reduces in (torch's MixedPrecisionPolicy). */
export interface MixedPrecisionPolicy {
  /** dtype parameters are gathered and computed in (default: the parameter's own) */
  paramDtype?: HighPrecisionDType;
  /** dtype gradients are reduce-scattered in (default: paramDtype) */
  reduceDtype?: HighPrecisionDType;
}

/** Options of fullyShard. */
export interface FullyShardOptions {
  /** free gathered parameters after each unit's forward and gather again for backward (default true) */
  reshardAfterForward?: boolean;
  mpPolicy?: MixedPrecisionPolicy;
  /** broadcast rank 0's parameters and buffers before sharding (default true) */
  syncModuleStates?: boolean;
  /**
   * Checkpoints hold full tensors (default false: stateDict() holds each rank's flat,
   * padded shard). When true, stateDict() gives every sharded parameter with its
   * original shape, all-gathered (a collective: every rank calls stateDict(); the
   * gathered tensors are new, so call it inside tidy() or dispose them), and
   * loadStateDict() takes full tensors and keeps this rank's shard of each. Built on
   * Module's state-dict hooks (registerStateDictHook, registerLoadStateDictPreHook).
   */
  fullStateDict?: boolean;
}

/** One parameter, sharded. */
class ShardedParam {
  readonly numel: number;
  readonly shardNumel: number;
  /** precomputeFloat8DynamicScaleForFsdp's scale for the next gather, used once */
  precomputedScale: number | null = null;

  constructor(
    readonly module: Module,
    readonly name: string,
    readonly fqn: string,
    readonly shape: readonly number[],
    /** the registered parameter: this rank's piece of the flattened, padded tensor */
    readonly shard: Tensor,
    readonly paramDtype: HighPrecisionDType,
    readonly reduceDtype: HighPrecisionDType,
    /** set for a Float8Linear weight gathered as float8 */
    readonly float8: Float8Linear | null,
  ) {
    this.numel = shape.reduce((a, b) => a * b, 1);
    this.shardNumel = shard.numel;
  }
}

/** What one forward gathered for one parameter (autograd may hold it until backward). */
class Unsharded {
  /** high precision: the gathered tensor; float8: a placeholder that carries shape, dtype and the gradient */
  full: Tensor | null = null;
  /** float8 all-gather: the gathered weight */
  fp8: Float8Tensor | null = null;
  scale = 0;
  constructor(readonly sp: ShardedParam) {}
}

/** The first `numel` elements of a gathered flat buffer, shaped. Takes ownership of `flat`. */
function unpad(flat: Tensor, numel: number, shape: readonly number[]): Tensor {
  if (flat.numel === numel) {
    const out = reshape(flat, shape);
    flat.dispose();
    return out;
  }
  const out = Tensor.empty(shape, flat.dtype, flat.device);
  copyRegion(out, 0, [1], flat, 0, [1], [numel], "fullyShard");
  flat.dispose();
  return out;
}

/** Zeros elements [from, to) of a float tensor t in place, on its device. */
function zeroRange(t: Tensor, from: number, to: number): void {
  dev.fillRange(t, from, to, 0, "fullyShard");
}

/** Writes v into a one-element float32 state tensor (on any device). */
function writeScalar(t: Tensor, v: number): void {
  dev.uploadInto(t, Float32Array.of(v), "fullyShard");
}

/** Gathers the high-precision parameter (in paramDtype). */
function gatherHighPrecision(sp: ShardedParam): Tensor {
  const piece = sp.shard.dtype === sp.paramDtype ? sp.shard : sp.shard.to({ dtype: sp.paramDtype });
  const flat = allGather(piece, { key: `fsdp.${sp.fqn}` });
  if (piece !== sp.shard) piece.dispose();
  return unpad(flat, sp.numel, sp.shape);
}

/** Casts the shard with `scale` and gathers the fp8 bytes. */
function gatherFloat8Data(sp: ShardedParam, scale: number): Tensor {
  const piece = castWithScale(sp.shard, scale, sp.float8!.scaling.weight.float8Dtype, "weight");
  const flat = allGather(piece.data, { key: `fsdp.${sp.fqn}.fp8` });
  piece.dispose();
  return unpad(flat, sp.numel, sp.shape);
}

/** The scale of this gather: precomputed, from the delayed-scaling state, or one MAX all-reduce. */
function float8WeightScale(sp: ShardedParam): number {
  const layer = sp.float8!;
  const st = layer.scaling.weight;
  if (st.config.scalingType === ScalingType.DELAYED) {
    // what castToFloat8 does for a delayed weight, with the amax of the whole weight
    const local = localAmax(sp.shard);
    if (!layer.isAmaxInitialized) {
      const amax = allReduceArray(Float32Array.of(local), "max", { key: `fsdp.${sp.fqn}.amaxInit` })[0];
      writeScalar(st.history!, amax); // history[0]
      // the scale comes from the whole history, as initializeAmaxHistory (torchao's amax init)
      writeScalar(st.scale!, scaleForAmax(Math.max(...st.history!.toArray()), st));
    }
    writeScalar(st.amax!, local); // syncFloat8AmaxAndScaleHistory takes the MAX over ranks
    return st.scale!.item();
  }
  if (st.config.scalingType === ScalingType.STATIC) return st.staticScale!.item(); // gathered with its fixed scale
  if (sp.precomputedScale !== null) {
    const s = sp.precomputedScale;
    sp.precomputedScale = null;
    return s;
  }
  const amax = allReduceArray(Float32Array.of(localAmax(sp.shard)), "max", { key: `fsdp.${sp.fqn}.amax` })[0];
  return scaleForAmax(amax, st);
}

/** Fills u with gathered data (first gather of a forward, or again before backward). */
function gather(u: Unsharded, forBackward: boolean): void {
  const sp = u.sp;
  if (sp.float8) {
    if (!forBackward) u.scale = float8WeightScale(sp);
    const data = gatherFloat8Data(sp, u.scale);
    if (u.fp8) {
      u.fp8.data.assign(data);
      data.dispose();
    } else {
      u.fp8 = new Float8Tensor(data, scalarTensor(u.scale, data.device), sp.paramDtype, "weight");
    }
    return;
  }
  const full = gatherHighPrecision(sp);
  if (u.full) {
    u.full.assign(full);
    full.dispose();
  } else {
    u.full = full;
  }
}

/** Frees the gathered storage; the tensor objects stay for autograd and are refilled by gather(). */
function freeStorage(u: Unsharded): void {
  u.full?.dispose();
  u.fp8?.data.dispose();
}

/** Unshard in forward (all-gather), reduce-scatter in backward. */
class AllGatherParam extends Function {
  forward(ctx: FunctionCtx, _shard: Tensor, u: Unsharded): Tensor {
    ctx.data.u = u;
    gather(u, false);
    if (u.sp.float8) {
      // Float8Linear reads only the shape and dtype of its weight argument: the
      // cast comes from castOverride. Untouched pages of this allocation cost nothing.
      u.full = Tensor.empty(u.sp.shape, u.sp.paramDtype, u.sp.shard.device);
    }
    return u.full!;
  }

  backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    const u = ctx.data.u as Unsharded;
    const sp = u.sp;
    const ws = getWorldSize();
    const padded = Tensor.empty([ws * sp.shardNumel], sp.reduceDtype, g.device);
    const gg = g.dtype === sp.reduceDtype ? g : g.to({ dtype: sp.reduceDtype });
    copyRegion(padded, 0, [1], gg, 0, [1], [gg.numel], "fullyShard.backward");
    zeroRange(padded, gg.numel, padded.numel);
    if (gg !== g) gg.dispose();
    const flat = reshape(padded, [ws, sp.shardNumel]);
    padded.dispose();
    const piece = reduceScatter(flat, "avg", { key: `fsdp.${sp.fqn}.grad` });
    flat.dispose();
    const grad1d = reshape(piece, [sp.shardNumel]);
    piece.dispose();
    const grad = grad1d.dtype === sp.shard.dtype ? grad1d : grad1d.to({ dtype: sp.shard.dtype });
    if (grad !== grad1d) grad1d.dispose();
    // the unit's backward is over: nothing needs the gathered parameter any more
    freeStorage(u);
    return [grad, null];
  }
}

/** Gathers a unit's parameters again before its backward (a hook on the unit's output). */
class PreBackward extends Function {
  forward(ctx: FunctionCtx, out: Tensor, unsharded: Unsharded[]): Tensor {
    ctx.data.unsharded = unsharded;
    return reshape(out, out.shape);
  }

  backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    for (const u of ctx.data.unsharded as Unsharded[]) {
      const gone = u.sp.float8 ? u.fp8!.data.isDisposed : u.full!.isDisposed;
      if (gone) gather(u, true);
    }
    return [reshape(g, g.shape), null];
  }
}

/** Modules whose parameters fullyShard manages, for precomputeFloat8DynamicScaleForFsdp. */
const shardedParams = new WeakMap<Module, ShardedParam[]>();

/** Makes rank r's piece of p: flat elements [r * n, (r + 1) * n), zero-padded. */
function cutShard(p: Tensor, shardNumel: number, rank: number): Tensor {
  const shard = Tensor.empty([shardNumel], p.dtype, p.device);
  const from = Math.min(rank * shardNumel, p.numel), to = Math.min((rank + 1) * shardNumel, p.numel);
  copyRegion(shard, 0, [1], p, from, [1], [to - from], "fullyShard");
  zeroRange(shard, to - from, shardNumel);
  return shard;
}

/**
 * Shards every parameter of `model` over the ranks (torch's fully_shard
 * applied to every module that owns parameters). Create the optimizer after
 * this call, over model.parameters(), which are then the local shards.
 * Modules must keep each parameter in a field of the same name (Linear's
 * `weight` and `bias`, norms' `weight`), as every built-in layer does.
 */
export function fullyShard<M extends Module>(model: M, opts: FullyShardOptions = {}): M {
  const op = "fullyShard";
  const ws = getWorldSize();
  const rank = getRank();
  const reshardAfterForward = opts.reshardAfterForward ?? true;
  if (opts.syncModuleStates ?? true) {
    broadcastCoalesced([...model.parameters(), ...[...model.namedBuffers()].map(([, b]) => b)], 250 * 2 ** 20, "fsdp.init");
  }
  const seen = new Set<Tensor>();
  for (const [fqn, m] of model.namedModules()) {
    const own = [...m.namedParameters("", false)];
    if (own.length === 0 || shardedParams.has(m)) continue;
    const sps: ShardedParam[] = [];
    for (const [name, p] of own) {
      const pfqn = fqn ? `${fqn}.${name}` : name;
      if (seen.has(p)) throw new Float8Error(op, `${pfqn} is shared with another parameter; tied parameters are not supported`);
      seen.add(p);
      // setParameter swaps the field of the parameter's name, which is what forward reads
      if (Reflect.get(m, name) !== p) throw new Float8Error(op, `${pfqn}: the module must keep the parameter in its field '${name}'`);
      if (p.dtype !== "float32" && p.dtype !== "bfloat16") throw new Float8Error(op, `${pfqn} has dtype ${p.dtype}; expected float32 or bfloat16`);
      const paramDtype = opts.mpPolicy?.paramDtype ?? p.dtype;
      const reduceDtype = opts.mpPolicy?.reduceDtype ?? paramDtype;
      let float8: Float8Linear | null = null;
      if (m instanceof Float8Linear && name === "weight" && m.config.enableFsdpFloat8AllGather) {
        requireTensorwise(m.config, op, fqn);
        if (m.config.forceRecomputeFp8WeightInBwd) {
          throw new Float8Error(op, `${fqn}: forceRecomputeFp8WeightInBwd needs the high-precision weight, which the float8 all-gather never builds`);
        }
        float8 = m;
      }
      const shard = cutShard(p, Math.ceil(p.numel / ws), rank);
      const sp = new ShardedParam(m, name, pfqn, p.shape, shard, paramDtype, reduceDtype, float8);
      m.registerParameter(name, shard); // replaces p, in the parameter map and in the field
      p.grad?.dispose();
      p.grad = null;
      p.dispose();
      sps.push(sp);
    }
    shardedParams.set(m, sps);
    installHooks(m, sps, reshardAfterForward);
    if (opts.fullStateDict) installStateDictHooks(m, sps, rank);
  }
  return model;
}

/**
 * The unit's forward hooks: the pre-hook gathers its parameters and swaps them
 * in (setParameter), the post-hook (also on a failed forward) swaps the shards
 * back and arranges the gather before backward.
 */
function installHooks(m: Module, sps: ShardedParam[], reshardAfterForward: boolean): void {
  let current: Unsharded[] = [];
  for (const sp of sps) {
    if (sp.float8) {
      sp.float8.scaling.weight.castOverride = () => {
        const fp8 = current.find((u) => u.sp === sp)?.fp8;
        if (!fp8 || fp8.data.isDisposed) throw new Float8Error("fullyShard", `${sp.fqn}: the float8 weight was not gathered before use`);
        return fp8;
      };
    }
  }
  m.registerForwardPreHook(() => {
    current = sps.map((sp) => new Unsharded(sp));
    for (const u of current) m.setParameter(u.sp.name, AllGatherParam.apply(u.sp.shard, u));
  });
  m.registerForwardHook((_m, _inputs, out) => {
    for (const sp of sps) m.setParameter(sp.name, sp.shard);
    const unsharded = current;
    const hooked = out instanceof Tensor && out.requiresGrad && isGradEnabled();
    if (hooked) {
      if (reshardAfterForward) unsharded.forEach(freeStorage);
      return PreBackward.apply(out, unsharded);
    }
    // No backward will run through this output (no grad, or not a single tensor):
    // without grad, free now; otherwise keep until the reduce-scatter frees it.
    if (!isGradEnabled() || !sps.some((sp) => sp.shard.requiresGrad)) unsharded.forEach(freeStorage);
    return out;
  }, { alwaysCall: true });
}

/** fullStateDict: full tensors out of stateDict(), this rank's shard of each full tensor into loadStateDict(). */
function installStateDictHooks(m: Module, sps: ShardedParam[], rank: number): void {
  m.registerStateDictHook((_m, state, prefix) => {
    for (const sp of sps) {
      const key = `${prefix}${sp.name}`;
      if (state[key] !== sp.shard) continue; // an earlier hook replaced it
      state[key] = noGrad(() => unpad(allGather(sp.shard, { key: `fsdp.${sp.fqn}.stateDict` }), sp.numel, sp.shape));
    }
  });
  m.registerLoadStateDictPreHook((_m, state, prefix) => {
    for (const sp of sps) {
      const key = `${prefix}${sp.name}`;
      const full = state[key];
      // anything else is left for loadStateDict's own checks to report
      if (!full || full.numel !== sp.numel || full.shape.length !== sp.shape.length || full.shape.some((d, i) => d !== sp.shape[i])) continue;
      const src = full.device === sp.shard.device ? full : full.to({ device: sp.shard.device });
      state[key] = noGrad(() => cutShard(src, sp.shardNumel, rank));
      if (src !== full) src.dispose();
    }
  });
}

/**
 * torchao's precompute_float8_dynamic_scale_for_fsdp: computes the scale of
 * every float8-all-gathered weight with dynamic scaling in ONE MAX all-reduce
 * (instead of one per layer at its next gather). Call it after each
 * optimizer.step(); the scales are used by the next forward.
 */
export function precomputeFloat8DynamicScaleForFsdp(model: Module): void {
  const sps: ShardedParam[] = [];
  for (const [fqn, m] of model.namedModules()) {
    if (m instanceof Float8Linear && m.config.castConfigWeight.scalingType === ScalingType.DELAYED) {
      // torchao raises NotImplementedError here: the scale of a delayed weight comes from its history
      throw new Float8Error("precomputeFloat8DynamicScaleForFsdp", `${fqn || "<root>"}: the weight uses delayed scaling; precomputing applies only to dynamic weight scaling`);
    }
  }
  for (const [, m] of model.namedModules()) {
    for (const sp of shardedParams.get(m) ?? []) {
      if (sp.float8 && sp.float8.scaling.weight.config.scalingType === ScalingType.DYNAMIC) sps.push(sp);
    }
  }
  if (sps.length === 0) return;
  const amaxes = noGrad(() => Float32Array.from(sps, (sp) => localAmax(sp.shard)));
  allReduceArray(amaxes, "max", { key: "fsdp.precomputeFloat8DynamicScale" });
  sps.forEach((sp, i) => (sp.precomputedScale = scaleForAmax(amaxes[i], sp.float8!.scaling.weight)));
}
