// gpt.ts — a small LLaMA-style character-level language model, trained in
// bf16 and in float8 on a public-domain text (examples/data/, see its README).
//
// The model: token embedding -> N blocks of [RMSNorm -> causal multi-head
// attention with rotary position embeddings -> residual, RMSNorm -> SwiGLU
// feed-forward -> residual] -> RMSNorm -> output projection (untied).
// The float8 run converts every Linear except the output projection with
// convertToFloat8Training (moduleFilterFn skips "output", as torchao's README
// suggests), dynamic scaling. Both runs start from the same weights and see
// the same batches. The loss is computed in float32 from the bf16 logits (as
// torch's autocast does), so the two runs' losses compare finely. --device cuda
// trains, evaluates and samples on the GPU.
//
//   bun examples/gpt.ts               # default CPU config, both runs: about 3 minutes on 2 idle cores
//   bun examples/gpt.ts --device cuda
//   bun examples/gpt.ts --help
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  Float8Error, Tensor, cat, cuda, float8, manualSeed, nn, noGrad, optim, tensor, tidy, uniformStream, zeros,
  type Device, type HighPrecisionDType,
} from "../src/index.ts";
import { captureOrWarn } from "./common.ts";
import { lrFactor } from "./schedule.ts";

// ---------------------------------------------------------------- model

export interface GptConfig {
  vocabSize: number;
  dim: number;
  nLayers: number;
  nHeads: number;
  /** SwiGLU hidden size */
  hiddenDim: number;
  /** longest sequence (size of the rotary tables) */
  maxSeqLen: number;
  dtype: HighPrecisionDType;
}

/** cos and sin tables (maxSeqLen, headDim) of rotary embeddings, in the half-split layout of LLaMA's HF port. */
function rotaryTables(maxSeqLen: number, headDim: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(maxSeqLen * headDim);
  const sin = new Float32Array(maxSeqLen * headDim);
  for (let t = 0; t < maxSeqLen; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t / Math.pow(10000, (2 * i) / headDim);
      for (const j of [i, i + half]) {
        cos[t * headDim + j] = Math.cos(angle);
        sin[t * headDim + j] = Math.sin(angle);
      }
    }
  }
  return { cos, sin };
}

/** (T, T) float mask, 1 where key position > query position. */
function causalMask(T: number): Float32Array {
  const v = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) v[i * T + j] = 1;
  return v;
}

/** The constants of a forward of length T on one device: rotary tables (T, headDim) and the causal mask (T, T). */
interface SequenceConstants {
  cos: Tensor;
  sin: Tensor;
  mask: Tensor;
}

/** x * cos + rotate_half(x) * sin, x (B, H, T, D), tables (T, D). */
function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const D = x.size(-1);
  const rotated = cat([x.slice(-1, D / 2).neg(), x.slice(-1, 0, D / 2)], -1);
  return x.mul(cos).add(rotated.mul(sin));
}

/** Causal self-attention: wq, wk, wv, wo (dim, dim), no biases. */
export class Attention extends nn.Module {
  wq: nn.Linear;
  wk: nn.Linear;
  wv: nn.Linear;
  wo: nn.Linear;
  constructor(readonly dim: number, readonly nHeads: number, dtype: HighPrecisionDType) {
    super();
    this.wq = this.registerModule("wq", new nn.Linear(dim, dim, { bias: false, dtype }));
    this.wk = this.registerModule("wk", new nn.Linear(dim, dim, { bias: false, dtype }));
    this.wv = this.registerModule("wv", new nn.Linear(dim, dim, { bias: false, dtype }));
    this.wo = this.registerModule("wo", new nn.Linear(dim, dim, { bias: false, dtype }));
  }

