// cuda.test.ts — the CUDA backend as a machine without a GPU sees it: it says
// it is unavailable and why, asking for the device fails with that reason,
// and when libfp8_cuda was built its symbols load and its argument checks
// answer without a driver. GPU correctness lives in test/cuda_gpu.test.ts.
import { describe, expect, test } from "bun:test";
import { cuda, Float8Error } from "../src/index.ts";
import { cudaLib, cudaLibraryPath } from "../src/ffi/index.ts";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const probe = cuda.probe();
const built = existsSync(cudaLibraryPath);
const gpu = probe.available;
if (gpu) console.log(`cuda.test.ts: a GPU is visible (${probe.reason}); the no-GPU checks are skipped, see cuda_gpu.test.ts`);
if (!built) console.log(`cuda.test.ts: libfp8_cuda is not built (${cudaLibraryPath}); the symbol checks are skipped`);

describe("cuda without a GPU", () => {
  test.skipIf(gpu)("isAvailable() is false and the probe names the missing piece", () => {
    expect(cuda.isAvailable()).toBe(false);
    expect(["library-missing", "no-driver", "driver-too-old", "no-device"]).toContain(probe.state);
    expect(probe.deviceCount).toBe(0);
    const piece = { "library-missing": /library not (built|loadable)/, "no-driver": /no driver/, "driver-too-old": /driver too old/, "no-device": /no device/ };
    expect(probe.reason).toMatch(piece[probe.state as keyof typeof piece]);
  });

  test.skipIf(gpu)("asking for the device throws a Float8Error carrying that reason", () => {
    let err: unknown = null;
    try {
      cuda.device(0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Float8Error);
    expect((err as Error).message).toContain("cuda.device(0): CUDA device requested but not available");
    expect((err as Error).message).toContain(probe.reason);
    expect(() => cuda.deviceInfo(0)).toThrow(/not available/);
  });

  test("a missing library is reported as 'library not built' with the path and how to build it", () => {
    const script =
      'import { cuda } from "./src/index.ts"; const p = cuda.probe(); ' +
      "let msg = ''; try { cuda.device(0); } catch (e) { msg = e.message; } " +
      "console.log(JSON.stringify({ state: p.state, reason: p.reason, msg }));";
    const proc = Bun.spawnSync([process.execPath, "-e", script], {
      cwd: join(import.meta.dir, ".."),
      env: { ...process.env, FLOAT8_CUDA_LIB: "/nonexistent/libfp8_cuda.so" },
    });
    expect(proc.exitCode).toBe(0);
    const out = JSON.parse(proc.stdout.toString().trim().split("\n").pop()!);
    expect(out.state).toBe("library-missing");
    expect(out.reason).toContain("library not built: libfp8_cuda not found at /nonexistent/libfp8_cuda.so");
    expect(out.reason).toContain("nvidia-cublas");
    expect(out.msg).toContain("library not built");
  });
});

describe("libfp8_cuda symbols (when built)", () => {
  test.skipIf(!built)("every fp8_cuda_* symbol of fp8.h loads", () => {
    const lib = cudaLib() as unknown as Record<string, unknown>;
    const names = Object.keys(lib).filter((k) => k.startsWith("fp8_cuda_"));
    expect(names.length).toBeGreaterThanOrEqual(36);
    for (const n of names) expect(typeof lib[n]).toBe("function");
  });

  test.skipIf(!built || gpu)("without a driver the probe reports it and never throws", () => {
    const [st, count, drv, rt] = [new Int32Array([-1]), new Int32Array([-1]), new Int32Array([-1]), new Int32Array([-1])];
    expect(cudaLib().fp8_cuda_probe(st, count, drv, rt)).toBe(0);
    expect(st[0]).toBeGreaterThan(0); // not FP8_CUDA_READY
    expect(count[0]).toBe(0);
    expect(rt[0]).toBeGreaterThanOrEqual(12000); // the runtime built in (CUDA 12 or 13)
    expect(String(cudaLib().fp8_cuda_last_error())).toMatch(/^fp8_cuda_probe: /);
  });

  test.skipIf(!built)("argument checks answer before touching CUDA, naming the function", () => {
    const L = cudaLib();
    const out = new BigUint64Array(1);
    expect(L.fp8_cuda_ctx_create(0, null)).toBe(-1);
    expect(String(L.fp8_cuda_last_error())).toBe("fp8_cuda_ctx_create: out is NULL");
    expect(L.fp8_cuda_malloc(null, 16, out)).toBe(-1);
    expect(String(L.fp8_cuda_last_error())).toBe("fp8_cuda_malloc: ctx is NULL");
    expect(L.fp8_cuda_quantize(null, null, 7, null, 0, 0, null)).toBe(-1);
    expect(String(L.fp8_cuda_last_error())).toMatch(/^fp8_cuda_quantize: fp8_dtype must be float8_e4m3fn or float8_e5m2, got unknown \(7\)/);
    expect(L.fp8_cuda_scaled_mm(null, null, 1, null, 3, null, 3, null, null, null, 0, 16, 16, 16, 0)).toBe(-1);
    expect(String(L.fp8_cuda_last_error())).toContain("cannot both be float8_e5m2");
    expect(L.fp8_cuda_ctx_destroy(null)).toBe(0);
    expect(L.fp8_cuda_graph_destroy(null)).toBe(0);
  });

  test.skipIf(!built)("the row-wise quantize and GEMM check their arguments before touching CUDA", () => {
    const L = cudaLib();
    const err = () => String(L.fp8_cuda_last_error());
    const scale = new Float32Array(4);
    expect(L.fp8_cuda_quantize_rowwise(null, null, scale, 7, null, 0, 4, 4, 0)).toBe(-1);
    expect(err()).toMatch(/^fp8_cuda_quantize_rowwise: fp8_dtype must be float8_e4m3fn or float8_e5m2, got unknown \(7\)/);
    expect(L.fp8_cuda_quantize_rowwise(null, null, scale, 2, null, 2, 4, 4, 0)).toBe(-1);
    expect(err()).toMatch(/^fp8_cuda_quantize_rowwise: src_dtype must be float32 or bfloat16, got float8_e4m3fn/);
    expect(L.fp8_cuda_quantize_rowwise(null, null, scale, 2, null, 0, -1, 4, 0)).toBe(-1);
    expect(err()).toBe("fp8_cuda_quantize_rowwise: rows and cols must be >= 0, got (-1, 4)");
    expect(L.fp8_cuda_quantize_rowwise(null, null, null, 2, null, 0, 4, 4, 0)).toBe(-1);
    expect(err()).toBe("fp8_cuda_quantize_rowwise: d_scale is NULL");
    expect(L.fp8_cuda_quantize_rowwise(null, null, scale, 2, null, 0, 4, 4, 0)).toBe(-1);
    expect(err()).toBe("fp8_cuda_quantize_rowwise: d_dst_fp8 is NULL with 16 elements");
    expect(L.fp8_cuda_quantize_rowwise(null, scale, scale, 2, scale, 0, 4, 4, 0)).toBe(-1);
    expect(err()).toBe("fp8_cuda_quantize_rowwise: ctx is NULL");

    expect(L.fp8_cuda_scaled_mm_rowwise(null, null, 1, null, 3, null, 3, null, null, null, 0, 16, 16, 16, 0)).toBe(-1);
    expect(err()).toMatch(/^fp8_cuda_scaled_mm_rowwise: a and b cannot both be float8_e5m2/);
    expect(L.fp8_cuda_scaled_mm_rowwise(null, null, 1, null, 2, null, 2, null, null, null, 0, 32, 24, 32, 0)).toBe(-1);
    expect(err()).toBe("fp8_cuda_scaled_mm_rowwise: fp8 GEMM needs K and N multiples of 16: a (32, 24) @ b (32, 24)^T");
    expect(L.fp8_cuda_scaled_mm_rowwise(null, scale, 1, scale, 2, scale, 2, scale, null, null, 0, 16, 16, 16, 0)).toBe(-1);
    expect(err()).toBe("fp8_cuda_scaled_mm_rowwise: d_scale_b is NULL");
    expect(L.fp8_cuda_scaled_mm_rowwise(null, scale, 2, scale, 2, scale, 2, scale, scale, null, 0, 16, 16, 16, 0)).toBe(-1);
    expect(err()).toMatch(/^fp8_cuda_scaled_mm_rowwise: c_dtype must be float32 or bfloat16/);
    expect(L.fp8_cuda_set_rowwise_gemm(null, 0)).toBe(-1);
    expect(err()).toBe("fp8_cuda_set_rowwise_gemm: ctx is NULL");
  });

  test.skipIf(!built || gpu)("creating a context without a driver fails as unsupported, naming the missing piece", () => {
    const out = new BigUint64Array(1);
    expect(cudaLib().fp8_cuda_ctx_create(0, out)).toBe(-3); // FP8_ERR_UNSUPPORTED
    expect(String(cudaLib().fp8_cuda_last_error())).toMatch(/^fp8_cuda_ctx_create: CUDA unavailable: fp8_cuda_probe: (no NVIDIA driver|NVIDIA driver found, but no GPU)/);
    expect(out[0]).toBe(0n);
  });
});

// The architectures of the nvcc build in build/ (issue 16): SASS for Hopper and both Blackwells, compute_90
// PTX for later GPUs, and no sm_90a (it would only add Hopper-only instructions no kernel uses).
const cudaFlags = join(import.meta.dir, "..", "build", "libfp8", "src", "cuda", "CMakeFiles", "fp8_cuda.dir", "flags.make");
describe.skipIf(!existsSync(cudaFlags))("libfp8_cuda build flags (when configured in build/)", () => {
  test("SASS for sm_90, sm_100 and sm_120, PTX for compute_90, no sm_90a", () => {
    const flags = /^CUDA_FLAGS = (.*)$/m.exec(readFileSync(cudaFlags, "utf8"))?.[1] ?? "";
    const gencodes = [...flags.matchAll(/-gencode=arch=(compute_\w+),code=(\w+)/g)].map((m) => `${m[1]}:${m[2]}`);
    expect(gencodes).toEqual(["compute_90:sm_90", "compute_100:sm_100", "compute_120:sm_120", "compute_90:compute_90"]);
    expect(flags).not.toContain("90a");
  });
});
