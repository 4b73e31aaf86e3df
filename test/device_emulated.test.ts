// device_emulated.test.ts — every device code path of Tensor, autograd, nn,
// optim and float8 on this machine, without a GPU: the "cuda" backend is
// replaced by an emulated device (src/tensor/backend/emulated.ts) whose memory
// JS cannot view and whose kernels refuse any pointer that is not device
// memory. Each case of test/helpers/device_cases.ts runs on the CPU and on the
// emulated device, and the results must agree (the same tolerances that
// cuda_tensor_gpu.test.ts applies to a real GPU).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Float8Error, float8, memoryStats, nn, optim, tensor, zeros, type Tensor } from "../src/index.ts";
import { emulatedDeviceBackend, setBackend } from "../src/tensor/backend/index.ts";
import { defineParityTests } from "./helpers/device_cases.ts";

const emulated = emulatedDeviceBackend("cuda");
beforeAll(() => setBackend("cuda", emulated));
afterAll(() => setBackend("cuda", null));

describe("device parity on the emulated device", () => defineParityTests("cuda"));

describe("device tensors", () => {
  test("device memory is not viewable from JS; values come back through toArray, bytes and item", () => {
    const x = tensor([1, 2, 3], { device: "cuda" });
    expect(x.device).toBe("cuda");
    expect(() => x.rawView()).toThrow(Float8Error);
    expect(() => x.rawView()).toThrow(/rawView: .* is in cuda memory; copy it with \.to\(\{ device: "cpu" \}\) first/);
    expect([...x.toArray()]).toEqual([1, 2, 3]);
    expect(x.sum().item()).toBe(6);
    expect([...x.to({ dtype: "bfloat16" }).bytes()]).toEqual([0x80, 0x3f, 0x00, 0x40, 0x40, 0x40]);
  });

  test("copyFrom refills a tensor in place from any device (what a captured graph's inputs need)", () => {
    const d = zeros([2, 3], { device: "cuda" });
    const ptr = d.ptrFor("test");
    d.copyFrom(tensor([[1, 2, 3], [4, 5, 6]]));                       // host -> device
    expect(d.ptrFor("test")).toBe(ptr);
    expect([...d.toArray()]).toEqual([1, 2, 3, 4, 5, 6]);
    const d2 = zeros([2, 3], { device: "cuda" }).copyFrom(d);         // device -> device
    const h = zeros([2, 3]).copyFrom(d2);                              // device -> host
    expect([...h.toArray()]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => d.copyFrom(zeros([3, 2]))).toThrow(/copyFrom: source of shape \[3, 2\] and dtype float32 does not match \[2, 3\] float32/);
    expect(() => d.copyFrom(zeros([2, 3], { dtype: "bfloat16" }))).toThrow(/dtype bfloat16 does not match \[2, 3\] float32/);
    expect(() => d.copyFrom([1, 2] as unknown as Tensor)).toThrow(/copyFrom: expects a Tensor/);
  });

  test("to({device}) moves both ways and is differentiable across devices", () => {
    const x = tensor([1, -2, 3], { requiresGrad: true });
    const y = x.to({ device: "cuda" }).mul(2).relu().to({ device: "cpu" });
    expect(y.device).toBe("cpu");
    y.sum().backward();
    expect(x.grad!.device).toBe("cpu");
    expect([...x.grad!.toArray()]).toEqual([2, 0, 2]);
  });

  test("ops refuse operands on different devices, naming the op and the devices", () => {
    const a = zeros([2, 2]), b = zeros([2, 2], { device: "cuda" });
    // one check and one message for every op (src/tensor/device_ops.ts): op, then each operand's shape, dtype and device
    expect(() => a.add(b)).toThrow("add: operands must be on one device, got [2, 2] float32 on cpu, [2, 2] float32 on cuda");
    expect(() => a.matmul(b)).toThrow("matmul: operands must be on one device, got [2, 2] float32 on cpu, [2, 2] float32 on cuda");
    expect(() => nn.maskedFill(b, tensor([1, 0]), 0)).toThrow("maskedFill: operands must be on one device, got [2, 2] float32 on cuda, [2] float32 on cpu");
    expect(() => float8.hpTensorAndScaleToFloat8(b, zeros([1]), "float8_e4m3fn", "input")).toThrow("toFloat8Saturated: operands must be on one device, got [2, 2] float32 on cuda, [1] float32 on cpu");
  });

  test("the emulated device refuses host memory where a kernel expects device memory", () => {
    const host = zeros([4]);
    const dev = zeros([4], { device: "cuda" });
    // every tensor operand of every kernel, checked by the contract (device_ops.sameDevice -> checkOperand):
    // a tensor that claims to be on the device but whose storage is host memory is refused, naming op and operand
    const liar = zeros([4]);
    liar.device = "cuda";
    try {
      expect(() => liar.relu()).toThrow("relu: operand [4] float32 on cuda must be cuda memory, got a pointer outside device memory");
      expect(() => dev.add(liar)).toThrow("add: operand [4] float32 on cuda must be cuda memory");
      expect(() => float8.tensorToAmax(liar)).toThrow("tensorToAmax: operand [4] float32 on cuda must be cuda memory");
    } finally {
      liar.device = "cpu";
      liar.dispose();
    }
    // the memory methods check their device side themselves
    expect(() => emulated.copy(dev.ptrFor("t"), host.ptrFor("t"), 16)).toThrow("copy: copy: the source must be cuda memory, got a pointer outside device memory");
    expect(() => emulated.upload(new Int32Array(4) as unknown as never, new Uint8Array(16), 16)).toThrow("upload: upload: the destination must be cuda memory, got a host Int32Array");
  });

  test("device memory is freed by dispose and by a training loop's tidy scopes", () => {
    const before = memoryStats("cuda").liveBytes;
    const t = zeros([1000], { device: "cuda" });
    expect(memoryStats("cuda").liveBytes).toBe(before + 4000);
    t.dispose();
    expect(memoryStats("cuda").liveBytes).toBe(before);
  });

  test("optimizers keep their state on the parameters' device and refuse a model moved after they were made", () => {
    const lin = new nn.Linear(4, 3).to({ device: "cuda" });
    const opt = new optim.AdamW(lin.parameters());
    for (const t of Object.values(opt.stateDict()) as Tensor[]) expect(t.device).toBe("cuda");
    const lin2 = new nn.Linear(4, 3);
    const opt2 = new optim.AdamW(lin2.parameters());
    lin2.to({ device: "cuda" });
    lin2.forward(zeros([2, 4], { device: "cuda" })).sum().backward();
    expect(() => opt2.step()).toThrow(/AdamW.step: parameter 0 is on cuda but its state on cpu/);
  });

  test("a float8 training step moves no data between host and device beyond its batch; a device mask is converted once", () => {
    const model = new nn.Sequential(new nn.Linear(32, 32), new nn.ReLU(), new nn.Linear(32, 16));
    float8.convertToFloat8Training(model).to({ device: "cuda" });
    const opt = new optim.AdamW(model.parameters());
    const x = tensor(new Float32Array(32 * 32).map((_, i) => Math.sin(i)), { shape: [32, 32], device: "cuda" });
    const y = zeros([32, 16], { device: "cuda" });
    const step = () => {
      opt.zeroGrad();
      nn.mseLoss(model.forward(x), y).backward();
      opt.step();
    };
    step();
    const before = emulated.transfers();
    for (let i = 0; i < 3; i++) step();
    expect(emulated.transfers()).toEqual(before);

    const mask = tensor([1, 0, 0, 1], { device: "cuda" });
    const z = zeros([3, 4], { device: "cuda" });
    nn.maskedFill(z, mask, 5);
    const afterFirst = emulated.transfers();
    const filled = nn.maskedFill(z, mask, 5);
    expect(emulated.transfers()).toEqual(afterFirst);
    expect([...filled.toArray()]).toEqual([5, 0, 0, 5, 5, 0, 0, 5, 5, 0, 0, 5]);
  });

  test("bad indices and targets are refused on the host before they reach a device kernel", () => {
    const w = zeros([5, 2], { device: "cuda" });
    expect(() => nn.embedding([0, 5], w)).toThrow(/embedding: index 5 at position 1 is out of range/);
    expect(() => nn.crossEntropy(zeros([2, 3], { device: "cuda" }), [0, 3])).toThrow(/crossEntropy: target 3 at row 1 is out of range \[0, 3\)/);
  });
});