  /** x (B, T, C), mask (T, T) with 1 above the diagonal, rotary tables (T, D) -> (B, T, C). */
  forward(x: Tensor, mask: Tensor, cos: Tensor, sin: Tensor): Tensor {
    const [B, T, C] = x.shape;
    const H = this.nHeads, D = C / H;
    const heads = (t: Tensor) => t.reshape([B, T, H, D]).transpose(1, 2); // (B, H, T, D)
    const q = applyRotary(heads(this.wq.forward(x)), cos, sin);
    const k = applyRotary(heads(this.wk.forward(x)), cos, sin);
    const v = heads(this.wv.forward(x));
    const scores = q.matmul(k.transpose(-2, -1)).mul(1 / Math.sqrt(D)).maskedFill(mask, -1e9); // (B, H, T, T)
    const y = scores.softmax(-1).matmul(v); // (B, H, T, D)
    return this.wo.forward(y.transpose(1, 2).reshape([B, T, C]));
  }
}

/** SwiGLU: w2(silu(w1 x) * w3 x). */
export class FeedForward extends nn.Module {
  w1: nn.Linear;
  w2: nn.Linear;
  w3: nn.Linear;
  constructor(dim: number, hiddenDim: number, dtype: HighPrecisionDType) {
    super();
    this.w1 = this.registerModule("w1", new nn.Linear(dim, hiddenDim, { bias: false, dtype }));
    this.w2 = this.registerModule("w2", new nn.Linear(hiddenDim, dim, { bias: false, dtype }));
    this.w3 = this.registerModule("w3", new nn.Linear(dim, hiddenDim, { bias: false, dtype }));
  }
  forward(x: Tensor): Tensor {
    return this.w2.forward(this.w1.forward(x).silu().mul(this.w3.forward(x)));
  }
}

/** Pre-norm transformer block. */
export class Block extends nn.Module {
  attentionNorm: nn.RMSNorm;
  attention: Attention;
  ffnNorm: nn.RMSNorm;
  feedForward: FeedForward;
  constructor(cfg: GptConfig) {
    super();
    this.attentionNorm = this.registerModule("attention_norm", new nn.RMSNorm(cfg.dim, 1e-5, { dtype: cfg.dtype }));
    this.attention = this.registerModule("attention", new Attention(cfg.dim, cfg.nHeads, cfg.dtype));
    this.ffnNorm = this.registerModule("ffn_norm", new nn.RMSNorm(cfg.dim, 1e-5, { dtype: cfg.dtype }));
    this.feedForward = this.registerModule("feed_forward", new FeedForward(cfg.dim, cfg.hiddenDim, cfg.dtype));
  }
  forward(x: Tensor, mask: Tensor, cos: Tensor, sin: Tensor): Tensor {
    const h = x.add(this.attention.forward(this.attentionNorm.forward(x), mask, cos, sin));
    return h.add(this.feedForward.forward(this.ffnNorm.forward(h)));
  }
}

/** The language model: tokens (B, T) -> logits (B, T, vocab). Module names follow LLaMA's. */
export class Gpt extends nn.Module {
  tokEmbeddings: nn.Embedding;
  layers: nn.ModuleList;
  norm: nn.RMSNorm;
  output: nn.Linear;
  /** rotary tables on the host, (maxSeqLen, headDim) */
  private readonly rotary: { cos: Float32Array; sin: Float32Array };
  /**
   * Constants by device and length, made on first use (not buffers: they
   * would enter stateDict and checkpoints), so a step uploads none of them.
   */
  private readonly constants = new Map<`${Device}/${number}`, SequenceConstants>();

  constructor(readonly cfg: GptConfig) {
    super();
    if (cfg.dim % cfg.nHeads !== 0 || (cfg.dim / cfg.nHeads) % 2 !== 0) {
      throw new Error(`gpt: dim ${cfg.dim} must split into ${cfg.nHeads} heads of even size`);
    }
    this.tokEmbeddings = this.registerModule("tok_embeddings", new nn.Embedding(cfg.vocabSize, cfg.dim, { dtype: cfg.dtype }));
    this.layers = this.registerModule("layers", new nn.ModuleList(Array.from({ length: cfg.nLayers }, () => new Block(cfg))));
    this.norm = this.registerModule("norm", new nn.RMSNorm(cfg.dim, 1e-5, { dtype: cfg.dtype }));
    this.output = this.registerModule("output", new nn.Linear(cfg.dim, cfg.vocabSize, { bias: false, dtype: cfg.dtype }));
    this.rotary = rotaryTables(cfg.maxSeqLen, cfg.dim / cfg.nHeads);
  }

