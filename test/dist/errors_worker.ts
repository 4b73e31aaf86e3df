// errors_worker.ts — run by test/distributed.test.ts under `mpirun -n 2`:
// a shape mismatch across ranks is an error on every rank (and the group
// stays usable), and a collective no other rank joins times out naming the op.
import { distributed as dist, zeros, Float8Error } from "../../src/index.ts";
import { report } from "./common.ts";

const { rank } = dist.initProcessGroup({ timeoutMs: 20000 });

// rank 0 reduces [4, 8], rank 1 reduces [4, 16] at the same call site
try {
  dist.allReduce(zeros([4, rank === 0 ? 8 : 16]), "sum", { key: "mismatch" });
  report(`mismatch_rank${rank}`, { error: null });
} catch (e) {
  report(`mismatch_rank${rank}`, { error: (e as Error).message, isFloat8Error: e instanceof Float8Error });
}

// the group still works after the mismatch (no collective was posted)
const ok = dist.allReduce(zeros([3]).add(rank + 1), "sum", { key: "after-mismatch" }).toArray();
report(`after_mismatch_rank${rank}`, [...ok]);

// a call site that passed its first-use check, then changes its element count on one
// rank only (issue 15): every kind of collective fails on both ranks, no data moves,
// and the group stays usable afterwards
const later: Record<string, unknown> = {};
const cases: [string, (n: number) => unknown][] = [
  ["allReduce_8_4096", (n) => dist.allReduce(zeros([n]).add(1), "sum", { key: "later-ar" })],
  ["allReduce_16_8", (n) => dist.allReduce(zeros([n]).add(1), "max", { key: "later-ar2" })],
  ["allGather", (n) => dist.allGather(zeros([n]), { key: "later-ag" })],
  ["reduceScatter", (n) => dist.reduceScatter(zeros([2 * n]), "sum", { key: "later-rs" })],
  ["broadcast", (n) => dist.broadcast(zeros([n]), 0, { key: "later-bc" })],
];
const sizes: Record<string, [number, number, number]> = {
  allReduce_8_4096: [8, 8, 4096], allReduce_16_8: [8, 16, 8], allGather: [8, 8, 4096], reduceScatter: [4, 4, 64], broadcast: [8, 8, 4096],
};
for (const [name, call] of cases) {
  const [first, r0, r1] = sizes[name];
  call(first); // passes the full first-use check on both ranks
  try {
    call(rank === 0 ? r0 : r1);
    later[name] = { error: null };
  } catch (e) {
    later[name] = { error: (e as Error).message, isFloat8Error: e instanceof Float8Error };
  }
}
later.after = [...dist.allReduce(zeros([3]).add(rank + 1), "sum", { key: "later-ar" }).toArray()];
report(`later_mismatch_rank${rank}`, later);

// the call site is checked on both ranks, then rank 1 skips its second use:
// rank 0 must fail within the timeout, naming the op
dist.allReduce(zeros([16]), "sum", { key: "timeout" });
dist.setCollectiveTimeout(500);
if (rank === 0) {
  const start = performance.now();
  try {
    dist.allReduce(zeros([16]), "sum", { key: "timeout" });
    report("timeout", { error: null });
  } catch (e) {
    report("timeout", { error: (e as Error).message, ms: Math.round(performance.now() - start) });
  }
  try {
    dist.barrier();
  } catch (e) {
    report("after_timeout", { error: (e as Error).message });
  }
} else {
  Bun.sleepSync(1500);
}
// a timed-out group cannot finalize MPI cleanly; end the job from here
process.exit(0);
