// isa.ts — the CPU kernels' ISA paths for tests that run every path (0 portable, 1 AVX2, 2 AVX-512).
import { expect } from "bun:test";
import { lib } from "../../src/ffi/index.ts";

/** ISA paths this CPU can run: 0 portable, 1 AVX2, 2 AVX-512. */
export function supportedIsas(): number[] {
  const out = new Int32Array(1);
  expect(lib.fp8_cpu_set_isa(2)).toBe(0);
  expect(lib.fp8_cpu_get_isa(out)).toBe(0);
  return Array.from({ length: out[0]! + 1 }, (_, i) => i);
}

/** Runs fn with the kernels capped at `isa`, restoring the best path afterwards. */
export function withIsa<T>(isa: number, fn: () => T): T {
  expect(lib.fp8_cpu_set_isa(isa)).toBe(0);
  try {
    return fn();
  } finally {
    lib.fp8_cpu_set_isa(2);
  }
}
