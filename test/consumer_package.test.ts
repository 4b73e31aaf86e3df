// A user's project, end to end: pack this package (`bun pm pack`, which runs the
// prepack script that generates dist/types), make a fresh project with `bun init`,
// install the tarball there, type-check the project under bun init's tsconfig
// (strict, noUncheckedIndexedAccess, noImplicitOverride) with skipLibCheck turned
// OFF, build the native library the way the README tells a user to
// (`bunx float8 build`), then train a float8 MLP for 3 steps with cross-entropy
// and check that the loss falls.
//
// Needs the network as `bun install` does (bun init installs @types/bun and
// typescript). The native build of the installed package is cached under
// build/consumer-cache/<hash of the packed native sources>/, so it is compiled
// once per change of libfp8/ or CMakeLists.txt; a fresh machine always builds it.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
let work = "";
let project = "";
let tarball = "";

/** The environment of a user's shell: none of this repository's library overrides. */
function userEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("FLOAT8_")) env[k] = v;
  }
  return env;
}

function sh(cmd: string[], cwd: string): string {
  const p = Bun.spawnSync(cmd, { cwd, env: userEnv(), stdout: "pipe", stderr: "pipe" });
  const out = p.stdout.toString() + p.stderr.toString();
  if (p.exitCode !== 0) throw new Error(`'${cmd.join(" ")}' in ${cwd} failed (${p.exitCode}):\n${out}`);
  return out;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "float8-consumer-"));
  sh(["bun", "pm", "pack", "--destination", work, "--quiet"], root);
  const packed = readdirSync(work).filter((f) => f.endsWith(".tgz"));
  expect(packed.length).toBe(1);
  tarball = join(work, packed[0] ?? "");
  project = join(work, "app");
  mkdirSync(project);
  sh(["bun", "init", "-y"], project);
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test("the tarball holds sources, headers, CMake files, the build command and declarations, and nothing else", () => {
  const files = sh(["tar", "tzf", tarball], work).trim().split("\n");
  for (const f of ["package/src/index.ts", "package/dist/types/index.d.ts", "package/libfp8/include/fp8.h",
    "package/CMakeLists.txt", "package/libfp8/src/cuda/CMakeLists.txt", "package/scripts/float8.ts"]) {
    expect(files).toContain(f);
  }
  const unwanted = files.filter((f) => /^package\/(\.deps|build|test|bench|examples|node_modules|\.git|out)\//.test(f));
  expect(unwanted).toEqual([]);
  expect(files.length).toBeLessThan(400);
});

test("an installed float8 type-checks, builds with `bunx float8 build` and trains: loss falls over 3 steps", () => {
  // bun init's tsconfig as generated, except that library files are checked too.
  const tsconfigPath = join(project, "tsconfig.json");
  const tsconfig = readFileSync(tsconfigPath, "utf8");
  for (const flag of ["strict", "noUncheckedIndexedAccess", "noImplicitOverride"]) {
    expect(tsconfig).toMatch(new RegExp(`"${flag}":\\s*true`));
  }
  writeFileSync(tsconfigPath, tsconfig.replace(/"skipLibCheck":\s*true/, '"skipLibCheck": false'));
  expect(readFileSync(tsconfigPath, "utf8")).toMatch(/"skipLibCheck": false/);

  sh(["bun", "add", tarball], project);
  const pkg = join(project, "node_modules", "float8");
  expect(existsSync(join(pkg, "build"))).toBe(false);

  writeFileSync(
    join(project, "index.ts"),
    `import { nn, optim, float8, tensor, tidy, manualSeed, type Tensor } from "float8";

// 4 classes of 64-dim points: the class picks which quarter of the features is shifted up.
manualSeed(0);
const B = 64, D = 64, C = 4;
const xs: number[] = [], ys: number[] = [];
for (let i = 0; i < B; i++) {
  const c = i % C;
  ys.push(c);
  for (let j = 0; j < D; j++) xs.push(Math.sin(i * 7.1 + j * 3.3) * 0.5 + (Math.floor(j / (D / C)) === c ? 1 : 0));
}
const x: Tensor = tensor(xs, { shape: [B, D], dtype: "bfloat16" });
const y = tensor(ys, { shape: [B], dtype: "int32" });

const model = new nn.Sequential(new nn.Linear(D, 128), new nn.ReLU(), new nn.Linear(128, 128), new nn.ReLU(), new nn.Linear(128, C))
  .to({ dtype: "bfloat16" });
float8.convertToFloat8Training(model);
const opt = new optim.SGD(model.parameters(), { lr: 0.5 });
const losses: number[] = [];
for (let step = 0; step < 3; step++) {
  tidy(() => {
    opt.zeroGrad();
    const loss = nn.crossEntropy(model.forward(x), y);
    loss.backward();
    opt.step();
    losses.push(loss.item());
  });
}
const float8Layers = [...model.namedModules()].filter(([, m]) => m instanceof float8.Float8Linear).length;
console.log(JSON.stringify({ losses, float8Layers }));
`,
  );

  const tsc = sh([join(project, "node_modules", ".bin", "tsc"), "--noEmit", "-p", project], project);
  expect(tsc.trim()).toBe("");

  // Before the build, importing works (the library opens lazily) and the first native
  // call says which command to run.
  const early = Bun.spawnSync(["bun", "index.ts"], { cwd: project, env: userEnv(), stdout: "pipe", stderr: "pipe" });
  expect(early.exitCode).not.toBe(0);
  expect(early.stderr.toString()).toContain("bunx float8 build");

  // The native build, cached by the hash of the native sources that were packed.
  const hash = new Bun.CryptoHasher("sha256");
  const addTree = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) addTree(p);
      else hash.update(e.name).update(readFileSync(p));
    }
  };
  addTree(join(pkg, "libfp8"));
  hash.update(readFileSync(join(pkg, "CMakeLists.txt")));
  const cache = join(root, "build", "consumer-cache", hash.digest("hex").slice(0, 16));
  const libs = ["libfp8.so", "libfp8_dist.so"];
  if (existsSync(join(cache, "libfp8.so"))) {
    mkdirSync(join(pkg, "build"));
    for (const f of readdirSync(cache)) copyFileSync(join(cache, f), join(pkg, "build", f));
    expect(sh(["bunx", "float8", "build"], project)).toContain("up to date");
  } else {
    sh(["bunx", "float8", "build", "-DFP8_CUDA=OFF"], project);
    const built = readdirSync(join(pkg, "build")).filter((f) => f.endsWith(".so"));
    // only libraries: no test or benchmark executables, no CUDA emulator
    expect(built).toContain("libfp8.so");
    expect(built).not.toContain("libfp8_cuda_emu.so");
    expect(existsSync(join(pkg, "build", "fp8_bench_onednn_raw"))).toBe(false);
    mkdirSync(cache, { recursive: true });
    for (const f of built) if (libs.includes(f)) copyFileSync(join(pkg, "build", f), join(cache, f));
  }

  const run = sh(["bun", "index.ts"], project);
  const line = run.trim().split("\n").at(-1) ?? "";
  const { losses, float8Layers } = JSON.parse(line) as { losses: number[]; float8Layers: number };
  expect(float8Layers).toBe(3);
  expect(losses.length).toBe(3);
  for (const l of losses) expect(Number.isFinite(l)).toBe(true);
  expect(losses[0]).toBeGreaterThan(1.0); // about ln(4) at the start
  expect(losses[1]).toBeLessThan(losses[0]!);
  expect(losses[2]).toBeLessThan(losses[1]!);
  expect(losses[2]).toBeLessThan(losses[0]! * 0.9); // measured: 1.375, 1.242, 1.086
}, 1_800_000);
