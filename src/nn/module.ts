// module.ts — Module: a tree of named submodules, parameters and buffers, with
// torch's fully-qualified names ("layers.1.wq.weight").
import { Float8Error } from "../errors.ts";
import { noGrad } from "../autograd/graph.ts";
import type { DType } from "../tensor/dtype.ts";
import type { Device } from "../tensor/backend/index.ts";
import { fmtShape, sameShape } from "../tensor/shape.ts";
import { Tensor } from "../tensor/tensor.ts";

/** Base class of every layer. Subclasses register children, parameters and buffers. */
export abstract class Module {
  training = true;
  protected readonly _modules = new Map<string, Module>();
  protected readonly _parameters = new Map<string, Tensor>();
  protected readonly _buffers = new Map<string, Tensor>();

  /** Runs the module. */
  abstract forward(...inputs: any[]): any;

  /** Registers a trainable parameter (requiresGrad, kept from tidy). */
  registerParameter(name: string, t: Tensor): Tensor {
    t.requiresGrad = true;
    t.keep();
    this._parameters.set(name, t);
    return t;
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

  /** Every parameter as [fqn, tensor]. */
  *namedParameters(prefix = ""): IterableIterator<[string, Tensor]> {
    for (const [fqn, m] of this.namedModules(prefix)) {
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

  /** Parameters and buffers by fqn (tensors are shared, not copied). */
  stateDict(): Record<string, Tensor> {
    // null prototype: a name such as "constructor" or "__proto__" is only ever an own key
    return Object.assign(Object.create(null), Object.fromEntries([...this.namedParameters(), ...this.namedBuffers()]));
  }

  /**
   * Copies values from `state` into this module's parameters and buffers.
   * With strict (default) missing or unexpected keys are an error; shapes must
   * match; values convert to each parameter's dtype. Nothing is written unless
   * every check passes.
   */
  loadStateDict(state: Record<string, Tensor>, opts: { strict?: boolean } = {}): void {
    const strict = opts.strict ?? true;
    const own = this.stateDict();
    if (state === null || typeof state !== "object") throw new Float8Error("loadStateDict", `state must be an object of named Tensors, got ${state === null ? "null" : typeof state}`);
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
      if (dst && (src === null || typeof src !== "object" || typeof src.ptrFor !== "function")) {
        throw new Float8Error("loadStateDict", `${k} must be a Tensor, got ${src === null ? "null" : typeof src}`);
      }
      if (dst && !sameShape(dst.shape, src.shape)) {
        throw new Float8Error("loadStateDict", `size mismatch for ${k}: checkpoint has ${fmtShape(src.shape)} (${src.dtype}), model has ${fmtShape(dst.shape)} (${dst.dtype})`);
      }
      if (dst) src.ptrFor(`loadStateDict(${k})`);
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
