// nccl_worker.ts — run by test/distributed.test.ts as a single process (MPI
// singleton, no mpirun): creates an NCCL process group. Without a GPU that must
// fail with a clear message; with one, a world of 1 comes up and is torn down.
import { distributed as dist } from "../../src/index.ts";
import { report } from "./common.ts";

try {
  const { worldSize } = dist.initProcessGroup({ backend: "nccl", timeoutMs: 30000 });
  report("nccl", { ok: true, worldSize });
  dist.destroyProcessGroup();
} catch (e) {
  report("nccl", { ok: false, error: (e as Error).message });
}
