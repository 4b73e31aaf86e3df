// gemm_layout.test.ts — the CPU GEMM layout policy (src/tensor/ops/gemm_layout.ts): a Linear's and a
// Float8Linear's forward and backward give the same bits whether grad_weight reads grad_output^T and the
// forward reads weight^T through strided descriptors or from row-major copies (for Float8Linear written
// by the grad_output and weight casts), for every scaling type, with and without bias, odd shapes
// included; which layouts oneDNN is handed (ONEDNN_VERBOSE); and the policy's argument checks.
import { afterAll, describe, expect, test } from "bun:test";
import { Float8Error, float8, gemmLayoutChoices, gemmLayoutPolicy, nn, noGrad, randn, setGemmLayoutPolicy, tidy, manualSeed, type Tensor } from "../src/index.ts";
import { hpTensorToFloat8Dynamic, scaledMm } from "../src/float8/float8_tensor.ts";
import { materializeTransposedA, materializeTransposedB } from "../src/tensor/ops/gemm_layout.ts";

const initial = gemmLayoutPolicy();
afterAll(() => setGemmLayoutPolicy(initial));

const bits = (t: Tensor | null): string => (t ? Buffer.from(t.bytes()).toString("hex") : "none");

/** One fwd+bwd of a fresh layer built from `seed`; the output and all gradients as bytes. */
function step(kind: "linear" | "dynamic" | "delayed" | "static", M: number, K: number, N: number, bias: boolean, seed: number): string[] {
  return tidy(() => {
    manualSeed(seed);
    let m: nn.Module = new nn.Linear(K, N, { dtype: "bfloat16", bias });
    const { CastConfig, ScalingType, Float8LinearConfig } = float8;
    if (kind !== "linear") {
      const cc = (s: number) =>
        kind === "dynamic" ? new CastConfig() : kind === "delayed" ? new CastConfig({ scalingType: ScalingType.DELAYED }) : new CastConfig({ scalingType: ScalingType.STATIC, staticScale: s });
      m = float8.Float8Linear.fromFloat(m as nn.Linear, new Float8LinearConfig({ castConfigInput: cc(4), castConfigWeight: cc(64), castConfigGradOutput: cc(1024) }));
    }
    const x = randn([M, K], { dtype: "bfloat16", requiresGrad: true });
    const g = noGrad(() => randn([M, N], { dtype: "bfloat16", std: 0.01 }));
    const out: string[] = [];
    for (let it = 0; it < 2; it++) { // delayed: the second step uses the recorded amaxes
      m.zeroGrad();
      x.grad = null;
      const y = m.forward(x) as Tensor;
      y.backward(g);
      out.push(bits(y), bits(x.grad), ...m.parameters().map((p) => bits(p.grad)));
      if (kind === "delayed") float8.syncFloat8AmaxAndScaleHistory(m);
    }
    m.dispose();
    return out;
  });
}

