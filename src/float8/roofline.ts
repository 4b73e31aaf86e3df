// Analytic roofline model: will a Float8Linear beat a bf16 Linear at a given shape?
//
// A TypeScript port of the model behind torchao's `benchmarks/float8/float8_roofline.py`
// (October 2024, pytorch/ao). Pure arithmetic: no native calls, no tensors.
//
// A Linear's forward+backward runs three gemms. M, K, N are the forward's dims:
//   output      = input (M,K)       @ weight^T (K,N)     -> (M,N)   gemm (M,K,N)
//   grad_input  = grad_output (M,N) @ weight (N,K)       -> (M,K)   gemm (M,N,K)
//   grad_weight = input^T (K,M)     @ grad_output (M,N)  -> (K,N)   gemm (K,M,N)
// bf16 time  = the three gemms in bf16.
// fp8 time   = the three gemms in fp8 + the amax and cast kernels that feed them (the overhead).
// speedup    = bf16 time / (fp8 gemm time + overhead time).
// Gemm times come from the roofline (peak rates below) or from measurement ("benchmarks").
// The overhead always comes from counting bytes against memory bandwidth, as in torchao.

/** Bytes per element: bf16 operands and outputs, fp8 (e4m3/e5m2) operands. */
const BF16_BYTES = 2;
const FP8_BYTES = 1;

/**
 * Peak rates of one device and the fraction of each that real kernels reach.
 * Rates are null where no datasheet number applies (the CPU): those must be measured.
 */
export interface DeviceSpec {
  readonly name: string;
  /** Dense bf16 tensor-core rate, FLOP/s (no sparsity). */
  readonly bf16PeakFlopsPerSec: number | null;
  /** Dense fp8 tensor-core rate, FLOP/s (no sparsity). */
  readonly fp8PeakFlopsPerSec: number | null;
  /** Peak DRAM bandwidth, bytes/s. */
  readonly memBandwidthBytesPerSec: number | null;
  /** Share of peak FLOP/s a large cuBLAS gemm reaches. */
  readonly achievableGemmFraction: number;
  /** Share of peak bandwidth a large pointwise kernel reaches. */
  readonly achievableMemBandwidthFraction: number;
  /** The shortest time any launched kernel takes, seconds. */
  readonly kernelLaunchSec: number;
}

// Achievable fractions and launch floor, as torchao used them (Oct 2024,
// benchmarks/float8/float8_roofline.py and torchao/float8/roofline_utils.py):
// - H100_PCT_ACHIEVABLE_GEMM_TOPS = 0.6, "based on quick experimental observation with
//   sample large inputs". (torchao raised it to 0.78 in 2025, after the seed's version.)
// - H100_PCT_ACHIEVABLE_MEM_BW = 0.92, from pointwise triton kernels reaching ~2.2 TB/s
//   on Meta's 2.4 TB/s H100 variant.
// - TRITON_KERNEL_1_ELEMENT_TIME_SEC = 2 us: a one-element triton kernel timed on an H100.
// torchao has no H200 entry; the H200 is the same GH100 die with faster HBM3e, so the
// same fractions are carried over.
const TORCHAO_GEMM_FRACTION = 0.6;
const TORCHAO_MEM_BW_FRACTION = 0.92;
const TORCHAO_KERNEL_LAUNCH_SEC = 2e-6;

/**
 * NVIDIA H100 SXM5 80GB.
 * Compute: https://www.nvidia.com/en-us/data-center/h100/ lists 1,979 TFLOPS bf16 and
 * 3,958 TFLOPS fp8 with sparsity; torchao halves them for dense (989e12, 1979e12).
 * Bandwidth: 3.35 TB/s, same datasheet (SXM column). torchao itself used 2.4e12,
 * "custom to Meta's H100 variant"; spread this object to reproduce that.
 */
export const H100_SXM: DeviceSpec = Object.freeze({
  name: "H100 SXM",
  bf16PeakFlopsPerSec: 989e12,
  fp8PeakFlopsPerSec: 1979e12,
  memBandwidthBytesPerSec: 3.35e12,
  achievableGemmFraction: TORCHAO_GEMM_FRACTION,
  achievableMemBandwidthFraction: TORCHAO_MEM_BW_FRACTION,
  kernelLaunchSec: TORCHAO_KERNEL_LAUNCH_SEC,
});

