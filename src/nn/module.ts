// module.ts — Module: a tree of named submodules, parameters and buffers, with
// torch's fully-qualified names ("layers.1.wq.weight").
import { Float8Error } from "../errors.ts";
import { noGrad } from "../autograd/graph.ts";
import type { DType } from "../tensor/dtype.ts";
import type { Device } from "../tensor/backend/index.ts";
import { fmtShape, sameShape } from "../tensor/shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { requireLive } from "../tensor/device_ops.ts";

/**
 * What the register*Hook methods return: remove() unregisters the hook (torch's
 * RemovableHandle); removing twice is a no-op. Also `using h = m.register...`.
 */
export class RemovableHandle {
  #remove: (() => void) | null;
  constructor(remove: () => void) {
    this.#remove = remove;
  }
  /** Unregisters the hook. */
  remove(): void {
    const r = this.#remove;
    this.#remove = null;
    r?.();
  }
  [Symbol.dispose](): void {
    this.remove();
  }
}

/**
 * Runs before a module's forward with its inputs; may return replacement inputs
 * (an array is the new argument list, any other value the new single argument).
 */
export type ForwardPreHook = (module: Module, inputs: any[]) => any;
/**
 * Runs after a module's forward with its inputs and output; a return value other
 * than undefined replaces the output. An `alwaysCall` hook also runs when a
 * pre-hook or the forward threw, with output undefined (its return is then ignored).
 */
export type ForwardHook = (module: Module, inputs: any[], output: any) => any;
/** Options of registerForwardPreHook / registerForwardHook. */
export interface HookOptions {
  /** run before the hooks registered earlier instead of after them (default false) */
  prepend?: boolean;
}
/** A state-dict hook: sees (and may replace or add) the entries of `module`, whose keys start with `prefix`. */
export type StateDictHook = (module: Module, state: Record<string, Tensor>, prefix: string) => void;

/** Base class of every layer. Subclasses register children, parameters and buffers. */
export abstract class Module {
  training = true;
  protected readonly _modules = new Map<string, Module>();
  protected readonly _parameters = new Map<string, Tensor>();
  protected readonly _buffers = new Map<string, Tensor>();
  #preHooks: ForwardPreHook[] = [];
  #postHooks: { hook: ForwardHook; alwaysCall: boolean }[] = [];
  #stateDictHooks: StateDictHook[] = [];
  #loadStateDictPreHooks: StateDictHook[] = [];
  /** The forward that runs the hooks, once installed on this instance (see installHookedForward). */
  #hookedForward: ((...inputs: any[]) => any) | null = null;

  /** Runs the module. */
  abstract forward(...inputs: any[]): any;

  /**
   * Registers a trainable parameter (requiresGrad, kept from tidy). On a name
   * that is already a parameter this replaces it (torch's register_parameter):
   * the field of the same name, when it held the old tensor, then holds `t`
   * (the old tensor is the caller's to dispose).
   */
  registerParameter(name: string, t: Tensor): Tensor {
    t.requiresGrad = true;
    t.keep();
    if (this._parameters.has(name)) this.setParameter(name, t);
    else this._parameters.set(name, t);
    return t;
  }

  /**
   * Replaces the existing parameter `name` with `t` as it is (no requiresGrad or
   * keep change: distributed wrappers swap in a gathered tensor for the length
   * of a forward and back again). The field of the same name, when it held the
   * old tensor, then holds `t`. Returns the old tensor. Throws Float8Error when
   * `name` is not a parameter of this module.
   */
  setParameter(name: string, t: Tensor): Tensor {
    const old = this._parameters.get(name);
    if (!old) throw new Float8Error("Module.setParameter", `${this.name} has no parameter '${name}' (it has: ${[...this._parameters.keys()].join(", ") || "none"})`);
    this._parameters.set(name, t);
    if (Reflect.get(this, name) === old) Reflect.set(this, name, t);
    return old;
  }

