// distributed_block.test.ts — the block-scaled recipes under FSDP on 2 ranks (mpirun):
// FSDP matches DDP of the same recipe. Skipped (visibly) without mpirun or libfp8_dist.
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { distLibraryPath } from "../src/ffi/dist.ts";
import { mpirunCommand } from "../scripts/launch.ts";

const mpirun = Bun.which("mpirun");
const skipReason = !mpirun ? "mpirun not found" : !existsSync(distLibraryPath) ? `libfp8_dist not built at ${distLibraryPath}` : null;
if (skipReason) console.warn(`distributed_block.test.ts: skipping: ${skipReason}`);

describe.skipIf(skipReason !== null)("block-scaled recipes under FSDP (2 ranks)", () => {
  test("FSDP with blockwise and mxfp8 Float8Linear layers matches DDP (>= 40 dB after 5 steps)", () => {
    const script = join(import.meta.dir, "dist", "block_worker.ts");
    const cmd = mpirunCommand({ n: 2, script, mpirun: mpirun!, quiet: true, env: { ...process.env, OMP_NUM_THREADS: "1" } });
    const proc = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", timeout: 120000 });
    const output = proc.stdout.toString() + proc.stderr.toString();
    const results = new Map<string, any>();
    for (const line of output.split("\n")) {
      const m = /^RESULT (\S+) (.*)$/.exec(line.trim());
      if (m) results.set(m[1], JSON.parse(m[2]));
    }
    for (const recipe of ["blockwise", "mxfp8"]) {
      const r = results.get(`fsdp_${recipe}`);
      if (!r) throw new Error(`no RESULT fsdp_${recipe}; output:\n${output}`);
      expect(r.error).toBe("");
      expect(r.sqnrVsDdp).toBeGreaterThanOrEqual(40);
    }
  }, 150000);
});
