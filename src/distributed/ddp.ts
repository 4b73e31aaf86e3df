// ddp.ts — DistributedDataParallel: every rank holds the whole model and a
// slice of the batch; gradients are averaged over ranks in buckets, as in
// torch.nn.parallel.DistributedDataParallel.
//
// At construction rank 0's parameters and buffers are broadcast to all ranks.
// During backward, each parameter's gradient is noticed as autograd stores it
// (DDP watches the parameter's `grad` property); when every gradient of a
// bucket has arrived, the bucket is all-reduced (avg) as one flat buffer.
// Buckets are reduced in a fixed order so that every rank issues the same
// collectives. The averaged gradients are new tensors: autograd may still be
// using the storage of the ones it handed over.
import { Float8Error } from "../errors.ts";
import { Module } from "../nn/module.ts";
import { ITEM_SIZE, type DType } from "../tensor/dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import { allReduce, broadcast, getWorldSize } from "./process_group.ts";

/** Options of DistributedDataParallel. */
export interface DistributedDataParallelOptions {
  /** gradient bucket size in MiB (torch's default: 25) */
  bucketCapMB?: number;
  /** also broadcast rank 0's buffers (float8 amax histories, ...) at construction (default true) */
  broadcastBuffers?: boolean;
}

/** A run of same-dtype tensors laid out back to back in one flat buffer. */
interface Bucket {
  dtype: DType;
  members: { t: Tensor; offset: number }[];
  numel: number;
}

/** Groups tensors (in the given order) into same-dtype buckets of at most capBytes. */
function makeBuckets(tensors: Tensor[], capBytes: number): Bucket[] {
  const buckets: Bucket[] = [];
  const open = new Map<DType, Bucket>();
  for (const t of tensors) {
    let b = open.get(t.dtype);
    if (!b || (b.numel > 0 && (b.numel + t.numel) * ITEM_SIZE[t.dtype] > capBytes)) {
      b = { dtype: t.dtype, members: [], numel: 0 };
      buckets.push(b);
      open.set(t.dtype, b);
    }
    b.members.push({ t, offset: b.numel });
    b.numel += t.numel;
  }
  return buckets;
}

function bytesOf(t: Tensor): Uint8Array {
  return new Uint8Array(t.rawView(), 0, t.nbytes);
}

/** Broadcasts rank 0's values of `tensors` to every rank, coalesced into buckets. */
export function broadcastCoalesced(tensors: Tensor[], capBytes: number, key: string): void {
  makeBuckets(tensors, capBytes).forEach((b, i) => {
    const flat = Tensor.empty([b.numel], b.dtype);
    const view = new Uint8Array(flat.rawView());
    const item = ITEM_SIZE[b.dtype];
    for (const m of b.members) view.set(bytesOf(m.t), m.offset * item);
    broadcast(flat, 0, { key: `${key}.${i}` });
    for (const m of b.members) bytesOf(m.t).set(view.subarray(m.offset * item, (m.offset + m.t.numel) * item));
    flat.dispose();
  });
}

/** One parameter's gradient as DDP sees it. */
interface GradSlot {
  param: Tensor;
  value: Tensor | null;
  ready: boolean;
  bucket: number;
  offset: number;
}

/**
 * Wraps a model for data-parallel training (torch's DistributedDataParallel).
 * Use it like the model: `ddp.forward(x)`, `loss.backward()`, `opt.step()`
 * with an optimizer over `ddp.parameters()`. Every rank must run the same
 * number of forward/backward passes. Parameters that get no gradient in a
 * step need `ddp.finishGradientSync()` after backward.
 */
export class DistributedDataParallel<M extends Module = Module> extends Module {
  readonly module: M;
  private readonly buckets: { dtype: DType; slots: GradSlot[]; numel: number; pending: number; flat: Tensor | null }[];
  private nextBucket = 0;
  private readyCount = 0;
  private syncEnabled = true;

  constructor(module: M, opts: DistributedDataParallelOptions = {}) {
    super();
    if (!(module instanceof Module)) throw new Float8Error("DistributedDataParallel", "expects a Module");
    const capMB = opts.bucketCapMB ?? 25;
    if (!(capMB > 0)) throw new Float8Error("DistributedDataParallel", `bucketCapMB must be > 0, got ${capMB}`);
    this.module = this.registerModule("module", module);
    const params = module.parameters().filter((p) => p.requiresGrad);
    const state = opts.broadcastBuffers === false ? params : [...params, ...[...module.namedBuffers()].map(([, b]) => b)];
    broadcastCoalesced(state, 250 * 2 ** 20, "ddp.init");
    // gradients arrive roughly in reverse order of registration
    const plan = makeBuckets([...params].reverse(), capMB * 2 ** 20);
    this.buckets = plan.map((b, i) => ({
      dtype: b.dtype,
      numel: b.numel,
      pending: b.members.length,
      flat: null,
      slots: b.members.map((m) => this.watchGrad(m.t, i, m.offset)),
    }));
  }

