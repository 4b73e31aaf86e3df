// bench/roofline.ts: the float8 roofline as a command. It predicts, per Linear shape, the
// fwd+bwd speedup of Float8Linear over bf16 on an H100 or H200, writes one CSV row per
// shape and draws the speedup table as an SVG heatmap.
//
//   bun bench/roofline.ts --shape-gen llama --device h100 -o llama.csv --svg llama.svg
//   bun bench/roofline.ts --help
//
// The model lives in src/float8/roofline.ts and the drawing in src/float8/roofline_svg.ts.
// Measured gemm times plug in through `runRoofline(..., { measureGemmTimes })`.

import { parseArgs } from "node:util";
import {
  type DeviceSpec,
  type GemmTimeStrategy,
  type LinearSpeedupPrediction,
  type MeasureGemmTimes,
  type ScalingType,
  deviceSpec,
  predictLinearSpeedup,
} from "../src/float8/roofline.ts";
import { type SpeedupHeatmap, renderSpeedupHeatmapSvg } from "../src/float8/roofline_svg.ts";

/** A Linear shape: input (M,K), weight (N,K). */
export interface NamedShape {
  readonly name: string;
  readonly M: number;
  readonly K: number;
  readonly N: number;
}

/** LLaMA-2-70B's linears (torchao's bench_matmul shapes): wqkv, w0, w13, w2 at batch*seq M. */
export function llamaShapes(M = 16384): NamedShape[] {
  return [
    { name: "wqkv", M, K: 8192, N: 1280 },
    { name: "w0", M, K: 1024, N: 8192 },
    { name: "w13", M, K: 8192, N: 7168 },
    { name: "w2", M, K: 3584, N: 8192 },
  ];
}

/** torchao's sweep: every M, K, N in 2^9..2^15 (512..32768), 343 shapes. */
export function sweepShapes(): NamedShape[] {
  const sizes = Array.from({ length: 7 }, (_, i) => 2 ** (9 + i));
  const shapes: NamedShape[] = [];
  for (const M of sizes) for (const K of sizes) for (const N of sizes) shapes.push({ name: "sweep", M, K, N });
  return shapes;
}

/** One shape's results: the roofline prediction and, where gemms were measured, the measured one. */
export interface RooflineRow {
  readonly shape: NamedShape;
  readonly roofline: LinearSpeedupPrediction | null;
  readonly measured: LinearSpeedupPrediction | null;
  /** measured Float8Linear fwd+bwd speedup over a bf16 Linear (--measure-actual), when run */
  actual?: number;
}

/** Options for `runRoofline`. */
export interface RunOptions {
  readonly strategy: GemmTimeStrategy;
  /** Required by strategy "benchmarks". */
  readonly measureGemmTimes?: MeasureGemmTimes;
  readonly scaling?: ScalingType;
}

/**
 * Predicts every shape. Strategy "roofline" fills `roofline`; "benchmarks" fills `measured`
 * and, where the spec has peak rates, `roofline` too, so the two can be compared.
 */
export function runRoofline(shapes: readonly NamedShape[], spec: DeviceSpec, options: RunOptions): RooflineRow[] {
  const s = options.scaling ?? "dynamic";
  const scaling = { input: s, weight: s, gradOutput: s };
  const measure = options.measureGemmTimes;
  if (options.strategy === "benchmarks" && measure === undefined) {
    throw new Error("runRoofline: gemm time strategy 'benchmarks' needs a measureGemmTimes timer");
  }
  const hasPeaks = spec.bf16PeakFlopsPerSec !== null && spec.fp8PeakFlopsPerSec !== null;
  return shapes.map((shape) => {
    const { M, K, N } = shape;
    const wantRoofline = options.strategy === "roofline" || hasPeaks;
    return {
      shape,
      roofline: wantRoofline ? predictLinearSpeedup(M, K, N, spec, { strategy: "roofline", scaling }) : null,
      measured: measure ? predictLinearSpeedup(M, K, N, spec, { strategy: "benchmarks", measureGemmTimes: measure, scaling }) : null,
    };
  });
}

