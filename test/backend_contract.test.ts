// Every public float8 function reaches a device only through its Backend
// (docs/architecture.md, "Layers and import rules" and "The device contract").
//
// A spy wraps the backends' methods and every native function of libfp8 (and
// libfp8_cuda when loaded): a native call made outside a backend method that is
// handed a pointer into the device's memory is a bypass, the bug where the CPU
// kernel ran on device pointers without a word. Each public function runs on
// each backend: the CPU, the emulated device (this machine's CPU behind the
// device code paths) and CUDA where a GPU is present.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { Float8Error } from "../src/errors.ts";
import { join } from "node:path";
import { cuda, float8, manualSeed, nn, randn, tidy, type Device, type Tensor } from "../src/index.ts";
import { lib, cudaLib, type NativePtr } from "../src/ffi/index.ts";
import { backendFor, cpuBackend, emulatedDeviceBackend, setBackend, type Backend } from "../src/tensor/backend/index.ts";

type AnyFn = (...a: unknown[]) => unknown;

/** Wraps backends and native symbol tables; records bypasses while armed. */
class Spy {
  depth = 0;
  backendCalls = 0;
  bypasses: string[] = [];
  private deviceMemory = new Map<number, number>(); // start -> nbytes of the backend under test
  private restore: (() => void)[] = [];

  wrapBackend(b: Backend, tracked: boolean): void {
    const obj = b as unknown as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      const orig = obj[key];
      // a group of kernels (blockKernels) is part of the backend too
      if (orig !== null && typeof orig === "object" && !ArrayBuffer.isView(orig)) this.wrapBackend(orig as Backend, tracked);
      if (typeof orig !== "function") continue;
      obj[key] = (...args: unknown[]) => {
        this.depth++;
        this.backendCalls++;
        try {
          const r = (orig as AnyFn)(...args);
          if (tracked && key === "alloc") this.deviceMemory.set(r as number, args[0] as number);
          if (tracked && key === "free") this.deviceMemory.delete(args[0] as number);
          return r;
        } finally {
          this.depth--;
        }
      };
      this.restore.push(() => (obj[key] = orig));
    }
  }

  wrapNative(table: Record<string, unknown>, label: string): void {
    for (const name of Object.keys(table)) {
      const orig = table[name];
      if (typeof orig !== "function") continue;
      table[name] = (...args: unknown[]) => {
        if (this.depth === 0 && args.some((a) => typeof a === "number" && this.isDeviceMemory(a)) && !this.hostHelper()) {
          this.bypasses.push(`${label}.${name} called outside a backend with ${this.device} memory`);
        }
        return (orig as AnyFn)(...args);
      };
      this.restore.push(() => (table[name] = orig));
    }
  }

  constructor(readonly device: Device) {}

  /**
   * On the CPU, the tensor layer itself converts between JS arrays and host
   * tensors (tensor(), toArray()) with libfp8's convert: memory JS may view, so
   * not a bypass. Anything else that calls native code directly is.
   */
  private hostHelper(): boolean {
    if (this.device !== "cpu") return false;
    const frames = (new Error().stack ?? "").split("\n").filter((l) => l.includes("/src/"));
    return frames.length > 0 && frames[0].includes("/src/tensor/tensor.ts");
  }

  private isDeviceMemory(p: number): boolean {
    for (const [start, n] of this.deviceMemory) if (p >= start && p < start + Math.max(n, 1)) return true;
    return false;
  }

  /** Runs fn; returns the bypasses and backend calls it made. */
  observe(fn: () => void): { bypasses: string[]; backendCalls: number } {
    this.bypasses = [];
    this.backendCalls = 0;
    tidy(fn);
    return { bypasses: [...new Set(this.bypasses)], backendCalls: this.backendCalls };
  }

  dispose(): void {
    for (const r of this.restore.reverse()) r();
    this.restore = [];
  }
}

const x32 = (device: Device, seed: number, shape = [32, 64], dtype: "float32" | "bfloat16" = "bfloat16"): Tensor => {
  manualSeed(seed);
  return randn(shape, { dtype, device });
};

/** Runs fn on the CPU; on a device, fn must refuse with a Float8Error (CPU-only features). */
function cpuOnly(d: Device, fn: () => void): void {
  if (d === "cpu") return fn();
  x32(d, 23); // a device tensor, so the backend is exercised either way
  expect(fn).toThrow(Float8Error);
}