describe("GEMM layout policy", () => {
  const shapes: [number, number, number][] = [[64, 96, 32], [37, 53, 71], [256, 128, 192], [1, 16, 8]];
  for (const kind of ["linear", "dynamic", "delayed", "static"] as const) {
    test(`${kind}: forward and gradients are bit-identical with transposes as descriptors or materialised`, () => {
      for (const [M, K, N] of shapes) {
        for (const bias of [true, false]) {
          setGemmLayoutPolicy("descriptor");
          const a = step(kind, M, K, N, bias, M + K + N);
          for (const other of ["materialize", "measure"] as const) {
            setGemmLayoutPolicy(other);
            const b = step(kind, M, K, N, bias, M + K + N);
            expect(b.length).toBe(a.length);
            for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) throw new Error(`${kind} ${M},${K},${N} bias=${bias} ${other}: output ${i} differs`);
          }
        }
      }
    }, 120_000);
  }

  test("materialize: the dynamic cast writes the transposed bf16 decode, and scaledMm reads it", () => {
    setGemmLayoutPolicy("materialize");
    tidy(() => {
      const g = randn([48, 40], { dtype: "bfloat16" });
      const x = randn([48, 24], { dtype: "bfloat16" });
      const gf = hpTensorToFloat8Dynamic(g, "float8_e5m2", "grad_output", false, true, true);
      expect(gf.decodedT?.shape).toEqual([40, 48]);
      expect(bits(gf.decodedT!.transpose(0, 1))).toBe(bits(gf.decoded!));
      const xf = hpTensorToFloat8Dynamic(x, "float8_e4m3fn", "input", false, true);
      const viaT = scaledMm(gf, xf, { transposeA: true });
      const saved = gf.decodedT;
      gf.decodedT = null; // same product from a transpose made inside scaledMm, and from strides
      const viaCopy = scaledMm(gf, xf, { transposeA: true });
      setGemmLayoutPolicy("descriptor");
      const viaStrides = scaledMm(gf, xf, { transposeA: true });
      expect(bits(viaT)).toBe(bits(viaCopy));
      expect(bits(viaT)).toBe(bits(viaStrides));
      gf.decodedT = saved;
      gf.dispose();
      xf.dispose();
    });
  });

  test("materialize: the weight cast writes the transposed bf16 decode, the forward scaledMm reads it, and it is dropped after", () => {
    setGemmLayoutPolicy("materialize");
    tidy(() => {
      const x = randn([24, 40], { dtype: "bfloat16" });
      const w = randn([56, 40], { dtype: "bfloat16" });
      const xf = hpTensorToFloat8Dynamic(x, "float8_e4m3fn", "input", false, true);
      const wf = hpTensorToFloat8Dynamic(w, "float8_e4m3fn", "weight", false, true, true);
      expect(wf.decodedT?.shape).toEqual([40, 56]);
      expect(bits(wf.decodedT!.transpose(0, 1))).toBe(bits(wf.decoded!));
      const viaT = scaledMm(xf, wf, { transposeB: true });
      wf.dropDecodedT();
      expect(wf.decodedT).toBeNull();
      expect(wf.decoded).not.toBeNull(); // the row-major decode stays for grad_input
      const viaCopy = scaledMm(xf, wf, { transposeB: true }); // a transpose made inside scaledMm
      setGemmLayoutPolicy("descriptor");
      const viaStrides = scaledMm(xf, wf, { transposeB: true });
      expect(bits(viaT)).toBe(bits(viaCopy));
      expect(bits(viaT)).toBe(bits(viaStrides));
      xf.dispose();
      wf.dispose();
    });
  });

  // What oneDNN is handed, from its own log: one fwd+bwd of a Linear and of a Float8Linear per policy.
  const layouts = (policy: string, kind: "linear" | "float8") => {
    const src = `import { nn, float8, randn, setGemmLayoutPolicy } from "${import.meta.dir}/../src/index.ts";
      setGemmLayoutPolicy("${policy}");
      let m = new nn.Linear(40, 56, { dtype: "bfloat16" });
      if ("${kind}" === "float8") m = float8.Float8Linear.fromFloat(m);
      m.forward(randn([24, 40], { dtype: "bfloat16", requiresGrad: true })).sum().backward();`;
    const p = Bun.spawnSync([process.execPath, "-e", src], { env: { ...process.env, ONEDNN_VERBOSE: "1" }, stdout: "pipe", stderr: "pipe" });
    expect(p.exitCode).toBe(0);
    // oneDNN 2.x "src_bf16::blocked:ab:f0 wei_bf16::blocked:ba:f0 ...,,,24x40:40x56:24x56,0.3" and
    // 3.x "src:bf16::blocked:ab::f0 wei:bf16::blocked:ba::f0 ...,,24x40:40x56,0.3" -> "ab,ba 24x40:40x56"
    return p.stdout.toString().split("\n").filter((l) => l.includes(",exec,cpu,matmul,")).map((l) => {
      const m = /src[_:]bf16::blocked:(\w+):+f0 wei[_:]bf16::blocked:(\w+):+f0.*?,(\d+x\d+:\d+x\d+)[:,]/.exec(l);
      return m ? `${m[1]},${m[2]} ${m[3]}` : l;
    }).sort();
  };
  for (const kind of ["linear", "float8"] as const) {
    test(`${kind}: descriptor hands oneDNN both transposes as strides, materialize hands it row-major operands only`, () => {
      // forward x (24,40) @ w^T (40,56); grad_input g (24,56) @ w (56,40); grad_weight g^T (56,24) @ x (24,40)
      expect(layouts("descriptor", kind)).toEqual(["ab,ab 24x56:56x40", "ab,ba 24x40:40x56", "ba,ab 56x24:24x40"]);
      expect(layouts("materialize", kind)).toEqual(["ab,ab 24x40:40x56", "ab,ab 24x56:56x40", "ab,ab 56x24:24x40"]);
    });
  }

  test("policy: descriptor and materialize decide on the CPU, never on other devices; bad values throw", () => {
    setGemmLayoutPolicy("descriptor");
    expect(materializeTransposedA("cpu")).toBe(false);
    setGemmLayoutPolicy("materialize");
    expect(materializeTransposedA("cpu")).toBe(true);
    expect(materializeTransposedB("cpu")).toBe(true);
    expect(materializeTransposedA("cuda")).toBe(false);
    expect(materializeTransposedB("cuda")).toBe(false);
    expect(setGemmLayoutPolicy("auto")).toBe("materialize");
    expect(gemmLayoutPolicy()).toBe("auto");
    expect(() => setGemmLayoutPolicy("rowmajor" as never)).toThrow(Float8Error);
    expect(() => setGemmLayoutPolicy("rowmajor" as never)).toThrow(/setGemmLayoutPolicy/);
  });

  test("measure: times both layouts once per GEMM problem (a transposed a, or b) and caches the choice", () => {
    setGemmLayoutPolicy("measure");
    const p = { P: 96, R: 160, Q: 64, dtype: "bfloat16" as const };
    for (const [decide, key] of [[materializeTransposedA, "96,160,64,bfloat16"], [materializeTransposedB, "96,160,64,bfloat16,transB"]] as const) {
      const first = decide("cpu", p);
      const c = gemmLayoutChoices()[key];
      expect(c).toBeDefined();
      expect(c.descriptorMs).toBeGreaterThan(0);
      expect(c.materializeMs).toBeGreaterThan(0);
      expect(c.materialize).toBe(c.materializeMs < 0.9 * c.descriptorMs);
      expect(decide("cpu", p)).toBe(first);
      expect(gemmLayoutChoices()[key]).toEqual(c); // cached: not measured again
      expect(decide("cpu")).toBe(false); // no problem given: strides
      expect(decide("cuda", p)).toBe(false);
    }
    expect(Object.keys(gemmLayoutChoices())).toEqual(expect.arrayContaining(["96,160,64,bfloat16", "96,160,64,bfloat16,transB"]));
  });

  test("FLOAT8_CPU_GEMM_LAYOUT picks the policy at startup, and a bad value is a Float8Error", () => {
    const run = (v: string) =>
      Bun.spawnSync([process.execPath, "-e", `import { gemmLayoutPolicy } from "${import.meta.dir}/../src/index.ts"; console.log(gemmLayoutPolicy());`], {
        env: { ...process.env, FLOAT8_CPU_GEMM_LAYOUT: v },
      });
    expect(run("materialize").stdout.toString().trim()).toBe("materialize");
    const bad = run("sideways");
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr.toString()).toContain("FLOAT8_CPU_GEMM_LAYOUT");
  });
});
