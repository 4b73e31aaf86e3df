// optimizers.ts — SGD and AdamW with torch's update rules, one fused native
// call per parameter (libfp8/src/cpu/optim.c). Optimizer state is f32.
import { Float8Error } from "../errors.ts";
import { activeCapture, type CaptureState } from "../tensor/backend/capture.ts";
import { Tensor, zeros } from "../tensor/tensor.ts";
import * as dev from "../tensor/device_ops.ts";
import { watchStepMemory } from "../tensor/storage.ts";

/** Shared parameter bookkeeping. */
export abstract class Optimizer {
  readonly params: Tensor[];
  stepCount = 0;

  constructor(params: Iterable<Tensor>, readonly name: string) {
    if (params === null || typeof params !== "object" || typeof (params as Iterable<Tensor>)[Symbol.iterator] !== "function") {
      throw new Float8Error(name, `params must be an iterable of Tensors, got ${params === null ? "null" : typeof params}`);
    }
    this.params = [...params];
    if (this.params.some((p) => p === null || typeof p !== "object" || !(p instanceof Tensor))) {
      throw new Float8Error(name, "params must hold Tensors only");
    }
    if (this.params.length === 0) throw new Float8Error(name, "got an empty parameter list");
    for (const p of this.params) {
      if (p.dtype !== "float32" && p.dtype !== "bfloat16" && p.dtype !== "float16") {
        throw new Float8Error(name, `parameters must be float32, bfloat16 or float16, got ${p.dtype}`);
      }
    }
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Applies one update to every parameter that has a gradient. */
  abstract step(): void;

  /** Named state tensors (for checkpoints), e.g. "3.exp_avg". */
  abstract stateDict(): Record<string, Tensor>;

  /** Frees the optimizer's state now (its moments and buffers); the optimizer is unusable afterwards. */
  dispose(): void {
    for (const t of Object.values(this.stateDict())) t.dispose();
    this.disposeExtra();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  /** State outside stateDict that dispose() frees too. */
  protected disposeExtra(): void {}

  /**
   * Restores state tensors saved by stateDict (and the step count). Every key
   * and size is checked before anything is written. State that an optimizer
   * creates lazily (SGD's momentum buffers) is created here.
   */
  loadStateDict(state: Record<string, Tensor>, stepCount: number): void {
    const op = `${this.name}.loadStateDict`;
    for (const [k, v] of Object.entries(state)) {
      const n = this.stateSize(k);
      if (n === null) throw new Float8Error(op, `unexpected state key ${k}`);
      if (n !== v.numel) throw new Float8Error(op, `state ${k} has ${v.numel} elements, expected ${n}`);
      dev.requireLive(v, op, `state ${k}`);
    }
    for (const [k, v] of Object.entries(state)) {
      const f32 = v.to({ dtype: "float32" });
      const copy = f32.detach();
      if (f32 !== v) f32.dispose();
      this.stateTensor(k).assign(copy);
      copy.dispose();
    }
    this.stepCount = stepCount;
  }

  /** Element count of state key k, or null when k is not a state key of this optimizer. */
  protected abstract stateSize(k: string): number | null;
  /** The state tensor for key k, created if lazily allocated. */
  protected abstract stateTensor(k: string): Tensor;

  /** Parameter index of a "<i>.<name>" state key with one of the given names, or -1. */
  protected paramIndex(k: string, names: readonly string[]): number {
    const m = /^(\d+)\.(.+)$/.exec(k);
    if (!m || !names.includes(m[2])) return -1;
    const i = Number(m[1]);
    return i < this.params.length ? i : -1;
  }

  protected gradOf(p: Tensor): Tensor | null {
    const g = p.grad;
    if (!g) return null;
    if (g.numel !== p.numel) throw new Float8Error(this.name, `grad has ${g.numel} elements, parameter has ${p.numel}`);
    return g.dtype === p.dtype ? g : g.to({ dtype: p.dtype });
  }
}

/** torch.optim.SGD: lr, momentum, dampening, weightDecay, nesterov. */
export class SGD extends Optimizer {
  /** learning rate; may be changed between steps (schedules) */
  lr: number;
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  private readonly buffers = new Map<number, Tensor>();

  constructor(params: Iterable<Tensor>, opts: { lr: number; momentum?: number; dampening?: number; weightDecay?: number; nesterov?: boolean }) {
    super(params, "SGD");
    if (!(opts.lr >= 0)) throw new Float8Error("SGD", `invalid lr ${opts.lr}`);
    this.lr = opts.lr;
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    if (!(this.momentum >= 0) || !(this.weightDecay >= 0) || !(this.dampening >= 0) || !Number.isFinite(this.lr)) {
      throw new Float8Error("SGD", `lr, momentum, dampening and weightDecay must be finite and >= 0, got lr=${this.lr} momentum=${this.momentum} dampening=${this.dampening} weightDecay=${this.weightDecay}`);
    }
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new Float8Error("SGD", "nesterov momentum requires a momentum and zero dampening");
    }
  }

  step(): void {
    const capture = activeCapture();
    if (capture) this.captured(capture);
    else {
      this.stepCount++;
      watchStepMemory(this.params[0].device);
    }
    this.params.forEach((p, i) => {
      const g = this.gradOf(p);
      if (!g) return;
      let buf = this.buffers.get(i) ?? null;
      const first = this.momentum !== 0 && !buf;
      if (first) {
        buf = zeros([p.numel], { device: p.device }).keep();
        this.buffers.set(i, buf);
      }
      dev.sgdStep(p, g, buf, { lr: this.lr, momentum: this.momentum, dampening: this.dampening, weightDecay: this.weightDecay, nesterov: this.nesterov, firstStep: first });
    });
  }

  /**
   * Inside a CUDA-graph capture (src/cuda/graphs.ts): the lr is part of the
   * graph, so a replay checks that it did not change; the step count advances
   * at each replay, not now. Momentum buffers must exist already.
   */
  private captured(capture: CaptureState): void {
    if (this.momentum !== 0 && this.params.some((p, i) => p.grad && !this.buffers.has(i))) {
      throw new Float8Error("SGD.step", "run one step eagerly before capturing it in a graph (the momentum buffers do not exist yet)");
    }
    const lr = this.lr;
    capture.beforeReplay(() => {
      if (this.lr !== lr) {
        throw new Float8Error("SGD.step", `lr changed from ${lr} to ${this.lr} since the graph was captured: SGD's lr is part of the graph; capture it again (AdamW reads its lr at each replay)`);
      }
      this.stepCount++;
    });
  }

  stateDict(): Record<string, Tensor> {
    return Object.fromEntries([...this.buffers].map(([i, b]) => [`${i}.momentum_buffer`, b]));
  }

  protected stateSize(k: string): number | null {
    const i = this.paramIndex(k, ["momentum_buffer"]);
    return i < 0 ? null : this.params[i].numel;
  }

  protected stateTensor(k: string): Tensor {
    const i = this.paramIndex(k, ["momentum_buffer"]);
    let b = this.buffers.get(i);
    if (!b) {
      b = zeros([this.params[i].numel]).keep();
      this.buffers.set(i, b);
    }
    return b;
  }
}

/** torch.optim.AdamW: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 1e-2 by default. */
export class AdamW extends Optimizer {
  /** learning rate; may be changed between steps (schedules) */
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  private readonly m: Tensor[];
  private readonly v: Tensor[];

