// prepare.ts — makes a fresh checkout runnable: installs JS dependencies when
// node_modules is missing and (re)builds libfp8 with CMake when the library is
// missing or older than any of its sources. Used by `bun run test` and `bun run demo`.
//   bun scripts/prepare.ts [--force] [--deps-only]
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const args = new Set(process.argv.slice(2));
const buildDir = join(root, "build");

function run(cmd: string[]): void {
  const proc = Bun.spawnSync(cmd, { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (proc.exitCode !== 0) {
    console.error(`prepare: '${cmd.join(" ")}' failed with exit code ${proc.exitCode}`);
    process.exit(proc.exitCode ?? 1);
  }
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

if (!existsSync(join(root, "node_modules", "fast-check"))) {
  console.log("prepare: installing JS dependencies (bun install)");
  run(["bun", "install"]);
}
if (args.has("--deps-only")) process.exit(0);

const lib = join(buildDir, "libfp8.so");
const sourcesTime = Math.max(
  newestMtime(join(root, "libfp8")),
  statSync(join(root, "CMakeLists.txt")).mtimeMs,
);
const stale = !existsSync(lib) || statSync(lib).mtimeMs < sourcesTime;
// (Re)configure when there is no cache or a CMakeLists.txt changed since (new backends appear so).
const cache = join(buildDir, "CMakeCache.txt");
const cmakeListsTime = Math.max(
  ...[
    join(root, "CMakeLists.txt"),
    ...["cuda", "cuda/emu", "dist"].map((d) => join(root, "libfp8", "src", d, "CMakeLists.txt")),
    join(root, "test", "cuda_emu", "CMakeLists.txt"),
    join(root, "libfp8", "cmake", "fp8_rpath.cmake"),
  ]
    .filter((f) => existsSync(f))
    .map((f) => statSync(f).mtimeMs),
);
const needConfigure = !existsSync(cache) || statSync(cache).mtimeMs < cmakeListsTime;
if (args.has("--force") || stale || needConfigure) {
  console.log("prepare: building libfp8 (cmake)");
  if (needConfigure || args.has("--force")) {
    run(["cmake", "-S", ".", "-B", "build", "-DCMAKE_BUILD_TYPE=Release"]);
  }
  const jobs = String(Math.max(1, navigator.hardwareConcurrency ?? 2));
  run(["cmake", "--build", "build", "-j", jobs]);
}
