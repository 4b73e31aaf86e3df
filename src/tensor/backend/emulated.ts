// emulated.ts — a device backend that runs on the CPU, for testing the device
// code paths of Tensor, autograd, nn, optim and float8 on a machine without a
// GPU. Its memory is host memory that JS may not view (hostAccessible false),
// so every read and write must go through upload/download, as on a GPU; and
// every data pointer handed to a kernel must lie inside one of its own live
// allocations, so a host array or a CPU tensor passed where device memory is
// expected fails loudly here instead of crashing on the GPU.
import { Float8Error } from "../../errors.ts";
import { nativeAlloc, nativeFree } from "../../ffi/index.ts";
import { cpuBackend } from "./cpu.ts";
import type { Backend, Device } from "./types.ts";

/** Which arguments of each kernel are device data pointers (by position; null allowed where optional). */
const DEVICE_ARGS: Partial<Record<keyof Backend, readonly number[]>> = {
  convert: [0, 2], fill: [0], binary: [0, 2, 4], eltwise: [0, 1], eltwiseBackward: [0, 1, 2], reduce: [0, 2],
  copyStrided: [0, 2], maskedFill: [0, 1, 2], argmax: [0, 1],
  softmax: [0, 1], softmaxBackward: [0, 1, 2], layerNorm: [0, 1, 2, 3, 4, 5], layerNormBackward: [0, 1, 2, 3, 4, 5, 6, 7],
  rmsNorm: [0, 1, 2, 3], rmsNormBackward: [0, 1, 2, 3, 4, 5], embedding: [0, 1, 2], embeddingBackward: [0, 1, 2],
  crossEntropy: [0, 1, 2, 3], crossEntropyBackward: [0, 1, 2, 3],
  matmul: [0, 2, 3, 5], scaledMm: [0, 2, 4, 6, 7, 8], scaledMmRowwise: [0, 2, 4, 6, 7, 8],
  amax: [0, 1], amaxToScale: [0, 1, 2], quantize: [0, 2, 5], quantizeAmax: [0, 1, 3, 6, 7], quantizeDynamic: [0, 1, 3, 6, 7], quantizeDecode: [0, 1, 3, 6], quantizeTranspose: [0, 1, 3, 7], dequantize: [0, 2, 5],
  quantizeRowwise: [0, 1, 3], roundScalesToPowerOf2: [0], sgdStep: [0, 1, 2], adamwStep: [0, 1, 2, 3],
  copy: [0, 1],
};

/**
 * A backend for `device` whose memory is host memory hidden from JS and whose
 * kernels are the CPU's, checking that every pointer it is given is its own.
 */