describe("the demo on a device", () => {
  test("trainRecipe on the device gives the CPU's losses, accuracy and fp8 counts (float8 dynamic and delayed)", async () => {
    const { loadDigits, trainRecipe } = await import("../examples/demo.ts");
    const data = await loadDigits({ limit: 40 });
    for (const recipe of ["dynamic", "delayed"] as const) {
      const opts = { steps: 4, batchSize: 32, lr: 1e-3, dtype: "bfloat16" as const, seed: 3 };
      const cpu = trainRecipe(recipe, data, opts);
      const dev = trainRecipe(recipe, data, { ...opts, device: "cuda" });
      expect(dev.losses).toEqual(cpu.losses);
      expect(dev.heldOutAccuracy).toBe(cpu.heldOutAccuracy);
      expect(dev.fp8).toEqual(cpu.fp8);
    }
  });
});

describe("checkpoints of device models", () => {
  test("io.save of a model on the device and io.load into another keep values, dtypes and the device", async () => {
    const { io, float8: f8 } = await import("../src/index.ts");
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "float8-device-ckpt-"));
    try {
      const config = new f8.Float8LinearConfig({ padInnerDim: true }); // 2 rows: the grad_weight GEMM's inner dim
      const make = () => f8.convertToFloat8Training(new nn.Sequential(new nn.Linear(32, 16, { dtype: "bfloat16" })), { config }).to({ device: "cuda" });
      const a = make();
      const opt = new optim.AdamW(a.parameters());
      a.forward(tensor(new Float32Array(64).fill(0.5), { shape: [2, 32], dtype: "bfloat16", device: "cuda" })).sum().backward();
      opt.step();
      const path = join(dir, "m.safetensors");
      io.save(a, path, { optimizer: opt });
      const b = make();
      const optB = new optim.AdamW(b.parameters());
      io.load(b, path, { optimizer: optB });
      const pa = [...a.namedParameters()], pb = new Map(b.namedParameters());
      for (const [n, p] of pa) {
        expect(pb.get(n)!.device).toBe("cuda");
        expect([...pb.get(n)!.bytes()]).toEqual([...p.bytes()]);
      }
      for (const [k, t] of Object.entries(optB.stateDict()) as [string, Tensor][]) {
        expect(t.device, k).toBe("cuda");
        expect([...t.bytes()]).toEqual([...(opt.stateDict() as Record<string, Tensor>)[k].bytes()]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
