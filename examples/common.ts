// common.ts — small helpers shared by the examples: argument parsing and timing.

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
