// tensor_parallel.ts — tensor and sequence parallelism over all ranks of the
// process group: torch's ColwiseParallel / RowwiseParallel / PrepareModuleInput
// and torchao's float8 versions, applied with parallelize(module, plan).
//
// For a SwiGLU FeedForward w2(silu(w1 x) * w3 x):
//   w1, w3  ColwiseParallel   weight rows split: each rank computes its slice of
//                             the hidden features; the input is replicated
//   w2      RowwiseParallel   weight columns split: partial sums, all-reduced
//                             (or reduce-scattered along the sequence with
//                             sequence parallelism: outputLayouts Shard(1))
//   the FeedForward itself    PrepareModuleInput gathers a sequence-sharded
//                             input (Shard(1)) once for w1 and w3
// Float8 versions cast every operand that is split across ranks with the scale
// of the whole tensor (one MAX all-reduce of the amax), so the float8 numbers
// are those of a single process, and PrepareFloat8ModuleInput gathers the
// input as fp8 bytes (cast before the all-gather).
//
// Block-scaled recipes (blockwise, mxfp8) need no cross-rank scale: each block is
// quantised on its own. They need every block on one rank: a column-parallel
// layer splits N (a reduction dim of the grad_input GEMM, blocked 1 x bs in the
// output gradient and bs x bs / 1 x bs in the weight), a row-parallel one splits
// K (the forward's reduction dim), so the split dim's chunk must be a multiple
// of the block length; then each rank quantises exactly the blocks one process
// would, and the sharded layer differs from it only in f32 summation order.
//
// Without torch's DTensor, "this activation is already replicated across the
// tensor-parallel ranks" is tracked for the tensors PrepareModuleInput makes,
// so that the column-parallel layers after it do not all-reduce its gradient
// a second time (the gather's backward reduce-scatters it once).
import { Float8Error } from "../errors.ts";
import { Function, type FunctionCtx } from "../autograd/graph.ts";
import { Module } from "../nn/module.ts";
import { Linear } from "../nn/layers.ts";
import { Tensor } from "../tensor/tensor.ts";
import { reshape, slice } from "../tensor/ops/movement.ts";
import { noGrad } from "../autograd/graph.ts";
import { Float8Tensor } from "../float8/float8_tensor.ts";
import { Float8Linear, type RoleScaling } from "../float8/float8_linear.ts";
import { getRank, getWorldSize } from "./process_group.ts";
import {
  copyToParallelRegion, gatherAlongDim, gatherFromParallelRegion, gatherFromSequenceParallel, reduceFromParallelRegion,
  reduceScatterAlongDim, reduceScatterToSequenceParallel, splitToParallelRegion,
} from "./functional.ts";
import { castWithGlobalAmax, isDynamicTensorwise, requireTensorwise } from "./float8_scaling.ts";

/** How a tensor is laid out over the ranks (torch's DTensor placements). */
export type Placement = { readonly kind: "replicate" } | { readonly kind: "shard"; readonly dim: number };

/** Every rank holds the whole tensor. */
export function Replicate(): Placement {
  return { kind: "replicate" };
}

/** Each rank holds one equal chunk along `dim` (rank order). */
export function Shard(dim: number): Placement {
  if (!Number.isInteger(dim)) throw new Float8Error("Shard", `dim must be an integer, got ${dim}`);
  return { kind: "shard", dim };
}

function fmt(p: Placement): string {
  return p.kind === "replicate" ? "Replicate()" : `Shard(${p.dim})`;
}

/** Activations PrepareModuleInput made replicated (their gradient is reduced by the gather's backward). */
const replicatedActivations = new WeakSet<Tensor>();
/** PrepareFloat8ModuleInput's placeholders and the fp8 input gathered for them. */
const float8Activations = new WeakMap<Tensor, Float8Tensor>();

/** How one module is parallelized; applied by parallelize(). */
export abstract class ParallelStyle {
  abstract apply(module: Module, fqn: string): void;
}

/** Swaps a Linear's parameter for this rank's chunk along dim (a copy). */
function shardParameter(m: Linear, name: "weight" | "bias", dim: number): void {
  const p = m[name];
  if (!p) return;
  const ws = getWorldSize(), r = getRank();
  if (p.shape[dim] % ws !== 0) {
    throw new Float8Error("parallelize", `${name} of shape [${p.shape.join(", ")}] cannot be split ${ws} ways along dim ${dim}`);
  }
  const c = p.shape[dim] / ws;
  const local = noGrad(() => slice(p, dim, r * c, (r + 1) * c));
  m.registerParameter(name, local); // replaces p, in the parameter map and in m[name]
  p.grad?.dispose();
  p.grad = null;
  p.dispose();
}