function csvField(v: string | number | undefined): string {
  if (v === undefined) return "";
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * One CSV row per shape, times in seconds. `r_` columns are the roofline, `b_` columns use
 * measured gemm times (with the modeled overhead); each group appears only if some row has it.
 */
export function rooflineCsv(rows: readonly RooflineRow[]): string {
  const withRoofline = rows.some((r) => r.roofline !== null);
  const withMeasured = rows.some((r) => r.measured !== null);
  const group = (prefix: string) => [`${prefix}_bf16_gemm_s`, `${prefix}_fp8_gemm_s`, `${prefix}_fp8_overhead_s`, `${prefix}_fp8_total_s`, `${prefix}_speedup`];
  const values = (p: LinearSpeedupPrediction | null) =>
    p === null ? [undefined, undefined, undefined, undefined, undefined] : [p.bf16Time, p.fp8Time, p.overheadTime, p.fp8Time + p.overheadTime, p.speedup];
  const withActual = rows.some((r) => r.actual !== undefined);
  const header = ["name", "M", "K", "N", ...(withRoofline ? group("r") : []), ...(withMeasured ? group("b") : []), ...(withActual ? ["actual_speedup"] : [])];
  const lines = [header.join(",")];
  for (const r of rows) {
    const fields: (string | number | undefined)[] = [r.shape.name, r.shape.M, r.shape.K, r.shape.N];
    if (withRoofline) fields.push(...values(r.roofline));
    if (withMeasured) fields.push(...values(r.measured));
    if (withActual) fields.push(r.actual);
    lines.push(fields.map(csvField).join(","));
  }
  return lines.join("\n") + "\n";
}

/** How the heatmap lays out the shapes. */
export type HeatmapLayout = "m-by-kn" | "k-by-n";

function distinct<T>(xs: readonly T[], key: (x: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const x of xs) if (!seen.has(key(x))) seen.set(key(x), x);
  return [...seen.values()];
}

/**
 * Arranges rows into a heatmap. "m-by-kn": rows are M, columns are (K, N) pairs; from a
 * sweep only the K = N diagonal is kept. "k-by-n": rows are K, columns N, at one M
 * (`fixedM`, default the largest M present).
 */
export function rooflineHeatmap(rows: readonly RooflineRow[], layout: HeatmapLayout, title: string, fixedM?: number): SpeedupHeatmap {
  const cellOf = (r: RooflineRow) => {
    const predicted = r.roofline ?? r.measured;
    if (predicted === null) return null;
    if (r.actual !== undefined) return { predicted: predicted.speedup, actual: r.actual };
    return r.roofline !== null && r.measured !== null ? { predicted: r.roofline.speedup, actual: r.measured.speedup } : { predicted: predicted.speedup };
  };
  if (layout === "k-by-n") {
    const M = fixedM ?? Math.max(...rows.map((r) => r.shape.M));
    const at = rows.filter((r) => r.shape.M === M);
    const Ks = distinct(at.map((r) => r.shape.K), String).sort((a, b) => a - b);
    const Ns = distinct(at.map((r) => r.shape.N), String).sort((a, b) => a - b);
    const cells = Ks.map((K) => Ns.map((N) => {
      const row = at.find((r) => r.shape.K === K && r.shape.N === N);
      return row ? cellOf(row) : null;
    }));
    return { title: `${title}, M = ${M}`, rowAxis: "K", colAxis: "N", rowLabels: Ks.map(String), colLabels: Ns.map(String), cells };
  }
  const isSweep = rows.length > 0 && rows.every((r) => r.shape.name === "sweep");
  const used = isSweep ? rows.filter((r) => r.shape.K === r.shape.N) : rows;
  const Ms = distinct(used.map((r) => r.shape.M), String).sort((a, b) => a - b);
  const pairs = distinct(used.map((r) => r.shape), (s) => `${s.K},${s.N}`);
  const colLabels = pairs.map((s) => (isSweep ? String(s.K) : s.name === "custom" ? `${s.K}, ${s.N}` : `${s.name} (${s.K}, ${s.N})`));
  const cells = Ms.map((M) => pairs.map((p) => {
    const row = used.find((r) => r.shape.M === M && r.shape.K === p.K && r.shape.N === p.N);
    return row ? cellOf(row) : null;
  }));
  return { title, rowAxis: "M", colAxis: isSweep ? "K = N" : "(K, N)", rowLabels: Ms.map(String), colLabels, cells };
}

const HELP = `bun bench/roofline.ts [options]

Predicts the fwd+bwd speedup of Float8Linear (tensorwise scaling) over a bf16 Linear,
per shape, with torchao's roofline model (src/float8/roofline.ts).

  --device h100|h200|cpu          peak rates to use (default h100 = H100 SXM)
  --gemm-time-strategy roofline|benchmarks
                                  gemm times from peak rates, or measured (default roofline)
  --shape-gen sweep|llama|custom  sweep: M,K,N in 512..32768; llama: LLaMA-2-70B linears;
                                  custom: --M --K --N (default llama)
  --M, --K, --N                   shape for custom; --M also sets llama's M (default 16384)
  --scaling dynamic|delayed       scaling for input, weight and grad_output (default dynamic)
  -o, --output FILE               write CSV, one row per shape, times in seconds
  --svg FILE                      write the speedup heatmap
  --svg-layout m-by-kn|k-by-n     heatmap rows x columns (default m-by-kn; k-by-n uses --M)
  --measure-actual                also time Float8Linear vs bf16 Linear fwd+bwd on this CPU
                                  per shape (the "actual" half of "pred / actual" cells)
  -h, --help                      this text
`;

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new Error(`${flag} must be one of ${allowed.join(", ")}, got '${value}'`);
  return value as T;
}

