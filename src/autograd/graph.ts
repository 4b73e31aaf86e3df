// graph.ts — reverse-mode autograd: graph nodes, backward(), noGrad(), custom Function.
//
// Each op records a Node holding its inputs and a closure that maps the output
// gradient to one gradient per input (the rule sits beside the op's forward).
// backward() sorts the graph topologically and walks it in reverse.
import { Float8Error } from "../errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { fmtShape } from "../tensor/shape.ts";

/** Maps the output gradient to one gradient per input (null where none). */
export type BackwardFn = (gradOutput: Tensor) => (Tensor | null | undefined)[];

/** A recorded operation: its inputs and its gradient rule. */
export class Node {
  constructor(
    readonly name: string,
    readonly inputs: readonly (Tensor | null)[],
    readonly backward: BackwardFn,
    /** tensors this node keeps alive for backward (custom Functions report theirs) */
    readonly savedTensors: () => readonly Tensor[] = () => [],
  ) {}
}

let gradDisabled = 0;

/** Whether ops record autograd graph nodes right now. */
export function isGradEnabled(): boolean {
  return gradDisabled === 0;
}

/** Runs fn without recording any autograd graph (like `with torch.no_grad()`). */
export function noGrad<T>(fn: () => T): T {
  gradDisabled++;
  try {
    return fn();
  } finally {
    gradDisabled--;
  }
}

/** Attaches a graph node to `out` when grad is on and any input requires grad. */
export function record(
  out: Tensor,
  name: string,
  inputs: readonly (Tensor | null)[],
  backward: BackwardFn,
  savedTensors?: () => readonly Tensor[],
): Tensor {
  if (gradDisabled === 0 && inputs.some((t) => t?.requiresGrad)) {
    out.requiresGrad = true;
    out.gradFn = new Node(name, inputs, backward, savedTensors);
  }
  return out;
}

/**
 * Bytes held for backward by the custom Functions in root's graph, counting
 * each saved tensor once and leaving out leaves that require grad
 * (parameters, which are alive anyway).
 */
export function savedTensorBytes(root: Tensor): number {
  const seen = new Set<Tensor>();
  let bytes = 0;
  for (const t of topoOrder(root)) {
    for (const s of t.gradFn?.savedTensors() ?? []) {
      if (seen.has(s) || (s.isLeaf && s.requiresGrad)) continue;
      seen.add(s);
      bytes += s.isDisposed ? 0 : s.nbytes;
    }
  }
  return bytes;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>([root]);
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.gradFn?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i];
      if (next && next.requiresGrad && !seen.has(next)) {
        seen.add(next);
        stack.push([next, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

/**
 * Backpropagates from root. `gradient` defaults to 1 for a one-element root.
 * Leaf tensors that require grad accumulate into `.grad` across calls.
 */
export function runBackward(root: Tensor, gradient?: Tensor): void {
  if (!root.requiresGrad) {
    throw new Float8Error(
      "backward",
      `tensor of shape ${fmtShape(root.shape)} and dtype ${root.dtype} does not require grad and has no grad_fn`,
    );
  }
  let seed = gradient;
  if (!seed) {
    if (root.numel !== 1) {
      throw new Float8Error("backward", `grad can be implicitly created only for one-element outputs, got shape ${fmtShape(root.shape)}`);
    }
    seed = root.onesLike();
  } else if (!isTensor(seed)) {
    throw new Float8Error("backward", `gradient must be a Tensor, got ${seed === null ? "null" : typeof seed}`);
  } else if (seed.shape.length !== root.shape.length || seed.shape.some((d, i) => d !== root.shape[i])) {
    throw new Float8Error("backward", `gradient shape ${fmtShape(seed.shape)} does not match output shape ${fmtShape(root.shape)} (dtype ${root.dtype})`);
  } else if (seed.device !== root.device) {
    throw new Float8Error("backward", `gradient is on ${seed.device} but the output of shape ${fmtShape(root.shape)} is on ${root.device}`);
  }
  noGrad(() => {
    const grads = new Map<Tensor, Tensor>([[root, seed!]]);
    const storedAsLeafGrad = new Set<Tensor>([seed!]);
    for (const t of topoOrder(root)) {
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      if (!t.gradFn) {
        accumulateLeafGrad(t, g, storedAsLeafGrad);
        continue;
      }
      const inputGrads = t.gradFn.backward(g);
      t.gradFn.inputs.forEach((input, i) => {
        const gi = inputGrads[i];
        if (!input || !input.requiresGrad || !gi) return;
        const prev = grads.get(input);
        grads.set(input, prev ? prev.add(gi) : gi);
      });
    }
  });
}

function accumulateLeafGrad(t: Tensor, g: Tensor, stored: Set<Tensor>): void {
  let gg = g.dtype === t.dtype ? g : g.to({ dtype: t.dtype });
  if (stored.has(gg)) gg = gg.clone();
  if (t.grad) {
    const sum = t.grad.add(gg);
    t.grad.dispose();
    t.grad = sum.keep();
  } else {
    t.grad = gg.reshape(t.shape).keep();
  }
  stored.add(t.grad);
}

/** Context handed to a custom Function's forward and backward. */
export class FunctionCtx {
  private saved: Tensor[] = [];
  /** Which forward arguments need a gradient. */
  needsInputGrad: boolean[] = [];
  /** Free-form values forward wants backward to see. */
  readonly data: Record<string, unknown> = {};

  /** Saves tensors for backward (like torch's ctx.save_for_backward). */
  saveForBackward(...tensors: Tensor[]): void {
    this.saved = tensors;
  }

  get savedTensors(): readonly Tensor[] {
    return this.saved;
  }
}

/**
 * A custom differentiable operation. Subclass it, implement forward (run
 * without graph recording) and backward (one gradient per forward argument,
 * null for non-tensors), and call `MyFn.apply(...args)`.
 */
export abstract class Function {
  abstract forward(ctx: FunctionCtx, ...args: any[]): Tensor;
  abstract backward(ctx: FunctionCtx, gradOutput: Tensor): (Tensor | null | undefined)[];

  static apply(this: new () => Function, ...args: unknown[]): Tensor {
    const fn = new this();
    const ctx = new FunctionCtx();
    const tensorArgs = args.map((a) => (isTensor(a) ? a : null));
    ctx.needsInputGrad = tensorArgs.map((t) => !!t?.requiresGrad);
    const out = noGrad(() => fn.forward(ctx, ...args));
    return record(out, this.name, tensorArgs, (g) => fn.backward(ctx, g), () => ctx.savedTensors);
  }
}

function isTensor(x: unknown): x is Tensor {
  return typeof x === "object" && x !== null && "gradFn" in x && "shape" in x && "dtype" in x;
}
