// src/nn — modules and functional ops (torch.nn / torch.nn.functional).
export { Module, RemovableHandle } from "./module.ts";
export type { ForwardPreHook, ForwardHook, HookOptions, StateDictHook } from "./module.ts";
export { Linear, Sequential, ModuleList, ReLU, GELU, SiLU, Embedding, LayerNorm, RMSNorm } from "./layers.ts";
export { Dropout, dropout } from "./dropout.ts";
export { linear } from "../tensor/ops/linalg.ts";
export { softmax, logSoftmax, crossEntropy, mseLoss, layerNorm, rmsNorm, embedding, maskedFill } from "../tensor/ops/nn.ts";
