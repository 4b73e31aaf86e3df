// Checkpoints in safetensors: round trips per dtype, exact resume of float8
// delayed-scaling training with AdamW, clear errors with no partial load,
// atomic writes, and interop with Python's safetensors library.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tensor, float8, io, manualSeed, memoryStats, nn, optim, randn, tensor, tidy, type DType } from "../src/index.ts";
import { expectThrowsFloat8 } from "./helpers/host.ts";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "float8-ckpt-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const delayed = () => new float8.CastConfig({ scalingType: float8.ScalingType.DELAYED });

function delayedMlp(seed: number): nn.Sequential {
  manualSeed(seed);
  const m = new nn.Sequential(new nn.Linear(16, 32, { dtype: "bfloat16" }), new nn.ReLU(), new nn.Linear(32, 8, { dtype: "bfloat16" }));
  float8.convertToFloat8Training(m, {
    config: new float8.Float8LinearConfig({ castConfigInput: delayed(), castConfigWeight: delayed(), castConfigGradOutput: delayed() }),
  });
  return m;
}

/** The batch of step i: a pure function of i, so an interrupted run sees the same data. */
function batch(i: number): { x: Tensor; y: Int32Array } {
  const v = new Float32Array(12 * 16).map((_, k) => Math.sin(k * 0.37 + i * 1.3) * (1 + (k % 5)));
  return { x: tensor(v, { shape: [12, 16], dtype: "bfloat16" }), y: Int32Array.from({ length: 12 }, (_, k) => (k * 3 + i) % 8) };
}

function trainStep(m: nn.Module, opt: optim.Optimizer, i: number): number {
  return tidy(() => {
    const { x, y } = batch(i);
    opt.zeroGrad();
    const loss = nn.crossEntropy(m.forward(x), y);
    loss.backward();
    opt.step();
    float8.syncFloat8AmaxAndScaleHistory(m);
    return loss.item();
  });
}

function snapshot(m: nn.Module): Record<string, string> {
  return Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, Buffer.from(t.bytes()).toString("hex")]));
}


describe("round trip", () => {
  const cases: [DType, number[]][] = [
    ["float32", [1.5, -2.25, 3e-8, 65504, -0.0]],
    ["bfloat16", [1.5, -2.25, 0.0078125, 3.0e38, -7]],
    ["float8_e4m3fn", [448, -448, 0.001953125, 1.125, -0]],
    ["float8_e5m2", [57344, -57344, 1.52587890625e-5, 0.75, 3]],
    ["int32", [0, -1, 2147483647, -2147483648, 42]],
  ];
  for (const [dtype, values] of cases) {
    test(`${dtype} tensors keep their bytes, shape and dtype`, () => {
      const t = tensor(values.concat(values), { shape: [2, 5], dtype });
      const path = join(dir, `rt-${dtype}.safetensors`);
      io.saveFile({ "a.b": t }, path, { note: "hi" });
      const { tensors, metadata } = io.loadFile(path);
      expect(metadata.note).toBe("hi");
      expect(tensors["a.b"].dtype).toBe(dtype);
      expect([...tensors["a.b"].shape]).toEqual([2, 5]);
      expect(tensors["a.b"].bytes()).toEqual(t.bytes());
    });
  }

  test("the header says F32, BF16, F8_E4M3, F8_E5M2, I32 and offsets cover the data exactly", () => {
    const path = join(dir, "header.safetensors");
    io.saveFile({
      f: tensor([1, 2], { dtype: "float32" }), b: tensor([1, 2, 3], { dtype: "bfloat16" }),
      e4: tensor([1], { dtype: "float8_e4m3fn" }), e5: tensor([1], { dtype: "float8_e5m2" }), i: tensor(new Int32Array([7])),
    }, path);
    const bytes = readFileSync(path);
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
    expect(header.f).toEqual({ dtype: "F32", shape: [2], data_offsets: [0, 8] });
    expect(header.b).toEqual({ dtype: "BF16", shape: [3], data_offsets: [8, 14] });
    expect(header.e4.dtype).toBe("F8_E4M3");
    expect(header.e5.dtype).toBe("F8_E5M2");
    expect(header.i).toEqual({ dtype: "I32", shape: [1], data_offsets: [16, 20] });
    expect(bytes.byteLength).toBe(8 + n + 20);
  });

  test("a module round trip restores parameters and Float8Linear buffers", () => {
    const a = delayedMlp(1);
    for (let i = 0; i < 3; i++) trainStep(a, new optim.SGD(a.parameters(), { lr: 0.1 }), i);
    const path = join(dir, "module.safetensors");
    io.save(a, path);
    const b = delayedMlp(2);
    expect(snapshot(b)).not.toEqual(snapshot(a));
    io.load(b, path);
    expect(snapshot(b)).toEqual(snapshot(a));
    expect(Object.keys(a.stateDict())).toContain("0.fp8_amax_history_input");
    const l = b.at(0) as float8.Float8Linear;
    expect(l.isAmaxInitialized).toBe(true);
    expect(l.weight.dtype).toBe("bfloat16");
  });

  test("loading keeps live native memory flat", () => {
    const m = delayedMlp(1);
    const opt = new optim.AdamW(m.parameters());
    trainStep(m, opt, 0);
    const path = join(dir, "flat.safetensors");
    io.save(m, path, { optimizer: opt });
    io.load(m, path, { optimizer: opt });
    Bun.gc(true);
    const before = memoryStats();
    for (let i = 0; i < 5; i++) io.load(m, path, { optimizer: opt });
    expect(memoryStats()).toEqual(before);
  });
});