/**
 * NVIDIA H200 SXM 141GB.
 * https://www.nvidia.com/en-us/data-center/h200/ lists the same tensor-core rates as the
 * H100 SXM (3,958 TFLOPS fp8, 1,979 TFLOPS bf16, both with sparsity; halved for dense)
 * and 4.8 TB/s of HBM3e.
 */
export const H200: DeviceSpec = Object.freeze({
  name: "H200",
  bf16PeakFlopsPerSec: 989e12,
  fp8PeakFlopsPerSec: 1979e12,
  memBandwidthBytesPerSec: 4.8e12,
  achievableGemmFraction: TORCHAO_GEMM_FRACTION,
  achievableMemBandwidthFraction: TORCHAO_MEM_BW_FRACTION,
  kernelLaunchSec: TORCHAO_KERNEL_LAUNCH_SEC,
});

/**
 * The CPU backend: no datasheet applies, so gemm times must be measured
 * (strategy "benchmarks"). To model the overhead, spread this object with a measured
 * memcpy bandwidth: `{ ...CPU, memBandwidthBytesPerSec: measured }`.
 */
export const CPU: DeviceSpec = Object.freeze({
  name: "cpu",
  bf16PeakFlopsPerSec: null,
  fp8PeakFlopsPerSec: null,
  memBandwidthBytesPerSec: null,
  achievableGemmFraction: 1,
  achievableMemBandwidthFraction: 1,
  kernelLaunchSec: 0,
});

/** The specs by the names the CLI and `deviceSpec` accept. */
export const DEVICE_SPECS: Readonly<Record<"h100" | "h200" | "cpu", DeviceSpec>> = Object.freeze({
  h100: H100_SXM,
  h200: H200,
  cpu: CPU,
});

/** Looks up a spec by name ("h100", "h200", "cpu"); throws listing the known names. */
export function deviceSpec(name: string): DeviceSpec {
  const spec = (DEVICE_SPECS as Record<string, DeviceSpec | undefined>)[name.toLowerCase()];
  if (spec === undefined) {
    throw new Error(`deviceSpec: unknown device '${name}'; known devices: ${Object.keys(DEVICE_SPECS).join(", ")}`);
  }
  return spec;
}

function requireRate(spec: DeviceSpec, field: "bf16PeakFlopsPerSec" | "fp8PeakFlopsPerSec" | "memBandwidthBytesPerSec", op: string): number {
  const value = spec[field];
  if (value === null) {
    throw new Error(
      `${op}: device '${spec.name}' has no ${field} in its spec, so the roofline cannot model it; ` +
        `measure the gemms (gemm time strategy 'benchmarks') and supply a measured memory bandwidth`,
    );
  }
  return value;
}

function checkDims(op: string, dims: readonly number[]): void {
  if (!dims.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new Error(`${op}: dims must be positive integers, got (${dims.join(", ")})`);
  }
}

/** Which of a Linear's three gemms. */
export type GemmRole = "output" | "grad_input" | "grad_weight";

/** One gemm: (M,K) @ (K,N) -> (M,N). */
export interface GemmShape {
  readonly role: GemmRole;
  readonly M: number;
  readonly K: number;
  readonly N: number;
}

/** The three gemms of a Linear's forward+backward, for forward dims input (M,K), weight (N,K). */
export function linearGemmShapes(M: number, K: number, N: number): readonly [GemmShape, GemmShape, GemmShape] {
  return [
    { role: "output", M, K, N },
    { role: "grad_input", M, K: N, N: K },
    { role: "grad_weight", M: K, K: M, N },
  ];
}

/**
 * Roofline time of one gemm (M,K) @ (K,N) -> (M,N), seconds:
 * max(compute time, memory time, kernel launch). bf16 reads and writes bf16; fp8 reads
 * fp8 operands and writes a bf16 output. The October 2024 torchao model counted compute
 * only; the memory term and launch floor follow its later `get_individual_gemm_time_sympy`.
 */
