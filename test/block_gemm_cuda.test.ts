// block_gemm_cuda.test.ts — the block-scaled recipes' GEMMs on device "cuda"
// (fp8_cuda_scaled_mm_blockwise / _mx through the cuda backend): which path
// each takes on this device (cuBLASLt's block scale modes: 1x128 / 128x128 on
// sm_90, MXFP8 on sm_100+; elsewhere the dequantize + f32 GEMM fallback), that
// a fallback is said once with a warning and is queryable (cuda.blockGemmInfo),
// the forced paths, and Float8Linear's forward and backward against the same
// program on the CPU. With a GPU (bench/gpu/check.sh) it runs there; without
// one it runs itself again on libfp8_cuda_emu (the .cu sources on the CPU
// emulator, which reports compute capability 9.0, so MXFP8 falls back).
import { afterEach, describe, expect, spyOn, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { cuda, float8, manualSeed, nn, randn, type Tensor } from "../src/index.ts";
import { Float8Error } from "../src/errors.ts";
import { sqnr } from "./helpers/device_cases.ts";

const root = join(import.meta.dir, "..");
const emuLib = join(root, "build", "libfp8_cuda_emu.so");
const available = cuda.isAvailable();

describe.skipIf(available || !existsSync(emuLib) || process.env.FLOAT8_CUDA_LIB !== undefined)("without a GPU", () => {
  test("this file passes on libfp8_cuda_emu", () => {
    const p = Bun.spawnSync([process.execPath, "test", "--timeout", "120000", "test/block_gemm_cuda.test.ts"], {
      cwd: root, env: { ...process.env, FLOAT8_CUDA_LIB: emuLib }, stdout: "pipe", stderr: "pipe",
    });
    const out = p.stdout.toString() + p.stderr.toString();
    const passed = out.split("\n").filter((l) => l.startsWith("(pass)") && l.includes("block GEMMs on cuda")).length;
    if (p.exitCode !== 0 || passed < 4) throw new Error(`exit ${p.exitCode}, ${passed} passed:\n${out.slice(-4000)}`);
  }, 300000);
});

/** One Float8Linear (recipe) step on `device`: output, input grad, weight grad, all float32. */
function linearStep(recipe: "blockwise" | "mxfp8", device: "cpu" | "cuda", [M, K, N] = [48, 256, 160]): Tensor[] {
  manualSeed(7);
  const lin = float8.Float8Linear.fromFloat(new nn.Linear(K, N), float8.Float8LinearConfig.fromRecipeName(recipe));
  const x = randn([M, K], { std: 2 }), g = randn([M, N]);
  lin.to({ device });
  const xd = x.to({ device }), gd = g.to({ device });
  xd.requiresGrad = true;
  const y = lin.forward(xd);
  y.backward(gd);
  return [y, xd.grad!, lin.weight.grad!].map((t) => t.to({ device: "cpu" }));
}

describe.skipIf(!available)("block GEMMs on cuda", () => {
  const cc = available ? cuda.deviceInfo(cuda.currentDevice()).computeCapability[0] : 0;
  afterEach(() => cuda.setBlockGemm("auto"));

  test("mxfp8: cuBLASLt's VEC32_UE8M0 on sm_100+, else the dequantize path, said once and queryable", () => {
    const warn = spyOn(console, "warn").mockImplementation(() => {});
    try {
      for (let i = 0; i < 3; i++) linearStep("mxfp8", "cuda");
      const info = cuda.blockGemmInfo();
      const fallbackWarnings = warn.mock.calls.filter((c) => String(c[0]).includes("mxfp8 GEMMs on cuda run as dequantize"));
      if (cc >= 10) {
        expect(info).toEqual({ path: "cublaslt", reason: "" });
        expect(fallbackWarnings.length).toBe(0);
      } else {
        expect(info.path).toBe("dequant");
        expect(info.reason).toContain("needs sm_100 or later");
        // said once per process: at most once here (an earlier test file in this process may have said it) ...
        expect(fallbackWarnings.length).toBeLessThanOrEqual(1);
        // ... and exactly once in a fresh process running three steps of three GEMMs each
        const script = `import { cuda, float8, nn, randn } from "./src/index.ts";
          const lin = float8.Float8Linear.fromFloat(new nn.Linear(64, 32), float8.Float8LinearConfig.fromRecipeName("mxfp8")).to({ device: "cuda" });
          for (let i = 0; i < 3; i++) { const x = randn([16, 64]).to({ device: "cuda" }); x.requiresGrad = true; lin.forward(x).sum().backward(); }
          console.log("path " + cuda.blockGemmInfo().path);`;
        const p = Bun.spawnSync([process.execPath, "-e", script], { cwd: root, env: process.env, stdout: "pipe", stderr: "pipe" });
        const out = p.stdout.toString() + p.stderr.toString();
        expect(p.exitCode).toBe(0);
        expect(out).toContain("path dequant");
        expect(out.split("mxfp8 GEMMs on cuda run as dequantize").length - 1).toBe(1);
      }
    } finally {
      warn.mockRestore();
    }
  });

  test("blockwise: cuBLASLt's VEC128_32F / BLK128x128_32F on sm_90, else the dequantize path", () => {
    linearStep("blockwise", "cuda");
    const info = cuda.blockGemmInfo();
    if (cc === 9) expect(info).toEqual({ path: "cublaslt", reason: "" });
    else expect(info).toEqual({ path: "dequant", reason: expect.stringContaining("Hopper (sm_90)") });
  });

  for (const recipe of ["blockwise", "mxfp8"] as const) {
    test(`${recipe}: Float8Linear forward and backward on cuda match the CPU within SQNR >= 80 dB (bit-identical casts; the f32 accumulation order differs)`, () => {
      const cpu = linearStep(recipe, "cpu");
      for (const path of ["auto", "dequant"] as const) {
        cuda.setBlockGemm(path);
        const dev = linearStep(recipe, "cuda");
        const got = cpu.map((c, i) => sqnr(c.toArray(), dev[i].toArray()));
        console.log(`${recipe} ${path} (${cuda.blockGemmInfo().path}): SQNR of y, dx, dw vs the CPU: ${got.map((s) => s.toFixed(1)).join(", ")} dB`);
        got.forEach((s, i) => {
          if (!(s >= 80)) throw new Error(`${recipe} ${path}: result ${i}: SQNR ${s.toFixed(1)} dB < 80 dB`);
        });
        if (path === "dequant") expect(cuda.blockGemmInfo()).toEqual({ path: "dequant", reason: expect.stringContaining("fp8_cuda_set_block_gemm") });
      }
    });
  }

  test("forcing cuBLASLt where the device lacks the mode is a Float8Error naming it; bad paths are refused", () => {
    cuda.setBlockGemm("cublaslt");
    const missing = cc >= 10 ? "blockwise" : "mxfp8";
    expect(() => linearStep(missing, "cuda")).toThrow(Float8Error);
    expect(() => linearStep(missing, "cuda")).toThrow(cc >= 10 ? /Hopper \(sm_90\)/ : /needs sm_100 or later/);
    expect(() => cuda.setBlockGemm("fast" as never)).toThrow(/expected "auto", "cublaslt" or "dequant"/);
  });
});
