// Every repository document a source comment cites (docs/<name>.md) exists in the
// repository; the map that comments cite is docs/architecture.md.
import { expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dir, "..");
const SKIP = new Set(["node_modules", "build", ".deps", ".git", "out", "dist"]);

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (SKIP.has(name) || name.startsWith("build-")) return [];
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return files(p);
    return /\.(ts|c|cpp|h|hpp|cu|cuh|md|txt|cmake|sh|py)$/.test(name) ? [p] : [];
  });
}

test("every cited docs/*.md file exists", () => {
  const all = files(root);
  expect(all.length).toBeGreaterThan(50);
  const missing: string[] = [];
  for (const f of all) {
    for (const m of readFileSync(f, "utf8").matchAll(/docs\/([\w-]+\.md)/g)) {
      if (!existsSync(join(root, "docs", m[1] ?? ""))) missing.push(`${relative(root, f)}: docs/${m[1]}`);
    }
  }
  expect(missing).toEqual([]);
  expect(existsSync(join(root, "docs", "architecture.md"))).toBe(true);
});
