// launch.ts — runs a Bun script as N processes under mpirun (OpenMPI):
//   bun run launch -n 2 examples/ddp.ts [script args]
//   bun run launch -n 16 --hostfile hosts examples/ddp.ts --backend nccl
// Arguments before the script (the first *.ts / *.js) go to mpirun. Added for
// you: --allow-run-as-root when running as root (containers), --oversubscribe
// (more ranks than cores is fine on a laptop), --bind-to none (each rank runs
// OpenMP threads) and OMP_NUM_THREADS = cores / ranks (at least 1) unless set.
// FLOAT8_* variables are exported to every rank.
import { availableParallelism } from "node:os";

/** The mpirun command line for `n` ranks of `script`. */
export function mpirunCommand(opts: {
  n: number;
  script: string;
  scriptArgs?: string[];
  mpirunArgs?: string[];
  mpirun?: string;
  env?: Record<string, string | undefined>;
  /** hide mpirun's own banners: `-quiet` where this mpirun takes it (Open MPI 4 and older; Open MPI 5 rejects it) */
  quiet?: boolean;
}): string[] {
  const env = opts.env ?? process.env;
  const extra = [...(opts.mpirunArgs ?? []), ...(opts.quiet && takesQuiet(opts.mpirun ?? "mpirun") ? ["-quiet"] : [])];
  const has = (flag: string) => extra.includes(flag);
  const cmd = [opts.mpirun ?? "mpirun", "-n", String(opts.n)];
  if (process.getuid?.() === 0 && !has("--allow-run-as-root")) cmd.push("--allow-run-as-root");
  if (!has("--oversubscribe")) cmd.push("--oversubscribe");
  if (!has("--bind-to")) cmd.push("--bind-to", "none");
  const threads = env.OMP_NUM_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / opts.n)));
  cmd.push("-x", `OMP_NUM_THREADS=${threads}`);
  for (const name of Object.keys(env).filter((k) => k.startsWith("FLOAT8_")).sort()) cmd.push("-x", name);
  return [...cmd, ...extra, process.execPath, opts.script, ...(opts.scriptArgs ?? [])];
}

const quietByMpirun = new Map<string, boolean>();
/** Whether this mpirun takes -quiet: Open MPI up to 4 does, Open MPI 5 (Debian 13) stops on it. Asked once per mpirun. */
function takesQuiet(mpirun: string): boolean {
  let yes = quietByMpirun.get(mpirun);
  if (yes === undefined) {
    const out = Bun.spawnSync([mpirun, "--version"], { stdout: "pipe", stderr: "pipe" }).stdout.toString();
    yes = /Open MPI\) [1-4]\./.test(out);
    quietByMpirun.set(mpirun, yes);
  }
  return yes;
}

function usage(msg: string): never {
  console.error(`launch: ${msg}\nusage: bun run launch -n N [mpirun options] script.ts [script args]`);
  process.exit(2);
}

if (import.meta.main) {
  const argv = process.argv.slice(2);
  const at = argv.findIndex((a) => /\.(ts|js|mjs|tsx)$/.test(a));
  if (at < 0) usage("no script (*.ts or *.js) given");
  const before = argv.slice(0, at);
  let n = 2;
  const mpirunArgs: string[] = [];
  for (let i = 0; i < before.length; i++) {
    if (["-n", "-np", "--np", "-c"].includes(before[i])) {
      n = Number(before[++i]);
      if (!Number.isInteger(n) || n < 1) usage(`-n needs a positive integer, got '${before[i]}'`);
    } else {
      mpirunArgs.push(before[i]);
    }
  }
  const mpirun = Bun.which("mpirun");
  if (!mpirun) usage("mpirun not found; install OpenMPI (apt install openmpi-bin libopenmpi-dev)");
  const cmd = mpirunCommand({ n, script: argv[at], scriptArgs: argv.slice(at + 1), mpirunArgs, mpirun });
  const proc = Bun.spawnSync(cmd, { stdout: "inherit", stderr: "inherit", stdin: "inherit" });
  process.exit(proc.exitCode ?? 1);
}
