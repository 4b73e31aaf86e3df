// nn.Module's public extension points: forward pre- and post-hooks with
// removable handles, parameter replacement (registerParameter on an existing
// name, setParameter) and state-dict hooks. FSDP and tensor parallelism are
// built on them (test/distributed.test.ts runs those under mpirun).
import { describe, expect, test } from "bun:test";
import { Float8Error, nn, tensor, zeros, type Tensor } from "../src/index.ts";

class Twice extends nn.Module {
  forward(x: Tensor): Tensor {
    return x.mul(2);
  }
}

class Failing extends nn.Module {
  forward(): Tensor {
    throw new Error("boom");
  }
}

const values = (t: Tensor) => [...t.toArray()];

describe("forward hooks", () => {
  test("pre-hooks may replace the inputs and post-hooks the output, in registration order", () => {
    const m = new Twice();
    const seen: string[] = [];
    m.registerForwardPreHook((mod, inputs) => {
      seen.push(`pre1:${values(inputs[0])}`);
      expect(mod).toBe(m);
      return [inputs[0].add(1)];
    });
    m.registerForwardPreHook((_m, inputs) => {
      seen.push(`pre2:${values(inputs[0])}`);
      return inputs[0].mul(10); // a single value is the new single argument
    });
    m.registerForwardHook((_m, inputs, out) => {
      seen.push(`post1:${values(inputs[0])}->${values(out)}`);
      return out.sub(1);
    });
    m.registerForwardHook((_m, _inputs, out) => {
      seen.push(`post2:${values(out)}`); // returns nothing: output unchanged
    });
    const y = m.forward(tensor([1, 2]));
    // ((x + 1) * 10) * 2 - 1
    expect(values(y)).toEqual([39, 59]);
    expect(seen).toEqual(["pre1:1,2", "pre2:2,3", "post1:20,30->40,60", "post2:39,59"]);
  });

  test("prepend puts a hook before the ones registered earlier", () => {
    const m = new Twice();
    const order: number[] = [];
    m.registerForwardPreHook(() => void order.push(1));
    m.registerForwardPreHook(() => void order.push(0), { prepend: true });
    m.registerForwardHook(() => void order.push(3));
    m.registerForwardHook(() => void order.push(2), { prepend: true });
    m.forward(tensor([1]));
    expect(order).toEqual([0, 1, 2, 3]);
  });

  test("remove() unregisters a hook; removing twice is a no-op; `using` removes at scope end", () => {
    const m = new Twice();
    let calls = 0;
    const h = m.registerForwardPreHook(() => void calls++);
    m.forward(tensor([1]));
    h.remove();
    h.remove();
    m.forward(tensor([1]));
    expect(calls).toBe(1);
    {
      using _h = m.registerForwardHook((_m, _i, out) => out.add(100));
      expect(values(m.forward(tensor([1])))).toEqual([102]);
    }
    expect(values(m.forward(tensor([1])))).toEqual([2]);
  });

  test("hooks run when a parent module calls the child's forward", () => {
    const lin = new nn.Linear(2, 2, { bias: false });
    const seq = new nn.Sequential(lin, new nn.ReLU());
    let seenShape: readonly number[] = [];
    lin.registerForwardHook((_m, _i, out) => {
      seenShape = out.shape;
      return zeros(out.shape);
    });
    expect(values(seq.forward(tensor([1, 2], { shape: [1, 2] })))).toEqual([0, 0]);
    expect(seenShape).toEqual([1, 2]);
  });

  test("an alwaysCall post-hook runs when the forward or a pre-hook throws; the original error propagates", () => {
    const m = new Failing();
    const calls: string[] = [];
    m.registerForwardHook(() => void calls.push("plain"));
    m.registerForwardHook((_m, _i, out) => {
      calls.push(`always:${String(out)}`);
      throw new Error("hook error is dropped");
    }, { alwaysCall: true });
    expect(() => m.forward()).toThrow("boom");
    expect(calls).toEqual(["always:undefined"]);

    const t = new Twice();
    let cleaned = 0;
    t.registerForwardPreHook(() => {
      throw new Float8Error("pre", "refused");
    });
    t.registerForwardHook(() => void cleaned++, { alwaysCall: true });
    expect(() => t.forward(tensor([1]))).toThrow("refused");
    expect(cleaned).toBe(1);
  });
});

