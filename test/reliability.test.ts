// reliability.test.ts — issue 15: inputs that used to crash the process or
// silently give a wrong answer. Each crash-prone case runs in its own Bun
// process (test/helpers/subprocess.ts), so a regression shows up as a failed
// test with the child's exit signal, not as a dead test runner.
import { describe, expect, test } from "bun:test";
import { runSnippet, type SnippetResult } from "./helpers/subprocess.ts";

/** The child exited normally and its body threw a Float8Error naming `op` whose message matches `msg`. */
function expectFloat8Error(r: SnippetResult, op: string, msg: RegExp): void {
  if (r.exitCode !== 0 || !r.error) throw new Error(`child exited ${r.exitCode} (signal ${r.signal}); output:\n${r.output.slice(-2000)}`);
  expect(r.error.name).toBe("Float8Error");
  expect(r.error.op).toBe(op);
  expect(r.error.message).toMatch(msg);
}

describe("huge shapes are a Float8Error where the shape is made, never a wrapped allocation (subprocess each)", () => {
  const cases: [string, string, string, RegExp][] = [
    ["zeros([2**62])", "F.zeros([2 ** 62]);", "full", /dim 0 is 4611686018427388000; dims must be non-negative integers/],
    ["Tensor.empty([2**62]).relu()", "F.Tensor.empty([2 ** 62]).relu();", "empty", /dims must be non-negative integers/],
    ["Tensor.empty([2**61, 2]).transpose(0, 1)", "F.Tensor.empty([2 ** 61, 2]).transpose(0, 1);", "empty", /dim 0 is 2305843009213694000/],
    ["Tensor.empty([1e308])", "return F.Tensor.empty([1e308]).nbytes;", "empty", /dim 0 is 1e\+308/],
    ["zeros([1e308])", "return F.zeros([1e308]).nbytes;", "full", /dim 0 is 1e\+308/],
    ["zeros([2**31, 2**31, 2**31])", "return F.zeros([2 ** 31, 2 ** 31, 2 ** 31]).nbytes;", "full", /more than 2\^46 elements or bytes/],
    ["zeros([2**45, 4]) (bytes over the bound)", "return F.zeros([2 ** 45, 4]).nbytes;", "full", /more than 2\^46 elements or bytes \(4 bytes per element\)/],
    ["empty of 2^20 dims of 2^40 then a 0 (no Infinity * 0)", "return F.Tensor.empty([...new Array(20).fill(2 ** 40), 0, 2 ** 52]).numel;", "empty", /x/],
    ["randn([1e12])", "F.randn([1e12]);", "randn", /cannot allocate|out of memory/],
    ["tensor(data, {shape: [2**62]})", "F.tensor([1], { shape: [2 ** 62] });", "tensor", /dims must be non-negative integers/],
    ["fromBytes with a huge shape", "F.Tensor.fromBytes(new Uint8Array(4), { shape: [2 ** 60, 16], dtype: 'float32' });", "fromBytes", /dims must be non-negative integers/],
    ["reshape to a NaN dim", "F.zeros([4]).reshape([NaN]);", "reshape", /./],
  ];
  for (const [name, body, op, msg] of cases) {
    test(name, () => {
      const r = runSnippet(body);
      if (name.startsWith("empty of 2^20 dims")) {
        // numel 0: a valid empty tensor, not Infinity * 0 = NaN
        expect(r.exitCode).toBe(0);
        expect(r.ok).toBe(true);
        expect(r.value).toBe(0);
        return;
      }
      expectFloat8Error(r, op, msg);
    }, 60000);
  }
});