/**
 * Throws unless a block-scaled Float8Linear's weight splits along `dim` (0: N, 1: K)
 * into chunks that hold whole blocks (a multiple of the recipe's block length).
 */
function requireWholeBlocks(m: Linear, dim: number, style: string, fqn: string): void {
  const cfg = m instanceof Float8Linear ? m.config.blockScaling : null;
  if (!cfg) return;
  const ws = getWorldSize(), size = m.weight.shape[dim]!;
  if (size % ws === 0 && (size / ws) % cfg.blockSize !== 0) {
    throw new Float8Error(
      "parallelize",
      `${style} '${fqn}': weight [${m.weight.shape.join(", ")}] (${m.weight.dtype}) split ${ws} ways along dim ${dim} (${dim === 0 ? "N, out_features" : "K, in_features"}) ` +
        `gives chunks of ${size / ws}, not a multiple of the ${cfg.repr()} block length ${cfg.blockSize}: a block would straddle two ranks`,
    );
  }
}

function setFeatures(m: Linear, inFeatures: number, outFeatures: number): void {
  m.inFeatures = inFeatures;
  m.outFeatures = outFeatures;
}

function requireLinear(m: Module, style: string, fqn: string): Linear {
  if (!(m instanceof Linear)) throw new Float8Error("parallelize", `${style} applies to a Linear; '${fqn}' is ${m.name}`);
  return m;
}

/** Forward hooks on m: its first input passes through `pre`, its output through `post`. */
function wrapForward(m: Module, pre: (x: Tensor) => Tensor, post: (y: Tensor) => Tensor): void {
  m.registerForwardPreHook((_m, [x, ...rest]) => [pre(x), ...rest]);
  m.registerForwardHook((_m, _inputs, y) => post(y));
}

/**
 * Column-wise parallel Linear: weight (out, in) split along out. Input
 * Replicate() (default) or Shard(d) (sequence parallel: gathered along d);
 * output Shard(-1) (default: each rank keeps its features) or Replicate().
 */
export class ColwiseParallel extends ParallelStyle {
  readonly inputLayouts: Placement;
  readonly outputLayouts: Placement;

  constructor(opts: { inputLayouts?: Placement; outputLayouts?: Placement } = {}) {
    super();
    this.inputLayouts = opts.inputLayouts ?? Replicate();
    this.outputLayouts = opts.outputLayouts ?? Shard(-1);
    if (this.outputLayouts.kind === "shard" && this.outputLayouts.dim !== -1) {
      throw new Float8Error("ColwiseParallel", `outputLayouts must be Shard(-1) or Replicate(), got ${fmt(this.outputLayouts)}`);
    }
  }

  apply(module: Module, fqn: string): void {
    const m = requireLinear(module, this.constructor.name, fqn);
    requireWholeBlocks(m, 0, this.constructor.name, fqn);
    shardParameter(m, "weight", 0);
    shardParameter(m, "bias", 0);
    setFeatures(m, m.inFeatures, m.weight.shape[0]);
    wrapForward(m, (x) => this.prepareInput(x, fqn), (y) => (this.outputLayouts.kind === "replicate" ? gatherFromParallelRegion(y, -1, `tp.${fqn}.out`) : y));
  }

  protected prepareInput(x: Tensor, fqn: string): Tensor {
    if (float8Activations.has(x)) {
      throw new Float8Error("parallelize", `${fqn}: its input was gathered as float8 by PrepareFloat8ModuleInput; use Float8ColwiseParallel`);
    }
    if (this.inputLayouts.kind === "shard") return gatherFromSequenceParallel(x, this.inputLayouts.dim, `tp.${fqn}.in`);
    return replicatedActivations.has(x) ? x : copyToParallelRegion(x, `tp.${fqn}.in`);
  }
}

/**
 * Row-wise parallel Linear: weight (out, in) split along in. Input Shard(-1)
 * (default: the features a column-parallel layer left on this rank) or
 * Replicate(); output Replicate() (default: all-reduced) or Shard(d) (sequence
 * parallel: reduce-scattered along d). The bias is added once, after the reduction.
 */
export class RowwiseParallel extends ParallelStyle {
  readonly inputLayouts: Placement;
  readonly outputLayouts: Placement;

  constructor(opts: { inputLayouts?: Placement; outputLayouts?: Placement } = {}) {
    super();
    this.inputLayouts = opts.inputLayouts ?? Shard(-1);
    this.outputLayouts = opts.outputLayouts ?? Replicate();
    if (this.inputLayouts.kind === "shard" && this.inputLayouts.dim !== -1) {
      throw new Float8Error("RowwiseParallel", `inputLayouts must be Shard(-1) or Replicate(), got ${fmt(this.inputLayouts)}`);
    }
  }

