// runtime_deps.ts — finds the NVIDIA libraries that libfp8_cuda and the NCCL
// plugin link against (cuBLASLt, the CUDA runtime, NCCL) without LD_LIBRARY_PATH.
//
// Order (docs/architecture.md, "Finding the native libraries"):
//   1. the libraries' own run paths, all relative to $ORIGIN (set by CMake: the
//      library's folder, and the repository's .deps wheels when it was built there);
//   2. $FP8_CUBLASLT_ROOT (cuBLASLt, CUDA runtime) or $FP8_NCCL_ROOT (NCCL): ROOT/lib, ROOT/lib64;
//   3. a Python environment's NVIDIA wheels: <site-packages>/nvidia/*/lib, for
//      $VIRTUAL_ENV, $CONDA_PREFIX and python3's own site-packages folders.
// When opening a library fails because a dependency is missing, the missing file
// (e.g. libcublasLt.so.13) is looked up in 2 and 3 and opened by absolute path
// first; the dynamic linker then satisfies the library's dependency with that
// already-loaded copy (it matches by soname). The error lists every place tried.
import { dlopen, FFIType } from "bun:ffi";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** Which family of libraries a search is for. */
export type RuntimeDepKind = "cublasLt" | "nccl";

/** Inputs of the search order, separated from the process so they can be tested. */
export interface SearchInputs {
  /** Environment variables (FP8_CUBLASLT_ROOT, FP8_NCCL_ROOT, VIRTUAL_ENV, CONDA_PREFIX). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** site-packages folders of python3, in its own order (called only when needed). */
  readonly pythonSitePackages: () => readonly string[];
  /** Lists a folder's entries; [] when it does not exist. */
  readonly listDir: (dir: string) => readonly string[];
}

/** One folder to look in, and why it is on the list. */
export interface SearchDir {
  readonly dir: string;
  readonly source: string;
}

function siteDirsOfPrefix(prefix: string, listDir: (d: string) => readonly string[]): string[] {
  const lib = join(prefix, "lib");
  return listDir(lib)
    .filter((n) => /^python3(\.\d+)?$/.test(n))
    .sort()
    .map((n) => join(lib, n, "site-packages"));
}

/**
 * The folders searched for a missing dependency of `kind`, in order (steps 2 and 3
 * above; step 1 is the dynamic linker's own run-path search, tried before this).
 */
export function runtimeSearchDirs(kind: RuntimeDepKind, inputs: SearchInputs): SearchDir[] {
  const out: SearchDir[] = [];
  const rootVar = kind === "cublasLt" ? "FP8_CUBLASLT_ROOT" : "FP8_NCCL_ROOT";
  const root = inputs.env[rootVar];
  if (root) {
    for (const sub of ["lib", "lib64"]) out.push({ dir: join(root, sub), source: `$${rootVar}` });
  }
  const sites: { site: string; source: string }[] = [];
  for (const v of ["VIRTUAL_ENV", "CONDA_PREFIX"]) {
    const prefix = inputs.env[v];
    if (prefix) for (const site of siteDirsOfPrefix(prefix, inputs.listDir)) sites.push({ site, source: `$${v}` });
  }
  for (const site of inputs.pythonSitePackages()) sites.push({ site, source: "python3 site-packages" });
  for (const { site, source } of sites) {
    const nvidia = join(site, "nvidia");
    const pkgs = [...inputs.listDir(nvidia)].sort();
    // A site without NVIDIA wheels is still listed, so an error shows it was looked at.
    if (pkgs.length === 0) out.push({ dir: join(nvidia, "*", "lib"), source: `${source}, no NVIDIA wheels there` });
    for (const pkg of pkgs) out.push({ dir: join(nvidia, pkg, "lib"), source });
  }
  const seen = new Set<string>();
  return out.filter((d) => (seen.has(d.dir) ? false : (seen.add(d.dir), true)));
}

