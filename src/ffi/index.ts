// src/ffi — the only folder that imports bun:ffi.
export { lib, check, libraryPath, nativeAlloc, nativeFree, nativeView, nativeMemoryStats, nativeEmptyCache, offsetPtr } from "./library.ts";
export type { NativePtr } from "./library.ts";
export { distLib, checkDist, distLibraryPath, prepareNcclPlugin } from "./dist.ts";
export { cudaLib, checkCuda, cudaProbe, cudaLibraryPath, type CudaProbe, type CudaState } from "./cuda.ts";