  /**
   * Registers `hook` to run before every forward of this module (torch's
   * register_forward_pre_hook). Hooks run in registration order (`prepend`
   * puts this one first); a hook may return replacement inputs.
   */
  registerForwardPreHook(hook: ForwardPreHook, opts: HookOptions = {}): RemovableHandle {
    this.installHookedForward();
    if (opts.prepend) this.#preHooks.unshift(hook);
    else this.#preHooks.push(hook);
    return new RemovableHandle(() => {
      const i = this.#preHooks.indexOf(hook);
      if (i >= 0) this.#preHooks.splice(i, 1);
    });
  }

  /**
   * Registers `hook` to run after every forward of this module (torch's
   * register_forward_hook). Hooks run in registration order (`prepend` puts
   * this one first); a hook may return a replacement output. With `alwaysCall`
   * it also runs when a pre-hook or the forward throws (output undefined), for
   * cleanup; the forward's error is then rethrown (an error of the hook itself
   * is dropped in its favour).
   */
  registerForwardHook(hook: ForwardHook, opts: HookOptions & { alwaysCall?: boolean } = {}): RemovableHandle {
    this.installHookedForward();
    const entry = { hook, alwaysCall: opts.alwaysCall ?? false };
    if (opts.prepend) this.#postHooks.unshift(entry);
    else this.#postHooks.push(entry);
    return new RemovableHandle(() => {
      const i = this.#postHooks.indexOf(entry);
      if (i >= 0) this.#postHooks.splice(i, 1);
    });
  }

