// Finding cuBLASLt / NCCL without LD_LIBRARY_PATH (src/ffi/runtime_deps.ts): the
// search order, the preload-by-soname mechanism on real tiny libraries, the error
// that lists the places tried, and no absolute run path in the libraries we build.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { dlopen, FFIType } from "bun:ffi";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { missingLibrary, openWithRuntimeDeps, runtimeSearchDirs, type SearchInputs } from "../src/ffi/runtime_deps.ts";

const root = join(import.meta.dir, "..");

function fakeInputs(env: Record<string, string>, sites: string[], tree: Record<string, string[]>): SearchInputs {
  return { env, pythonSitePackages: () => sites, listDir: (d) => tree[d] ?? [] };
}

test("search order: $FP8_CUBLASLT_ROOT, then $VIRTUAL_ENV's and python3's nvidia/*/lib", () => {
  const inputs = fakeInputs(
    { FP8_CUBLASLT_ROOT: "/sdk/cublas", VIRTUAL_ENV: "/venv", FP8_NCCL_ROOT: "/sdk/nccl" },
    ["/usr/lib/python3/dist-packages", "/venv/lib/python3.11/site-packages", "/home/u/.local/lib/python3.11/site-packages"],
    {
      "/venv/lib": ["python3.11", "pkgconfig"],
      "/venv/lib/python3.11/site-packages/nvidia": ["cu13", "nccl"],
      "/usr/lib/python3/dist-packages/nvidia": ["cublas"],
    },
  );
  expect(runtimeSearchDirs("cublasLt", inputs)).toEqual([
    { dir: "/sdk/cublas/lib", source: "$FP8_CUBLASLT_ROOT" },
    { dir: "/sdk/cublas/lib64", source: "$FP8_CUBLASLT_ROOT" },
    { dir: "/venv/lib/python3.11/site-packages/nvidia/cu13/lib", source: "$VIRTUAL_ENV" },
    { dir: "/venv/lib/python3.11/site-packages/nvidia/nccl/lib", source: "$VIRTUAL_ENV" },
    { dir: "/usr/lib/python3/dist-packages/nvidia/cublas/lib", source: "python3 site-packages" },
    { dir: "/home/u/.local/lib/python3.11/site-packages/nvidia/*/lib", source: "python3 site-packages, no NVIDIA wheels there" },
  ]);
  // NCCL's own root variable, not cuBLASLt's
  const nccl = runtimeSearchDirs("nccl", inputs).map((d) => d.dir);
  expect(nccl[0]).toBe("/sdk/nccl/lib");
  expect(nccl).not.toContain("/sdk/cublas/lib");
  // nothing configured: nothing searched
  expect(runtimeSearchDirs("cublasLt", fakeInputs({}, [], {}))).toEqual([]);
});

test("the missing file is read from dlopen's message", () => {
  expect(missingLibrary("libcublasLt.so.13: cannot open shared object file: No such file or directory")).toBe("libcublasLt.so.13");
  expect(missingLibrary("Failed to open library \"/x/libfp8_cuda.so\": libnccl.so.2: cannot open shared object file")).toBe("libnccl.so.2");
  expect(missingLibrary("undefined symbol: foo")).toBeNull();
});

// Two real libraries: libmain needs libfp8rtdep.so.1 and has no run path to it.
let work = "";
let mainLib = "";
let depDir = "";
const cc = Bun.which("cc") ?? Bun.which("gcc");

beforeAll(() => {
  if (!cc) return;
  work = mkdtempSync(join(tmpdir(), "float8-rtdeps-"));
  depDir = join(work, "somewhere", "lib");
  mkdirSync(depDir, { recursive: true });
  writeFileSync(join(work, "dep.c"), "int fp8rt_dep_value(void) { return 41; }\n");
  writeFileSync(join(work, "main.c"), "int fp8rt_dep_value(void);\nint fp8rt_main_value(void) { return fp8rt_dep_value() + 1; }\n");
  const run = (args: string[]) => {
    const p = Bun.spawnSync(args, { cwd: work, stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(p.stderr.toString());
  };
  run([cc, "-shared", "-fPIC", "-Wl,-soname,libfp8rtdep.so.1", "-o", join(depDir, "libfp8rtdep.so.1"), "dep.c"]);
  run([cc, "-shared", "-fPIC", "-o", join(work, "libmain.so"), "main.c", join(depDir, "libfp8rtdep.so.1")]);
  mainLib = join(work, "libmain.so");
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const openMain = () => dlopen(mainLib, { fp8rt_main_value: { args: [], returns: FFIType.i32 } }).symbols;

test.skipIf(!cc)("a missing dependency is preloaded from the search folders; otherwise the error lists them", () => {
  expect(() => openMain()).toThrow(/libfp8rtdep\.so\.1: cannot open shared object file/);

  const none = fakeInputs({ FP8_CUBLASLT_ROOT: join(work, "empty") }, [], {});
  let message = "";
  try {
    openWithRuntimeDeps(mainLib, "cublasLt", openMain, none);
  } catch (e) {
    message = (e as Error).message;
  }
  expect(message).toContain("needs libfp8rtdep.so.1, which was not found");
  expect(message).toContain(`${join(work, "empty", "lib")} ($FP8_CUBLASLT_ROOT)`);
  expect(message).toContain("run paths of");
  expect(message).toContain("pip install nvidia-cublas");

  const withRoot = fakeInputs({ FP8_CUBLASLT_ROOT: join(work, "somewhere") }, [], {});
  const lib = openWithRuntimeDeps(mainLib, "cublasLt", openMain, withRoot);
  expect(lib.fp8rt_main_value()).toBe(42);
});

test("the libraries we build have only $ORIGIN-relative run paths", () => {
  const readelf = Bun.which("readelf");
  const libs = ["libfp8.so", "libfp8_dist.so", "libfp8_cuda.so", "libfp8_dist_nccl.so"]
    .map((f) => join(root, "build", f))
    .filter((p) => existsSync(p));
  if (!readelf || libs.length === 0) {
    console.warn("runtime_deps.test: readelf or build/ libraries missing, run-path check skipped");
    return;
  }
  expect(libs).toContain(join(root, "build", "libfp8.so"));
  for (const lib of libs) {
    const out = Bun.spawnSync([readelf, "-d", lib], { stdout: "pipe" }).stdout.toString();
    const paths = [...out.matchAll(/\((?:RUNPATH|RPATH)\)\s+Library (?:runpath|rpath): \[([^\]]*)\]/g)]
      .flatMap((m) => (m[1] ?? "").split(":"));
    // The CUDA libraries: $ORIGIN only. The others may also keep a system folder that a
    // package's link flags add (OpenMPI's /usr/lib/<triple>/openmpi/lib), never a build path.
    const strict = /libfp8_cuda|libfp8_dist_nccl/.test(lib);
    for (const p of paths) {
      if (strict || !/^\/(usr\/)?lib(64)?\//.test(p)) expect(`${lib}: ${p}`).toMatch(/: \$ORIGIN(\/|$)/);
      expect(p).not.toContain(root);
    }
  }
});
