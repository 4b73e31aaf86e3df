// Modules (names, state dicts, modes, dtype) and optimizers.
import { describe, expect, test } from "bun:test";
import { nn, optim, tensor, randn, manualSeed, memoryStats, Tensor } from "../src/index.ts";

class Block extends nn.Module {
  wq = this.registerModule("wq", new nn.Linear(4, 4));
  norm = this.registerModule("norm", new nn.RMSNorm(4));
  forward(x: Tensor): Tensor {
    return this.wq.forward(this.norm.forward(x));
  }
}
class Net extends nn.Module {
  layers = this.registerModule("layers", new nn.ModuleList([new Block(), new Block()]));
  out = this.registerModule("out", new nn.Sequential(new nn.Linear(4, 2), new nn.ReLU()));
  forward(x: Tensor): Tensor {
    let y = x;
    for (const b of this.layers) y = b.forward(y);
    return this.out.forward(y);
  }
}

describe("Module", () => {
  test("namedModules gives torch's fqns, root first", () => {
    const names = [...new Net().namedModules()].map(([n]) => n);
    expect(names).toEqual(["", "layers", "layers.0", "layers.0.wq", "layers.0.norm", "layers.1", "layers.1.wq", "layers.1.norm", "out", "out.0", "out.1"]);
  });

  test("stateDict maps fqns to parameters", () => {
    const keys = Object.keys(new Net().stateDict());
    expect(keys).toContain("layers.1.wq.weight");
    expect(keys).toContain("out.0.bias");
    expect(keys).toContain("layers.0.norm.weight");
  });

  test("loadStateDict copies values so two models agree", () => {
    manualSeed(1);
    const a = new Net(), b = new Net();
    b.loadStateDict(a.stateDict());
    const x = randn([3, 4]);
    expect([...b.forward(x).toArray()]).toEqual([...a.forward(x).toArray()]);
  });

  test("loadStateDict rejects missing and unexpected keys", () => {
    const a = new Net();
    const sd = { ...a.stateDict() };
    delete sd["out.0.bias"];
    sd["extra.weight"] = tensor([1]);
    expect(() => a.loadStateDict(sd)).toThrow(/missing keys: \[out.0.bias\]; unexpected keys: \[extra.weight\]/);
  });

  test("loadStateDict rejects wrong shapes and writes nothing", () => {
    const a = new Net();
    const before = a.stateDict()["out.0.weight"].toArray();
    const sd = { ...a.stateDict(), "out.0.weight": randn([2, 5]), "layers.0.wq.weight": randn([4, 4]) };
    const wq = a.stateDict()["layers.0.wq.weight"].toArray();
    expect(() => a.loadStateDict(sd)).toThrow(/size mismatch for out.0.weight: checkpoint has \[2, 5\]/);
    expect([...a.stateDict()["out.0.weight"].toArray()]).toEqual([...before]);
    expect([...a.stateDict()["layers.0.wq.weight"].toArray()]).toEqual([...wq]);
  });

  test("train() and eval() set the mode on every module", () => {
    const n = new Net().eval();
    expect([...n.namedModules()].every(([, m]) => !m.training)).toBe(true);
    n.train();
    expect([...n.namedModules()].every(([, m]) => m.training)).toBe(true);
  });

  test("to({dtype}) converts parameters in place", () => {
    const n = new Net();
    const p = n.parameters()[0];
    n.to({ dtype: "bfloat16" });
    expect(p.dtype).toBe("bfloat16");
    expect(n.parameters().every((q) => q.dtype === "bfloat16")).toBe(true);
    expect(n.forward(randn([2, 4], { dtype: "bfloat16" })).dtype).toBe("bfloat16");
  });

  test("Linear repr and parameter shapes", () => {
    const l = new nn.Linear(64, 96);
    expect(l.toString()).toBe("Linear(in_features=64, out_features=96, bias=True)");
    expect(l.weight.shape).toEqual([96, 64]);
    expect(new nn.Linear(3, 2, { bias: false }).bias).toBeNull();
  });

  test("Embedding, LayerNorm, GELU and SiLU layers run", () => {
    const e = new nn.Embedding(10, 4);
    const y = new nn.LayerNorm(4).forward(e.forward([1, 2, 3]));
    expect(y.shape).toEqual([3, 4]);
    expect(new nn.GELU().forward(y).shape).toEqual([3, 4]);
    expect(new nn.SiLU().forward(y).shape).toEqual([3, 4]);
  });
});

