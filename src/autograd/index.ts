// src/autograd — reverse-mode autograd.
export { noGrad, isGradEnabled, Function, FunctionCtx, savedTensorBytes } from "./graph.ts";