describe("resume", () => {
  test("a float8 delayed model with AdamW resumes with a next-step loss identical to an uninterrupted run", () => {
    const N = 4;
    const a = delayedMlp(7);
    const optA = new optim.AdamW(a.parameters(), { lr: 3e-3 });
    for (let i = 0; i < N; i++) trainStep(a, optA, i);
    const path = join(dir, "resume.safetensors");
    io.save(a, path, { optimizer: optA });
    const lossA = trainStep(a, optA, N);
    const lossA2 = trainStep(a, optA, N + 1);

    const b = delayedMlp(99); // different init: everything must come from the checkpoint
    const optB = new optim.AdamW(b.parameters(), { lr: 3e-3 });
    io.load(b, path, { optimizer: optB });
    expect(optB.stepCount).toBe(N);
    const lossB = trainStep(b, optB, N);
    const lossB2 = trainStep(b, optB, N + 1);
    expect(lossB).toBe(lossA);
    expect(lossB2).toBe(lossA2);
    expect(snapshot(b)).toEqual(snapshot(a));
  });

  test("the optimizer file holds AdamW state shaped like each parameter, and the step count", () => {
    const m = delayedMlp(3);
    const opt = new optim.AdamW(m.parameters());
    trainStep(m, opt, 0);
    const path = join(dir, "optstate.safetensors");
    io.save(m, path, { optimizer: opt });
    const { tensors, metadata } = io.loadFile(io.optimizerPath(path));
    expect([...tensors["0.exp_avg"].shape]).toEqual([32, 16]);
    expect(tensors["0.exp_avg_sq"].dtype).toBe("float32");
    expect(metadata["float8.step_count"]).toBe("1");
    expect(JSON.parse(metadata["float8.param_fqns"])).toEqual(["0.weight", "0.bias", "2.weight", "2.bias"]);
  });
});