  private constantsFor(device: Device, T: number): SequenceConstants {
    let c = this.constants.get(`${device}/${T}`);
    if (!c) {
      const D = this.cfg.dim / this.cfg.nHeads, shape = [T, D], dtype = this.cfg.dtype;
      c = {
        cos: tensor(this.rotary.cos.subarray(0, T * D), { shape, dtype, device }).keep(),
        sin: tensor(this.rotary.sin.subarray(0, T * D), { shape, dtype, device }).keep(),
        mask: tensor(causalMask(T), { shape: [T, T], device }).keep(),
      };
      this.constants.set(`${device}/${T}`, c);
    }
    return c;
  }

  /** tokens: int32 (B * T) in row-major order (host ids, or an int32 tensor); runs on the model's device. */
  forward(tokens: Int32Array | Tensor, B: number, T: number): Tensor {
    if (T > this.cfg.maxSeqLen) throw new Error(`gpt: sequence of ${T} exceeds maxSeqLen ${this.cfg.maxSeqLen}`);
    let h = this.tokEmbeddings.forward(tokens).reshape([B, T, this.cfg.dim]);
    const { cos, sin, mask } = this.constantsFor(h.device, T);
    for (const layer of this.layers) h = (layer as Block).forward(h, mask, cos, sin);
    return this.output.forward(this.norm.forward(h));
  }

  dispose(): void {
    super.dispose();
    for (const c of this.constants.values()) for (const t of [c.cos, c.sin, c.mask]) t.dispose();
    this.constants.clear();
  }
}

// ---------------------------------------------------------------- data

/** Character vocabulary and the text as token ids. */
export interface CharData {
  chars: string[];
  train: Int32Array;
  val: Int32Array;
}

/** Splits text into the first `trainFraction` for training and the rest for validation. */
export function charData(text: string, trainFraction = 0.9): CharData {
  const chars = [...new Set(text)].sort();
  const index = new Map(chars.map((c, i) => [c, i]));
  const ids = Int32Array.from(text, (c) => index.get(c)!);
  const cut = Math.floor(ids.length * trainFraction);
  return { chars, train: ids.slice(0, cut), val: ids.slice(cut) };
}

/** Random windows: inputs (B*T) and next-character targets (B*T). */
function sampleBatch(ids: Int32Array, B: number, T: number, rand: () => number): { x: Int32Array; y: Int32Array } {
  const x = new Int32Array(B * T), y = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const start = Math.floor(rand() * (ids.length - T - 1));
    x.set(ids.subarray(start, start + T), b * T);
    y.set(ids.subarray(start + 1, start + T + 1), b * T);
  }
  return { x, y };
}

// ---------------------------------------------------------------- training

/** bf16, float8 (tensorwise dynamic), and the block-scaled recipes blockwise and mxfp8 (CPU). */
export type GptRecipe = "bf16" | "float8" | "blockwise" | "mxfp8";
export const GPT_RECIPES: readonly GptRecipe[] = ["bf16", "float8", "blockwise", "mxfp8"];

export interface GptOptions {
  steps: number;
  batchSize: number;
  seqLen: number;
  dim: number;
  nLayers: number;
  nHeads: number;
  lr: number;
  seed: number;
  /** validation batches for the final loss */
  evalBatches: number;
  /** where the model trains, evaluates and samples (default cpu); token ids go there with each batch */
  device?: Device;
  /** cuda only: the first step runs eagerly, the others replay it as a captured CUDA graph (bit-identical) */
  graph?: boolean;
  progress?: (step: number, loss: number) => void;
}

