// state_dict_worker.ts — run by test/distributed.test.ts under `mpirun -n 2`:
// fullyShard({ fullStateDict: true }) gives full tensors out of stateDict() and
// takes them back into loadStateDict() (Module's state-dict hooks), so a
// checkpoint of a sharded model equals the unsharded model's, and loads into
// another sharded model. Rank 0 prints RESULT lines.
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nn, io, distributed as dist, manualSeed, noGrad, randn, tidy, Tensor } from "../../src/index.ts";
import { report } from "./common.ts";

const { rank } = dist.initProcessGroup({ backend: "mpi", timeoutMs: 60000 });

// 3 x 5 = 15 elements: padded to 16 and split 8 + 8 over 2 ranks
const build = (seed: number) => {
  manualSeed(seed);
  return new nn.Sequential(new nn.Linear(5, 3), new nn.ReLU(), new nn.Linear(3, 7));
};
const same = (a: Tensor, b: Tensor) => a.shape.join() === b.shape.join() && a.toArray().every((v, i) => v === b.toArray()[i]);

const plain = build(1);
const plainState = plain.stateDict();
const full = dist.fullyShard(build(1), { fullStateDict: true });
const sharded = dist.fullyShard(build(1));

const result = tidy(() => {
  const state = full.stateDict(); // collective on every rank
  const keys = Object.keys(state).sort().join() === Object.keys(plainState).sort().join();
  const fullEqualsPlain = Object.entries(plainState).every(([k, t]) => same(state[k], t));
  const shardedShapes = Object.fromEntries(Object.entries(sharded.stateDict()).map(([k, t]) => [k, t.shape]));

  // load another seed's full checkpoint into the sharded model: each rank keeps its piece
  const other = build(2);
  full.loadStateDict(other.stateDict());
  const after = full.stateDict();
  const loaded = Object.entries(other.stateDict()).every(([k, t]) => same(after[k], t));
  const shardsAreLocal = full.parameters().every((p) => p.ndim === 1);
  // the loaded sharded model computes what the model it was loaded from computes
  manualSeed(3);
  const x = randn([4, 5]);
  const forwardEqual = noGrad(() => same(full.forward(x), other.forward(x)));
  // checkpoint files: io.save writes full tensors; io.load refuses (it writes into the module's own
  // tensors), loadStateDict(io.loadFile(...)) takes them
  const path = join(tmpdir(), `fsdp-full-${process.pid}-rank${rank}.safetensors`);
  io.save(full, path);
  const file = io.loadFile(path);
  const fileIsFull = Object.entries(other.stateDict()).every(([k, t]) => same(file.tensors[k], t));
  let ioLoadError = "";
  try {
    io.load(full, path);
  } catch (e) {
    ioLoadError = (e as Error).message;
  }
  const fresh = dist.fullyShard(build(5), { fullStateDict: true });
  fresh.loadStateDict(file.tensors);
  const freshLoaded = noGrad(() => same(fresh.forward(x), other.forward(x)));
  rmSync(path, { force: true });
  return { keys, fullEqualsPlain, shardedShapes, loaded, shardsAreLocal, forwardEqual, fileIsFull, ioLoadError, freshLoaded };
});
if (rank === 0) report("fullStateDict", result);
dist.destroyProcessGroup();
