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
import * as dev from "../tensor/device_ops.ts";
import type { Device } from "../tensor/backend/index.ts";
import { copyRegion } from "../tensor/ops/movement.ts";
import { allReduce, broadcast, getWorldSize } from "./process_group.ts";

/** Options of DistributedDataParallel. */
export interface DistributedDataParallelOptions {
  /** gradient bucket size in MiB (torch's default: 25) */
  bucketCapMB?: number;
  /** also broadcast rank 0's buffers (float8 amax histories, ...) at construction (default true) */
  broadcastBuffers?: boolean;
}

/** A run of same-dtype, same-device tensors laid out back to back in one flat buffer. */
interface Bucket {
  dtype: DType;
  device: Device;
  members: { t: Tensor; offset: number }[];
  numel: number;
}

/** Groups tensors (in the given order) into same-dtype, same-device buckets of at most capBytes. */
function makeBuckets(tensors: Tensor[], capBytes: number): Bucket[] {
  const buckets: Bucket[] = [];
  const open = new Map<string, Bucket>();
  for (const t of tensors) {
    const key = `${t.device}/${t.dtype}`;
    let b = open.get(key);
    if (!b || (b.numel > 0 && (b.numel + t.numel) * ITEM_SIZE[t.dtype] > capBytes)) {
      b = { dtype: t.dtype, device: t.device, members: [], numel: 0 };
      buckets.push(b);
      open.set(key, b);
    }
    b.members.push({ t, offset: b.numel });
    b.numel += t.numel;
  }
  return buckets;
}

/** Copies `count` elements from src[srcOffset..] to dst[dstOffset..] on their device. */
function copyElements(dst: Tensor, dstOffset: number, src: Tensor, srcOffset: number, count: number, op: string): void {
  copyRegion(dst, dstOffset, [1], src, srcOffset, [1], [count], op);
}

/** Broadcasts rank 0's values of `tensors` to every rank, coalesced into buckets. */
export function broadcastCoalesced(tensors: Tensor[], capBytes: number, key: string): void {
  const op = "DistributedDataParallel";
  makeBuckets(tensors, capBytes).forEach((b, i) => {
    const flat = Tensor.empty([b.numel], b.dtype, b.device);
    for (const m of b.members) copyElements(flat, m.offset, m.t, 0, m.t.numel, op);
    broadcast(flat, 0, { key: `${key}.${i}` });
    for (const m of b.members) copyElements(m.t, 0, flat, m.offset, m.t.numel, op);
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
  private readonly buckets: { dtype: DType; device: Device; slots: GradSlot[]; numel: number; pending: number; flat: Tensor | null }[];
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
      device: b.device,
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
    const op = "DistributedDataParallel";
    b.flat ??= Tensor.empty([b.numel], b.dtype, b.device).keep();
    const flat = b.flat;
    for (const s of b.slots) {
      if (!s.value) {
        dev.fillRange(flat, s.offset, s.offset + s.param.numel, 0, op);
        continue;
      }
      const g = s.value.dtype === b.dtype ? s.value : s.value.to({ dtype: b.dtype });
      copyElements(flat, s.offset, g, 0, s.param.numel, op);
      if (g !== s.value) g.dispose();
    }
    allReduce(flat, "avg", { key: `ddp.bucket.${i}` });
    for (const s of b.slots) {
      const avg = Tensor.empty(s.param.shape, b.dtype, b.device).keep();
      copyElements(avg, 0, flat, s.offset, s.param.numel, op);
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
