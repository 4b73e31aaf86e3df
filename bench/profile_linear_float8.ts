// profile_linear_float8.ts — counterpart of torchao's profile_linear_float8 benchmark:
// a per-kernel time breakdown of one training step (forward, backward, delayed-scaling sync)
// of a bf16 Linear and of a Float8Linear, written as a Chrome trace JSON that
// chrome://tracing and https://ui.perfetto.dev open (one row per layer; phases and every
// native kernel call as nested spans), plus a table of the kernels' shares of the step.
// Every call of the CPU backend (src/tensor/backend/cpu.ts) is timed by wrapping its
// methods for the profiled steps only; the wrappers are removed afterwards.
//   bun bench/profile_linear_float8.ts [--M 4096 --K 2048 --N 4096] [--recipe dynamic|delayed|static]
//        [--steps 1] [-o out/profile_linear_float8.json] [--quick]
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { nn, float8, randn, tidy, manualSeed, noGrad, type Tensor } from "../src/index.ts";
import { cpuBackend } from "../src/tensor/backend/index.ts";
import { argValue, hasFlag, machineLine } from "./harness.ts";

if (hasFlag("help") || hasFlag("h")) {
  console.log(`usage: bun bench/profile_linear_float8.ts [--M M --K K --N N] [--recipe dynamic|delayed|static] [--steps S] [-o FILE] [--quick]
Writes a Chrome trace (default out/profile_linear_float8.json) and prints each kernel's share of the step.`);
  process.exit(0);
}
const quick = hasFlag("quick");
const M = Number(argValue("M", quick ? "256" : "4096")), K = Number(argValue("K", quick ? "256" : "2048")), N = Number(argValue("N", quick ? "256" : "4096"));
const recipe = argValue("recipe", "dynamic")!;
const steps = Number(argValue("steps", "1"));
const outPath = argValue("o", "out/profile_linear_float8.json")!;

type Event = { name: string; cat: string; ph: "X"; ts: number; dur: number; pid: number; tid: number; args?: Record<string, unknown> };
const events: Event[] = [];
let tid = 0;
const us = () => performance.now() * 1000;

/** Runs fn as a span on the current row. */
function span<T>(name: string, cat: string, fn: () => T, args?: Record<string, unknown>): T {
  const t0 = us();
  try {
    return fn();
  } finally {
    events.push({ name, cat, ph: "X", ts: t0, dur: us() - t0, pid: 0, tid, ...(args ? { args } : {}) });
  }
}

/** Wraps every method of the CPU backend in a kernel span; returns the undo. */
function instrument(): () => void {
  const b = cpuBackend as unknown as Record<string, unknown>;
  const saved: [string, unknown][] = [];
  for (const [k, v] of Object.entries(b)) {
    if (typeof v !== "function" || ["alloc", "free", "memoryStats"].includes(k)) continue;
    saved.push([k, v]);
    const f = v as (...a: unknown[]) => unknown;
    b[k] = (...a: unknown[]) => {
      const op = a.length > 0 && typeof a[a.length - 1] === "string" ? (a[a.length - 1] as string) : undefined;
      return span(k, "kernel", () => f(...a), op ? { op } : undefined);
    };
  }
  return () => saved.forEach(([k, v]) => (b[k] = v));
}

const { CastConfig, Float8LinearConfig } = float8;
const cc = (t: "dynamic" | "delayed" | "static", s = 1) => (t === "static" ? new CastConfig({ scalingType: t, staticScale: s }) : new CastConfig({ scalingType: t }));
const rt = recipe as "dynamic" | "delayed" | "static";
const config = new Float8LinearConfig({ castConfigInput: cc(rt, 32), castConfigWeight: cc(rt, 256), castConfigGradOutput: cc(rt, 4096) });

manualSeed(0);
const layers: [string, nn.Module][] = [
  ["bf16 Linear", new nn.Linear(K, N, { dtype: "bfloat16", bias: false })],
  [`Float8Linear ${recipe}`, float8.Float8Linear.fromFloat(new nn.Linear(K, N, { dtype: "bfloat16", bias: false }), config)],
];
const x = randn([M, K], { dtype: "bfloat16", requiresGrad: true }).keep();
const g = noGrad(() => randn([M, N], { dtype: "bfloat16", std: 1e-3 })).keep();
const step = (m: nn.Module) =>
  tidy(() => {
    m.zeroGrad();
    x.grad?.dispose();
    x.grad = null;
    const y = span("forward", "phase", () => m.forward(x) as Tensor);
    span("backward", "phase", () => y.backward(g));
    if (m instanceof float8.Float8Linear) span("sync", "phase", () => float8.syncFloat8AmaxAndScaleHistory(m));
  });

console.log(`# profile_linear_float8 on ${machineLine()}, M,K,N = ${M},${K},${N}, recipe ${recipe}, ${new Date().toISOString().slice(0, 10)}`);
const stepMs: Record<string, number> = {};
for (const [i, [name, m]] of layers.entries()) {
  tid = i;
  const mark = events.length;
  for (let w = 0; w < 2; w++) step(m); // warm-up: primitive caches, delayed-scaling init
  events.length = mark; // the warm-up's phase spans are not part of the profile
  const undo = instrument();
  try {
    const t0 = us();
    for (let s = 0; s < steps; s++) span(`${name} step ${s}`, "step", () => step(m));
    stepMs[name] = (us() - t0) / 1000 / steps;
  } finally {
    undo();
  }
}

// per-kernel table: name (op) -> total time and calls, per layer
for (const [i, [name]] of layers.entries()) {
  const per = new Map<string, { ms: number; calls: number }>();
  let kernelMs = 0;
  for (const e of events) {
    if (e.tid !== i || e.cat !== "kernel") continue;
    const key = `${e.name}${e.args?.op ? ` (${e.args.op})` : ""}`;
    const r = per.get(key) ?? { ms: 0, calls: 0 };
    r.ms += e.dur / 1000 / steps;
    r.calls += 1 / steps;
    per.set(key, r);
    kernelMs += e.dur / 1000 / steps;
  }
  console.log(`\n${name}: ${stepMs[name].toFixed(2)} ms/step, native kernels ${kernelMs.toFixed(2)} ms (${(100 * kernelMs / stepMs[name]).toFixed(1)}%), the rest is JavaScript and FFI`);
  for (const [k, r] of [...per].sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(`  ${k.padEnd(58)} ${r.calls.toFixed(0).padStart(3)} calls ${r.ms.toFixed(3).padStart(9)} ms ${(100 * r.ms / stepMs[name]).toFixed(1).padStart(5)}%`);
  }
}
const ratio = stepMs[layers[1][0]] / stepMs[layers[0][0]];
console.log(`\nFloat8Linear ${recipe} step / bf16 Linear step: ${ratio.toFixed(3)}x`);

const trace = {
  traceEvents: [
    { name: "process_name", ph: "M", pid: 0, args: { name: `float8 profile M,K,N=${M},${K},${N}` } },
    ...layers.map(([name], i) => ({ name: "thread_name", ph: "M", pid: 0, tid: i, args: { name } })),
    ...events.sort((a, b) => a.ts - b.ts),
  ],
  displayTimeUnit: "ms",
  otherData: { machine: machineLine(), M, K, N, recipe, steps },
};
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, JSON.stringify(trace));
console.log(`wrote ${outPath} (${events.length} spans; open in chrome://tracing or ui.perfetto.dev)`);
for (const [, m] of layers) m.dispose();
x.dispose();
g.dispose();
