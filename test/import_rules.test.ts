// Folder dependencies in src/ run one way: a module imports only modules of its
// own layer or of layers below it (docs/architecture.md, "Layers and import
// rules"). This test reads every import of every .ts file under src/ (static,
// type-only, re-exports and dynamic import()) and fails on a back edge, naming
// the file, the import and the rule it breaks.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = join(import.meta.dir, "..");
const src = join(root, "src");

/**
 * The layers, lowest first. A path belongs to the first layer with a matching
 * prefix (so src/tensor/dtype.ts is a definition, src/tensor/backend/ the
 * backend, and the rest of src/tensor/ the tensor layer). Keep in step with
 * docs/architecture.md.
 */
const LAYERS: readonly { name: string; paths: readonly string[] }[] = [
  { name: "definitions", paths: ["src/errors.ts", "src/tensor/dtype.ts", "src/tensor/shape.ts"] },
  { name: "ffi", paths: ["src/ffi/"] },
  { name: "backend", paths: ["src/tensor/backend/"] },
  { name: "tensor", paths: ["src/tensor/", "src/autograd/"] },
  { name: "nn/optim", paths: ["src/nn/", "src/optim/"] },
  { name: "float8", paths: ["src/float8/"] },
  { name: "cuda", paths: ["src/cuda/"] },
  { name: "distributed/io", paths: ["src/distributed/", "src/io/"] },
  { name: "package", paths: ["src/index.ts"] },
];

/** Modules (a path, or a folder ending in "/") that only some folders may import, beyond the layer order. */
const RESTRICTED: readonly { module: string; allowed: readonly string[]; why: string }[] = [
  {
    module: "src/ffi/",
    allowed: ["src/ffi/", "src/tensor/", "src/cuda/", "src/distributed/"],
    why: "float8, nn, optim, autograd and io reach native code only through a Backend (src/tensor/backend): that is what keeps them device-agnostic",
  },
  {
    module: "src/tensor/backend/capture.ts",
    allowed: ["src/tensor/backend/", "src/cuda/", "src/optim/"],
    why: "CUDA-graph capture state belongs to the backend; ask it through src/tensor/backend/index.ts (hostReadsAllowed) instead",
  },
];

/** External specifiers only some folders may import. */
const RESTRICTED_EXTERNAL: readonly { specifier: string; allowed: readonly string[]; why: string }[] = [
  { specifier: "bun:ffi", allowed: ["src/ffi/"], why: "bun:ffi lives only in src/ffi (the one binding of fp8.h)" },
];

/**
 * Pointer plumbing belongs to the tensor-level device contract (src/tensor/device_ops.ts): these folders say what
 * they want in tensors and named options, never a raw pointer (`ptrFor`) or a dtype code (`DTYPE_CODE`).
 */
const NO_POINTER_PLUMBING: readonly string[] = ["src/float8/", "src/optim/", "src/distributed/", "src/nn/"];
/** Files of those folders still allowed pointer plumbing, each with why (docs/architecture.md, "The device contract"). */
const POINTER_PLUMBING_ALLOWED: Readonly<Record<string, string>> = {
  "src/distributed/process_group.ts": "the binding of libfp8_dist's collectives, whose C ABI takes pointers and dtype codes (like src/ffi's tables); it also moves raw cuda.DeviceBuffers",
};

/** `ptrFor` / `DTYPE_CODE` uses (outside comments) in a file of a folder that must not have them. */
function pointerPlumbing(path: string, code: string): string[] {
  if (!NO_POINTER_PLUMBING.some((p) => path.startsWith(p)) || Object.hasOwn(POINTER_PLUMBING_ALLOWED, path)) return [];
  const noComments = code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  return noComments.split("\n").flatMap((line, i) =>
    /\bptrFor\b|\bDTYPE_CODE\b/.test(line) ? [`${path}: "${line.trim()}" does pointer plumbing; use src/tensor/device_ops.ts (the tensor-level device contract)`] : [],
  );
}

function layerOf(path: string): number {
  const i = LAYERS.findIndex((l) => l.paths.some((p) => (p.endsWith("/") ? path.startsWith(p) : path === p)));
  if (i < 0) throw new Error(`${path} belongs to no layer: add it to LAYERS in test/import_rules.test.ts and to docs/architecture.md`);
  return i;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return tsFiles(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

/** Every module specifier a TypeScript source imports or re-exports (comments removed). */
function importsOf(code: string): string[] {
  const stripped = code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/[^\n]*/g, "$1");
  const out: string[] = [];
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?[\w*\s{},$]*?\bfrom\s*["']([^"']+)["']/g, // import x from, export {..} from
    /\bimport\s*["']([^"']+)["']/g, // import "x" (side effects)
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g, // import("x"), also in type positions
  ];
  for (const re of patterns) for (const m of stripped.matchAll(re)) out.push(m[1]);
  return out;
}

interface Edge {
  from: string;
  to: string; // repo-relative path, or the external specifier
  external: boolean;
}

function importGraph(): Edge[] {
  const edges: Edge[] = [];
  for (const file of tsFiles(src)) {
    const from = relative(root, file);
    for (const spec of importsOf(readFileSync(file, "utf8"))) {
      if (spec.startsWith(".")) edges.push({ from, to: relative(root, resolve(dirname(file), spec)), external: false });
      else edges.push({ from, to: spec, external: true });
    }
  }
  return edges;
}

