// harness.ts — shared bench helpers: mitata's measure() with a fixed sample
// count (GEMM-sized work is too slow for mitata's default time budget),
// interleaved A/B runs so that machine noise hits both sides, and CSV output.
import { measure } from "mitata";
import { writeFileSync } from "node:fs";
import type { nn, Tensor } from "../src/index.ts";

/** Median and min time of fn in milliseconds over `samples` runs (after one warm-up). */
export async function timeMs(fn: () => void, samples = 5): Promise<{ median: number; min: number }> {
  const stats = await measure(fn, { min_samples: samples, max_samples: samples, min_cpu_time: 0, warmup_samples: 1 } as never);
  return { median: stats.p50 / 1e6, min: stats.min / 1e6 };
}

/**
 * Times several functions in rounds (A B C, A B C, ...) and returns each
 * one's median of the per-round times, so slow phases of a shared machine
 * affect all of them alike. A round runs a fast function several times in a
 * row (enough for ~minRoundMs) and counts the mean, so that a millisecond-sized
 * call is not measured by a single noisy sample.
 */
export async function timeInterleaved(fns: Record<string, () => void>, rounds = 5, minRoundMs = 25): Promise<Record<string, number>> {
  const names = Object.keys(fns);
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const repeat: Record<string, number> = {};
  for (const n of names) {
    fns[n](); // warm-up: primitive caches, page faults
    const t0 = performance.now();
    fns[n]();
    repeat[n] = Math.max(1, Math.min(1000, Math.ceil(minRoundMs / Math.max(performance.now() - t0, 1e-3))));
  }
  for (let r = 0; r < rounds; r++) {
    for (const n of names) {
      const k = repeat[n];
      const t0 = performance.now();
      for (let i = 0; i < k; i++) fns[n]();
      times[n].push((performance.now() - t0) / k);
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  return Object.fromEntries(names.map((n) => [n, med(times[n])]));
}

/** Minimal --key value parsing. */
export function argValue(name: string, fallback?: string): string | undefined {
  const argv = process.argv;
  const i = argv.findIndex((a) => a === `--${name}` || a === `-${name}`);
  if (i >= 0 && i + 1 < argv.length) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  return eq ? eq.slice(name.length + 3) : fallback;
}

export function hasFlag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

/** Writes rows as CSV (header from the first row's keys). */
export function writeCsv(path: string, rows: Record<string, string | number>[]): void {
  if (!rows.length) return;
  const keys = Object.keys(rows[0]);
  writeFileSync(path, [keys.join(","), ...rows.map((r) => keys.map((k) => r[k]).join(","))].join("\n") + "\n");
}

/** The machine, for result files. */
export function machineLine(): string {
  const os = require("node:os") as typeof import("node:os");
  return `${os.cpus()[0]?.model ?? "cpu"} x${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, bun ${Bun.version}`;
}

/** The ISA flags that decide which GEMM kernels oneDNN and torch can pick. */
const GEMM_FLAGS = ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"];

/**
 * The CPU for result rows: `lscpu`'s model name, its GEMM-relevant flags
 * (present ones, and "no amx" where AMX is absent) and the full flag list.
 */
export function cpuInfo(): { model: string; gemmFlags: string; flags: string; line: string } {
  const os = require("node:os") as typeof import("node:os");
  const fs = require("node:fs") as typeof import("node:fs");
  let model = os.cpus()[0]?.model ?? "cpu";
  let flags = "";
  try {
    const info = fs.readFileSync("/proc/cpuinfo", "utf8");
    model = /^model name\s*:\s*(.*)$/m.exec(info)?.[1]?.trim() ?? model;
    flags = /^flags\s*:\s*(.*)$/m.exec(info)?.[1]?.trim() ?? "";
  } catch {
    // not Linux: the model from os.cpus(), no flags
  }
  const have = new Set(flags.split(/\s+/));
  const present = GEMM_FLAGS.filter((f) => have.has(f));
  const gemmFlags = flags ? present.join(" ") + (have.has("amx_bf16") ? "" : " (no amx)") : "flags unknown";
  const line = `${model}, ${os.cpus().length} CPUs, ${gemmFlags}`;
  return { model, gemmFlags, flags, line };
}

/** Lines of a child's stdout, one per next() (benchmarks that drive a baseline process line by line). */
export async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    buf += decoder.decode(chunk, { stream: true });
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
}

/**
 * One training step of a layer as the Linear benchmarks time it: clears m's gradients and x's, then
 * forward on x and backward with the output gradient g (callers wrap it in tidy() or, to measure
 * without, do not).
 */
export function forwardBackward(m: nn.Module, x: Tensor, g: Tensor): void {
  m.zeroGrad();
  x.grad?.dispose();
  x.grad = null;
  (m.forward(x) as Tensor).backward(g);
}
