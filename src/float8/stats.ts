// stats.ts — fp8 telemetry (what Transformer Engine's debug tools report), built
// in: per layer and role, the last amax, the scale, the share of elements that
// saturated or underflowed to zero, and the SQNR of the cast. Collection is off
// by default (statsEvery = 0 costs one integer compare per forward); when on,
// each collecting step costs an amax pass and one fused native pass per cast
// (bench/stats.ts measures it).
import { Float8Error } from "../errors.ts";
import type { Module } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import * as dev from "../tensor/device_ops.ts";
import { Float8Tensor, tensorToAmax, type GemmInputRole } from "./float8_tensor.ts";

/** Telemetry of one cast. */
export interface CastStats {
  /** forward count of the layer when collected */
  step: number;
  /** max |x| of the high-precision tensor */
  amax: number;
  /** the scale used (axiswise: the smallest row scale) */
  scale: number;
  /** share of elements whose scaled value |x * scale| would round past the fp8 max (the cast clamped them) */
  saturated: number;
  /** share of elements that were nonzero but became zero in fp8 */
  underflow: number;
  /** SQNR of the cast, dB */
  sqnrDb: number;
}

/**
 * Computes CastStats for the cast hp -> f: one native pass (fp8_cpu_cast_stats)
 * plus an amax. On a device the tensors are copied to the host first (the
 * counts are a host-side kernel; collection is occasional).
 */
export function collectCastStats(hp: Tensor, f: Float8Tensor, step: number): CastStats {
  const op = "float8.stats";
  const amaxT = tensorToAmax(hp);
  const amax = amaxT.item();
  amaxT.dispose();
  const rows = f.axiswise ? f.shape[0] : 1;
  const cols = hp.numel / rows;
  // a host kernel: the contract copies a device's tensors to the CPU first
  const c = dev.castStats(hp, f.data, f.scale, f.axiswise, rows, cols, op);
  const n = Math.max(hp.numel, 1);
  const sqnrDb = 10 * Math.log10(c.sumSq / c.errSq);
  const scale = f.axiswise ? Math.min(...f.scale.toArray()) : f.scale.item();
  return { step, amax, scale, saturated: c.clipped / n, underflow: c.underflow / n, sqnrDb };
}

interface StatsLayer extends Module {
  statsEvery: number;
  lastStats: Map<GemmInputRole, CastStats>;
}

function statsLayers(model: Module): [string, StatsLayer][] {
  return [...model.namedModules()].filter((e): e is [string, StatsLayer] => "lastStats" in e[1] && "statsEvery" in e[1]);
}

/**
 * Turns telemetry on for every Float8Linear: collect every `every` forwards (1 = each step).
 * Forwards inside a CUDA-graph capture never collect (replays run no JS): a graphed run's
 * telemetry comes from its eager steps.
 */
export function enableStats(model: Module, opts: { every?: number } = {}): void {
  const every = opts.every ?? 1;
  if (!Number.isInteger(every) || every < 1) throw new Float8Error("enableStats", `every must be a positive integer, got ${every}`);
  for (const [, l] of statsLayers(model)) l.statsEvery = every;
}

/** Turns telemetry off (the default). */
export function disableStats(model: Module): void {
  for (const [, l] of statsLayers(model)) l.statsEvery = 0;
}

/** One row per (layer, role) with the last collected telemetry. */
export interface StatsRow extends CastStats {
  layer: string;
  role: GemmInputRole;
}

/** The last collected telemetry of every Float8Linear, per layer and role. */
export function stats(model: Module): StatsRow[] {
  const rows: StatsRow[] = [];
  for (const [fqn, l] of statsLayers(model)) {
    for (const role of ["input", "weight", "grad_output"] as const) {
      const s = l.lastStats.get(role);
      if (s) rows.push({ layer: fqn || "(root)", role, ...s });
    }
  }
  return rows;
}

/** stats(model) rendered as a fixed-width table. */
export function statsTable(model: Module): string {
  const rows = stats(model);
  if (!rows.length) return "no float8 telemetry collected (call float8.enableStats(model) before training)";
  const head = ["layer", "role", "amax", "scale", "saturated", "underflow", "SQNR dB"];
  const body = rows.map((r) => [
    r.layer, r.role, r.amax.toPrecision(4), r.scale.toPrecision(4),
    `${(100 * r.saturated).toFixed(3)}%`, `${(100 * r.underflow).toFixed(3)}%`, r.sqnrDb.toFixed(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}