export function gemmTime(M: number, K: number, N: number, dtype: "bf16" | "fp8", spec: DeviceSpec): number {
  checkDims("gemmTime", [M, K, N]);
  const peak = requireRate(spec, dtype === "bf16" ? "bf16PeakFlopsPerSec" : "fp8PeakFlopsPerSec", "gemmTime");
  const bandwidth = requireRate(spec, "memBandwidthBytesPerSec", "gemmTime");
  const computeSec = (2 * M * K * N) / (peak * spec.achievableGemmFraction);
  const operandBytes = dtype === "bf16" ? BF16_BYTES : FP8_BYTES;
  const bytes = (M * K + K * N) * operandBytes + M * N * BF16_BYTES;
  const memorySec = bytes / (bandwidth * spec.achievableMemBandwidthFraction);
  return Math.max(computeSec, memorySec, spec.kernelLaunchSec);
}

/** How a tensor's scale is found: from its own amax (dynamic) or from the amax history (delayed). */
export type ScalingType = "dynamic" | "delayed";
/** The three tensors a Float8Linear casts. */
export type TensorRole = "input" | "weight" | "grad_output";

/** One kernel of the fp8 overhead, with the bytes it moves. */
export interface OverheadKernel {
  readonly tensor: TensorRole;
  readonly kernel: "amax_stage1" | "amax_stage2" | "cast" | "amax_and_cast" | "scale_reciprocal" | "amax" | "cast_and_decode" | "decode";
  readonly readBytes: number;
  readonly writeBytes: number;
  /** False where the work is fused into the op that produced the tensor: no launch of its own. */
  readonly standalone: boolean;
}

/** What the overhead model assumes about scaling and fusion. */
export interface OverheadOptions {
  /** Scaling per tensor; dynamic for all three by default (the tensorwise dynamic recipe). */
  readonly scaling?: { readonly input?: ScalingType; readonly weight?: ScalingType; readonly gradOutput?: ScalingType };
  /**
   * Whether the first read of input and grad_output is fused into the op that produced
   * them (torchao assumed torch.compile does this; default true). The weight is never fused.
   */
  readonly fuseWithPreviousOp?: boolean;
  /**
   * Whose kernels to count: "cuda" (torchao's kernels on a GPU, the default) or
   * "cpu-emulation" (this library's CPU path; the default for the "cpu" spec).
   */
  readonly implementation?: "cuda" | "cpu-emulation";
}

// Byte counts per kernel for one tensor of numel elements, bf16 in, fp8 out
// (torchao Oct 2024 `get_tensor_memory_traffic_bytes`).
// dynamic:
//   amax_stage1  x_bf16 -> partial max|x|        read 2n (0 when fused), write ~0
//   amax_stage2  partials -> amax                launch only, bytes not modeled
//   cast         x_bf16, amax -> x_fp8 and x_fp8^T  read 2n, write 2 x 1n (row- and col-major)
// delayed (scale from history, amax recorded while casting):
//   amax_and_cast  x_bf16 -> x_fp8, x_fp8^T, partial max|x|  read 2n (0 when fused), write 2n
//   amax_stage2    launch only
//   scale_reciprocal  launch only
// The weight cast in the forward is reused by both backward gemms, and the input and
// grad_output casts each serve two gemms through their transposed copy, so nothing is
// cast twice.
function tensorKernels(tensor: TensorRole, numel: number, scaling: ScalingType, fused: boolean): OverheadKernel[] {
  const firstRead = fused ? 0 : BF16_BYTES * numel;
  const twoFp8Copies = 2 * FP8_BYTES * numel;
  if (scaling === "dynamic") {
    return [
      { tensor, kernel: "amax_stage1", readBytes: firstRead, writeBytes: 0, standalone: !fused },
      { tensor, kernel: "amax_stage2", readBytes: 0, writeBytes: 0, standalone: true },
      { tensor, kernel: "cast", readBytes: BF16_BYTES * numel, writeBytes: twoFp8Copies, standalone: true },
    ];
  }
  return [
    { tensor, kernel: "amax_and_cast", readBytes: firstRead, writeBytes: twoFp8Copies, standalone: !fused },
    { tensor, kernel: "amax_stage2", readBytes: 0, writeBytes: 0, standalone: true },
    { tensor, kernel: "scale_reciprocal", readBytes: 0, writeBytes: 0, standalone: true },
  ];
}