  constructor(params: Iterable<Tensor>, opts: { lr?: number; betas?: [number, number]; eps?: number; weightDecay?: number } = {}) {
    super(params, "AdamW");
    this.lr = opts.lr ?? 1e-3;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 1e-2;
    if (!Array.isArray(this.betas) || this.betas.length !== 2) throw new Float8Error("AdamW", `betas must be a pair [beta1, beta2], got ${String(this.betas)}`);
    if (!(this.lr >= 0) || !(this.eps >= 0) || this.betas.some((b) => !(b >= 0 && b < 1)) || !(this.weightDecay >= 0) || !Number.isFinite(this.lr)) {
      throw new Float8Error("AdamW", `invalid hyperparameters lr=${this.lr} betas=${this.betas} eps=${this.eps} weightDecay=${this.weightDecay} (each must be a finite number >= 0, betas in [0, 1))`);
    }
    this.m = this.params.map((p) => zeros([p.numel], { device: p.device }).keep());
    this.v = this.params.map((p) => zeros([p.numel], { device: p.device }).keep());
  }

  step(): void {
    const capture = activeCapture();
    if (!capture) watchStepMemory(this.params[0].device);
    if (capture) {
      this.capturedStep(capture);
      return;
    }
    this.stepCount++;
    // where steps can be captured in a graph, the buffer its constants go to exists before any capture
    // (made inside one, it would come from the graph's pool, whose blocks the replay itself rewrites)
    if (!this.deviceConsts && dev.hasAdamwDeviceConsts(this.params[0])) {
      this.deviceConsts = Tensor.empty([5], "float32", this.params[0].device).keep();
    }
    const hyper = this.hyper();
    this.params.forEach((p, i) => {
      const g = this.gradOf(p);
      if (!g) return;
      if (this.m[i].device !== p.device) {
        throw new Float8Error("AdamW.step", `parameter ${i} is on ${p.device} but its state on ${this.m[i].device}: create the optimizer after moving the model`);
      }
      dev.adamwStep(p, g, this.m[i], this.v[i], hyper);
    });
  }