describe("the C ABI rejects element counts whose byte size would overflow (subprocess each)", () => {
  const n = "2 ** 62";
  const cases: [string, string, RegExp][] = [
    ["fp8_alloc(2^47)", "const o = new BigUint64Array(1); return [L.lib.fp8_alloc(2 ** 47, o), String(L.lib.fp8_last_error())];", /fp8_alloc: nbytes .* is too large/],
    ["fp8_cpu_convert n=2^62", `const b = new Float32Array(4); return [L.lib.fp8_cpu_convert(b, 0, b, 1, ${n}), String(L.lib.fp8_last_error())];`, /fp8_cpu_convert: n must be >= 0 and at most 2\^46, got 4611686018427387904/],
    ["fp8_cpu_eltwise n=2^62", `const b = new Float32Array(4); return [L.lib.fp8_cpu_eltwise(b, b, 0, ${n}, 0, 0, 0), String(L.lib.fp8_last_error())];`, /n=4611686018427387904 must be >= 0 and at most 2\^46/],
    ["fp8_cpu_eltwise_backward n=2^62", `const b = new Float32Array(4); return [L.lib.fp8_cpu_eltwise_backward(b, b, b, 0, ${n}, 0, 0, 0), String(L.lib.fp8_last_error())];`, /n=4611686018427387904 must be >= 0 and at most 2\^46/],
    ["fp8_cpu_fill n=2^62", `const b = new Float32Array(4); return [L.lib.fp8_cpu_fill(b, 0, ${n}, 1), String(L.lib.fp8_last_error())];`, /n must be >= 0 and at most 2\^46/],
    ["fp8_cpu_amax n=2^62", `const b = new Float32Array(4); return [L.lib.fp8_cpu_amax(b, b, 0, ${n}), String(L.lib.fp8_last_error())];`, /n must be >= 0 and at most 2\^46/],
    ["fp8_cpu_quantize n=2^62", `const b = new Float32Array(4); return [L.lib.fp8_cpu_quantize(b, 2, b, 0, ${n}, b), String(L.lib.fp8_last_error())];`, /n must be >= 0 and at most 2\^46/],
    ["fp8_cpu_dequantize n=2^62", `const b = new Float32Array(4); return [L.lib.fp8_cpu_dequantize(b, 0, b, 2, ${n}, b), String(L.lib.fp8_last_error())];`, /n must be >= 0 and at most 2\^46/],
    ["fp8_cpu_masked_fill n=2^62", `const b = new Float32Array(4); return [L.lib.fp8_cpu_masked_fill(b, b, b, 0, ${n}, 1, 0), String(L.lib.fp8_last_error())];`, /n must be >= 0 and at most 2\^46/],
    ["fp8_cpu_sgd_step n=2^62", `const b = new Float32Array(4); return [L.lib.fp8_cpu_sgd_step(b, b, b, 0, ${n}, 0.1, 0, 0, 0, 0, 1), String(L.lib.fp8_last_error())];`, /n must be >= 0 and at most 2\^46/],
    ["fp8_cpu_adamw_step n=2^62", `const b = new Float32Array(4); return [L.lib.fp8_cpu_adamw_step(b, b, b, b, 0, ${n}, 0.1, 0.9, 0.99, 1e-8, 0, 1), String(L.lib.fp8_last_error())];`, /n must be >= 0 and at most 2\^46/],
    ["fp8_cpu_quantize_rowwise rows*cols > 2^46", "const b = new Float32Array(4); return [L.lib.fp8_cpu_quantize_rowwise(b, b, 2, b, 0, 2 ** 30, 2 ** 30, 0), String(L.lib.fp8_last_error())];", /at most 2\^46 elements/],
    ["fp8_cpu_matmul M*K > 2^46", "const b = new Float32Array(4); return [L.lib.fp8_cpu_matmul(b, 0, b, b, 0, null, 0, 1, 1, 2 ** 30, 2 ** 30, 1, 0, 0, 1, 0), String(L.lib.fp8_last_error())];", /more than 2\^46 elements/],
    ["fp8_cpu_copy_strided dims product > 2^46", "const b = new Float32Array(4); const d = BigInt64Array.from([2n ** 30n, 2n ** 30n]); const st = BigInt64Array.from([0n, 0n]); return [L.lib.fp8_cpu_copy_strided(b, st, b, st, d, 2, 4), String(L.lib.fp8_last_error())];", /more than 2\^46 elements/],
    ["fp8_cpu_softmax rows*cols > 2^46", "const b = new Float32Array(4); return [L.lib.fp8_cpu_softmax(b, b, 0, 2 ** 30, 2 ** 30, 0), String(L.lib.fp8_last_error())];", /more than 2\^46 elements/],
    ["fp8_cpu_embedding n_idx*dim > 2^46", "const b = new Float32Array(4); return [L.lib.fp8_cpu_embedding(b, b, b, 0, 2 ** 30, 4, 2 ** 30), String(L.lib.fp8_last_error())];", /overflows/],
  ];
  for (const [name, body, msg] of cases) {
    test(name, () => {
      const r = runSnippet(body);
      expect(r.exitCode).toBe(0);
      const [status, err] = r.value as [number, string];
      expect(status).not.toBe(0);
      expect(err).toMatch(msg);
    }, 60000);
  }
});
