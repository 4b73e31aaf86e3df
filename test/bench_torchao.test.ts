// bench_torchao.test.ts — the counterparts of torchao's bench_padding, profile_linear_float8
// and bench_multi_gpu run in their quick sizes and produce what they promise: the padding
// rows, a Chrome trace whose spans nest and name the kernels, and DDP step times for 1 and
// 2 ranks. It checks that they work, never how fast they are.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const env = { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? "passive" };
const run = (args: string[]) => {
  const p = Bun.spawnSync(["bun", ...args], { cwd: root, stdout: "pipe", stderr: "pipe", env });
  const out = p.stdout.toString() + p.stderr.toString();
  if (p.exitCode !== 0) throw new Error(`bun ${args.join(" ")} failed:\n${out}`);
  return out;
};

test("bench/padding.ts times scaledMm at an unaligned K against pad + scaledMm at K16", () => {
  const out = run(["bench/padding.ts", "--quick"]);
  expect(out).toMatch(/M,K,N = 256,1000,256 \(K16 = 1008\)/);
  expect(out).toMatch(/scaledMm K +[\d.]+ ms +1\.000x/);
  expect(out).toMatch(/pad \+ scaledMm K16 +[\d.]+ ms/);
  expect(out).toMatch(/padding overhead -?[\d.]+%/);
}, 120000);

test("bench/profile_linear_float8.ts writes a Chrome trace with nested phase and kernel spans for both layers", () => {
  const dir = mkdtempSync(join(tmpdir(), "trace-"));
  try {
    const path = join(dir, "t.json");
    const out = run(["bench/profile_linear_float8.ts", "--quick", "--recipe", "delayed", "-o", path]);
    expect(out).toMatch(/Float8Linear delayed: [\d.]+ ms\/step/);
    expect(out).toMatch(/quantize\w* \(/);
    const trace = JSON.parse(readFileSync(path, "utf8"));
    const spans = trace.traceEvents.filter((e: any) => e.ph === "X");
    expect(trace.traceEvents.filter((e: any) => e.ph === "M" && e.name === "thread_name").map((e: any) => e.args.name)).toEqual(["bf16 Linear", "Float8Linear delayed"]);
    for (const e of spans) {
      expect(typeof e.ts).toBe("number");
      expect(e.dur).toBeGreaterThanOrEqual(0);
    }
    const f8 = spans.filter((e: any) => e.tid === 1);
    const names = new Set(f8.map((e: any) => e.name));
    for (const n of ["forward", "backward", "sync", "syncAmaxHistory", "matmul"]) expect(names.has(n)).toBe(true);
    // every kernel span lies inside its step span (nesting is what the viewers draw)
    const stepSpan = f8.find((e: any) => e.cat === "step");
    for (const e of f8.filter((e: any) => e.cat === "kernel")) {
      expect(e.ts).toBeGreaterThanOrEqual(stepSpan.ts);
      expect(e.ts + e.dur).toBeLessThanOrEqual(stepSpan.ts + stepSpan.dur + 1);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120000);

test.skipIf(!Bun.which("mpirun"))("bench/multi_gpu.ts reports DDP step times of bf16 and float8 for 1 and 2 MPI ranks", () => {
  const out = run(["bench/multi_gpu.ts", "--quick"]);
  expect(out).toMatch(/ranks 1: bf16 [\d.]+ ms\/step, float8 [\d.]+ ms\/step/);
  expect(out).toMatch(/ranks 2: bf16 [\d.]+ ms\/step, float8 [\d.]+ ms\/step/);
}, 180000);
