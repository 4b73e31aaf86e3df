// subprocess.ts — runs a snippet of TypeScript in a fresh Bun process, so that a
// case which could crash the process (SIGSEGV, glibc abort) is a failed test,
// not a dead test runner. The snippet's body runs inside a try; what it
// returns, or the error it throws, comes back as JSON.
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..");

/** The outcome of one snippet: its exit, and the value returned or the error thrown. */
export interface SnippetResult {
  exitCode: number | null;
  signal: string | null;
  ok: boolean;
  value?: unknown;
  error?: { name: string; message: string; op?: string };
  output: string;
}

/**
 * Runs `body` (statements; `return x` gives the value) with `F` bound to the
 * package's index (src/index.ts) and `L` to src/ffi in a child Bun process.
 */
export function runSnippet(body: string, opts: { timeoutMs?: number; env?: Record<string, string> } = {}): SnippetResult {
  const script = `
import * as F from ${JSON.stringify(join(root, "src", "index.ts"))};
import * as L from ${JSON.stringify(join(root, "src", "ffi", "index.ts"))};
const out = (() => { try { return { ok: true, value: (() => { ${body} })() }; }
  catch (e) { return { ok: false, error: { name: e?.name, message: String(e?.message ?? e), op: e?.op } }; } })();
process.stdout.write("\\nSNIPPET " + JSON.stringify(out, (k, v) => typeof v === "number" && !Number.isFinite(v) ? String(v) : v) + "\\n");
`;
  const p = Bun.spawnSync([process.execPath, "-e", script], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
    timeout: opts.timeoutMs ?? 60000,
    env: { ...process.env, ...opts.env },
  });
  const output = p.stdout.toString() + p.stderr.toString();
  const line = output.split("\n").find((l) => l.startsWith("SNIPPET "));
  const parsed = line ? JSON.parse(line.slice(8)) : { ok: false };
  return { exitCode: p.exitCode, signal: p.signalCode ?? null, output, ...parsed };
}