function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${flag} must be a positive integer, got '${value}'`);
  return n;
}

function printTable(rows: readonly RooflineRow[]): void {
  const us = (s: number) => (s * 1e6).toFixed(1);
  const head = ["name", "M", "K", "N", "bf16_us", "fp8_us", "ovhd_us", "speedup", "measured", "actual"];
  const body = rows.map((r) => {
    const p = r.roofline ?? r.measured!;
    return [r.shape.name, r.shape.M, r.shape.K, r.shape.N, us(p.bf16Time), us(p.fp8Time), us(p.overheadTime), p.speedup.toFixed(3),
      r.measured ? r.measured.speedup.toFixed(3) : "-", r.actual !== undefined ? r.actual.toFixed(3) : "-"].map(String);
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  for (const line of [head, ...body]) console.log(line.map((c, i) => c.padStart(widths[i]!)).join("  "));
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      device: { type: "string", default: "h100" },
      "gemm-time-strategy": { type: "string", default: "roofline" },
      "shape-gen": { type: "string", default: "llama" },
      M: { type: "string" },
      K: { type: "string" },
      N: { type: "string" },
      scaling: { type: "string", default: "dynamic" },
      output: { type: "string", short: "o" },
      svg: { type: "string" },
      "svg-layout": { type: "string", default: "m-by-kn" },
      "measure-actual": { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const spec = deviceSpec(values.device!);
  const strategy = oneOf("--gemm-time-strategy", values["gemm-time-strategy"]!, ["roofline", "benchmarks"] as const);
  const shapeGen = oneOf("--shape-gen", values["shape-gen"]!, ["sweep", "llama", "custom"] as const);
  const scaling = oneOf("--scaling", values.scaling!, ["dynamic", "delayed"] as const);
  const layout = oneOf("--svg-layout", values["svg-layout"]!, ["m-by-kn", "k-by-n"] as const);
  const M = positiveInt("--M", values.M);
  const K = positiveInt("--K", values.K);
  const N = positiveInt("--N", values.N);

  let shapes: NamedShape[];
  if (shapeGen === "custom") {
    if (M === undefined || K === undefined || N === undefined) throw new Error("--shape-gen custom needs --M, --K and --N");
    shapes = [{ name: "custom", M, K, N }];
  } else {
    shapes = shapeGen === "llama" ? llamaShapes(M) : sweepShapes();
  }

  // "benchmarks" measures bf16 and fp8 gemms on this machine's CPU backend; the
  // overhead part of the model then uses this machine's measured copy bandwidth.
  let measureGemmTimes: MeasureGemmTimes | undefined;
  let modelSpec = spec;
  if (strategy === "benchmarks") {
    const { deviceGemmTimer, measureMemcpyBandwidth } = await import("../src/float8/gemm_timer.ts");
    measureGemmTimes = deviceGemmTimer("cpu");
    if (spec.memBandwidthBytesPerSec === null) modelSpec = { ...spec, memBandwidthBytesPerSec: measureMemcpyBandwidth() };
  }
  const rows = runRoofline(shapes, modelSpec, { strategy, scaling, measureGemmTimes });
  if (values["measure-actual"]) {
    // the real layers on this CPU: the "actual" half of each heatmap cell
    const { measureLinearSpeedup } = await import("../src/float8/gemm_timer.ts");
    for (const r of rows) r.actual = measureLinearSpeedup(r.shape.M, r.shape.K, r.shape.N);
  }
  console.log(`device: ${spec.name}  strategy: ${strategy}  shapes: ${shapeGen}  scaling: ${scaling}`);
  printTable(rows);
  if (values.output) {
    await Bun.write(values.output, rooflineCsv(rows));
    console.log(`wrote ${values.output}`);
  }
  if (values.svg) {
    const title = `Predicted Float8Linear speedup over bf16, ${spec.name} (${scaling} tensorwise)`;
    await Bun.write(values.svg, renderSpeedupHeatmapSvg(rooflineHeatmap(rows, layout, title, layout === "k-by-n" ? M : undefined)));
    console.log(`wrote ${values.svg}`);
  }
  return 0;
}

if (import.meta.main) {
  try {
    process.exitCode = await main(Bun.argv.slice(2));
  } catch (e) {
    console.error(`roofline: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  }
}