/** One run of each public float8 function that takes or makes tensors. */
const CASES: Record<string, (device: Device) => void> = {
  toFloat8Saturated: (d) => void float8.toFloat8Saturated(x32(d, 1), 4, "float8_e4m3fn"),
  toFloat8SaturatedWithDecoded: (d) => {
    const [, scale] = float8.tensorToScale(x32(d, 2), "float8_e4m3fn");
    float8.toFloat8SaturatedWithDecoded(x32(d, 2), scale, "float8_e4m3fn");
  },
  tensorToAmax: (d) => void float8.tensorToAmax(x32(d, 3)),
  tensorToScale: (d) => void float8.tensorToScale(x32(d, 4), "float8_e5m2"),
  hpTensorToFloat8Dynamic: (d) => void float8.hpTensorToFloat8Dynamic(x32(d, 5), "float8_e4m3fn", "input", true),
  hpTensorAndScaleToFloat8: (d) => {
    const [amax, scale] = float8.tensorToScale(x32(d, 6), "float8_e4m3fn");
    float8.hpTensorAndScaleToFloat8(x32(d, 6), scale, "float8_e4m3fn", "weight", false, amax);
  },
  hpTensorToFloat8Axiswise: (d) => void float8.hpTensorToFloat8Axiswise(x32(d, 7), "float8_e4m3fn", "input"),
  "Float8Tensor.toOriginalPrecision": (d) => void float8.hpTensorToFloat8Dynamic(x32(d, 8), "float8_e4m3fn", "input").toOriginalPrecision(),
  computeError: (d) => void float8.computeError(x32(d, 9), x32(d, 10)),
  fp8TensorStatistics: (d) => void float8.fp8TensorStatistics(float8.hpTensorToFloat8Dynamic(x32(d, 11), "float8_e4m3fn", "input")),
  scaledMm: (d) => {
    const a = float8.hpTensorToFloat8Dynamic(x32(d, 12), "float8_e4m3fn", "input");
    const b = float8.hpTensorToFloat8Dynamic(x32(d, 13, [48, 64]), "float8_e4m3fn", "weight");
    float8.scaledMm(a, b, { transposeB: true, outDtype: "bfloat16" });
  },
  // Block casts run on every device (cuda: libfp8/src/cuda/block_kernels.cu); float8 inference runs on the
  // CPU only: on a device it refuses with a Float8Error before any kernel runs (and so cannot hand device
  // memory to the CPU's kernels).
  quantizeBlockwise: (d) => void float8.quantizeBlockwise(x32(d, 18, [128, 256], "float32"), 1, 128).dequantize(),
  "quantizeMx + collectBlockCastStats": (d) => {
    const x = x32(d, 19, [32, 64], "float32");
    const q = float8.quantizeMx(x, 32, "rceil");
    expect(float8.collectBlockCastStats(x, q, 0).blocks).toBeGreaterThan(0);
    q.dequantize("bfloat16");
  },
  "quantizeForInference + Float8InferenceLinear (GEMV and oneDNN paths)": (d) => cpuOnly(d, () => {
    manualSeed(20);
    const m = new nn.Sequential(new nn.Linear(64, 48)).to({ dtype: "bfloat16", device: d });
    float8.quantizeForInference(m, { recipe: "rowwise", activation: "none" });
    m.forward(x32(d, 21, [float8.GEMV_MAX_M, 64]));
    m.forward(x32(d, 22, [float8.GEMV_MAX_M + 8, 64]));
    m.dispose();
  }),
  "Float8Linear + convertToFloat8Training + enableStats/stats + syncFloat8AmaxAndScaleHistory": (d) => {
    for (const recipe of ["dynamic", "delayed"] as const) {
      manualSeed(14);
      const m = new nn.Sequential(new nn.Linear(64, 48), new nn.Linear(48, 32)).to({ dtype: "bfloat16" });
      const cast = new float8.CastConfig({ scalingType: recipe === "dynamic" ? float8.ScalingType.DYNAMIC : float8.ScalingType.DELAYED });
      float8.convertToFloat8Training(m, { config: new float8.Float8LinearConfig({ castConfigInput: cast, castConfigWeight: cast, castConfigGradOutput: cast }) });
      m.to({ device: d });
      float8.enableStats(m, { every: 1 });
      const x = x32(d, 15);
      x.requiresGrad = true;
      m.forward(x).sum().backward();
      float8.syncFloat8AmaxAndScaleHistory(m);
      expect(float8.stats(m).length).toBeGreaterThan(0);
      m.dispose();
    }
  },
};

/** Public float8 exports that take no tensors (configs, numbers, models of hardware), and why. */
const NOT_TENSOR_FUNCTIONS: Record<string, string> = {
  ScalingType: "enum", ScalingGranularity: "enum", CastConfig: "config", DelayedScalingConfig: "config",
  Float8GemmConfig: "config", Float8LinearConfig: "config", RoleScaling: "config holder",
  Float8Tensor: "class; its tensor method runs above (toOriginalPrecision)", Float8Linear: "module; run above",
  amaxToScale: "numbers in, number out", roundScaleDownToPowerOf2: "number in, number out", checkInnerDim: "shape check",
  float8Layers: "lists modules", disableStats: "flag", statsTable: "formats stats()", predictLinearSpeedup: "roofline model",
  explainDecision: "roofline model", deviceSpec: "roofline model", H100_SXM: "constant", H200: "constant",
  autoFilterForRecipe: "times GEMMs through nn.Linear/Float8Linear (run above)", deviceGemmTimer: "times GEMMs through the public ops",
  measureMemcpyBandwidth: "host memcpy timing",
  BlockScalingConfig: "config", BlockFloat8Tensor: "class; its tensor methods run above (dequantize)",
  Float8InferenceLinear: "module; run above (quantizeForInference)", GEMV_MAX_M: "constant",
};
const COVERED_BY_LINEAR_CASE = ["Float8Linear", "convertToFloat8Training", "enableStats", "stats", "syncFloat8AmaxAndScaleHistory"];
const COVERED_BY_BLOCK_CASES = ["quantizeMx", "collectBlockCastStats", "quantizeForInference"];

