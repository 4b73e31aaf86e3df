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
  /** true once a backward without retainGraph has run through this node and freed its saved tensors */
  released = false;
  /** a custom Function written outside the library (its backward may keep what it gets) */
  userCode = false;
  constructor(
    readonly name: string,
    readonly inputs: readonly (Tensor | null)[],
    public backward: BackwardFn,
    /** tensors this node keeps alive for backward (custom Functions report theirs) */
    public savedTensors: () => readonly Tensor[] = () => [],
  ) {}

  /**
   * Frees what this node saved for backward (as torch does after a backward
   * without retain_graph): its saved tensors that nothing else owns (not the
   * node's inputs or output, not kept, not parameters) are disposed, and its
   * gradient rule, with the tensors its closure holds, is dropped.
   */
  release(output: Tensor): void {
    if (this.released) return;
    this.released = true;
    disposeSaved(this.savedTensors(), this.inputs, output);
    const name = this.name;
    this.backward = () => {
      throw new Float8Error(
        "backward",
        `trying to backward through the graph a second time (through ${name}): its saved tensors were freed by the first backward; pass { retainGraph: true } to the first backward to keep them`,
      );
    };
    this.savedTensors = () => [];
  }
}

/** Disposes saved tensors that only the node owns: not among `inputs`, not `output`, not kept, not a leaf that requires grad. */
function disposeSaved(saved: readonly Tensor[], inputs: readonly (Tensor | null)[], output: Tensor): void {
  for (const t of saved) {
    if (!t || t === output || inputs.includes(t) || t.kept || (t.isLeaf && t.requiresGrad)) continue;
    t.dispose();
  }
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
  /** with no graph recorded, dispose the saved tensors at once (the built-in ops' own temporaries) */
  freeUnused = true,
): Tensor {
  if (gradDisabled === 0 && inputs.some((t) => t?.requiresGrad)) {
    out.requiresGrad = true;
    out.gradFn = new Node(name, inputs, backward, savedTensors);
  } else if (savedTensors && freeUnused) {
    // no graph: nothing will read what the op saved for backward
    disposeSaved(savedTensors(), inputs, out);
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

/** How backward() treats user code: set by src/tensor (the tidy() scopes live there). */
let scopeHooks: { outside<T>(fn: () => T): T; escape(t: Tensor): void } = {
  outside: (fn) => fn(),
  escape: () => {},
};
/** Installs the scope functions backward() uses around user code (src/tensor/tensor.ts does). */
export function setBackwardScopeHooks(h: typeof scopeHooks): void {
  scopeHooks = h;
}

/** Options of backward(). */
export interface BackwardOptions {
  /** keep the graph's saved tensors so that backward can run through it again (torch's retain_graph; default false) */
  retainGraph?: boolean;
}

/**
 * Backpropagates from root. `gradient` defaults to 1 for a one-element root.
 * Leaf tensors that require grad accumulate into `.grad` across calls. Unless
 * `retainGraph`, each node frees what it saved for backward once it has run
 * (Tensor.backward also disposes the intermediate gradients).
 */
export function runBackward(root: Tensor, gradient?: Tensor, opts: BackwardOptions = {}): void {
  const retain = !!opts?.retainGraph;
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
  // nodes run, released after the whole pass: a saved tensor may be shared by several
  // nodes of this graph (one fp8 input cast read by two Linears)
  const used: Tensor[] = [];
  try {
    backwardPass(root, seed, retain ? null : used);
  } finally {
    for (const t of used) t.gradFn?.release(t);
  }
}

/** Runs every node's gradient rule from root; `used` (null with retainGraph) collects the nodes that ran. */
function backwardPass(root: Tensor, seed: Tensor, used: Tensor[] | null): void {
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
      if (t.gradFn.released) t.gradFn.backward(g); // throws: a second backward through a freed graph
      const node = t.gradFn;
      // A custom Function's backward is user code: it may keep the gradient it gets or the
      // tensors it makes (as a torch hook may), so those outlive backward's own scope.
      if (node.userCode) scopeHooks.escape(g);
      const inputGrads = node.userCode ? scopeHooks.outside(() => node.backward(g)) : node.backward(g);
      used?.push(t);
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
  /**
   * Library Functions set this: their backward keeps neither its gradient nor its
   * temporaries, so backward() frees them with the rest of its scope.
   */
  static readonly internal: boolean = false;
  abstract forward(ctx: FunctionCtx, ...args: any[]): Tensor;
  abstract backward(ctx: FunctionCtx, gradOutput: Tensor): (Tensor | null | undefined)[];

  static apply(this: new () => Function, ...args: unknown[]): Tensor {
    const fn = new this();
    const ctx = new FunctionCtx();
    const tensorArgs = args.map((a) => (isTensor(a) ? a : null));
    ctx.needsInputGrad = tensorArgs.map((t) => !!t?.requiresGrad);
    const out = noGrad(() => fn.forward(ctx, ...args));
    // (a Function's saved tensors may be shared with other calls, e.g. one fp8 input cast read by
    // two Linears, so without a graph they are left to their owner, as before)
    const result = record(out, this.name, tensorArgs, (g) => fn.backward(ctx, g), () => ctx.savedTensors, false);
    if (result.gradFn && !(this as unknown as { internal?: boolean }).internal) result.gradFn.userCode = true;
    return result;
  }
}

function isTensor(x: unknown): x is Tensor {
  return typeof x === "object" && x !== null && "gradFn" in x && "shape" in x && "dtype" in x;
}
