// emulated.ts — a device backend that runs on the CPU, for testing the device
// code paths of Tensor, autograd, nn, optim and float8 on a machine without a
// GPU. Its memory is host memory that JS may not view (hostAccessible false),
// so every read and write must go through upload/download, as on a GPU; and
// every data pointer handed to a kernel must lie inside one of its own live
// allocations, so a host array or a CPU tensor passed where device memory is
// expected fails loudly here instead of crashing on the GPU. The kernels are
// reached through the tensor-level contract (src/tensor/device_ops.ts), which
// hands every tensor operand to checkOperand; the memory methods (upload,
// download, copy) check their device side themselves.
import { Float8Error } from "../../errors.ts";
import { nativeAlloc, nativeFree } from "../../ffi/index.ts";
import { cpuBackend } from "./cpu.ts";
import type { Backend, Device } from "./types.ts";

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
  const requireDevice = (what: string, p: unknown, op: string) => {
    if (!owns(p)) {
      const got = typeof p === "number" ? "a pointer outside device memory" : `a host ${(p as object)?.constructor?.name ?? typeof p}`;
      throw new Float8Error(op, `${what} must be ${device} memory, got ${got}`);
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
    // as on cuda: the block casts run on the device (here the CPU's kernels; the contract checks each
    // tensor operand through checkOperand), the GEMV and the host bf16-GEMM query do not
    blockKernels: {
      quantizeBlockwise: cpuBackend.blockKernels!.quantizeBlockwise,
      dequantizeBlockwise: cpuBackend.blockKernels!.dequantizeBlockwise,
      quantizeMx: cpuBackend.blockKernels!.quantizeMx,
      dequantizeMx: cpuBackend.blockKernels!.dequantizeMx,
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
    checkOperand: (p, what, op) => requireDevice(`operand ${what}`, p, op),
    upload: (dst, src, nbytes) => {
      requireDevice("upload: the destination", dst, "upload");
      uploads++;
      cpuBackend.upload(dst, src, nbytes);
    },
    download: (dst, src, nbytes) => {
      requireDevice("download: the source", src, "download");
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
    copy: (dst, src, nbytes) => {
      requireDevice("copy: the destination", dst, "copy");
      requireDevice("copy: the source", src, "copy");
      cpuBackend.copy(dst, src, nbytes);
    },
  };
  return Object.assign(base, {
    liveAllocations: () => allocs.size,
    /** host <-> device copies so far (a training step should make none beyond its data) */
    transfers: () => ({ uploads, downloads }),
  });
}