// This library's CPU emulation (src/float8/float8_linear.ts), per tensor of numel n, bf16 in:
//   amax             read 2n (its own pass, dynamic and delayed alike)
//   cast_and_decode  read 2n, write 1n fp8 + 2n exact bf16 decode (fp8_cpu_quantize_decode),
//                    which the bf16 GEMMs consume
//   decode           input only: read 1n, write 2n; its decode is dropped after the forward
//                    (saved activations stay 1 byte) and made again for grad_weight
// The weight's and grad_output's decodes serve both of their GEMMs.
function cpuEmulationKernels(tensor: TensorRole, numel: number): OverheadKernel[] {
  const k: OverheadKernel[] = [
    { tensor, kernel: "amax", readBytes: BF16_BYTES * numel, writeBytes: 0, standalone: true },
    { tensor, kernel: "cast_and_decode", readBytes: BF16_BYTES * numel, writeBytes: (FP8_BYTES + BF16_BYTES) * numel, standalone: true },
  ];
  if (tensor === "input") k.push({ tensor, kernel: "decode", readBytes: FP8_BYTES * numel, writeBytes: BF16_BYTES * numel, standalone: true });
  return k;
}

/** Every amax and cast kernel a Float8Linear's forward+backward adds, with its bytes. */
export function float8OverheadKernels(M: number, K: number, N: number, options: OverheadOptions = {}): OverheadKernel[] {
  checkDims("float8OverheadKernels", [M, K, N]);
  if (options.implementation === "cpu-emulation") {
    return [...cpuEmulationKernels("input", M * K), ...cpuEmulationKernels("weight", K * N), ...cpuEmulationKernels("grad_output", M * N)];
  }
  const fused = options.fuseWithPreviousOp ?? true;
  return [
    ...tensorKernels("input", M * K, options.scaling?.input ?? "dynamic", fused),
    ...tensorKernels("weight", K * N, options.scaling?.weight ?? "dynamic", false),
    ...tensorKernels("grad_output", M * N, options.scaling?.gradOutput ?? "dynamic", fused),
  ];
}

/**
 * Time of the fp8 overhead kernels, seconds. Each kernel moves its bytes at the achievable
 * bandwidth; a standalone kernel also takes at least one launch (torchao's later
 * `get_tensor_memory_traffic_ovhd_s` floors each kernel the same way), while work fused
 * into the previous op adds its bytes only.
 */
export function float8OverheadTime(M: number, K: number, N: number, spec: DeviceSpec, options: OverheadOptions = {}): number {
  const implementation = options.implementation ?? (spec.name === "cpu" ? "cpu-emulation" : "cuda");
  const kernels = float8OverheadKernels(M, K, N, { ...options, implementation });
  const bandwidth = requireRate(spec, "memBandwidthBytesPerSec", "float8OverheadTime") * spec.achievableMemBandwidthFraction;
  let total = 0;
  for (const k of kernels) {
    const moveSec = (k.readBytes + k.writeBytes) / bandwidth;
    total += k.standalone ? Math.max(moveSec, spec.kernelLaunchSec) : moveSec;
  }
  return total;
}

/** Measured times of one gemm in both precisions, seconds. */
export interface GemmTimes {
  readonly bf16Sec: number;
  readonly fp8Sec: number;
}

/** A measured gemm timer: given one gemm's shape and role, returns its bf16 and fp8 times. */
export type MeasureGemmTimes = (gemm: GemmShape) => GemmTimes;

/** Where gemm times come from: the roofline's peak rates, or a measured timer. */
export type GemmTimeStrategy = "roofline" | "benchmarks";

/** Options for `predictLinearSpeedup`. */
export interface PredictOptions extends OverheadOptions {
  /** Default "benchmarks" when `measureGemmTimes` is given, else "roofline". */
  readonly strategy?: GemmTimeStrategy;
  /** Required by strategy "benchmarks". */
  readonly measureGemmTimes?: MeasureGemmTimes;
}

