// src/optim — optimizers (torch.optim).
export { Optimizer, SGD, AdamW } from "./optimizers.ts";