  /** This step's hyperparameters (the lr may change between steps). */
  private hyper(): dev.AdamwStepOptions {
    return { lr: this.lr, beta1: this.betas[0], beta2: this.betas[1], eps: this.eps, weightDecay: this.weightDecay, step: this.stepCount };
  }

  /** Device memory of the per-step constants a captured step reads (see capturedStep). */
  private deviceConsts: Tensor | null = null;

  protected disposeExtra(): void {
    this.deviceConsts?.dispose();
    this.deviceConsts = null;
  }

  /**
   * Inside a CUDA-graph capture (src/cuda/graphs.ts): the step's kernels read
   * their step-dependent constants (bias corrections, lr) from device memory,
   * which a hook refills before every replay (with the step count advanced
   * then, not now), so replays match eager steps bit for bit, lr schedules included.
   */
  private capturedStep(capture: CaptureState): void {
    const op = "AdamW.step";
    const p0 = this.params[0];
    if (!dev.hasAdamwDeviceConsts(p0)) throw new Float8Error(op, `AdamW cannot be captured in a graph on device ${p0.device}`);
    const consts = this.deviceConsts;
    if (!consts) throw new Float8Error(op, "run one step eagerly before capturing it in a graph (AdamW's device constants do not exist yet)");
    const host = new Float32Array(5);
    capture.beforeReplay(() => {
      this.stepCount++;
      dev.adamwConstants(p0, host, this.hyper(), op);
      dev.uploadInto(consts, host, op);
    });
    this.params.forEach((p, i) => {
      const g = this.gradOf(p);
      if (!g) return;
      if (p.device !== p0.device) throw new Float8Error(op, `parameter ${i} is on ${p.device}, parameter 0 on ${p0.device}: a captured step runs on one device`);
      dev.adamwStepDeviceConsts(p, g, this.m[i], this.v[i], consts, { beta2: this.betas[1], eps: this.eps }, op);
    });
  }

  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    this.params.forEach((_, i) => {
      out[`${i}.exp_avg`] = this.m[i];
      out[`${i}.exp_avg_sq`] = this.v[i];
    });
    return out;
  }

  protected stateSize(k: string): number | null {
    const i = this.paramIndex(k, ["exp_avg", "exp_avg_sq"]);
    return i < 0 ? null : this.params[i].numel;
  }

  protected stateTensor(k: string): Tensor {
    const i = this.paramIndex(k, ["exp_avg", "exp_avg_sq"]);
    return k.endsWith("_sq") ? this.v[i] : this.m[i];
  }
}