  apply(module: Module, fqn: string): void {
    const m = requireLinear(module, this.constructor.name, fqn);
    requireWholeBlocks(m, 1, this.constructor.name, fqn);
    shardParameter(m, "weight", 1);
    setFeatures(m, m.weight.shape[1], m.outFeatures);
    // the bias stays whole and registered, but the local GEMM must not add it
    const bias = m.bias;
    m.bias = null;
    const out = this.outputLayouts;
    wrapForward(
      m,
      (x) => (this.inputLayouts.kind === "replicate" ? splitToParallelRegion(x, -1, `tp.${fqn}.in`) : x),
      (y) => {
        const reduced = out.kind === "replicate" ? reduceFromParallelRegion(y, `tp.${fqn}.out`) : reduceScatterToSequenceParallel(y, out.dim, `tp.${fqn}.out`);
        return bias ? reduced.add(bias) : reduced;
      },
    );
  }
}

/**
 * Redistributes a module's first input before its forward. The supported
 * redistribution is sequence parallel's Shard(d) -> Replicate(): an all-gather
 * along d whose backward reduce-scatters the gradient.
 */
export class PrepareModuleInput extends ParallelStyle {
  readonly inputLayouts: Placement;
  readonly desiredInputLayouts: Placement;

  constructor(opts: { inputLayouts?: Placement; desiredInputLayouts?: Placement } = {}) {
    super();
    this.inputLayouts = opts.inputLayouts ?? Shard(1);
    this.desiredInputLayouts = opts.desiredInputLayouts ?? Replicate();
    if (this.inputLayouts.kind !== "shard" || this.desiredInputLayouts.kind !== "replicate") {
      throw new Float8Error(
        "PrepareModuleInput",
        `only Shard(d) -> Replicate() is supported, got ${fmt(this.inputLayouts)} -> ${fmt(this.desiredInputLayouts)}`,
      );
    }
  }

  get dim(): number {
    return (this.inputLayouts as { dim: number }).dim;
  }

  apply(module: Module, fqn: string): void {
    wrapForward(module, (x) => {
      const full = gatherFromSequenceParallel(x, this.dim, `tp.${fqn}.in`);
      replicatedActivations.add(full);
      return full;
    }, (y) => y);
  }
}

/** The float8 layer a float8 style applies to, checked (tensorwise, or a block-scaled recipe when `blocks`). */
function requireFloat8(m: Module, style: string, fqn: string, blocks = false): Float8Linear {
  if (!(m instanceof Float8Linear)) {
    throw new Float8Error("parallelize", `${style} applies to a Float8Linear (convertToFloat8Training first); '${fqn}' is ${m.name}`);
  }
  if (!(blocks && m.config.blockScaling)) requireTensorwise(m.config, "parallelize", fqn);
  return m;
}

/** Casts of a role whose tensor is split across ranks use the scale of the whole tensor. */
function castWithWholeTensorScale(st: RoleScaling, key: string): void {
  if (isDynamicTensorwise(st)) st.castOverride = (x) => castWithGlobalAmax(x, st, key);
}

/**
 * Float8 column-wise parallel (torchao's Float8ColwiseParallel). The weight
 * rows and the output gradient are split across ranks, so their dynamic
 * scales come from the MAX over ranks. An input gathered as fp8 by
 * PrepareFloat8ModuleInput is used as it is. Block-scaled layers (blockwise,
 * mxfp8) need no shared scale; each rank's out_features must be a multiple of
 * the block length.
 */
export class Float8ColwiseParallel extends ColwiseParallel {
  apply(module: Module, fqn: string): void {
    const m = requireFloat8(module, "Float8ColwiseParallel", fqn, true);
    super.apply(m, fqn);
    if (m.config.blockScaling) return; // every block is cast on its own rank
    castWithWholeTensorScale(m.scaling.weight, `tp.${fqn}.weight.amax`);
    castWithWholeTensorScale(m.scaling.grad_output, `tp.${fqn}.gradOutput.amax`);
    let pending: Float8Tensor | null = null;
    m.scaling.input.castOverride = (x) =>
      pending ? new Float8Tensor(reshape(pending.data, x.shape), pending.scale, pending.origDtype, "input") : null;
    // First of the pre-hooks (it sees the input as the caller passed it); cleared after every forward.
    m.registerForwardPreHook((_m, [x]) => void (pending = float8Activations.get(x) ?? null), { prepend: true });
    m.registerForwardHook(() => void (pending = null), { alwaysCall: true });
  }