describe("Dropout", () => {
  test("in training it zeroes about p of the elements and scales the rest by 1/(1-p)", () => {
    manualSeed(4);
    const d = new nn.Dropout(0.25);
    const y = d.forward(tensor(new Float32Array(20000).fill(1))).toArray();
    const zeros = y.filter((v) => v === 0).length;
    expect(Math.abs(zeros / y.length - 0.25)).toBeLessThan(0.02);
    expect(y.every((v) => v === 0 || Math.abs(v - 1 / 0.75) < 1e-6)).toBe(true);
  });

  test("in eval mode it is the identity, and its gradient uses the same mask", () => {
    const d = new nn.Dropout(0.5);
    const x = tensor([1, 2, 3, 4], { requiresGrad: true });
    d.eval();
    expect(d.forward(x)).toBe(x);
    d.train();
    manualSeed(9);
    const y = d.forward(x);
    y.sum().backward();
    const yv = y.toArray(), g = x.grad!.toArray();
    for (let i = 0; i < 4; i++) expect(g[i]).toBe(yv[i] === 0 ? 0 : 2);
    expect(() => new nn.Dropout(1.5)).toThrow(/p must be in \[0, 1\], got 1.5/);
  });
});

describe("optimizers", () => {
  test("SGD with momentum follows torch's update", () => {
    const p = tensor([1, -2], { requiresGrad: true });
    const opt = new optim.SGD([p], { lr: 0.1, momentum: 0.9 });
    let ref = [1, -2], buf = [0, 0];
    for (let step = 0; step < 3; step++) {
      opt.zeroGrad();
      p.mul(p).sum().backward(); // grad = 2p
      opt.step();
      const g = ref.map((v) => 2 * v);
      buf = step === 0 ? g : buf.map((b, i) => 0.9 * b + g[i]);
      ref = ref.map((v, i) => v - 0.1 * buf[i]);
    }
    const got = p.toArray();
    expect(got[0]).toBeCloseTo(ref[0], 5);
    expect(got[1]).toBeCloseTo(ref[1], 5);
  });

  test("AdamW decreases a quadratic", () => {
    const p = tensor([3, -3], { requiresGrad: true });
    const opt = new optim.AdamW([p], { lr: 0.1 });
    for (let i = 0; i < 50; i++) {
      opt.zeroGrad();
      p.mul(p).sum().backward();
      opt.step();
    }
    const v = p.toArray();
    expect(Math.abs(v[0])).toBeLessThan(0.5);
    expect(Math.abs(v[1])).toBeLessThan(0.5);
  });

  test("SGD momentum state loads into a fresh optimizer and the next step matches", () => {
    const run = (reload: boolean) => {
      manualSeed(3);
      const m = new nn.Linear(4, 2);
      let opt = new optim.SGD(m.parameters(), { lr: 0.1, momentum: 0.9 });
      const x = randn([3, 4]);
      for (let i = 0; i < 2; i++) {
        opt.zeroGrad();
        m.forward(x).sum().backward();
        opt.step();
      }
      if (reload) {
        const fresh = new optim.SGD(m.parameters(), { lr: 0.1, momentum: 0.9 });
        fresh.loadStateDict(opt.stateDict(), opt.stepCount);
        opt = fresh;
      }
      opt.zeroGrad();
      m.forward(x).sum().backward();
      opt.step();
      return [...m.weight.toArray()];
    };
    expect(run(true)).toEqual(run(false));
  });

  test("loadStateDict rejects unknown keys and wrong sizes before writing", () => {
    const p = tensor([1, 2], { requiresGrad: true });
    const opt = new optim.AdamW([p]);
    expect(() => opt.loadStateDict({ "0.exp_avg": tensor([1, 2, 3]) }, 1)).toThrow(/state 0.exp_avg has 3 elements, expected 2/);
    expect(() => opt.loadStateDict({ "5.exp_avg": tensor([1, 2]) }, 1)).toThrow(/unexpected state key 5.exp_avg/);
  });

  test("the learning rate can be changed between steps", () => {
    const p = tensor([1], { requiresGrad: true });
    const opt = new optim.SGD([p], { lr: 0.1 });
    opt.lr = 0.5;
    p.mul(p).sum().backward(); // grad 2
    opt.step();
    expect(p.item()).toBeCloseTo(0, 6);
  });

  test("dispose() frees an optimizer's state (AdamW's moments, SGD's momentum buffers)", () => {
    const w = tensor([1, 2, 3, 4], { requiresGrad: true });
    for (const make of [() => new optim.AdamW([w]), () => new optim.SGD([w], { lr: 0.1, momentum: 0.9 })]) {
      const before = memoryStats().liveBytes;
      const opt = make();
      w.grad = tensor([1, 1, 1, 1]).keep();
      opt.step();
      expect(memoryStats().liveBytes).toBeGreaterThan(before);
      opt.zeroGrad();
      opt.dispose();
      expect(memoryStats().liveBytes).toBe(before);
    }
  });

  test("optimizers reject bad hyperparameters", () => {
    const p = tensor([1], { requiresGrad: true });
    expect(() => new optim.SGD([p], { lr: -1 })).toThrow(/SGD: invalid lr -1/);
    expect(() => new optim.AdamW([p], { betas: [1.5, 0.9] })).toThrow(/AdamW: invalid hyperparameters/);
    expect(() => new optim.SGD([], { lr: 0.1 })).toThrow(/empty parameter list/);
  });
});