export interface GptResult {
  recipe: GptRecipe;
  losses: number[];
  /** mean training loss over the last 10 % of steps */
  finalTrainLoss: number;
  /** mean loss over evalBatches fixed validation batches */
  valLoss: number;
  msPerStep: number;
  model: Gpt;
}

/** Builds the model of a recipe on o.device (same seed, same initial weights). */
export function buildGpt(recipe: GptRecipe, vocabSize: number, o: Pick<GptOptions, "dim" | "nLayers" | "nHeads" | "seqLen" | "seed" | "device">): Gpt {
  manualSeed(o.seed);
  // LLaMA's hidden size: 2/3 of 4*dim, rounded up to a multiple of 16
  const hiddenDim = Math.ceil((2 * 4 * o.dim) / 3 / 16) * 16;
  const model = new Gpt({ vocabSize, dim: o.dim, nLayers: o.nLayers, nHeads: o.nHeads, hiddenDim, maxSeqLen: o.seqLen, dtype: "bfloat16" });
  if (recipe === "float8") {
    float8.convertToFloat8Training(model, {
      moduleFilterFn: (_m, fqn) => fqn !== "output",
      // padInnerDim: batch x seq and dim come from flags; cuBLASLt's fp8 GEMM needs inner dims % 16 (no effect on the CPU)
      config: new float8.Float8LinearConfig({ padInnerDim: true }),
    });
  }
  if (recipe === "blockwise" || recipe === "mxfp8") {
    float8.convertToFloat8Training(model, { moduleFilterFn: (_m, fqn) => fqn !== "output", config: float8.Float8LinearConfig.fromRecipeName(recipe) });
  }
  return model.to({ device: o.device ?? "cpu" });
}

/** Trains one recipe; both recipes see the same batches. */
export function trainGpt(recipe: GptRecipe, data: CharData, o: GptOptions): GptResult {
  const model = buildGpt(recipe, data.chars.length, o);
  const opt = new optim.AdamW(model.parameters(), { lr: o.lr, weightDecay: 0.01 });
  const rand = uniformStream(o.seed ^ 0xb00c);
  const { batchSize: B, seqLen: T } = o;
  const V = data.chars.length;
  const losses: number[] = [];
  const trainStep = (x: Int32Array | Tensor, y: Int32Array | Tensor) => {
    opt.zeroGrad();
    const l = nn.crossEntropy(model.forward(x, B, T).reshape([B * T, V]).to({ dtype: "float32" }), y);
    l.backward();
    opt.step();
    return l;
  };
  // Replayed steps read their token ids from two int32 tensors on the device, refilled each step
  // (eager steps pass the host ids: the ops check them on the host and upload them).
  const useGraph = !!o.graph && o.device === "cuda";
  const ids = () => Tensor.fromBytes(new Uint8Array(4 * B * T), { shape: [B * T], dtype: "int32", device: "cuda" }).keep();
  const [xs, ys] = useGraph ? [ids(), ids()] : [null, null];
  const hostIds = (a: Int32Array) => Tensor.fromBytes(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), { shape: [B * T], dtype: "int32" });
  let graph: cuda.TensorGraph<Tensor> | null = null;
  let graphFailed = false;
  const t0 = performance.now();
  for (let step = 0; step < o.steps; step++) {
    opt.lr = o.lr * lrFactor(step, o.steps);
    const { x, y } = sampleBatch(data.train, B, T, rand);
    if (xs && ys && !graph && !graphFailed && step > 0) {
      graph = captureOrWarn("gpt", () => trainStep(xs, ys));
      if (!graph) {
        graphFailed = true;
        opt.zeroGrad();
      }
    }
    let loss: number;
    if (graph && xs && ys) {
      tidy(() => {
        xs.copyFrom(hostIds(x));
        ys.copyFrom(hostIds(y));
      });
      graph.replay();
      loss = graph.result.item();
    } else {
      loss = tidy(() => trainStep(x, y).item());
    }
    losses.push(loss);
    o.progress?.(step + 1, loss);
  }
  graph?.dispose();
  xs?.dispose();
  ys?.dispose();
  const msPerStep = (performance.now() - t0) / Math.max(o.steps, 1);
  opt.zeroGrad();
  opt.dispose();
  const valLoss = validationLoss(model, data, o);
  const tail = losses.slice(-Math.max(1, Math.round(losses.length / 10)));
  return {
    recipe, losses, msPerStep, model,
    finalTrainLoss: tail.reduce((a, b) => a + b, 0) / tail.length,
    valLoss,
  };
}