export function emulatedDeviceBackend(device: Device = "cuda"): Backend & { liveAllocations(): number; transfers(): { uploads: number; downloads: number } } {
  const allocs = new Map<number, number>(); // start -> nbytes
  let liveBytes = 0;
  let uploads = 0, downloads = 0;

  const owns = (p: unknown): boolean => {
    if (typeof p !== "number") return false;
    for (const [start, n] of allocs) if (p >= start && p <= start + n) return true;
    return false;
  };
  const requireDevice = (name: string, i: number, p: unknown, op: string) => {
    if (p === null) return;
    if (!owns(p)) {
      const what = typeof p === "number" ? "a pointer outside device memory" : `a host ${(p as object)?.constructor?.name ?? typeof p}`;
      throw new Float8Error(op, `${name}: argument ${i} must be ${device} memory, got ${what}`);
    }
  };

  const noDecode = `a bf16 decode is a CPU GEMM's input; on ${device} the cast writes fp8 only`;
  const base: Backend = {
    ...cpuBackend,
    device,
    hostAccessible: false,
    quantizeTransposeDecode: undefined, // a bf16 decode is a CPU GEMM's input (host backends only)
    nativeFp8Matmul: undefined, scaledMmStrided: undefined, // libfp8's CPU GEMM paths (host backends only)
    // as on cuda: the block casts run on the device (here the CPU's kernels on checked device pointers), the GEMV does not
    blockKernels: {
      quantizeBlockwise: (data, scale, fp8, src, sd, rows, cols, br, bc, op) => {
        [0, 1, 3].forEach((i) => requireDevice("quantizeBlockwise", i, [data, scale, fp8, src][i], op));
        cpuBackend.blockKernels!.quantizeBlockwise(data, scale, fp8, src, sd, rows, cols, br, bc, op);
      },
      dequantizeBlockwise: (dst, dd, data, fp8, scale, rows, cols, br, bc, op) => {
        [0, 2, 4].forEach((i) => requireDevice("dequantizeBlockwise", i, [dst, dd, data, fp8, scale][i], op));
        cpuBackend.blockKernels!.dequantizeBlockwise(dst, dd, data, fp8, scale, rows, cols, br, bc, op);
      },
      quantizeMx: (data, scale, fp8, src, sd, rows, cols, block, rceil, op) => {
        [0, 1, 3].forEach((i) => requireDevice("quantizeMx", i, [data, scale, fp8, src][i], op));
        cpuBackend.blockKernels!.quantizeMx(data, scale, fp8, src, sd, rows, cols, block, rceil, op);
      },
      dequantizeMx: (dst, dd, data, fp8, scale, rows, cols, block, op) => {
        [0, 2, 4].forEach((i) => requireDevice("dequantizeMx", i, [dst, dd, data, fp8, scale][i], op));
        cpuBackend.blockKernels!.dequantizeMx(dst, dd, data, fp8, scale, rows, cols, block, op);
      },
      gemvFp8w: (_y, _yd, _x, _xd, M, K, _w, _wd, N, _mode, _ws, _br, _bc, _bias, _biasd, op) => {
        throw new Float8Error(op, `the fp8-weight GEMV (M=${M}, K=${K}, N=${N}) runs on the CPU only; got tensors on ${device}`);
      },
    },
    nativeMemory: "host", // host memory underneath: MPI moves it, as NCCL would move GPU memory
    alloc: (nbytes) => {
      const p = nativeAlloc(nbytes);
      allocs.set(p, nbytes);
      liveBytes += nbytes;
      return p;
    },
    free: (p) => {
      const n = allocs.get(p);
      if (n === undefined) throw new Float8Error("free", `pointer is not a live ${device} allocation`);
      allocs.delete(p);
      liveBytes -= n;
      nativeFree(p);
    },
    memoryStats: () => ({ liveBytes, liveAllocs: allocs.size, cachedBytes: 0 }),
    emptyCache: () => {},
    upload: (dst, src, nbytes) => {
      requireDevice("upload", 0, dst, "upload");
      uploads++;
      cpuBackend.upload(dst, src, nbytes);
    },
    download: (dst, src, nbytes) => {
      requireDevice("download", 1, src, "download");
      downloads++;
      cpuBackend.download(dst, src, nbytes);
    },
    // as on cuda: a device's cast writes fp8 only (the bf16 decode feeds the CPU's GEMM)
    quantizeAmax: (dst, decoded, fp8, src, sd, n, scale, amax, op) => {
      if (decoded !== null) throw new Float8Error(op, noDecode);
      cpuBackend.quantizeAmax(dst, null, fp8, src, sd, n, scale, amax, op);
    },
    quantizeDynamic: (dst, decoded, fp8, src, sd, n, amax, scale, clamp, p2, op) => {
      if (decoded !== null) throw new Float8Error(op, noDecode);
      cpuBackend.quantizeDynamic(dst, null, fp8, src, sd, n, amax, scale, clamp, p2, op);
    },
    // as on cuda: the telemetry kernels are host kernels (float8 copies the tensors to the CPU)
    fp8Stats: undefined,
    castStats: undefined,
    syncAmaxHistory: (amax, history, scale, fp8, clamp, historyLen, op) => {
      [...amax, ...history, ...scale].forEach((p, i) => requireDevice("syncAmaxHistory", i, p, op));
      cpuBackend.syncAmaxHistory(amax, history, scale, fp8, clamp, historyLen, op);
    },
  };
  const checked = { ...base } as Record<string, unknown>;
  for (const [name, positions] of Object.entries(DEVICE_ARGS)) {
    const fn = (base as unknown as Record<string, (...a: unknown[]) => void>)[name];
    checked[name] = (...args: unknown[]) => {
      const op = typeof args[args.length - 1] === "string" ? (args[args.length - 1] as string) : name;
      for (const i of positions!) requireDevice(name, i, args[i], op);
      return fn(...args);
    };
  }
  return Object.assign(checked as unknown as Backend, {
    liveAllocations: () => allocs.size,
    /** host <-> device copies so far (a training step should make none beyond its data) */
    transfers: () => ({ uploads, downloads }),
  });
}