/** A predicted speedup for one Linear shape, with the times behind it (seconds). */
export interface LinearSpeedupPrediction {
  readonly M: number;
  readonly K: number;
  readonly N: number;
  readonly device: string;
  readonly strategy: GemmTimeStrategy;
  /** The three gemms in bf16. */
  readonly bf16Time: number;
  /** The three gemms in fp8, without the casts. */
  readonly fp8Time: number;
  /** The amax and cast kernels. */
  readonly overheadTime: number;
  /** bf16Time / (fp8Time + overheadTime). */
  readonly speedup: number;
  /** speedup > 1. */
  readonly useFloat8: boolean;
}

function measuredGemmTimes(measure: MeasureGemmTimes, gemm: GemmShape): GemmTimes {
  const t = measure(gemm);
  for (const [name, v] of [["bf16Sec", t.bf16Sec], ["fp8Sec", t.fp8Sec]] as const) {
    if (!(Number.isFinite(v) && v > 0)) {
      throw new Error(`predictLinearSpeedup: measured ${name} for the ${gemm.role} gemm (${gemm.M}, ${gemm.K}, ${gemm.N}) is ${v}; expected a positive time in seconds`);
    }
  }
  return t;
}

/**
 * Predicts the fwd+bwd speedup of a Float8Linear over a bf16 Linear with input (M,K) and
 * weight (N,K) on `spec`. The overhead is always modeled; the gemm times come from the
 * roofline or, with strategy "benchmarks", from `options.measureGemmTimes`.
 * Throws where the roofline is asked of a device without peak rates (the CPU).
 */
export function predictLinearSpeedup(M: number, K: number, N: number, spec: DeviceSpec, options: PredictOptions = {}): LinearSpeedupPrediction {
  checkDims("predictLinearSpeedup", [M, K, N]);
  const strategy = options.strategy ?? (options.measureGemmTimes ? "benchmarks" : "roofline");
  const measure = options.measureGemmTimes;
  if (strategy === "benchmarks" && measure === undefined) {
    throw new Error("predictLinearSpeedup: gemm time strategy 'benchmarks' needs options.measureGemmTimes");
  }
  if (strategy === "roofline" && (spec.bf16PeakFlopsPerSec === null || spec.fp8PeakFlopsPerSec === null)) {
    throw new Error(
      `predictLinearSpeedup: the roofline has no peak rates for device '${spec.name}'; ` +
        `use strategy 'benchmarks' with a measured gemm timer (options.measureGemmTimes)`,
    );
  }
  let bf16Time = 0;
  let fp8Time = 0;
  for (const gemm of linearGemmShapes(M, K, N)) {
    if (strategy === "benchmarks" && measure !== undefined) {
      const t = measuredGemmTimes(measure, gemm);
      bf16Time += t.bf16Sec;
      fp8Time += t.fp8Sec;
    } else {
      bf16Time += gemmTime(gemm.M, gemm.K, gemm.N, "bf16", spec);
      fp8Time += gemmTime(gemm.M, gemm.K, gemm.N, "fp8", spec);
    }
  }
  const overheadTime = float8OverheadTime(M, K, N, spec, options);
  const speedup = bf16Time / (fp8Time + overheadTime);
  return { M, K, N, device: spec.name, strategy, bf16Time, fp8Time, overheadTime, speedup, useFloat8: speedup > 1 };
}

function microseconds(sec: number): string {
  const us = sec * 1e6;
  return us >= 100 ? `${us.toFixed(0)} us` : `${us.toPrecision(3)} us`;
}

/**
 * One line a person can read: the decision, the predicted speedup, and the times behind it.
 * e.g. "M=1024 K=2048 N=1024 on H100 SXM: keep bf16, predicted 0.83x (roofline: bf16 gemms
 * 21.7 us vs fp8 gemms 10.9 us + amax/cast 15.4 us)".
 */
export function explainDecision(p: LinearSpeedupPrediction): string {
  const decision = p.useFloat8 ? "use float8" : "keep bf16";
  return (
    `M=${p.M} K=${p.K} N=${p.N} on ${p.device}: ${decision}, predicted ${p.speedup.toFixed(2)}x ` +
    `(${p.strategy}: bf16 gemms ${microseconds(p.bf16Time)} vs fp8 gemms ${microseconds(p.fp8Time)} ` +
    `+ amax/cast ${microseconds(p.overheadTime)})`
  );
}
