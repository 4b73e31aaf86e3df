// The float8 roofline model (src/float8/roofline.ts), its heatmap (src/float8/roofline_svg.ts)
// and the bench/roofline.ts command. Pure arithmetic: runs anywhere, no device needed.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CPU,
  type DeviceSpec,
  type GemmShape,
  H100_SXM,
  H200,
  deviceSpec,
  explainDecision,
  float8OverheadKernels,
  float8OverheadTime,
  gemmTime,
  predictLinearSpeedup,
} from "../src/float8/roofline.ts";
import { renderSpeedupHeatmapSvg, speedupColor } from "../src/float8/roofline_svg.ts";
import { llamaShapes, rooflineCsv, rooflineHeatmap, runRoofline, sweepShapes } from "../bench/roofline.ts";

const SPECS: readonly DeviceSpec[] = [H100_SXM, H200];
const speedup = (M: number, K: number, N: number, spec: DeviceSpec) => predictLinearSpeedup(M, K, N, spec).speedup;

describe("predicted speedup over the shape", () => {
  test("is non-decreasing when M, K, N are scaled up together on the power-of-two sweep grid", () => {
    const exponent = fc.integer({ min: 8, max: 17 });
    fc.assert(
      fc.property(exponent, exponent, exponent, fc.integer({ min: 1, max: 3 }), fc.constantFrom(...SPECS), (m, k, n, up, spec) => {
        const f = 2 ** up;
        expect(speedup(2 ** m * f, 2 ** k * f, 2 ** n * f, spec)).toBeGreaterThanOrEqual(speedup(2 ** m, 2 ** k, 2 ** n, spec));
      }),
    );
  });

  test("is non-decreasing in the size of square shapes", () => {
    const size = fc.integer({ min: 1, max: 200_000 });
    fc.assert(
      fc.property(size, size, fc.constantFrom(...SPECS), (a, b, spec) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        expect(speedup(hi, hi, hi, spec)).toBeGreaterThanOrEqual(speedup(lo, lo, lo, spec));
      }),
    );
  });

  test("approaches 2x (between 1.8 and 2.0) as M, K, N grow very large", () => {
    for (const spec of SPECS) {
      const s = speedup(65536, 65536, 65536, spec);
      expect(s).toBeGreaterThan(1.8);
      expect(s).toBeLessThan(2.0);
    }
  });

  test("never exceeds the ratio of fp8 to bf16 peak FLOP/s", () => {
    const dim = fc.integer({ min: 1, max: 1 << 18 });
    fc.assert(
      fc.property(dim, dim, dim, fc.constantFrom(...SPECS), (M, K, N, spec) => {
        expect(speedup(M, K, N, spec)).toBeLessThanOrEqual(spec.fp8PeakFlopsPerSec! / spec.bf16PeakFlopsPerSec!);
      }),
    );
  });

  test("is below 1 for a tiny shape (16, 16, 16)", () => {
    for (const spec of SPECS) expect(speedup(16, 16, 16, spec)).toBeLessThan(1);
  });
});

describe("the seed's worked examples", () => {
  test("1024, 2048, 1024 is predicted slower in float8 (torchao measured 0.80x on H100)", () => {
    for (const spec of SPECS) {
      const p = predictLinearSpeedup(1024, 2048, 1024, spec);
      expect(p.speedup).toBeLessThan(1);
      expect(p.useFloat8).toBe(false);
    }
  });

  test("4096, 8192, 16384 is predicted faster in float8 (torchao measured 1.39x on H100)", () => {
    for (const spec of SPECS) {
      const p = predictLinearSpeedup(4096, 8192, 16384, spec);
      expect(p.speedup).toBeGreaterThan(1);
      expect(p.useFloat8).toBe(true);
    }
  });
});

describe("gemm time", () => {
  test("of a large square gemm is its FLOPs at the achievable peak rate", () => {
    const n = 8192;
    const expected = (2 * n ** 3) / (H100_SXM.bf16PeakFlopsPerSec! * H100_SXM.achievableGemmFraction);
    expect(gemmTime(n, n, n, "bf16", H100_SXM)).toBeCloseTo(expected, 12);
  });

  test("of a skinny gemm is its bytes at the achievable bandwidth", () => {
    const [M, K, N] = [65536, 16, 65536];
    const bytes = (M * K + K * N) * 1 + M * N * 2; // fp8 operands, bf16 output
    const expected = bytes / (H200.memBandwidthBytesPerSec! * H200.achievableMemBandwidthFraction);
    expect(gemmTime(M, K, N, "fp8", H200)).toBeCloseTo(expected, 12);
  });

  test("is never shorter than one kernel launch", () => {
    expect(gemmTime(1, 1, 1, "fp8", H100_SXM)).toBe(H100_SXM.kernelLaunchSec);
  });
});

