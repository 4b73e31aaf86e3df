// checkpoint_torchao.test.ts — checkpoints both ways with torchao (issue 17, item 10):
// a state_dict of torchao's delayed-scaling Float8Linear MLP, saved by Python's
// safetensors (test/fixtures/torchao_delayed.safetensors, made by
// scripts/gen_torchao_checkpoint.py), loads here with io.load and training continues
// with torchao's next losses; torchao (scripts/check_torchao_load.py, when python3 has
// torch and safetensors) loads what io.save writes; io.load({ strict: false }).
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nn, optim, float8, io, tensor, noGrad, Float8Error } from "../src/index.ts";
import spec from "./fixtures/torchao_checkpoint.json";

const FIXTURE = join(import.meta.dir, "fixtures", "torchao_delayed.safetensors");
const { CastConfig, Float8LinearConfig, DelayedScalingConfig, ScalingType } = float8;

function model(): nn.Sequential {
  const m = new nn.Sequential(new nn.Linear(32, 64), new nn.ReLU(), new nn.Linear(64, 16));
  const del = () => new CastConfig({ scalingType: ScalingType.DELAYED });
  const config = new Float8LinearConfig({
    castConfigInput: del(), castConfigWeight: del(), castConfigGradOutput: del(),
    delayedScalingConfig: new DelayedScalingConfig({ historyLen: spec.history_len }),
  });
  return float8.convertToFloat8Training(m, { config }) as nn.Sequential;
}
const batch = (i: number) => [tensor(spec.batches[i].x, { shape: [8, 32] }), tensor(spec.batches[i].y, { shape: [8, 16] })] as const;
/** |a - b| / |a| in dB, as the SQNR of one number */
const db = (ref: number, got: number) => 20 * Math.log10(Math.abs(ref) / Math.max(Math.abs(ref - got), 1e-30));

describe("torchao -> here", () => {
  test("torchao's state_dict loads key for key (all nine delayed buffers per layer) with the values of the file", () => {
    const m = model();
    expect(Object.keys(m.stateDict()).sort()).toEqual([...spec.keys].sort());
    const r = io.load(m, FIXTURE);
    expect([r.missingKeys, r.unexpectedKeys]).toEqual([[], []]);
    const file = io.loadFile(FIXTURE).tensors;
    for (const [k, t] of Object.entries(m.stateDict())) expect([k, Array.from(t.toArray())]).toEqual([k, Array.from(file[k].toArray())]);
    // torchao's history was never rolled back in (docs/torchao-differences.md): one entry per role
    expect(Array.from(file["0.fp8_amax_history_input"].toArray()).filter((v) => v !== 0).length).toBe(1);
  });

  test("training resumes: the next two losses match torchao's (>= 50 dB, i.e. within the Float8Linear parity bars)", () => {
    const m = model();
    io.load(m, FIXTURE);
    const opt = new optim.SGD(m.parameters(), { lr: spec.lr });
    const losses: number[] = [];
    for (let s = 0; s < 2; s++) {
      const [x, y] = batch(s);
      opt.zeroGrad();
      const loss = nn.mseLoss(m.forward(x), y);
      losses.push(loss.item());
      loss.backward();
      opt.step();
      float8.syncFloat8AmaxAndScaleHistory(m);
    }
    for (let s = 0; s < 2; s++) expect(db(spec.next_losses[s], losses[s])).toBeGreaterThanOrEqual(50);
  });
});

const torchPath = join(import.meta.dir, "..", ".deps", "torch");
const env = { ...process.env, PYTHONPATH: existsSync(torchPath) ? torchPath : (process.env.PYTHONPATH ?? "") };
const hasPy = Bun.spawnSync(["python3", "-c", "import torch, safetensors.torch"], { env, stderr: "pipe" }).exitCode === 0;
if (!hasPy) console.warn("checkpoint_torchao.test.ts: SKIPPING here -> torchao (python3 with torch and safetensors not found; bash scripts/pip-install.sh safetensors)");

describe("here -> torchao", () => {
  test.skipIf(!hasPy)(`torchao's Float8Linear loads io.save's file strictly and computes our loss (>= 50 dB), before and after one more step${hasPy ? "" : " (SKIPPED)"}`, () => {
    const dir = mkdtempSync(join(tmpdir(), "torchao-"));
    try {
      const m = model();
      io.load(m, FIXTURE);
      const opt = new optim.SGD(m.parameters(), { lr: spec.lr });
      // one step here, so the file holds our own rolled history and scales
      const [x0, y0] = batch(0);
      nn.mseLoss(m.forward(x0), y0).backward();
      opt.step();
      float8.syncFloat8AmaxAndScaleHistory(m);
      const path = join(dir, "ours.safetensors");
      io.save(m, path);
      // both sides: loss on batch 1, one SGD step + sync, loss on batch 1 again
      const [x, y] = batch(1);
      opt.zeroGrad();
      const loss = nn.mseLoss(m.forward(x), y);
      const ours = loss.item();
      loss.backward();
      opt.step();
      float8.syncFloat8AmaxAndScaleHistory(m);
      const oursAfter = noGrad(() => nn.mseLoss(m.forward(x), y).item());
      const batchFile = join(dir, "batch.json");
      writeFileSync(batchFile, JSON.stringify({ ...spec.batches[1], lr: spec.lr, history_len: spec.history_len }));
      const r = Bun.spawnSync(["python3", join(import.meta.dir, "..", "scripts", "check_torchao_load.py"), path, batchFile], { env, stdout: "pipe", stderr: "pipe" });
      const err = r.stderr.toString();
      if (r.exitCode !== 0) throw new Error(`check_torchao_load.py failed:\n${err}`);
      const py = JSON.parse(r.stdout.toString());
      expect([py.missing, py.unexpected, py.keys]).toEqual([[], [], spec.keys.length]);
      expect(db(py.loss, ours)).toBeGreaterThanOrEqual(50);
      expect(db(py.loss_after_step, oursAfter)).toBeGreaterThanOrEqual(50);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60000);
});

describe("io.load({ strict: false })", () => {
  test("reports missing and unexpected keys as torch's load_state_dict does, and loads the rest", () => {
    const dir = mkdtempSync(join(tmpdir(), "strict-"));
    try {
      const { tensors } = io.loadFile(FIXTURE);
      delete tensors["2.bias"];
      tensors["extra.weight"] = tensor([1, 2, 3]);
      const path = join(dir, "partial.safetensors");
      io.saveFile(tensors, path);
      const m = model();
      const before = Array.from((m.stateDict()["2.bias"]).toArray());
      expect(() => io.load(m, path)).toThrow(Float8Error);
      expect(() => io.load(m, path)).toThrow(/missing model tensor '2.bias'/);
      const r = io.load(m, path, { strict: false });
      expect(r.missingKeys).toEqual(["2.bias"]);
      expect(r.unexpectedKeys).toEqual(["extra.weight"]);
      expect(Array.from(m.stateDict()["2.bias"].toArray())).toEqual(before);
      expect(Array.from(m.stateDict()["0.weight"].toArray())).toEqual(Array.from(tensors["0.weight"].toArray()));
      // a shape mismatch on a shared key is still an error
      tensors["0.bias"] = tensor([1, 2]);
      io.saveFile(tensors, path);
      expect(() => io.load(m, path, { strict: false })).toThrow(/tensor '0.bias': shape \[2\] in the file does not match \[64\]/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