/** Mean loss over o.evalBatches fixed validation batches (the same batches for every model). */
export function validationLoss(model: Gpt, data: CharData, o: Pick<GptOptions, "batchSize" | "seqLen" | "seed" | "evalBatches">): number {
  const { batchSize: B, seqLen: T } = o;
  const V = data.chars.length;
  const valRand = uniformStream(o.seed ^ 0x7a1);
  let valLoss = 0;
  noGrad(() => {
    for (let i = 0; i < o.evalBatches; i++) {
      const { x, y } = sampleBatch(data.val, B, T, valRand);
      valLoss += tidy(() => nn.crossEntropy(model.forward(x, B, T).reshape([B * T, V]).to({ dtype: "float32" }), y).item());
    }
  });
  return valLoss / Math.max(o.evalBatches, 1);
}

/**
 * --generate: samples n characters from the trained bf16 model, then from the same model with its
 * Linear weights frozen in float8 (float8.quantizeForInference, weight-only, row-wise scales), and
 * reports characters per second of each and the validation loss with fp8 weights. Each character
 * runs the model on the whole context (no KV cache), so a Linear sees M = context length rows:
 * the fp8 GEMV (M <= 16) serves contexts up to 16 characters, oneDNN on the decoded weight the rest.
 */
export function generateComparison(model: Gpt, data: CharData, o: GptOptions, n: number, prompt = "And God said"): string {
  const lines: string[] = [];
  const timeSample = () => {
    sample(model, data, prompt, Math.min(n, 8)); // warm-up: GEMM primitives, allocator cache
    const t0 = performance.now();
    const text = sample(model, data, prompt, n);
    return { text, perSec: n / ((performance.now() - t0) / 1000) };
  };
  const bf = timeSample();
  const bfLoss = validationLoss(model, data, o);
  float8.quantizeForInference(model, { recipe: "rowwise", activation: "none" });
  const f8 = timeSample();
  const f8Loss = validationLoss(model, data, o);
  lines.push(`generate ${n} characters (context up to ${o.seqLen}):`);
  lines.push(`  bf16 weights: ${bf.perSec.toFixed(1)} tokens/s, val loss ${bfLoss.toFixed(4)}`);
  lines.push(`  fp8 weights (weight-only, rowwise): ${f8.perSec.toFixed(1)} tokens/s (${(f8.perSec / bf.perSec).toFixed(2)}x), ` +
    `val loss ${f8Loss.toFixed(4)} (${f8Loss >= bfLoss ? "+" : ""}${((100 * (f8Loss - bfLoss)) / bfLoss).toFixed(2)} %)`);
  lines.push(`--- bf16 sample ---\n${prompt}${bf.text}`);
  lines.push(`--- fp8-weight sample ---\n${prompt}${f8.text}`);
  return lines.join("\n");
}

/** Samples `length` characters after `prompt` (temperature, top-k), from a seeded generator. */
export function sample(model: Gpt, data: CharData, prompt: string, length: number, opts: { temperature?: number; topK?: number; seed?: number } = {}): string {
  const temperature = opts.temperature ?? 0.8, topK = opts.topK ?? 10;
  const rand = uniformStream(opts.seed ?? 1);
  const index = new Map(data.chars.map((c, i) => [c, i]));
  const ids = [...prompt].map((c) => index.get(c) ?? 0);
  const T = model.cfg.maxSeqLen, V = data.chars.length;
  return noGrad(() => {
    for (let i = 0; i < length; i++) {
      const ctx = Int32Array.from(ids.slice(-T));
      const logits = tidy(() => model.forward(ctx, 1, ctx.length).slice(1, ctx.length - 1).toArray());
      const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a]).slice(0, topK);
      const w = order.map((k) => Math.exp((logits[k] - logits[order[0]]) / temperature));
      let r = rand() * w.reduce((a, b) => a + b, 0);
      let pick = order[order.length - 1];
      for (let j = 0; j < order.length; j++) if ((r -= w[j]) <= 0) { pick = order[j]; break; }
      ids.push(pick);
      if (logits.length !== V) throw new Error("gpt: unexpected logits size");
    }
    return ids.slice([...prompt].length).map((k) => data.chars[k]).join("");
  });
}

