// common.ts — small helpers shared by the examples: argument parsing, timing, and
// capturing a training step as a CUDA graph.
import { cuda } from "../src/index.ts";

/** Parses --key value / --flag arguments into a map. */
export function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) continue;
    const [k, v] = a.slice(2).split("=", 2);
    if (v !== undefined) out.set(k, v);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) out.set(k, argv[++i]);
    else out.set(k, "true");
  }
  return out;
}

/** Milliseconds since an arbitrary origin (monotonic). */
export function nowMs(): number {
  return Bun.nanoseconds() / 1e6;
}

/**
 * cuda.captureGraph(step), or null after a warning from `who` when the capture fails. A failed
 * capture ran nothing and captured nothing, so the caller trains on with eager steps (after
 * zeroGrad, which drops the gradients the captured backward left undefined).
 */
export function captureOrWarn<T>(who: string, step: () => T): cuda.TensorGraph<T> | null {
  try {
    return cuda.captureGraph(step);
  } catch (e) {
    console.warn(`\n${who}: CUDA graph capture failed, training on with eager steps: ${e instanceof Error ? e.message : String(e)}`);
    return null;
  }
}
