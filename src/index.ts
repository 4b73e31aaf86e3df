// float8 — float8 training for TypeScript on Bun.
//   import { nn, optim, float8, tensor, randn, tidy } from "float8";
export * from "./tensor/index.ts";
export * from "./autograd/index.ts";
export { Float8Error } from "./errors.ts";
export * as nn from "./nn/index.ts";
export * as optim from "./optim/index.ts";
export * as float8 from "./float8/index.ts";
export * as io from "./io/safetensors.ts";
export * as distributed from "./distributed/index.ts";
export * as cuda from "./cuda/index.ts";