describe("bad files give a clear error and load nothing", () => {
  function saved(name: string): { path: string; bytes: Buffer; model: nn.Sequential } {
    const model = delayedMlp(5);
    const opt = new optim.AdamW(model.parameters());
    trainStep(model, opt, 0);
    const path = join(dir, name);
    io.save(model, path, { optimizer: opt });
    return { path, bytes: readFileSync(path), model };
  }

  function expectUnchangedAfterFailedLoad(path: string, ...fragments: string[]): void {
    const target = delayedMlp(11);
    const opt = new optim.AdamW(target.parameters());
    const before = snapshot(target);
    const optBefore = Object.values(opt.stateDict()).map((t) => t.toArray());
    expectThrowsFloat8(() => io.load(target, path, { optimizer: opt }), ...fragments);
    expect(snapshot(target)).toEqual(before);
    expect(Object.values(opt.stateDict()).map((t) => t.toArray())).toEqual(optBefore);
    expect(opt.stepCount).toBe(0);
  }

  test("a corrupt JSON header", () => {
    const { path, bytes } = saved("corrupt.safetensors");
    bytes[9] = 0x7b; // '{{...': not JSON
    bytes[10] = 0x7b;
    writeFileSync(path, bytes);
    expectUnchangedAfterFailedLoad(path, "corrupt header", path);
  });

  test("a header length past the end of the file", () => {
    const { path, bytes } = saved("hdrlen.safetensors");
    new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(0, BigInt(bytes.byteLength), true);
    writeFileSync(path, bytes);
    expectUnchangedAfterFailedLoad(path, "truncated", "header claims");
  });

  test("a file shorter than the header length prefix", () => {
    const path = join(dir, "tiny.safetensors");
    writeFileSync(path, new Uint8Array(5));
    expectUnchangedAfterFailedLoad(path, "truncated", "5 bytes");
  });

  test("truncated data names the tensor whose bytes are cut off", () => {
    const { path, bytes } = saved("trunc.safetensors");
    writeFileSync(path, bytes.subarray(0, bytes.byteLength - 2));
    // the last tensor in the data section is the last buffer of the state dict
    expectUnchangedAfterFailedLoad(path, "truncated", "'2.fp8_scale_grad_output'");
  });

  test("a wrong shape names the tensor and both shapes", () => {
    const other = new nn.Sequential(new nn.Linear(16, 32, { dtype: "bfloat16" }), new nn.ReLU(), new nn.Linear(32, 9, { dtype: "bfloat16" }));
    float8.convertToFloat8Training(other, {
      config: new float8.Float8LinearConfig({ castConfigInput: delayed(), castConfigWeight: delayed(), castConfigGradOutput: delayed() }),
    });
    const opt = new optim.AdamW(other.parameters());
    const path = join(dir, "shape.safetensors");
    io.save(other, path, { optimizer: opt });
    expectUnchangedAfterFailedLoad(path, "'2.weight'", "[9, 32]", "[8, 32]");
  });

  test("a missing tensor is named", () => {
    const plain = new nn.Sequential(new nn.Linear(16, 32, { dtype: "bfloat16" }), new nn.ReLU(), new nn.Linear(32, 8, { dtype: "bfloat16" }));
    const path = join(dir, "missing.safetensors");
    io.save(plain, path, { optimizer: new optim.AdamW(plain.parameters()) });
    expectUnchangedAfterFailedLoad(path, "missing model tensors", "'0.fp8_amax_input'");
  });

  test("an optimizer file from another checkpoint is refused", () => {
    const { path } = saved("mixA.safetensors");
    const other = saved("mixB.safetensors");
    writeFileSync(io.optimizerPath(path), readFileSync(io.optimizerPath(other.path)));
    expectUnchangedAfterFailedLoad(path, "different checkpoint");
  });

  test("an unsupported dtype is named", () => {
    const { path, bytes } = saved("dtype.safetensors");
    const text = bytes.toString("latin1").replace('"dtype":"BF16"', '"dtype":"F64" ');
    writeFileSync(path, Buffer.from(text, "latin1"));
    expectUnchangedAfterFailedLoad(path, "dtype \"F64\" is not supported");
  });
});

describe("atomic writes", () => {
  test("a write that fails midway leaves the old file intact and no temp file", () => {
    const path = join(dir, "atomic", "ckpt.safetensors");
    rmSync(join(dir, "atomic"), { recursive: true, force: true });
    require("node:fs").mkdirSync(join(dir, "atomic"));
    const m = delayedMlp(1);
    io.save(m, path);
    const old = readFileSync(path);
    function* failing(): Generator<Uint8Array> {
      yield new Uint8Array(1 << 16).fill(1);
      throw new Error("disk full (simulated)");
    }
    expectThrowsFloat8(() => io.writeFileAtomic(path, failing()), "disk full (simulated)", path);
    expect(readFileSync(path)).toEqual(old);
    expect(readdirSync(join(dir, "atomic"))).toEqual(["ckpt.safetensors"]);
  });

  test("saving a module with a disposed tensor fails before touching the old file", () => {
    const path = join(dir, "disposed.safetensors");
    const m = delayedMlp(1);
    io.save(m, path);
    const old = readFileSync(path);
    const broken = delayedMlp(2);
    (broken.at(2) as nn.Linear).bias!.dispose();
    expectThrowsFloat8(() => io.save(broken, path), "'2.bias'", "disposed");
    expect(readFileSync(path)).toEqual(old);
  });
});