/** Every import that breaks a rule, each with what to do about it. */
function violations(edges: readonly Edge[]): string[] {
  const problems: string[] = [];
  for (const e of edges) {
    if (e.external) {
      for (const r of RESTRICTED_EXTERNAL) {
        if (e.to === r.specifier && !r.allowed.some((a) => e.from.startsWith(a))) problems.push(`${e.from} imports ${e.to}: ${r.why}`);
      }
      continue;
    }
    if (!e.to.startsWith("src/")) {
      problems.push(`${e.from} imports ${e.to}, outside src/`);
      continue;
    }
    const [lf, lt] = [layerOf(e.from), layerOf(e.to)];
    if (lt > lf) {
      problems.push(
        `${e.from} (layer ${LAYERS[lf].name}) imports ${e.to} (layer ${LAYERS[lt].name}, above it): ` +
          `move what it needs down into layer ${LAYERS[lf].name} or below, or move the importer up`,
      );
    }
    for (const r of RESTRICTED) {
      if ((r.module.endsWith("/") ? e.to.startsWith(r.module) : e.to === r.module) && !r.allowed.some((a) => e.from.startsWith(a))) problems.push(`${e.from} imports ${e.to}: ${r.why}`);
    }
  }
  return problems;
}

describe("import rules of src/ (docs/architecture.md, Layers and import rules)", () => {
  const edges = importGraph();

  test("the import scanner sees every kind of import", () => {
    const code = [
      'import { a } from "./a.ts";',
      'import type { B } from "../b.ts";',
      "import {\n  c,\n  d,\n} from './c.ts';",
      'export { e } from "./e.ts";',
      'export * from "./f.ts";',
      'import "./g.ts";',
      'const h = await import("./h.ts");',
      'type I = import("./i.ts").I;',
      '// import { no } from "./comment.ts";',
    ].join("\n");
    expect(importsOf(code).sort()).toEqual(["../b.ts", "./a.ts", "./c.ts", "./e.ts", "./f.ts", "./g.ts", "./h.ts", "./i.ts"]);
    expect(edges.length).toBeGreaterThan(200); // the whole of src/ was read
  });

  test("every file of src/ belongs to a layer, and every relative import resolves to a file", () => {
    const files = new Set(tsFiles(src).map((f) => relative(root, f)));
    for (const f of files) layerOf(f); // throws naming the file
    const missing = edges.filter((e) => !e.external && !files.has(e.to)).map((e) => `${e.from} imports ${e.to}, which does not exist`);
    expect(missing).toEqual([]);
  });

  test("no back edges: every import goes to the same layer or a lower one", () => {
    const problems = violations(edges);
    if (problems.length > 0) throw new Error(`${problems.length} import(s) break the layering:\n${problems.join("\n")}`);
    expect(problems).toEqual([]);
  });

  test("float8, optim, distributed and nn do no pointer plumbing (ptrFor, DTYPE_CODE): they use the tensor-level contract", () => {
    const problems = tsFiles(src).flatMap((f) => pointerPlumbing(relative(root, f), readFileSync(f, "utf8")));
    if (problems.length > 0) throw new Error(`${problems.length} line(s) of pointer plumbing:\n${problems.join("\n")}`);
    expect(problems).toEqual([]);
    // the check can fail: a line that reaches for a pointer is caught, a comment mentioning one is not
    expect(pointerPlumbing("src/float8/x.ts", "be.amax(out.ptrFor(op), x.ptrFor(op), DTYPE_CODE[x.dtype]);")).toHaveLength(1);
    expect(pointerPlumbing("src/optim/x.ts", "// no ptrFor here\nconst a = 1;")).toEqual([]);
    expect(pointerPlumbing("src/tensor/device_ops.ts", "x.ptrFor(op)")).toEqual([]);
    for (const f of Object.keys(POINTER_PLUMBING_ALLOWED)) expect(existsSync(join(root, f))).toBe(true);
  });

  test("the checker catches a back edge, a restricted module and bun:ffi outside src/ffi", () => {
    expect(violations([{ from: "src/tensor/backend/cuda.ts", to: "src/cuda/index.ts", external: false }])[0]).toContain("layer backend) imports src/cuda/index.ts (layer cuda, above it)");
    expect(violations([{ from: "src/float8/float8_linear.ts", to: "src/tensor/backend/capture.ts", external: false }])[0]).toContain("capture state belongs to the backend");
    expect(violations([{ from: "src/tensor/ops/nn.ts", to: "src/tensor/backend/capture.ts", external: false }])[0]).toContain("capture state belongs to the backend");
    expect(violations([{ from: "src/nn/module.ts", to: "bun:ffi", external: true }])[0]).toContain("bun:ffi lives only in src/ffi");
    expect(violations([{ from: "src/float8/stats.ts", to: "src/ffi/index.ts", external: false }])[0]).toContain("only through a Backend");
    expect(violations([{ from: "src/cuda/graphs.ts", to: "src/tensor/backend/cuda.ts", external: false }])).toEqual([]);
  });
});