// ---------------------------------------------------------------- CLI

const USAGE = `usage: bun examples/gpt.ts [options]

Trains a small LLaMA-style character model on examples/data/kjv_genesis_exodus.txt
in bf16 and in float8 (every Linear but the output projection, dynamic scaling),
with the same initial weights and batches; prints both losses and samples text.

options:
  --steps N        training steps per run (default 500)
  --batch-size N   sequences per step (default 16)
  --seq-len N      characters per sequence (default 64)
  --dim N          model width (default 128)
  --layers N       transformer blocks (default 3)
  --heads N        attention heads (default 4)
  --lr X           AdamW learning rate of the first half; then x0.3, x0.1, x0.03
                   from 50 %, 75 % and 90 % of the steps (default 0.003)
  --recipe LIST    bf16,float8,blockwise,mxfp8 (default bf16,float8; blockwise and mxfp8 are
                   the block-scaled float8 recipes, on the CPU)
  --generate N     after training, sample N characters from the bf16 model with bf16 and with
                   fp8 weights (float8.quantizeForInference) and compare tokens/s and val loss
  --sample N       characters to sample from each model (default 240)
  --seed N         seed (default 0)
  --device D       cpu (default) or cuda
  --graph on|off   cuda: replay the training step as a CUDA graph (bit-identical; default on)
  -h, --help       this text`;

