// linear.ts — a Linear's forward and backward over raw device buffers: in
// float8 (Float8LinearCuda, dynamic scaling, the three fp8 GEMMs of docs/architecture.md, "Numerics")
// and in high precision (HighPrecisionLinearCuda, the bf16 baseline). These
// drive the GPU benchmarks and tests until Tensor gets a "cuda" device.
//
//   forward:  y  = x (M,K) @ w (N,K)^T [+ bias]      x: e4m3, w: e4m3, fast accum
//   backward: dx = dy (M,N) @ w (N,K)                dy: e5m2
//             dw = dy^T (N,M) @ x (M,K)
// cuBLASLt's fp8 GEMM takes only K-contiguous operands, so each cast writes
// its tensor twice in one pass (quantizeTranspose): x and x^T, w and w^T,
// dy and dy^T. Scales and amaxes stay on the GPU; nothing waits on the host.
import { Float8Error } from "../errors.ts";
import { explainDecision, H100_SXM, H200, predictLinearSpeedup, type LinearSpeedupPrediction } from "../float8/roofline.ts";
import type { HighPrecisionDType } from "../tensor/dtype.ts";
import { DeviceBuffer, type CudaContext } from "../tensor/backend/cuda_device.ts";
import { amaxToScale, biasGrad, matmul, quantizeTranspose, scaledMm, scalarBuffer } from "./ops.ts";

/** Gradients of one backward. dbias is null when the layer has no bias. */
export interface LinearGrads {
  readonly dx: DeviceBuffer;
  readonly dw: DeviceBuffer;
  readonly dbias: DeviceBuffer | null;
}

/** What both drivers share: shapes, checks and the bias gradient. */
class LinearCudaBase {
  protected x: DeviceBuffer | null = null;
  protected w: DeviceBuffer | null = null;
  protected hasBias = false;

  constructor(
    readonly name: string, readonly ctx: CudaContext, readonly M: number, readonly K: number, readonly N: number,
    readonly dtype: HighPrecisionDType,
  ) {
    for (const [name, v] of [["M", M], ["K", K], ["N", N]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Float8Error(this.name, `${name} must be a positive integer, got ${v}`);
    }
  }

  protected checkInput(b: DeviceBuffer, shape: readonly number[], what: string): void {
    if (b.ctx !== this.ctx) throw new Float8Error(this.name, `${what} ${b} is not on cuda:${this.ctx.index}`);
    if (b.dtype !== this.dtype || b.shape.length !== shape.length || b.shape.some((d, i) => d !== shape[i])) {
      throw new Float8Error(this.name, `${what} must be (${shape.join(", ")}) ${this.dtype}, got ${b}`);
    }
  }

  protected begin(x: DeviceBuffer, w: DeviceBuffer, bias: DeviceBuffer | null | undefined): void {
    this.checkInput(x, [this.M, this.K], "x");
    this.checkInput(w, [this.N, this.K], "w");
    if (bias) this.checkInput(bias, [this.N], "bias");
    this.x = x;
    this.w = w;
    this.hasBias = !!bias;
  }

  protected saved(): [DeviceBuffer, DeviceBuffer] {
    if (!this.x || !this.w) throw new Float8Error(this.name, "backward() before forward()");
    return [this.x, this.w];
  }

  protected out(given: DeviceBuffer | undefined, shape: readonly number[], what: string): DeviceBuffer {
    if (given === undefined) return DeviceBuffer.empty(this.ctx, shape, this.dtype);
    this.checkInput(given, shape, what);
    return given;
  }

  protected dbias(dy: DeviceBuffer, given: DeviceBuffer | undefined): DeviceBuffer | null {
    if (!this.hasBias) return null;
    return biasGrad(dy, this.dtype, this.out(given, [this.N], "dbias"));
  }
}

/** The high-precision Linear (three bf16 or f32 GEMMs through cuBLASLt): the baseline. */
export class HighPrecisionLinearCuda extends LinearCudaBase {
  constructor(ctx: CudaContext, M: number, K: number, N: number, dtype: HighPrecisionDType = "bfloat16") {
    super("HighPrecisionLinearCuda", ctx, M, K, N, dtype);
  }

  forward(x: DeviceBuffer, w: DeviceBuffer, opts: { bias?: DeviceBuffer | null; out?: DeviceBuffer } = {}): DeviceBuffer {
    this.begin(x, w, opts.bias);
    return matmul(x, w, { transB: true, bias: opts.bias ?? null, out: this.out(opts.out, [this.M, this.N], "out") });
  }

