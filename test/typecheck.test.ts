// The whole package type-checks under TypeScript's strict mode (tsconfig.json).
import { expect, test } from "bun:test";
import { join } from "node:path";

test("tsc --noEmit passes in strict mode", () => {
  const root = join(import.meta.dir, "..");
  const tsc = join(root, "node_modules", ".bin", "tsc");
  const p = Bun.spawnSync([tsc, "--noEmit", "-p", root], { cwd: root, stdout: "pipe", stderr: "pipe" });
  const out = p.stdout.toString() + p.stderr.toString();
  expect(out).toBe("");
  expect(p.exitCode).toBe(0);
});
