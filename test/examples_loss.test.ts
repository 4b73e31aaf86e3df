// The README's first example and examples/dynamic.ts / delayed.ts minimise a real
// loss (mean squared error against a target) and their printed loss falls, with
// every value finite. They run as written, except for a smaller batch (the rows of
// x) so that the test is quick on a small CPU.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");

function losses(out: string): number[] {
  return [...out.matchAll(/step \d+: loss (\S+)/g)].map((m) => Number(m[1]));
}

function expectFalling(ls: number[], steps: number): void {
  expect(ls.length).toBe(steps);
  for (const l of ls) expect(Number.isFinite(l)).toBe(true);
  expect(ls.at(-1)!).toBeLessThan(ls[0]! * 0.97);
  // never rises by more than bf16 rounding of the loss
  for (let i = 1; i < ls.length; i++) expect(ls[i]!).toBeLessThanOrEqual(ls[i - 1]! * 1.01);
}

function run(args: string[], cwd = root): string {
  const p = Bun.spawnSync(["bun", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  const out = p.stdout.toString();
  if (p.exitCode !== 0) throw new Error(`bun ${args.join(" ")} failed:\n${out}${p.stderr.toString()}`);
  return out;
}

for (const name of ["dynamic", "delayed"]) {
  test(`examples/${name}.ts: the loss falls`, () => {
    const out = run([join("examples", `${name}.ts`), "--m", "256", "--steps", "8"]);
    expectFalling(losses(out), 8);
  }, 300_000);
}

test("the README's first example: the loss falls", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const code = /```ts\n(import \{[^}]*\} from "float8";[\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeDefined();
  expect(code).toContain("mseLoss");
  const rows = "randn([4096, 2048]";
  expect(code).toContain(rows);
  const dir = mkdtempSync(join(root, "build", "readme-example-"));
  try {
    const file = join(dir, "first.ts");
    writeFileSync(file, code!.replace('from "float8"', `from ${JSON.stringify(join(root, "src", "index.ts"))}`).replace(rows, "randn([256, 2048]"));
    expectFalling(losses(run([file])), 10);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