  backward(dy: DeviceBuffer, opts: { dx?: DeviceBuffer; dw?: DeviceBuffer; dbias?: DeviceBuffer } = {}): LinearGrads {
    const [x, w] = this.saved();
    this.checkInput(dy, [this.M, this.N], "dy");
    const dx = matmul(dy, w, { out: this.out(opts.dx, [this.M, this.K], "dx") });
    const dw = matmul(dy, x, { transA: true, out: this.out(opts.dw, [this.N, this.K], "dw") });
    return { dx, dw, dbias: this.dbias(dy, opts.dbias) };
  }

  toString(): string {
    return `HighPrecisionLinearCuda(M=${this.M}, K=${this.K}, N=${this.N}, ${this.dtype})`;
  }

  dispose(): void {
    this.x = this.w = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Options of Float8LinearCuda. */
export interface Float8LinearCudaOptions {
  /** "auto" (default): keep the high-precision GEMMs where the roofline predicts no float8
   * speedup, or where a dim is not a multiple of 16; the choice shows in toString().
   * "never": always float8 (throws for shapes the fp8 GEMM cannot take). "always": never float8. */
  readonly fallback?: "auto" | "never" | "always";
  /** Fast accumulation per GEMM (torchao's defaults: output on, the two gradients off). */
  readonly useFastAccum?: { readonly output?: boolean; readonly gradInput?: boolean; readonly gradWeight?: boolean };
  readonly dtype?: HighPrecisionDType;
}

/** The scaled fp8 operands of one role, written by one quantizeTranspose. */
interface Fp8Operand {
  amax: DeviceBuffer;
  scale: DeviceBuffer;
  rowMajor: DeviceBuffer;
  transposed: DeviceBuffer;
}

/** Float8Linear's forward and backward on device buffers, dynamic scaling for all three
 * roles (i:dyn,w:dyn,go:dyn), with a visible bf16 fallback for shapes where fp8 loses. */
export class Float8LinearCuda extends LinearCudaBase {
  /** The roofline's prediction behind the fallback decision (null where it was not consulted). */
  readonly prediction: LinearSpeedupPrediction | null;
  readonly usesFloat8: boolean;
  /** Why the layer runs in float8 or falls back. */
  readonly decision: string;
  readonly fastAccum: { readonly output: boolean; readonly gradInput: boolean; readonly gradWeight: boolean };
  #fallback: HighPrecisionLinearCuda;
  #ops: { input: Fp8Operand; weight: Fp8Operand; gradOutput: Fp8Operand } | null = null;

  constructor(ctx: CudaContext, M: number, K: number, N: number, opts: Float8LinearCudaOptions = {}) {
    super("Float8LinearCuda", ctx, M, K, N, opts.dtype ?? "bfloat16");
    const mode = opts.fallback ?? "auto";
    this.fastAccum = {
      output: opts.useFastAccum?.output ?? true,
      gradInput: opts.useFastAccum?.gradInput ?? false,
      gradWeight: opts.useFastAccum?.gradWeight ?? false,
    };
    this.#fallback = new HighPrecisionLinearCuda(ctx, M, K, N, this.dtype);
    const aligned = M % 16 === 0 && K % 16 === 0 && N % 16 === 0;
    const spec = /H200/i.test(ctx.info.name) ? H200 : H100_SXM;
    this.prediction = mode === "auto" && aligned ? predictLinearSpeedup(M, K, N, spec) : null;
    if (mode === "always") {
      this.usesFloat8 = false;
      this.decision = "bf16 fallback: requested (fallback: \"always\")";
    } else if (!aligned) {
      if (mode === "never") {
        throw new Float8Error(this.name, `M, K, N must be multiples of 16 for the fp8 GEMMs, got ${M}, ${K}, ${N}`);
      }
      this.usesFloat8 = false;
      this.decision = `bf16 fallback: M, K, N = ${M}, ${K}, ${N} are not all multiples of 16`;
    } else if (this.prediction && !this.prediction.useFloat8) {
      this.usesFloat8 = false;
      this.decision = `bf16 fallback: ${explainDecision(this.prediction)}`;
    } else {
      this.usesFloat8 = true;
      this.decision = this.prediction ? `float8: ${explainDecision(this.prediction)}` : "float8 (fallback: \"never\")";
    }
    if (this.usesFloat8) this.#ops = this.allocateOperands();
  }

  private allocateOperands(): { input: Fp8Operand; weight: Fp8Operand; gradOutput: Fp8Operand } {
    const made: DeviceBuffer[] = [];
    const buf = (shape: number[], dtype: "float8_e4m3fn" | "float8_e5m2") => {
      const b = DeviceBuffer.empty(this.ctx, shape, dtype);
      made.push(b);
      return b;
    };
    const scalar = () => {
      const b = scalarBuffer(this.ctx);
      made.push(b);
      return b;
    };
    const { M, K, N } = this;
    try {
      return {
        input: { amax: scalar(), scale: scalar(), rowMajor: buf([M, K], "float8_e4m3fn"), transposed: buf([K, M], "float8_e4m3fn") },
        weight: { amax: scalar(), scale: scalar(), rowMajor: buf([N, K], "float8_e4m3fn"), transposed: buf([K, N], "float8_e4m3fn") },
        gradOutput: { amax: scalar(), scale: scalar(), rowMajor: buf([M, N], "float8_e5m2"), transposed: buf([N, M], "float8_e5m2") },
      };
    } catch (e) {
      for (const b of made) b.dispose();
      throw e;
    }
  }

  /** One role's cast: amax and scale on the device, then both layouts in one pass. */
  private cast(src: DeviceBuffer, o: Fp8Operand): void {
    const fp8 = o.rowMajor.dtype as "float8_e4m3fn" | "float8_e5m2";
    amaxToScale(src, fp8, { amax: o.amax, scale: o.scale });
    quantizeTranspose(src, o.scale, fp8, { rowMajor: o.rowMajor, transposed: o.transposed });
  }

  forward(x: DeviceBuffer, w: DeviceBuffer, opts: { bias?: DeviceBuffer | null; out?: DeviceBuffer } = {}): DeviceBuffer {
    if (!this.#ops) return this.#fallback.forward(x, w, opts);
    this.begin(x, w, opts.bias);
    const { input, weight } = this.#ops;
    this.cast(x, input);
    this.cast(w, weight);
    return scaledMm(input.rowMajor, weight.rowMajor, input.scale, weight.scale, {
      outDtype: this.dtype, bias: opts.bias ?? null, useFastAccum: this.fastAccum.output,
      out: this.out(opts.out, [this.M, this.N], "out"),
    });
  }

  backward(dy: DeviceBuffer, opts: { dx?: DeviceBuffer; dw?: DeviceBuffer; dbias?: DeviceBuffer } = {}): LinearGrads {
    if (!this.#ops) return this.#fallback.backward(dy, opts);
    this.saved();
    this.checkInput(dy, [this.M, this.N], "dy");
    const { input, weight, gradOutput } = this.#ops;
    this.cast(dy, gradOutput);
    // grad_input (M,K) = dy (M,N) @ w (N,K): b operand is w^T stored (K,N)
    const dx = scaledMm(gradOutput.rowMajor, weight.transposed, gradOutput.scale, weight.scale, {
      outDtype: this.dtype, useFastAccum: this.fastAccum.gradInput, out: this.out(opts.dx, [this.M, this.K], "dx"),
    });
    // grad_weight (N,K) = dy^T (N,M) @ x (M,K): operands dy^T stored (N,M), x^T stored (K,M)
    const dw = scaledMm(gradOutput.transposed, input.transposed, gradOutput.scale, input.scale, {
      outDtype: this.dtype, useFastAccum: this.fastAccum.gradWeight, out: this.out(opts.dw, [this.N, this.K], "dw"),
    });
    return { dx, dw, dbias: this.dbias(dy, opts.dbias) };
  }

  /** e.g. "Float8LinearCuda(M=1024, K=2048, N=1024, i:dyn,w:dyn,go:dyn, bf16 fallback: ...)". */
  toString(): string {
    return `Float8LinearCuda(M=${this.M}, K=${this.K}, N=${this.N}, i:dyn,w:dyn,go:dyn, ${this.decision})`;
  }

  dispose(): void {
    if (this.#ops) {
      for (const o of Object.values(this.#ops)) for (const b of Object.values(o)) (b as DeviceBuffer).dispose();
      this.#ops = null;
    }
    this.#fallback.dispose();
    this.x = this.w = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