describe("fp8 overhead", () => {
  test("counts torchao's bytes for dynamic scaling: input 4MK, weight 6KN, grad_output 4MN", () => {
    const [M, K, N] = [3, 5, 7];
    const bytesOf = (tensor: string) =>
      float8OverheadKernels(M, K, N)
        .filter((k) => k.tensor === tensor)
        .reduce((sum, k) => sum + k.readBytes + k.writeBytes, 0);
    // amax read (fused into the previous op for input and grad_output) + cast: read bf16, write fp8 twice
    expect(bytesOf("input")).toBe(4 * M * K);
    expect(bytesOf("weight")).toBe(2 * K * N + 4 * K * N);
    expect(bytesOf("grad_output")).toBe(4 * M * N);
  });

  test("counts the amax read of input and grad_output when they are not fused with the previous op", () => {
    const bytes = (fuseWithPreviousOp: boolean) =>
      float8OverheadKernels(64, 128, 256, { fuseWithPreviousOp }).reduce((s, k) => s + k.readBytes + k.writeBytes, 0);
    expect(bytes(false) - bytes(true)).toBe(2 * 64 * 128 + 2 * 64 * 256);
  });

  test("is smaller for delayed scaling than for dynamic scaling at a large shape", () => {
    const delayed = { input: "delayed", weight: "delayed", gradOutput: "delayed" } as const;
    expect(float8OverheadTime(8192, 8192, 8192, H100_SXM, { scaling: delayed })).toBeLessThan(float8OverheadTime(8192, 8192, 8192, H100_SXM));
  });

  test("is shorter on the H200 than on the H100 because only bandwidth differs", () => {
    expect(float8OverheadTime(4096, 8192, 16384, H200)).toBeLessThan(float8OverheadTime(4096, 8192, 16384, H100_SXM));
  });
});

describe("measured gemm times", () => {
  const fixedTimer = (gemm: GemmShape) => ({ bf16Sec: gemm.M * 1e-9, fp8Sec: gemm.M * 0.5e-9 });

  test("replace the roofline gemm times for all three gemms of the Linear", () => {
    const seen: GemmShape[] = [];
    const p = predictLinearSpeedup(100, 200, 300, H100_SXM, {
      measureGemmTimes: (g) => {
        seen.push(g);
        return fixedTimer(g);
      },
    });
    expect(seen).toEqual([
      { role: "output", M: 100, K: 200, N: 300 },
      { role: "grad_input", M: 100, K: 300, N: 200 },
      { role: "grad_weight", M: 200, K: 100, N: 300 },
    ]);
    expect(p.strategy).toBe("benchmarks");
    expect(p.bf16Time).toBeCloseTo((100 + 100 + 200) * 1e-9, 18);
    expect(p.overheadTime).toBe(float8OverheadTime(100, 200, 300, H100_SXM));
  });

  test("are required by the benchmarks strategy", () => {
    expect(() => predictLinearSpeedup(64, 64, 64, H100_SXM, { strategy: "benchmarks" })).toThrow(/measureGemmTimes/);
  });

  test("must be positive seconds", () => {
    expect(() => predictLinearSpeedup(64, 64, 64, H100_SXM, { measureGemmTimes: () => ({ bf16Sec: 0, fp8Sec: 1 }) })).toThrow(/bf16Sec.*output gemm/);
  });

  test("let the CPU be modeled once its memory bandwidth is measured too", () => {
    const cpu = { ...CPU, memBandwidthBytesPerSec: 20e9 };
    const p = predictLinearSpeedup(256, 256, 256, cpu, { measureGemmTimes: fixedTimer });
    expect(p.overheadTime).toBeGreaterThan(0);
    expect(() => predictLinearSpeedup(256, 256, 256, CPU, { measureGemmTimes: fixedTimer })).toThrow(/memBandwidthBytesPerSec/);
  });
});

describe("device specs", () => {
  test("the roofline refuses the CPU, which has no peak rates", () => {
    expect(() => predictLinearSpeedup(1024, 1024, 1024, CPU)).toThrow(/no peak rates for device 'cpu'.*benchmarks/);
  });

  test("an unknown device name is an error that lists the known ones", () => {
    expect(() => deviceSpec("a100")).toThrow(/unknown device 'a100'; known devices: h100, h200, cpu/);
  });

  test("dims that are not positive integers are an error naming them", () => {
    expect(() => predictLinearSpeedup(0, 2, 3, H100_SXM)).toThrow(/\(0, 2, 3\)/);
  });
});