const root = join(import.meta.dir, "..");
const emuLib = join(root, "build", "libfp8_cuda_emu.so");

describe("the device contract: public float8 functions go through the backend", () => {
  // The CUDA backend itself (src/tensor/backend/cuda.ts) on libfp8_cuda_emu, this machine's CPU
  // behind the .cu sources: this file again in a child process with FLOAT8_CUDA_LIB pointing there.
  test.skipIf(!existsSync(emuLib) || process.env.FLOAT8_CUDA_LIB !== undefined)("the cuda backend on libfp8_cuda_emu passes these tests too", () => {
    const p = Bun.spawnSync([process.execPath, "test", "--timeout", "120000", "test/backend_contract.test.ts"], {
      cwd: root, env: { ...process.env, FLOAT8_CUDA_LIB: emuLib }, stdout: "pipe", stderr: "pipe",
    });
    const out = p.stdout.toString() + p.stderr.toString();
    const cudaPassed = out.split("\n").filter((l) => l.startsWith("(pass)") && l.includes("> on cuda >")).length;
    expect({ exitCode: p.exitCode, cudaPassed: cudaPassed >= Object.keys(CASES).length + 2 }).toEqual({ exitCode: 0, cudaPassed: true });
  }, 300000);

  test("every public float8 export is either run here on every backend or listed as tensor-free", () => {
    const covered = new Set([...Object.keys(CASES), ...COVERED_BY_LINEAR_CASE, ...COVERED_BY_BLOCK_CASES]);
    const missing = Object.keys(float8).filter((k) => !covered.has(k) && !(k in NOT_TENSOR_FUNCTIONS));
    // a new public function must get a case in CASES (or a reason in NOT_TENSOR_FUNCTIONS)
    expect(missing).toEqual([]);
  });

  for (const kind of ["cpu", "emulated", "cuda"] as const) {
    const available = kind !== "cuda" || cuda.isAvailable();
    describe.skipIf(!available)(`on ${kind === "emulated" ? "the emulated device" : kind}`, () => {
      const device: Device = kind === "cpu" ? "cpu" : "cuda";
      let spy: Spy;
      beforeAll(() => {
        spy = new Spy(device);
        spy.wrapBackend(cpuBackend, kind === "cpu");
        if (kind === "emulated") {
          const emu = emulatedDeviceBackend("cuda");
          spy.wrapBackend(emu, true);
          setBackend("cuda", emu);
        } else if (kind === "cuda") {
          spy.wrapBackend(backendFor("cuda", "test"), true);
          spy.wrapNative(cudaLib() as unknown as Record<string, unknown>, "libfp8_cuda");
        }
        spy.wrapNative(lib as unknown as Record<string, unknown>, "libfp8");
      });
      afterAll(() => {
        spy.dispose();
        if (kind === "emulated") setBackend("cuda", null);
      });

      for (const [name, run] of Object.entries(CASES)) {
        test(name, () => {
          const { bypasses, backendCalls } = spy.observe(() => run(device));
          expect(bypasses).toEqual([]);
          expect(backendCalls).toBeGreaterThan(0);
        });
      }

      if (kind !== "cpu") {
        test("toFloat8SaturatedWithDecoded on the device gives the CPU's fp8 bytes and bf16 decode", () => {
          tidy(() => {
            const x = x32("cpu", 17, [32, 64], "float32");
            const scale = float8.tensorToScale(x, "float8_e4m3fn")[1];
            const [data, decoded] = float8.toFloat8SaturatedWithDecoded(x, scale, "float8_e4m3fn");
            const [dData, dDecoded] = float8.toFloat8SaturatedWithDecoded(x.to({ device }), scale.to({ device }), "float8_e4m3fn");
            expect(dData.device).toBe(device);
            expect(dData.to({ device: "cpu" }).bytes()).toEqual(data.bytes());
            expect(dDecoded.to({ device: "cpu" }).bytes()).toEqual(decoded.bytes());
            expect(() => float8.toFloat8SaturatedWithDecoded(x.to({ device }), scale, "float8_e4m3fn")).toThrow(/toFloat8Saturated: operands must be on one device, got \[32, 64\] \w+ on cuda, \[1\] float32 on cpu/);
          });
        });

        test("the spy sees a bypass: a CPU kernel called directly on device memory", () => {
          const { bypasses } = spy.observe(() => {
            const t = x32(device, 16);
            lib.fp8_cpu_amax(new Float32Array(1), t.ptrFor("test") as NativePtr, 1, t.numel);
          });
          expect(bypasses).toEqual([`libfp8.fp8_cpu_amax called outside a backend with cuda memory`]);
        });
      }
    });
  }
});