  /** Intercepts writes to param.grad (autograd's, zeroGrad's) to see when a gradient arrives. */
  private watchGrad(param: Tensor, bucket: number, offset: number): GradSlot {
    const slot: GradSlot = { param, value: param.grad, ready: false, bucket, offset };
    Object.defineProperty(param, "grad", {
      configurable: true,
      enumerable: true,
      get: () => slot.value,
      set: (g: Tensor | null) => {
        slot.value = g;
        if (g && this.syncEnabled) this.markReady(slot);
      },
    });
    return slot;
  }

  private markReady(slot: GradSlot): void {
    if (this.nextBucket === this.buckets.length) {
      throw new Float8Error(
        "DistributedDataParallel",
        "gradients were already averaged in this step; run forward again before another backward, or wrap extra backward passes in ddp.noSync()",
      );
    }
    if (slot.ready) return;
    slot.ready = true;
    this.readyCount++;
    this.buckets[slot.bucket].pending--;
    while (this.nextBucket < this.buckets.length && this.buckets[this.nextBucket].pending === 0) {
      this.reduceBucket(this.nextBucket++);
    }
  }

  /** All-reduces (avg) one bucket's gradients as a flat buffer; missing gradients count as zeros. */
  private reduceBucket(i: number): void {
    const b = this.buckets[i];
    b.flat ??= Tensor.empty([b.numel], b.dtype).keep();
    const item = ITEM_SIZE[b.dtype];
    const flat = new Uint8Array(b.flat.rawView());
    for (const s of b.slots) {
      const at = s.offset * item, n = s.param.numel * item;
      if (!s.value) {
        flat.fill(0, at, at + n);
        continue;
      }
      const g = s.value.dtype === b.dtype ? s.value : s.value.to({ dtype: b.dtype });
      flat.set(bytesOf(g), at);
      if (g !== s.value) g.dispose();
    }
    allReduce(b.flat, "avg", { key: `ddp.bucket.${i}` });
    for (const s of b.slots) {
      const avg = Tensor.empty(s.param.shape, b.dtype).keep();
      bytesOf(avg).set(flat.subarray(s.offset * item, (s.offset + s.param.numel) * item));
      s.value?.dispose();
      s.value = avg;
    }
  }

  /** Starts a step: checks that the previous backward finished its reductions. */
  private beginStep(): void {
    const done = this.nextBucket === this.buckets.length;
    if (this.readyCount > 0 && !done) {
      throw new Float8Error(
        "DistributedDataParallel",
        `the last backward averaged ${this.nextBucket} of ${this.buckets.length} gradient buckets: some parameters got no gradient. ` +
          "Call ddp.finishGradientSync() after backward (on every rank), or make every parameter take part in the loss",
      );
    }
    if (this.readyCount === 0 && !done) return;
    this.nextBucket = 0;
    this.readyCount = 0;
    for (const b of this.buckets) {
      b.pending = b.slots.length;
      for (const s of b.slots) s.ready = false;
    }
  }

  forward(...inputs: any[]): any {
    this.beginStep();
    return this.module.forward(...inputs);
  }

  /** Averages the buckets still waiting, treating parameters without a gradient as zero. Collective. */
  finishGradientSync(): void {
    while (this.nextBucket < this.buckets.length) this.reduceBucket(this.nextBucket++);
  }

  /** Runs fn (forward and backward of micro-batches) without averaging; gradients accumulate locally. */
  noSync<T>(fn: () => T): T {
    const prev = this.syncEnabled;
    this.syncEnabled = false;
    try {
      return fn();
    } finally {
      this.syncEnabled = prev;
    }
  }

  /** Frees the bucket buffers (the model is the caller's). */
  disposeBuckets(): void {
    for (const b of this.buckets) {
      b.flat?.dispose();
      b.flat = null;
    }
  }

  get worldSize(): number {
    return getWorldSize();
  }

  get name(): string {
    return "DistributedDataParallel";
  }
}
