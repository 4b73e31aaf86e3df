// src/tensor/backend — one Backend per device; Tensor storage and every op
// dispatch through backendFor(tensor.device).
import { Float8Error } from "../../errors.ts";
import { cudaProbe } from "../../ffi/index.ts";
import { cpuBackend } from "./cpu.ts";
import { cudaBackend } from "./cuda.ts";
import { activeCapture } from "./capture.ts";
import type { Backend, BlockKernels, Device } from "./types.ts";

export type { Backend, BlockKernels, Device, HostMemory, NativePtr } from "./types.ts";
export { cpuBackend, roundPow2Bits } from "./cpu.ts";
export { setCudaDevice, currentCudaDevice } from "./cuda.ts";
export { emulatedDeviceBackend } from "./emulated.ts";

const DEVICES: readonly Device[] = ["cpu", "cuda"];
const installed = new Map<Device, Backend>([["cpu", cpuBackend]]);

/**
 * The backend of `device`, or a Float8Error from `op` naming what is missing
 * (for "cuda": library not built, no driver, no GPU; from the CUDA probe).
 */
export function backendFor(device: Device | undefined, op: string): Backend {
  const d = device ?? "cpu";
  const b = installed.get(d);
  if (b) return b;
  if (d === "cuda") {
    const probe = cudaProbe();
    if (!probe.available) throw new Float8Error(op, `device 'cuda' is not available: ${probe.reason}`);
    installed.set("cuda", cudaBackend);
    return cudaBackend;
  }
  throw new Float8Error(op, `unknown device '${String(d)}' (expected ${DEVICES.map((x) => `'${x}'`).join(" or ")})`);
}

/**
 * Replaces the backend of a device (null restores the default). For tests:
 * emulatedDeviceBackend("cuda") runs every "cuda" code path of the library on
 * this machine's CPU, with device memory that JS cannot touch directly.
 */
export function setBackend(device: Device, backend: Backend | null): void {
  if (device === "cpu" && backend !== null && backend.device !== "cpu") throw new Float8Error("setBackend", "the cpu backend must be host memory");
  if (backend === null) {
    if (device === "cpu") installed.set("cpu", cpuBackend);
    else installed.delete(device);
  } else {
    installed.set(device, backend);
  }
}

/** Whether tensors can be made on `device` now (never throws). */
export function isDeviceAvailable(device: Device): boolean {
  try {
    backendFor(device, "isDeviceAvailable");
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether results may be read back to the host now. False while a CUDA graph is
 * being captured: its kernels are recorded, not run, and a replay runs no JS, so
 * work that reads the host (telemetry, checks of device values) must be skipped.
 * The capture rules live in the backend (capture.ts); layers above ask here.
 */
export function hostReadsAllowed(): boolean {
  return activeCapture() === null;
}

/**
 * The block-scaled casts and fp8-weight GEMV of `backend` (the CPU's; cuda's casts,
 * whose gemvFp8w throws), or a Float8Error naming op and device where it has none.
 */
export function blockKernelsOf(backend: Backend, op: string): BlockKernels {
  if (!backend.blockKernels) {
    throw new Float8Error(op, `block-scaled float8 has no kernels on ${backend.device} (the CPU and cuda have them)`);
  }
  return backend.blockKernels;
}