/** The file a dlopen error says is missing ("libcublasLt.so.13: cannot open shared object file"), or null. */
export function missingLibrary(message: string): string | null {
  const m = /(lib[\w.+-]*\.so(?:\.\d+)*): cannot open shared object file/.exec(message);
  return m?.[1] ?? null;
}

let pythonSites: string[] | null = null;
function python3SitePackages(): string[] {
  if (pythonSites) return pythonSites;
  pythonSites = [];
  const py = Bun.which("python3");
  if (py) {
    const code = "import site\nfor p in site.getsitepackages() + [site.getusersitepackages()]: print(p)";
    const r = Bun.spawnSync([py, "-c", code], { stdout: "pipe", stderr: "ignore" });
    if (r.exitCode === 0) pythonSites = r.stdout.toString().split("\n").filter((l) => l.length > 0);
  }
  return pythonSites;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The search inputs of this process. */
export function processSearchInputs(): SearchInputs {
  return { env: process.env, pythonSitePackages: python3SitePackages, listDir };
}

// libc's dlopen: opens any library by path without naming one of its symbols
// (bun:ffi's dlopen needs a symbol table); handles stay open for the process.
const RTLD_NOW = 2;
let libc: ReturnType<typeof openLibc> | null = null;
function openLibc() {
  return dlopen("libc.so.6", {
    dlopen: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.ptr },
    dlerror: { args: [], returns: FFIType.cstring },
  }).symbols;
}

/** dlopen(path, RTLD_NOW) (local scope: only its soname is used); null on success, else dlerror's message. */
export function preloadLibrary(path: string): string | null {
  libc ??= openLibc();
  const handle = libc.dlopen(Buffer.from(`${path}\0`), RTLD_NOW);
  return handle ? null : String(libc.dlerror() ?? "dlopen failed");
}

/**
 * Runs `open` (which dlopens a library of ours); each time it fails for a missing
 * dependency, finds that file in the search folders of `kind`, preloads it and tries
 * again. Returns open()'s result, or throws an Error whose message lists the places tried.
 */
export function openWithRuntimeDeps<T>(
  what: string,
  kind: RuntimeDepKind,
  open: () => T,
  inputs: SearchInputs = processSearchInputs(),
): T {
  const preloaded: string[] = [];
  const dirs = () => runtimeSearchDirs(kind, inputs);
  const fail = (missing: string, detail: string): never => {
    const tried = [
      `the run paths of ${what} (relative to its folder, see 'readelf -d ${what}')`,
      ...dirs().map((d) => `${d.dir} (${d.source})`),
    ];
    const envHint = kind === "cublasLt" ? "FP8_CUBLASLT_ROOT" : "FP8_NCCL_ROOT";
    const wheel = kind === "cublasLt" ? "nvidia-cublas nvidia-cuda-runtime" : "nvidia-nccl-cu13";
    throw new Error(
      `${what} needs ${missing}, which was not found${detail}; looked in: ${tried.join("; ")}. ` +
        `Install the NVIDIA wheels into a Python environment (pip install ${wheel}), ` +
        `or set ${envHint} to a folder with lib/${missing}`,
    );
  };
  // Preloads `missing`, first the files it needs in turn (depth-limited).
  const preload = (missing: string, depth: number): void => {
    const found = dirs().map((d) => join(d.dir, missing)).find((p) => existsSync(p));
    if (!found || preloaded.includes(found)) return fail(missing, "");
    preloaded.push(found);
    const failure = preloadLibrary(found);
    if (failure === null) return;
    const next = missingLibrary(failure);
    if (!next || depth > 4) return fail(missing, ` (found ${found}, but it failed to load: ${failure})`);
    preload(next, depth + 1);
    if (preloadLibrary(found) !== null) fail(missing, ` (found ${found}, but it failed to load: ${failure})`);
  };
  for (let attempt = 0; attempt < 8; attempt++) {
    let message: string;
    try {
      return open();
    } catch (e) {
      message = (e as Error).message;
    }
    const missing = missingLibrary(message);
    if (!missing) throw new Error(message);
    preload(missing, 0);
  }
  return open();
}
