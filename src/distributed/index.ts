// src/distributed — multi-process training over MPI (CPU) and NCCL (GPU):
// process group and collectives, DDP, FSDP with float8 all-gather, float8
// tensor/sequence parallel. Run scripts with `bun run launch -n N script.ts`.
export {
  initProcessGroup, destroyProcessGroup, isInitialized, getRank, getWorldSize, getLocalRank, getBackend, setCollectiveTimeout,
  allReduce, allReduceArray, allGather, reduceScatter, broadcast, barrier, collectiveStats, resetCollectiveStats,
  type Backend, type ReduceOp, type CollectiveKind, type ProcessGroupOptions, type CollectiveOptions,
} from "./process_group.ts";
export {
  gatherAlongDim, reduceScatterAlongDim, chunkAlongDim, copyToParallelRegion, reduceFromParallelRegion, gatherFromSequenceParallel,
  reduceScatterToSequenceParallel, gatherFromParallelRegion, splitToParallelRegion,
} from "./functional.ts";
export { DistributedDataParallel, broadcastCoalesced, type DistributedDataParallelOptions } from "./ddp.ts";
export { fullyShard, precomputeFloat8DynamicScaleForFsdp, type FullyShardOptions, type MixedPrecisionPolicy } from "./fsdp.ts";
export {
  Replicate, Shard, ParallelStyle, ColwiseParallel, RowwiseParallel, PrepareModuleInput, Float8ColwiseParallel, Float8RowwiseParallel,
  PrepareFloat8ModuleInput, parallelize, type Placement,
} from "./tensor_parallel.ts";