/** Why python3 with safetensors and numpy cannot be used here, or null when it can. */
function pythonProblem(): string | null {
  try {
    const r = Bun.spawnSync(["python3", "-c", "import safetensors, numpy"], { stderr: "pipe" });
    return r.exitCode === 0 ? null : r.stderr.toString().trim().split("\n").pop() || `exit code ${r.exitCode}`;
  } catch (e) {
    return (e as Error).message; // python3 is not installed
  }
}
const problem = pythonProblem();
const hasPython = problem === null;
if (!hasPython) {
  console.warn(
    `checkpoint.test.ts: SKIPPING the Python interop test: \`python3 -c "import safetensors, numpy"\` failed (${problem}). ` +
      "Install with: pip install safetensors numpy",
  );
}
const pyTest = hasPython ? test : test.skip;
pyTest(`Python's safetensors opens a checkpoint written here${hasPython ? "" : " (SKIPPED: python3 with safetensors and numpy not found)"}`, () => {
  const m = delayedMlp(4);
  const opt = new optim.AdamW(m.parameters());
  trainStep(m, opt, 0);
  const path = join(dir, "py.safetensors");
  io.save(m, path, { optimizer: opt });
  const extra = join(dir, "py-fp8.safetensors");
  const f32 = randn([3, 4]);
  io.saveFile({ f32, e4: f32.to({ dtype: "float8_e4m3fn" }), e5: f32.to({ dtype: "float8_e5m2" }), i: tensor(new Int32Array([1, -2])) }, extra);
  const script = `
import json, sys, numpy as np
from safetensors import safe_open
out = {}
for path in sys.argv[1:]:
    with safe_open(path, framework="np") as f:
        entry = {"metadata": f.metadata(), "tensors": {}}
        for k in f.keys():
            s = f.get_slice(k)
            t = {"dtype": s.get_dtype(), "shape": list(s.get_shape())}
            if t["dtype"] in ("F32", "I32"):
                t["values"] = f.get_tensor(k).astype(np.float64).ravel().tolist()
            entry["tensors"][k] = t
        out[path] = entry
print(json.dumps(out))
`;
  const r = Bun.spawnSync(["python3", "-c", script, path, io.optimizerPath(path), extra]);
  expect(r.stderr.toString()).toBe("");
  const out = JSON.parse(r.stdout.toString());
  const model = out[path];
  expect(model.metadata["format"]).toBe("pt");
  expect(Object.keys(model.tensors).sort()).toEqual(Object.keys(m.stateDict()).sort());
  expect(model.tensors["0.weight"]).toEqual({ dtype: "BF16", shape: [32, 16] });
  expect(model.tensors["0.fp8_amax_history_input"].values).toEqual([...(m.stateDict()["0.fp8_amax_history_input"].toArray())]);
  const optFile = out[io.optimizerPath(path)];
  expect(optFile.metadata["float8.optimizer"]).toBe("AdamW");
  expect(optFile.tensors["2.exp_avg"].values).toEqual([...opt.stateDict()["2.exp_avg"].toArray()]);
  const x = out[extra];
  expect(x.tensors.e4).toEqual({ dtype: "F8_E4M3", shape: [3, 4] });
  expect(x.tensors.e5).toEqual({ dtype: "F8_E5M2", shape: [3, 4] });
  expect(x.tensors.f32.values).toEqual([...f32.toArray()]);
  expect(x.tensors.i.values).toEqual([1, -2]);
  expect(existsSync(path)).toBe(true);
});
