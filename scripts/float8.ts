#!/usr/bin/env bun
// float8.ts — the package's command line (`bin` in package.json), for projects
// that installed float8 as a dependency:
//   bunx float8 build [-DOPTION=VALUE ...]   build the native libraries into <package>/build
//   bunx float8 where                        print where the libraries are looked for
// `build` configures CMake with -DFP8_LIBS_ONLY=ON (only the libraries a program
// loads: no tests, benchmarks or CUDA emulator) and skips the work when every
// library is newer than the sources. Extra -D arguments go to CMake, e.g.
// -DFP8_CUDA=OFF. In this repository itself `bun run build` builds everything.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const buildDir = join(root, "build");
const [command = "help", ...rest] = process.argv.slice(2);

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = 0;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

function run(cmd: string[]): void {
  console.log(`float8: ${cmd.join(" ")}`);
  const proc = Bun.spawnSync(cmd, { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (proc.exitCode !== 0) {
    console.error(
      `float8: '${cmd[0]}' failed (exit code ${proc.exitCode}). The build needs CMake >= 3.25, a C/C++ ` +
        "compiler, oneDNN and OpenMPI; on Debian/Ubuntu: sudo apt-get install --no-install-recommends " +
        "cmake g++ make libdnnl-dev ocl-icd-opencl-dev libopenmpi-dev openmpi-bin",
    );
    process.exit(proc.exitCode ?? 1);
  }
}

function build(cmakeArgs: string[]): void {
  const bad = cmakeArgs.find((a) => !a.startsWith("-D"));
  if (bad) {
    console.error(`float8 build: unexpected argument '${bad}' (only -DOPTION=VALUE arguments are passed to CMake)`);
    process.exit(2);
  }
  if (!Bun.which("cmake")) {
    console.error("float8 build: cmake not found; on Debian/Ubuntu: sudo apt-get install cmake g++ make libdnnl-dev ocl-icd-opencl-dev libopenmpi-dev openmpi-bin");
    process.exit(1);
  }
  const lib = join(buildDir, "libfp8.so");
  const sources = Math.max(newestMtime(join(root, "libfp8")), newestMtime(join(root, "CMakeLists.txt")));
  if (cmakeArgs.length === 0 && existsSync(lib) && statSync(lib).mtimeMs >= sources) {
    console.log(`float8: ${lib} is up to date`);
    return;
  }
  const started = performance.now();
  run(["cmake", "-S", root, "-B", buildDir, "-DCMAKE_BUILD_TYPE=Release", "-DFP8_LIBS_ONLY=ON", ...cmakeArgs]);
  const jobs = String(Math.max(1, navigator.hardwareConcurrency ?? 2));
  run(["cmake", "--build", buildDir, "-j", jobs]);
  const built = readdirSync(buildDir).filter((f) => f.endsWith(".so"));
  console.log(`float8: built ${built.join(", ")} in ${buildDir} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
}

switch (command) {
  case "build":
    build(rest);
    break;
  case "where":
    console.log(`libfp8: ${process.env.FLOAT8_LIB ?? join(buildDir, "libfp8.so")}`);
    break;
  default:
    console.log(
      [
        "usage: bunx float8 build [-DOPTION=VALUE ...]   build the native libraries (into node_modules/float8/build)",
        "       bunx float8 where                        print the library path float8 loads",
      ].join("\n"),
    );
    if (command !== "help" && command !== "--help" && command !== "-h") process.exit(2);
}
