// random.ts — the seeded generator behind randn/rand (xoshiro128**, Box-Muller).

let s0 = 0x9e3779b9, s1 = 0x243f6a88, s2 = 0xb7e15162, s3 = 0x12345678;

/** Seeds the global generator (like torch.manualSeed). */
export function manualSeed(seed: number): void {
  // splitmix32 expands the seed into the four state words
  let x = seed >>> 0;
  const next = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  s0 = next(); s1 = next(); s2 = next(); s3 = next();
}

/** Uniform float in [0, 1). */
export function randomUniform(): number {
  const r = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
  const t = (s1 << 9) >>> 0;
  s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3;
  s2 = (s2 ^ t) >>> 0;
  s3 = rotl(s3, 11);
  return r / 4294967296;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Fills out with standard normal samples. */
export function fillNormal(out: Float32Array, mean = 0, std = 1): void {
  for (let i = 0; i < out.length; i += 2) {
    const u1 = 1 - randomUniform();
    const u2 = randomUniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = mean + std * r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < out.length) out[i + 1] = mean + std * r * Math.sin(2 * Math.PI * u2);
  }
}

/** Fills out with uniform samples in [low, high). */
export function fillUniform(out: Float32Array, low = 0, high = 1): void {
  for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * randomUniform();
}

/** A random permutation of 0..n-1 (Fisher-Yates on the global generator). */
export function randperm(n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(randomUniform() * (i + 1));
    const t = p[i]; p[i] = p[j]; p[j] = t;
  }
  return p;
}

/**
 * An independent seeded stream of uniform numbers in [0, 1) (mulberry32), for
 * data order and augmentation that must not depend on the global generator.
 */
export function uniformStream(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