class Progress {
  private start = performance.now();
  private last = 0;
  constructor(private readonly label: string, private readonly total: number, private readonly tty = !!process.stderr.isTTY) {}
  update(step: number, loss: number): void {
    const now = performance.now();
    const done = step === this.total;
    if (this.tty ? !done && now - this.last < 100 : !done && step % Math.max(1, Math.round(this.total / 10)) !== 0) return;
    this.last = now;
    const rate = step / ((now - this.start) / 1000);
    const line = `${this.label.padEnd(7)} step ${String(step).padStart(String(this.total).length)}/${this.total}  loss ${loss.toFixed(4)}  ${rate.toFixed(2)} steps/s`;
    process.stderr.write(this.tty ? `\r${line}${done ? "\n" : ""}` : `${line}\n`);
  }
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      steps: { type: "string", default: "500" },
      "batch-size": { type: "string", default: "16" },
      "seq-len": { type: "string", default: "64" },
      dim: { type: "string", default: "128" },
      layers: { type: "string", default: "3" },
      heads: { type: "string", default: "4" },
      lr: { type: "string", default: "0.003" },
      recipe: { type: "string", default: "bf16,float8" },
      sample: { type: "string", default: "240" },
      generate: { type: "string", default: "0" },
      seed: { type: "string", default: "0" },
      device: { type: "string", default: "cpu" },
      graph: { type: "string", default: "on" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const int = (k: keyof typeof values) => {
    const n = Number(values[k]);
    if (!Number.isInteger(n) || n < 0) {
      console.error(`gpt: --${k} must be a non-negative integer, got '${values[k]}'\n\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  if (values.device !== "cpu" && values.device !== "cuda") {
    console.error(`gpt: --device must be cpu or cuda, got '${values.device}'\n\n${USAGE}`);
    process.exit(2);
  }
  const device = values.device as Device;
  if (values.graph !== "on" && values.graph !== "off") {
    console.error(`gpt: --graph must be on or off, got '${values.graph}'\n\n${USAGE}`);
    process.exit(2);
  }
  if (device !== "cpu") {
    try {
      zeros([1], { device }).dispose();
    } catch (e) {
      console.error(`gpt: --device ${device} is not usable here: ${e instanceof Float8Error ? e.message : String(e)}`);
      process.exit(1);
    }
  }
  const o: GptOptions = {
    steps: int("steps"), batchSize: int("batch-size"), seqLen: int("seq-len"), dim: int("dim"), nLayers: int("layers"),
    nHeads: int("heads"), lr: Number(values.lr), seed: int("seed"), evalBatches: 8, device, graph: values.graph === "on",
  };
  const recipes = values.recipe.split(",").map((s) => s.trim());
  for (const r of recipes) {
    if (!(GPT_RECIPES as readonly string[]).includes(r)) {
      console.error(`gpt: unknown recipe '${r}'; choose from ${GPT_RECIPES.join(", ")}`);
      process.exit(2);
    }
  }
  const t0 = performance.now();
  const text = readFileSync(join(import.meta.dir, "data", "kjv_genesis_exodus.txt"), "utf8");
  const data = charData(text);
  console.log(`corpus: King James Version, Genesis and Exodus (public domain): ${text.length} characters, ` +
    `vocabulary ${data.chars.length}; ${data.train.length} train / ${data.val.length} validation`);
  console.log(`model: dim ${o.dim}, ${o.nLayers} layers, ${o.nHeads} heads, seq ${o.seqLen}, batch ${o.batchSize}, ` +
    `${o.steps} steps, AdamW lr ${o.lr} with step decay, bf16 weights, on ${device}${device === "cuda" && o.graph ? " (steps replayed as a CUDA graph)" : ""}`);
  const results: GptResult[] = [];
  for (const r of recipes as GptRecipe[]) {
    const bar = new Progress(r, o.steps);
    const res = trainGpt(r, data, { ...o, progress: (s, l) => bar.update(s, l) });
    if (r !== "bf16") {
      const n = float8.float8Layers(res.model).length;
      console.log(`${r}: ${n} Float8Linear layers (output projection kept in bf16)`);
    }
    results.push(res);
  }
  console.log("\nrecipe     train loss (last 10%)  val loss  ms/step");
  for (const r of results) {
    console.log(`${r.recipe.padEnd(9)}  ${r.finalTrainLoss.toFixed(4).padStart(21)}  ${r.valLoss.toFixed(4).padStart(8)}  ${r.msPerStep.toFixed(1).padStart(7)}`);
  }
  const bf = results.find((r) => r.recipe === "bf16");
  for (const f8 of results.filter((r) => r.recipe !== "bf16")) {
    if (!bf) break;
    const rel = (100 * (f8.valLoss - bf.valLoss)) / bf.valLoss;
    const relTrain = (100 * (f8.finalTrainLoss - bf.finalTrainLoss)) / bf.finalTrainLoss;
    console.log(`${f8.recipe} vs bf16: val loss ${rel >= 0 ? "+" : ""}${rel.toFixed(2)} %, train loss ${relTrain >= 0 ? "+" : ""}${relTrain.toFixed(2)} % ` +
      `(target: within 3 %: ${Math.abs(rel) <= 3 ? "met" : "NOT met"})`);
  }
  const n = int("sample");
  if (n > 0) {
    for (const r of results) {
      console.log(`\n--- ${r.recipe} sample ---\nAnd God said${sample(r.model, data, "And God said", n)}`);
    }
  }
  const g = int("generate");
  if (g > 0) {
    if (!bf) console.error("gpt: --generate needs the bf16 recipe among --recipe");
    else if (device !== "cpu") console.error("gpt: --generate runs on the CPU (float8 inference is CPU-only)");
    else console.log(`\n${generateComparison(bf.model, data, o, g)}`);
  }
  for (const r of results) r.model.dispose();
  console.log(`\ntotal time: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

if (import.meta.main) await main(Bun.argv.slice(2));