test("explainDecision states the decision, the speedup and the times", () => {
  const line = explainDecision(predictLinearSpeedup(1024, 2048, 1024, H100_SXM));
  expect(line).toMatch(/^M=1024 K=2048 N=1024 on H100 SXM: keep bf16, predicted 0\.\d\dx \(roofline: bf16 gemms .* us vs fp8 gemms .* us \+ amax\/cast .* us\)$/);
  expect(line).not.toContain("\n");
});

function parseCsv(text: string): Record<string, string>[] {
  const [header, ...lines] = text.trimEnd().split("\n");
  const names = header!.split(",");
  return lines.map((line) => {
    const fields = line.split(",");
    expect(fields.length).toBe(names.length);
    return Object.fromEntries(names.map((n, i) => [n, fields[i]!]));
  });
}

describe("CSV output", () => {
  test("parses back to one row per shape with the predicted times and speedup", () => {
    const rows = runRoofline(llamaShapes(), H100_SXM, { strategy: "roofline" });
    const parsed = parseCsv(rooflineCsv(rows));
    expect(parsed.map((r) => r.name)).toEqual(["wqkv", "w0", "w13", "w2"]);
    parsed.forEach((r, i) => {
      const p = rows[i]!.roofline!;
      expect([Number(r.M), Number(r.K), Number(r.N)]).toEqual([p.M, p.K, p.N]);
      expect(Number(r.r_bf16_gemm_s)).toBe(p.bf16Time);
      expect(Number(r.r_fp8_total_s)).toBe(p.fp8Time + p.overheadTime);
      expect(Number(r.r_speedup)).toBe(p.speedup);
    });
    expect(Object.keys(parsed[0]!).some((k) => k.startsWith("b_"))).toBe(false);
  });

  test("adds measured columns when gemms were measured", () => {
    const rows = runRoofline([{ name: "custom", M: 512, K: 512, N: 512 }], H200, {
      strategy: "benchmarks",
      measureGemmTimes: () => ({ bf16Sec: 1e-5, fp8Sec: 6e-6 }),
    });
    const [row] = parseCsv(rooflineCsv(rows));
    expect(Number(row!.b_bf16_gemm_s)).toBeCloseTo(3e-5, 15);
    expect(Number(row!.r_speedup)).toBe(rows[0]!.roofline!.speedup);
  });
});

// A minimal well-formedness check: every tag closes, in order.
function expectWellFormedXml(xml: string): void {
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = m;
    if (selfClosing) continue;
    if (closing) expect(stack.pop()).toBe(name!);
    else stack.push(name!);
  }
  expect(stack).toEqual([]);
}

describe("SVG heatmap", () => {
  test("of the sweep is well-formed with one rect per cell of the M x (K = N) grid", () => {
    const heatmap = rooflineHeatmap(runRoofline(sweepShapes(), H100_SXM, { strategy: "roofline" }), "m-by-kn", "sweep");
    const svg = renderSpeedupHeatmapSvg(heatmap);
    expect(svg.startsWith("<svg ")).toBe(true);
    expectWellFormedXml(svg);
    expect(heatmap.rowLabels.length).toBe(7);
    expect(heatmap.colLabels.length).toBe(7);
    expect(svg.match(/<rect class="cell"/g)?.length).toBe(49);
  });

  test("of K x N at fixed M keeps only that M", () => {
    const heatmap = rooflineHeatmap(runRoofline(sweepShapes(), H200, { strategy: "roofline" }), "k-by-n", "sweep", 4096);
    expect(heatmap.title).toContain("M = 4096");
    expect(heatmap.cells.flat().every((c) => c !== null)).toBe(true);
    expect(renderSpeedupHeatmapSvg(heatmap).match(/<rect class="cell"/g)?.length).toBe(49);
  });

  test("labels each cell 'pred / actual' when measured values are given", () => {
    const svg = renderSpeedupHeatmapSvg({
      title: "t", rowAxis: "M", colAxis: "K = N", rowLabels: ["1024"], colLabels: ["2048", "4096"],
      cells: [[{ predicted: 0.83, actual: 0.8 }, { predicted: 1.5 }]],
    });
    expect(svg).toContain(">0.83 / 0.80<");
    expect(svg).toContain(">1.50<");
  });

  test("escapes text so titles with markup characters stay well-formed", () => {
    const svg = renderSpeedupHeatmapSvg({ title: "a < b & c", rowAxis: "M", colAxis: "N", rowLabels: ["1"], colLabels: ["1"], cells: [[{ predicted: 1 }]] });
    expect(svg).toContain("a &lt; b &amp; c");
    expectWellFormedXml(svg);
  });

  test("rejects cells that do not match the labels", () => {
    expect(() => renderSpeedupHeatmapSvg({ title: "t", rowAxis: "M", colAxis: "N", rowLabels: ["1", "2"], colLabels: ["1"], cells: [[{ predicted: 1 }]] })).toThrow(/2 rows x 1 columns/);
  });

  test("colours diverge at 1.0: white at break-even, red below, green above", () => {
    expect(speedupColor(1)).toBe("#f7f7f7");
    const [r0, g0] = [1, 3].map((i) => parseInt(speedupColor(0.5).slice(i, i + 2), 16));
    const [r2, g2] = [1, 3].map((i) => parseInt(speedupColor(2).slice(i, i + 2), 16));
    expect(r0!).toBeGreaterThan(g0!);
    expect(g2!).toBeGreaterThan(r2!);
  });
});