  protected prepareInput(x: Tensor, fqn: string): Tensor {
    if (float8Activations.has(x)) return x;
    return super.prepareInput(x, fqn);
  }
}

/**
 * Float8 row-wise parallel (torchao's Float8RowwiseParallel). The weight
 * columns and the input features are split across ranks, so their dynamic
 * scales come from the MAX over ranks; the output gradient is replicated.
 * Block-scaled layers (blockwise, mxfp8) need no shared scale; each rank's
 * in_features must be a multiple of the block length.
 */
export class Float8RowwiseParallel extends RowwiseParallel {
  apply(module: Module, fqn: string): void {
    const m = requireFloat8(module, "Float8RowwiseParallel", fqn, true);
    super.apply(m, fqn);
    if (m.config.blockScaling) return; // every block is cast on its own rank
    castWithWholeTensorScale(m.scaling.weight, `tp.${fqn}.weight.amax`);
    castWithWholeTensorScale(m.scaling.input, `tp.${fqn}.input.amax`);
  }
}

/** Forward: a placeholder for the gathered input (its fp8 bytes travel separately); backward: reduce-scatter. */
class Float8InputGather extends Function {
  forward(ctx: FunctionCtx, x: Tensor, dim: number, key: string): Tensor {
    Object.assign(ctx.data, { dim, key });
    const shape = [...x.shape];
    shape[dim < 0 ? dim + x.ndim : dim] *= getWorldSize();
    return Tensor.empty(shape, x.dtype, x.device);
  }
  backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    return [reduceScatterAlongDim(g, ctx.data.dim as number, `${ctx.data.key}.bwd`), null, null];
  }
}

/**
 * torchao's PrepareFloat8ModuleInput: like PrepareModuleInput (Shard(d) ->
 * Replicate()), but the input is cast to float8 before the all-gather (one
 * scale for the whole input: the MAX of the amaxes over ranks), so fp8 bytes
 * travel. The cast follows the input config of `float8DtypeConfigFqn` (the
 * submodule, default "w1"); every module that reads this input must use
 * Float8ColwiseParallel.
 */
export class PrepareFloat8ModuleInput extends PrepareModuleInput {
  readonly float8DtypeConfigFqn: string;

  constructor(opts: { inputLayouts?: Placement; desiredInputLayouts?: Placement; float8DtypeConfigFqn?: string } = {}) {
    super(opts);
    this.float8DtypeConfigFqn = opts.float8DtypeConfigFqn ?? "w1";
  }

  apply(module: Module, fqn: string): void {
    const target = [...module.namedModules()].find(([f]) => f === this.float8DtypeConfigFqn)?.[1];
    if (!target) throw new Float8Error("parallelize", `${fqn}: no submodule '${this.float8DtypeConfigFqn}' to take the float8 input config from`);
    const layer = requireFloat8(target, "PrepareFloat8ModuleInput", `${fqn}.${this.float8DtypeConfigFqn}`);
    const st = layer.scaling.input;
    if (!isDynamicTensorwise(st)) {
      throw new Float8Error("parallelize", `${fqn}: PrepareFloat8ModuleInput needs dynamic input scaling, got ${layer.config.scalingRepr()}`);
    }
    const dim = this.dim;
    const key = `tp.${fqn}.in`;
    wrapForward(module, (x) => {
      const local = castWithGlobalAmax(x, st, `${key}.amax`);
      const data = gatherAlongDim(local.data, dim, key);
      local.data.dispose();
      const placeholder = Float8InputGather.apply(x, dim, key);
      float8Activations.set(placeholder, new Float8Tensor(data, local.scale, local.origDtype, "input"));
      replicatedActivations.add(placeholder);
      return placeholder;
    }, (y) => y);
  }
}

/**
 * Applies a plan { fqn: style } to `module` (torch's parallelize_module over
 * all ranks). Returns the module. Float8 styles expect the model converted
 * with convertToFloat8Training first.
 */
export function parallelize<M extends Module>(module: M, plan: Record<string, ParallelStyle>): M {
  const modules = new Map(module.namedModules());
  for (const [fqn, style] of Object.entries(plan)) {
    const m = modules.get(fqn);
    if (!m) throw new Float8Error("parallelize", `no submodule '${fqn}' in ${module.name}`);
    if (!(style instanceof ParallelStyle)) throw new Float8Error("parallelize", `plan['${fqn}'] is not a ParallelStyle`);
    style.apply(m, fqn);
  }
  return module;
}