  /**
   * Makes `this.forward(...)` run the hooks: the first hook registered puts, on
   * this instance, a forward that runs the pre-hooks, the forward the instance
   * had, then the post-hooks. Calling forward() is how modules are run here, so
   * every caller gets the hooks.
   */
  private installHookedForward(): void {
    if (this.#hookedForward !== null && this.forward === this.#hookedForward) return;
    const inner = this.forward;
    const hooked = (...inputs: any[]): any => this.runHooked(inner, inputs);
    this.#hookedForward = hooked;
    Object.defineProperty(this, "forward", { value: hooked, writable: true, configurable: true, enumerable: false });
  }

  private runHooked(inner: (...inputs: any[]) => any, inputs: any[]): any {
    let args = inputs;
    let out: any;
    try {
      for (const hook of [...this.#preHooks]) {
        const r = hook(this, args);
        if (r !== undefined) args = Array.isArray(r) ? r : [r];
      }
      out = inner.apply(this, args);
    } catch (e) {
      for (const { hook, alwaysCall } of [...this.#postHooks]) {
        if (!alwaysCall) continue;
        try {
          hook(this, args, undefined);
        } catch {
          // the forward's error is the one to report
        }
      }
      throw e;
    }
    for (const { hook } of [...this.#postHooks]) {
      const r = hook(this, args, out);
      if (r !== undefined) out = r;
    }
    return out;
  }

  /**
   * Registers `hook` to run when stateDict() has collected this module's
   * parameters and buffers (torch's state-dict hook): it may replace entries
   * (a sharded parameter by its full tensor, gathered) or add some. Entries of
   * this module have keys `${prefix}${name}`.
   */
  registerStateDictHook(hook: StateDictHook): RemovableHandle {
    this.#stateDictHooks.push(hook);
    return new RemovableHandle(() => {
      const i = this.#stateDictHooks.indexOf(hook);
      if (i >= 0) this.#stateDictHooks.splice(i, 1);
    });
  }

  /**
   * Registers `hook` to run at the start of loadStateDict(), before any check,
   * with the state to load (torch's load-state-dict pre-hook): it may replace
   * entries under `prefix` (cut a full tensor into this rank's shard). Entries
   * it puts in are disposed by loadStateDict when the load is over.
   */
  registerLoadStateDictPreHook(hook: StateDictHook): RemovableHandle {
    this.#loadStateDictPreHooks.push(hook);
    return new RemovableHandle(() => {
      const i = this.#loadStateDictPreHooks.indexOf(hook);
      if (i >= 0) this.#loadStateDictPreHooks.splice(i, 1);
    });
  }

  /** Registers a non-trainable tensor saved in stateDict (e.g. fp8 amax history). */
  registerBuffer(name: string, t: Tensor): Tensor {
    t.keep();
    this._buffers.set(name, t);
    return t;
  }

  /** Registers a child module under `name`. */
  registerModule<M extends Module>(name: string, m: M): M {
    this._modules.set(name, m);
    return m;
  }

  /** Direct children as [name, module]. */
  *namedChildren(): IterableIterator<[string, Module]> {
    yield* this._modules;
  }

  /** Every module in the tree, root first, as [fqn, module] ("" for the root). */
  *namedModules(prefix = ""): IterableIterator<[string, Module]> {
    yield [prefix, this];
    for (const [name, m] of this._modules) yield* m.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  /** Every parameter as [fqn, tensor]; with recurse false, only this module's own. */
  *namedParameters(prefix = "", recurse = true): IterableIterator<[string, Tensor]> {
    for (const [fqn, m] of recurse ? this.namedModules(prefix) : [[prefix, this] as [string, Module]]) {
      for (const [n, p] of m._parameters) yield [fqn ? `${fqn}.${n}` : n, p];
    }
  }

  /** Every buffer as [fqn, tensor]. */
  *namedBuffers(prefix = ""): IterableIterator<[string, Tensor]> {
    for (const [fqn, m] of this.namedModules(prefix)) {
      for (const [n, b] of m._buffers) yield [fqn ? `${fqn}.${n}` : n, b];
    }
  }

  /** All trainable parameters. */
  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  /**
   * Parameters and buffers by fqn (tensors are shared, not copied), after the
   * state-dict hooks of each module (registerStateDictHook) had their say.
   */
  stateDict(): Record<string, Tensor> {
    // null prototype: a name such as "constructor" or "__proto__" is only ever an own key
    const state: Record<string, Tensor> = Object.assign(Object.create(null), Object.fromEntries([...this.namedParameters(), ...this.namedBuffers()]));
    for (const [fqn, m] of this.namedModules()) {
      for (const hook of [...m.#stateDictHooks]) hook(m, state, fqn ? `${fqn}.` : "");
    }
    return state;
  }

  /**
   * Copies values from `state` into this module's parameters and buffers.
   * With strict (default) missing or unexpected keys are an error; shapes must
   * match; values convert to each parameter's dtype. Nothing is written unless
   * every check passes.
   */
  loadStateDict(state: Record<string, Tensor>, opts: { strict?: boolean } = {}): void {
    if (![...this.namedModules()].some(([, m]) => m.#loadStateDictPreHooks.length > 0)) return this.loadEntries(state, opts);
    const rewritten = { ...state }; // the hooks rewrite a copy, never the caller's object
    try {
      for (const [fqn, m] of this.namedModules()) {
        for (const hook of [...m.#loadStateDictPreHooks]) hook(m, rewritten, fqn ? `${fqn}.` : "");
      }
      this.loadEntries(rewritten, opts);
    } finally {
      // tensors a hook put in are temporaries of this load
      for (const [k, t] of Object.entries(rewritten)) if (state[k] !== t) t.dispose();
    }
  }

  /** loadStateDict once its pre-hooks ran: the checks, then the copies into parameters and buffers. */
  private loadEntries(state: Record<string, Tensor>, opts: { strict?: boolean } = {}): void {
    const strict = opts.strict ?? true;
    if (state === null || typeof state !== "object") throw new Float8Error("loadStateDict", `state must be an object of named Tensors, got ${state === null ? "null" : typeof state}`);
    const own: Record<string, Tensor> = Object.assign(Object.create(null), Object.fromEntries([...this.namedParameters(), ...this.namedBuffers()]));
    const missing = Object.keys(own).filter((k) => !Object.hasOwn(state, k));
    const unexpected = Object.keys(state).filter((k) => !Object.hasOwn(own, k));
    if (strict && (missing.length || unexpected.length)) {
      throw new Float8Error(
        "loadStateDict",
        `missing keys: [${missing.join(", ")}]; unexpected keys: [${unexpected.join(", ")}]`,
      );
    }
    for (const [k, src] of Object.entries(state)) {
      const dst = Object.hasOwn(own, k) ? own[k] : undefined;
      if (dst && (src === null || typeof src !== "object" || !(src instanceof Tensor))) {
        throw new Float8Error("loadStateDict", `${k} must be a Tensor, got ${src === null ? "null" : typeof src}`);
      }
      if (dst && !sameShape(dst.shape, src.shape)) {
        throw new Float8Error("loadStateDict", `size mismatch for ${k}: checkpoint has ${fmtShape(src.shape)} (${src.dtype}), model has ${fmtShape(dst.shape)} (${dst.dtype})`);
      }
      if (dst) requireLive(src, `loadStateDict(${k})`, k);
    }
    noGrad(() => {
      for (const [k, src] of Object.entries(state)) {
        const dst = Object.hasOwn(own, k) ? own[k] : undefined;
        if (!dst) continue;
        const moved = src.to({ dtype: dst.dtype, device: dst.device });
        const v = moved === src ? src.detach() : moved;
        dst.assign(v.keep());
        v.dispose();
      }
    });
  }

  /** Training mode (affects modules such as dropout; recorded for all). */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Evaluation mode. */
  eval(): this {
    return this.train(false);
  }

  /**
   * In place (tensors keep identity, so optimizers and shared weights follow):
   * converts every float parameter to `dtype`, and moves every parameter and
   * buffer to `device`. Create optimizers after moving a model to a device.
   */
  to(opts: { dtype?: DType; device?: Device }): this {
    noGrad(() => {
      for (const [, m] of this.namedModules()) {
        for (const p of m._parameters.values()) {
          const dtype = opts.dtype && (p.dtype === "float32" || p.dtype === "bfloat16" || p.dtype === "float16") ? opts.dtype : p.dtype;
          const c = p.to({ dtype, device: opts.device ?? p.device });
          if (c !== p) {
            p.assign(c);
            c.dispose();
          }
        }
        for (const b of m._buffers.values()) {
          const c = b.to({ device: opts.device ?? b.device });
          if (c !== b) {
            b.assign(c);
            c.dispose();
          }
        }
      }
    });
    return this;
  }

  /** Drops every parameter's gradient (torch's set_to_none). */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /**
   * Replaces the submodule at `fqn` ("layers.1.wq") with `m`. Fields of the
   * parent that pointed at the old module are updated too.
   */
  setSubmodule(fqn: string, m: Module): void {
    const parts = fqn.split(".");
    const name = parts.pop()!;
    let parent: Module = this;
    for (const p of parts) {
      const next = parent._modules.get(p);
      if (!next) throw new Float8Error("setSubmodule", `no submodule '${p}' in path '${fqn}'`);
      parent = next;
    }
    const old = parent._modules.get(name);
    if (!old) throw new Float8Error("setSubmodule", `no submodule '${fqn}'`);
    parent._modules.set(name, m);
    const fields = parent as unknown as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      if (fields[key] === old) fields[key] = m;
      const v = fields[key];
      if (Array.isArray(v)) v.forEach((x, i) => x === old && (v[i] = m));
    }
  }

  /** Frees every parameter, buffer and gradient of the tree. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const t of [...m._parameters.values(), ...m._buffers.values()]) {
        t.grad?.dispose();
        t.dispose();
      }
    }
  }

  /** Name used in reprs. */
  get name(): string {
    return this.constructor.name;
  }

  /** Extra text inside the repr's parentheses. */
  extraRepr(): string {
    return "";
  }

  /** A torch-style multi-line summary of the tree. */
  toString(): string {
    const kids = [...this._modules].map(([n, m]) => `  (${n}): ${m.toString().replace(/\n/g, "\n  ")}`);
    if (!kids.length) return `${this.name}(${this.extraRepr()})`;
    return `${this.name}(${this.extraRepr()}\n${kids.join("\n")}\n)`;
  }
}