describe("bench/roofline.ts command", () => {
  const cli = (args: string[]) => Bun.spawnSync(["bun", join(import.meta.dir, "../bench/roofline.ts"), ...args], { stdout: "pipe", stderr: "pipe" });

  test("writes CSV and SVG for a custom shape", () => {
    const dir = mkdtempSync(join(tmpdir(), "roofline-"));
    const result = cli(["--shape-gen", "custom", "--M", "4096", "--K", "8192", "--N", "16384", "-o", join(dir, "out.csv"), "--svg", join(dir, "out.svg")]);
    expect(result.exitCode).toBe(0);
    const [row] = parseCsv(readFileSync(join(dir, "out.csv"), "utf8"));
    expect(Number(row!.r_speedup)).toBe(speedup(4096, 8192, 16384, H100_SXM));
    expect(readFileSync(join(dir, "out.svg"), "utf8").match(/<rect class="cell"/g)?.length).toBe(1);
  });

  test("--measure-actual times the real layers and the heatmap shows predicted / actual", () => {
    const dir = mkdtempSync(join(tmpdir(), "roofline-"));
    const result = cli(["--device", "cpu", "--gemm-time-strategy", "benchmarks", "--shape-gen", "custom", "--M", "64", "--K", "128", "--N", "64",
      "--measure-actual", "-o", join(dir, "out.csv"), "--svg", join(dir, "out.svg")]);
    expect(result.exitCode).toBe(0);
    const [row] = parseCsv(readFileSync(join(dir, "out.csv"), "utf8"));
    const actual = Number(row!.actual_speedup);
    expect(Number.isFinite(actual) && actual > 0).toBe(true);
    const svg = readFileSync(join(dir, "out.svg"), "utf8");
    expect(svg).toContain(`/ ${actual.toFixed(2)}`);
    expect(svg).toContain("predicted / actual");
  });

  test("the benchmarks strategy measures the GEMMs on this CPU", () => {
    const dir = mkdtempSync(join(tmpdir(), "roofline-"));
    const result = cli(["--device", "cpu", "--gemm-time-strategy", "benchmarks", "--shape-gen", "custom", "--M", "128", "--K", "256", "--N", "128", "-o", join(dir, "out.csv")]);
    expect(result.exitCode).toBe(0);
    const [row] = parseCsv(readFileSync(join(dir, "out.csv"), "utf8"));
    const measured = Number(row!.b_speedup);
    expect(Number.isFinite(measured) && measured > 0).toBe(true);
    expect(row!.r_speedup ?? "").toBe(""); // no peak rates for the CPU: nothing invented
  });
});

test("the CPU emulation's overhead counts this library's kernels: 10 bytes per input element, 7 per weight and grad_output element", () => {
  const [M, K, N] = [64, 32, 16];
  const kernels = float8OverheadKernels(M, K, N, { implementation: "cpu-emulation" });
  const bytes = (role: string) => kernels.filter((k) => k.tensor === role).reduce((a, k) => a + k.readBytes + k.writeBytes, 0);
  expect(bytes("input")).toBe(10 * M * K);
  expect(bytes("weight")).toBe(7 * K * N);
  expect(bytes("grad_output")).toBe(7 * M * N);
  expect(kernels.every((k) => k.standalone)).toBe(true);
});