describe("parameter replacement", () => {
  test("registerParameter on an existing name replaces the parameter and the field that held it", () => {
    const lin = new nn.Linear(2, 3);
    const old = lin.weight;
    const w = zeros([3, 2]);
    expect(lin.registerParameter("weight", w)).toBe(w);
    expect(lin.weight).toBe(w);
    expect(w.requiresGrad).toBe(true);
    expect(lin.stateDict().weight).toBe(w);
    expect(lin.parameters()).toContain(w);
    expect(lin.parameters()).not.toContain(old);
    old.dispose();
  });

  test("setParameter swaps the tensor as it is, returns the old one, and names the module on a bad name", () => {
    const lin = new nn.Linear(2, 2, { bias: false });
    const w = lin.weight;
    const tmp = zeros([2, 2]);
    expect(lin.setParameter("weight", tmp)).toBe(w);
    expect(lin.weight).toBe(tmp);
    expect(tmp.requiresGrad).toBe(false); // unchanged: a swap, not a registration
    expect([...lin.namedParameters()].map(([, p]) => p)).toEqual([tmp]);
    lin.setParameter("weight", w);
    expect(lin.weight).toBe(w);
    tmp.dispose();
    expect(() => lin.setParameter("bias", zeros([2]))).toThrow(Float8Error);
    expect(() => lin.setParameter("bias", zeros([2]))).toThrow("Linear has no parameter 'bias' (it has: weight)");
  });

  test("namedParameters(prefix, false) lists only the module's own parameters", () => {
    const seq = new nn.Sequential(new nn.Linear(2, 2), new nn.Linear(2, 2));
    expect([...seq.namedParameters("", false)]).toEqual([]);
    expect([...seq.namedParameters()].map(([n]) => n)).toEqual(["0.weight", "0.bias", "1.weight", "1.bias"]);
    const [first] = [...seq.namedChildren()];
    expect([...first[1].namedParameters("", false)].map(([n]) => n)).toEqual(["weight", "bias"]);
  });

  test("a user-written wrapper: hooks swap a computed weight in for forward, gradients reach the registered parameter", () => {
    // Weight scaled by 3 at forward time, the way FSDP swaps in a gathered weight.
    const lin = new nn.Linear(2, 1, { bias: false, weight: tensor([1, 2], { shape: [1, 2] }) });
    const param = lin.weight;
    lin.registerForwardPreHook((m) => void m.setParameter("weight", param.mul(3)));
    lin.registerForwardHook((m) => {
      m.setParameter("weight", param).dispose();
    }, { alwaysCall: true });
    const y = lin.forward(tensor([1, 1], { shape: [1, 2] }));
    expect(values(y)).toEqual([9]);
    expect(lin.weight).toBe(param);
    y.sum().backward();
    expect(values(param.grad!)).toEqual([3, 3]);
  });
});

describe("state-dict hooks", () => {
  test("a state-dict hook may replace its module's entries, under the module's prefix; remove() stops it", () => {
    const seq = new nn.Sequential(new nn.Linear(2, 2, { bias: false }));
    const [[, lin]] = [...seq.namedChildren()];
    const full = zeros([4]);
    const prefixes: string[] = [];
    const h = lin.registerStateDictHook((m, state, prefix) => {
      expect(m).toBe(lin);
      prefixes.push(prefix);
      state[`${prefix}weight`] = full;
    });
    expect(seq.stateDict()["0.weight"]).toBe(full);
    expect(prefixes).toEqual(["0."]);
    h.remove();
    expect(seq.stateDict()["0.weight"]).toBe((lin as nn.Linear).weight);
    full.dispose();
  });

  test("a load pre-hook rewrites a copy of the state; the tensors it puts in are freed after the load", () => {
    const lin = new nn.Linear(2, 1, { bias: false });
    const given = { weight: tensor([10, 20, 30, 40]) }; // "full" flat tensor; this module holds half
    let made: Tensor | null = null;
    lin.registerLoadStateDictPreHook((_m, state, prefix) => {
      const t = state[`${prefix}weight`];
      made = tensor([...t.toArray()].slice(0, 2), { shape: [1, 2] });
      state[`${prefix}weight`] = made;
    });
    lin.loadStateDict(given);
    expect(values(lin.weight)).toEqual([10, 20]);
    expect(made!.isDisposed).toBe(true);
    expect(given.weight.isDisposed).toBe(false);
    expect(given.weight.shape).toEqual([4]);
    // a failed load (an unexpected key, found after the hook ran) frees them too
    const first = made!;
    expect(() => lin.loadStateDict({ weight: tensor([1, 2, 3, 4]), extra: tensor([1]) })).toThrow("unexpected keys: [extra]");
    expect(made).not.toBe(first);
    expect(made!.isDisposed).toBe(true);
    expect(values(lin.weight)).toEqual([10, 20]);
  });
});
