// safetensors.ts — checkpoints in the safetensors format that the PyTorch /
// Hugging Face ecosystem reads (https://github.com/huggingface/safetensors):
//
//   [8 bytes: header length n, u64 little-endian]
//   [n bytes: JSON header, padded with spaces to a multiple of 8]
//     { "<name>": { "dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end] }, ...,
//       "__metadata__": { "<key>": "<string>" } }
//   [data: every tensor's raw little-endian bytes, back to back, offsets relative to here]
//
// dtypes: F32, BF16, F8_E4M3 (float8_e4m3fn), F8_E5M2, F8_E4M3FNUZ, F8_E5M2FNUZ and I32.
//
// save(module, path, { optimizer }) writes two files:
//   <path>                    module.stateDict(): parameters and buffers (Float8Linear's
//                             amax, amax history and scale buffers included), by fqn
//   <path>.optim.safetensors  the optimizer's state tensors ("0.exp_avg", ... shaped like
//                             their parameter), its step count and hyperparameters in
//                             __metadata__
// Both carry the same random "float8.checkpoint_id", so load() refuses a model file
// and an optimizer file from different saves.
//
// A save replaces the pair all or nothing (issue 15; docs/architecture.md):
//   1. take <path>.lock (O_EXCL; a lock whose process is gone is taken over), so
//      concurrent saves to one path run one after the other; remove the temp
//      files of earlier saves that were killed;
//   2. write both new files to temp files in the same folder and fsync them;
//   3. keep the committed optimizer file as <path>.optim.prev.safetensors (a hard link);
//   4. rename the new optimizer file into place, then the new model file (the
//      commit point: the model file decides which pair is current);
//   5. remove the .prev file and release the lock.
// load() takes the optimizer file whose id matches the model file, trying the
// .prev file second, so a crash at any point leaves the complete old pair or
// the complete new pair loadable. A save that finds the current model paired with
// the .prev file (a crash after step 4's first rename) restores it first.
//
// load() parses and checks both files completely (header, offsets, dtypes, shapes,
// missing and unexpected tensors) before it changes anything, so a bad file
// leaves the module and optimizer as they were.
import {
  closeSync, existsSync, fsyncSync, linkSync, openSync, readFileSync, readSync, readdirSync, renameSync, statSync, unlinkSync, writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { Float8Error } from "../errors.ts";
import { noGrad } from "../autograd/graph.ts";
import { ITEM_SIZE, type DType } from "../tensor/dtype.ts";
import { fmtShape, numel, sameShape } from "../tensor/shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { Module } from "../nn/module.ts";
import { AdamW, SGD, type Optimizer } from "../optim/optimizers.ts";
import { Float8Linear } from "../float8/float8_linear.ts";

/** safetensors dtype names of our dtypes. */
export const SAFETENSORS_DTYPE: Record<DType, string> = {
  float32: "F32",
  bfloat16: "BF16",
  float16: "F16",
  float8_e4m3fn: "F8_E4M3",
  float8_e5m2: "F8_E5M2",
  int32: "I32",
  // the names Python's safetensors (0.8) gives torch's fnuz dtypes
  float8_e4m3fnuz: "F8_E4M3FNUZ",
  float8_e5m2fnuz: "F8_E5M2FNUZ",
};
const FROM_SAFETENSORS = new Map<string, DType>(Object.entries(SAFETENSORS_DTYPE).map(([d, s]) => [s, d as DType]));

/** The header's size limit (the Rust reader's). */
const MAX_HEADER_BYTES = 100_000_000;

/** One tensor of a parsed file: where its bytes are, before any tensor is made. */
export interface TensorEntry {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** byte range inside the data section */
  readonly begin: number;
  readonly end: number;
}

/** A parsed, validated file: its entries, metadata and raw data section. */
export interface ParsedSafetensors {
  readonly entries: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly data: Uint8Array;
}

/** Path of the optimizer file that save() writes beside `path`. */
export function optimizerPath(path: string): string {
  return `${path}.optim.safetensors`;
}

// ---------------------------------------------------------------- encode

/**
 * Serialises named tensors (in the given order) and string metadata.
 * Returns the header bytes (length prefix included) and each tensor's bytes.
 */
export function encode(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array[] {
  const op = "safetensors.encode";
  const header: Record<string, unknown> = Object.create(null); // "__proto__" is a name like any other
  if (Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new Float8Error(op, `metadata '${k}' must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === "__metadata__") throw new Float8Error(op, "'__metadata__' is reserved and cannot name a tensor");
    if (t.isDisposed) throw new Float8Error(op, `tensor '${name}' (shape ${fmtShape(t.shape)}, ${t.dtype}) was disposed`);
    header[name] = { dtype: SAFETENSORS_DTYPE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + t.nbytes] };
    offset += t.nbytes;
    parts.push(t.bytes());
  }
  let json = JSON.stringify(header);
  const rawLength = new TextEncoder().encode(json).byteLength;
  json += " ".repeat((8 - (rawLength % 8)) % 8); // the reference writer aligns the data to 8 bytes
  const jsonBytes = new TextEncoder().encode(json);
  const head = new Uint8Array(8 + jsonBytes.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
  head.set(jsonBytes, 8);
  return [head, ...parts];
}

// ---------------------------------------------------------------- decode

function fail(source: string, problem: string): never {
  throw new Float8Error("safetensors.load", `${source}: ${problem}`);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses and validates a whole file: the length prefix, the JSON header, every
 * entry's dtype, shape and offsets (in bounds, sized to the shape, not
 * overlapping, covering the data with no gaps). `source` names the file in errors.
 */
export function decode(bytes: Uint8Array, source = "<buffer>"): ParsedSafetensors {
  if (bytes.byteLength < 8) {
    fail(source, `truncated: the file has ${bytes.byteLength} bytes, fewer than the 8-byte header length`);
  }
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(source, `corrupt header: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLen = Number(n);
  if (8 + headerLen > bytes.byteLength) {
    fail(source, `truncated: the header claims ${headerLen} bytes but the file has only ${bytes.byteLength - 8} after the length`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    fail(source, `corrupt header: not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    fail(source, "corrupt header: the JSON header is not an object");
  }
  const data = bytes.subarray(8 + headerLen);
  const metadata: Record<string, string> = Object.create(null);
  const entries = new Map<string, TensorEntry>();
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail(source, "corrupt header: __metadata__ is not an object");
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(source, `corrupt header: __metadata__['${k}'] is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const what = `tensor '${name}'`;
    if (raw === null || typeof raw !== "object") fail(source, `${what}: header entry is not an object`);
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof e.dtype === "string" ? FROM_SAFETENSORS.get(e.dtype) : undefined;
    if (!dtype) {
      fail(source, `${what}: dtype ${JSON.stringify(e.dtype)} is not supported (supported: ${[...FROM_SAFETENSORS.keys()].join(", ")})`);
    }
    if (!Array.isArray(e.shape) || !e.shape.every(isNonNegInt)) {
      fail(source, `${what}: shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
    }
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegInt) || offs[1] < offs[0]) {
      fail(source, `${what}: data_offsets ${JSON.stringify(offs)} is not a [begin, end] pair with begin <= end`);
    }
    const shape = e.shape as number[];
    const [begin, end] = offs as number[];
    const need = numel(shape) * ITEM_SIZE[dtype];
    if (end - begin !== need) {
      fail(source, `${what}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${fmtShape(shape)} of ${e.dtype} needs ${need}`);
    }
    if (end > data.byteLength) {
      fail(source, `${what}: truncated: its data ends at byte ${end} but the data section has only ${data.byteLength} bytes`);
    }
    entries.set(name, { dtype, shape, begin, end });
  }
  // the bytes must be covered exactly once, in order (the Rust reader's rule)
  const sorted = [...entries].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let pos = 0;
  for (const [name, e] of sorted) {
    if (e.begin !== pos) {
      fail(source, `tensor '${name}': data_offsets [${e.begin}, ${e.end}] ${e.begin < pos ? "overlap the previous tensor" : `leave a gap after byte ${pos}`}`);
    }
    pos = e.end;
  }
  if (pos !== data.byteLength) {
    fail(source, `corrupt: the tensors cover ${pos} bytes of data but the file holds ${data.byteLength}`);
  }
  return { entries, metadata, data };
}

/** A new tensor holding an entry's bytes (a copy). */
export function entryToTensor(parsed: ParsedSafetensors, name: string): Tensor {
  const e = parsed.entries.get(name);
  if (!e) throw new Float8Error("safetensors.load", `no tensor '${name}' in the file`);
  return Tensor.fromBytes(parsed.data.subarray(e.begin, e.end), { shape: e.shape, dtype: e.dtype });
}

function readParsed(path: string): ParsedSafetensors {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Float8Error("safetensors.load", `cannot read ${path}: ${(e as Error).message}`);
  }
  return decode(bytes, path);
}

// ---------------------------------------------------------------- files

/** A temp file name beside `path` (its pid lets a later save tell whether the writer is gone). */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
}

/** Writes `parts` to a new temp file beside `path` and fsyncs it; returns the temp path. Removes it on failure. */
function writeTemp(path: string, parts: Iterable<Uint8Array>): string {
  const tmp = tempPathFor(path);
  let fd = -1;
  try {
    fd = openSync(tmp, "wx", 0o644);
    for (const part of parts) {
      let written = 0;
      while (written < part.byteLength) written += writeSync(fd, part, written, part.byteLength - written);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    return tmp;
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    removeQuietly(tmp);
    if (e instanceof Float8Error) throw e;
    throw new Float8Error("safetensors.save", `writing ${path} failed: ${(e as Error).message}`);
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // not there
  }
}

function fsyncDir(dir: string): void {
  try {
    const dfd = openSync(dir, "r");
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // some filesystems do not fsync folders; the rename itself is still atomic
  }
}

/**
 * Writes `parts` to `path` atomically: a temp file in the same folder,
 * fsync, rename over `path`, fsync of the folder. If anything fails
 * (including the iterable throwing), the temp file is removed and any old
 * file at `path` is left untouched.
 */
export function writeFileAtomic(path: string, parts: Iterable<Uint8Array>): void {
  const tmp = writeTemp(path, parts);
  try {
    renameSync(tmp, path);
  } catch (e) {
    removeQuietly(tmp);
    throw new Float8Error("safetensors.save", `writing ${path} failed: ${(e as Error).message}`);
  }
  fsyncDir(dirname(path));
}

/** Whether process `pid` exists (on this machine). */
function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Path of the lock file that serialises saves to `path`. */
function lockPathOf(path: string): string {
  return `${path}.lock`;
}

/**
 * Takes the save lock of `path`: creates <path>.lock exclusively with this pid.
 * A lock held by a live process is waited for (saves to one path run one after
 * another) up to `timeoutMs`, then refused; a lock whose process is gone (a
 * killed save) is taken over. Returns the release function.
 */
function acquireSaveLock(path: string, timeoutMs: number): () => void {
  const lock = lockPathOf(path);
  const token = `${process.pid} ${crypto.randomUUID()}`;
  const start = performance.now();
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lock, "wx", 0o644);
      try {
        writeSync(fd, token);
      } finally {
        closeSync(fd);
      }
      return () => {
        if (readLock(lock) === token) removeQuietly(lock);
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new Float8Error("io.save", `cannot create the lock file ${lock}: ${(e as Error).message}`);
      }
    }
    const held = readLock(lock);
    // an empty lock is one whose creator died before writing its pid (or is writing it now)
    const dead = held !== null && (held === "" ? lockAgeMs(lock) > 2000 : !processAlive(Number(held.split(" ")[0])));
    if (dead) {
      // the saver that held it is gone: move its lock aside (atomic), and take over only
      // if what we moved is still that dead process's lock; another taker's is put back
      const aside = `${lock}.stale-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
      try {
        renameSync(lock, aside);
        const moved = readLock(aside);
        if (moved === held) removeQuietly(aside);
        else {
          try {
            linkSync(aside, lock);
          } catch {
            // a third saver created a lock meanwhile: that one stands
          }
          removeQuietly(aside);
        }
      } catch {
        // someone else moved it first
      }
      continue;
    }
    if (performance.now() - start > timeoutMs) {
      throw new Float8Error("io.save", `${path} is being saved by another process (${lock} is held by pid ${held?.split(" ")[0] ?? "?"}) for more than ${timeoutMs} ms`);
    }
    Bun.sleepSync(Math.min(50, 2 + attempt));
  }
}

function lockAgeMs(lock: string): number {
  try {
    return Date.now() - statSync(lock).mtimeMs;
  } catch {
    return 0;
  }
}

function readLock(lock: string): string | null {
  try {
    return readFileSync(lock, "utf8");
  } catch {
    return null;
  }
}

/** Removes the temp files of saves to `path` (or its optimizer file) whose process is gone. */
function removeStaleTemps(path: string): void {
  const dir = dirname(path);
  const prefixes = [`.${basename(path)}.tmp-`, `.${basename(optimizerPath(path))}.tmp-`];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const prefix = prefixes.find((p) => name.startsWith(p));
    if (!prefix) continue;
    const pid = Number(name.slice(prefix.length).split("-")[0]);
    if (!processAlive(pid)) removeQuietly(join(dir, name));
  }
}

/**
 * Test hook: with FLOAT8_TEST_SAVE_CRASH_AT=<point>, save() kills its own
 * process (SIGKILL) at that point, so that the tests reach every step of the
 * commit deterministically, not only where a random kill happens to land.
 */
const SAVE_CRASH_AT = process.env.FLOAT8_TEST_SAVE_CRASH_AT ?? "";
function crashPoint(name: string): void {
  if (SAVE_CRASH_AT === name) process.kill(process.pid, "SIGKILL");
}

/** Path of the previous optimizer file, kept while a save commits. */
function previousOptimizerPath(path: string): string {
  return `${path}.optim.prev.safetensors`;
}

/** The checkpoint id in a file's header, or null (no file, unreadable, no id). Reads the header only. */
function checkpointIdOf(path: string): string | null {
  let fd = -1;
  try {
    fd = openSync(path, "r");
    const len = new Uint8Array(8);
    if (readSync(fd, len, 0, 8, 0) !== 8) return null;
    const n = Number(new DataView(len.buffer).getBigUint64(0, true));
    if (n > MAX_HEADER_BYTES) return null;
    const head = new Uint8Array(n);
    if (readSync(fd, head, 0, n, 8) !== n) return null;
    const h = JSON.parse(new TextDecoder().decode(head));
    const id = h?.__metadata__?.[META.id];
    return typeof id === "string" ? id : null;
  } catch {
    return null;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** Writes named tensors and string metadata to one safetensors file, atomically. */
export function saveFile(tensors: Record<string, Tensor>, path: string, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encode(tensors, metadata));
}

/** Reads every tensor of a safetensors file (new tensors, owned by the caller) and its metadata. */
export function loadFile(path: string): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const parsed = readParsed(path);
  // null prototypes: names from the file ("__proto__", "constructor") are plain own keys
  const tensors: Record<string, Tensor> = Object.create(null);
  for (const name of parsed.entries.keys()) tensors[name] = entryToTensor(parsed, name);
  return { tensors, metadata: Object.assign(Object.create(null), parsed.metadata) };
}

// ---------------------------------------------------------------- module + optimizer

/** Keys of the __metadata__ that save() writes. */
const META = {
  format: "format",
  id: "float8.checkpoint_id",
  float8Layers: "float8.layers",
  optimizer: "float8.optimizer",
  stepCount: "float8.step_count",
  hyper: "float8.hyperparameters",
  paramFqns: "float8.param_fqns",
} as const;

function hyperparameters(opt: Optimizer): Record<string, unknown> {
  if (opt instanceof AdamW) return { lr: opt.lr, betas: opt.betas, eps: opt.eps, weightDecay: opt.weightDecay };
  if (opt instanceof SGD) return { lr: opt.lr, momentum: opt.momentum, dampening: opt.dampening, weightDecay: opt.weightDecay, nesterov: opt.nesterov };
  return {};
}

/** fqn of each optimizer parameter in `module` ("" when the module does not hold it). */
function paramFqns(module: Module, opt: Optimizer): string[] {
  const byTensor = new Map<Tensor, string>();
  for (const [fqn, p] of module.namedParameters()) if (!byTensor.has(p)) byTensor.set(p, fqn);
  return opt.params.map((p) => byTensor.get(p) ?? "");
}

/** The parameter index in an optimizer state key such as "3.exp_avg". */
function stateParamIndex(key: string): number {
  return Number(key.slice(0, key.indexOf(".")));
}

/**
 * Saves module.stateDict() (parameters and buffers, Float8Linear's delayed
 * scaling state included) to `path`, and with `optimizer` its state to
 * optimizerPath(path). The pair is replaced all or nothing: after a crash at
 * any point load() finds the complete old pair or the complete new one.
 * Concurrent saves to one path run one after another (a lock file; a save
 * waits up to `lockTimeoutMs`, default 60000, then throws); temp files of a
 * killed save are removed by the next save.
 */
export function save(
  module: Module,
  path: string,
  opts: { optimizer?: Optimizer; metadata?: Record<string, string>; lockTimeoutMs?: number } = {},
): void {
  if (typeof path !== "string" || path === "") throw new Float8Error("io.save", `path must be a non-empty string, got ${typeof path === "string" ? "''" : typeof path}`);
  const id = crypto.randomUUID();
  const layers: Record<string, { amaxInitialized: boolean; synced: boolean }> = {};
  for (const [fqn, m] of module.namedModules()) {
    if (m instanceof Float8Linear) layers[fqn] = { amaxInitialized: m.isAmaxInitialized, synced: m.amaxAndScaleSynced };
  }
  const modelMeta: Record<string, string> = { ...opts.metadata, [META.format]: "pt", [META.id]: id, [META.float8Layers]: JSON.stringify(layers) };
  // encode everything first, so that a bad module or optimizer fails before anything is written
  const modelParts = encode(module.stateDict(), modelMeta);
  const opt = opts.optimizer;
  let optParts: Uint8Array[] | null = null;
  if (opt) {
    const state = opt.stateDict();
    const shaped: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(state)) {
      const p = opt.params[stateParamIndex(k)];
      shaped[k] = p && p.numel === t.numel && !sameShape(p.shape, t.shape) ? t.reshape(p.shape) : t;
    }
    const optMeta: Record<string, string> = {
      [META.format]: "pt",
      [META.id]: id,
      [META.optimizer]: opt.name,
      [META.stepCount]: String(opt.stepCount),
      [META.hyper]: JSON.stringify(hyperparameters(opt)),
      [META.paramFqns]: JSON.stringify(paramFqns(module, opt)),
    };
    try {
      optParts = encode(shaped, optMeta);
    } finally {
      for (const [k, t] of Object.entries(shaped)) if (t !== state[k]) t.dispose();
    }
  }
  const release = acquireSaveLock(path, opts.lockTimeoutMs ?? 60000);
  let modelTmp: string | null = null, optTmp: string | null = null;
  try {
    removeStaleTemps(path);
    const optPath = optimizerPath(path), prevPath = previousOptimizerPath(path);
    // a crash after the optimizer's rename and before the model's left the current model
    // paired with the .prev file: put that back first, so that it is what step 3 keeps
    const modelId = checkpointIdOf(path);
    if (modelId !== null && existsSync(prevPath)) {
      if (checkpointIdOf(optPath) !== modelId && checkpointIdOf(prevPath) === modelId) renameSync(prevPath, optPath);
      else removeQuietly(prevPath);
      fsyncDir(dirname(path));
    }
    crashPoint("locked");
    if (optParts) optTmp = writeTemp(optPath, optParts);
    crashPoint("optimizer-temp-written");
    modelTmp = writeTemp(path, modelParts);
    crashPoint("model-temp-written");
    if (optTmp) {
      if (existsSync(optPath)) {
        removeQuietly(prevPath);
        crashPoint("prev-removed");
        linkSync(optPath, prevPath);
        crashPoint("prev-linked");
      }
      renameSync(optTmp, optPath);
      optTmp = null;
      crashPoint("optimizer-renamed");
    }
    renameSync(modelTmp, path); // the commit point
    modelTmp = null;
    crashPoint("model-renamed");
    fsyncDir(dirname(path));
    removeQuietly(prevPath);
    crashPoint("prev-removed-after-commit");
  } catch (e) {
    if (e instanceof Float8Error) throw e;
    throw new Float8Error("io.save", `saving ${path} failed, the previous checkpoint is kept: ${(e as Error).message}`);
  } finally {
    if (optTmp) removeQuietly(optTmp);
    if (modelTmp) removeQuietly(modelTmp);
    release();
  }
}

/**
 * Reads the model file and, with `withOptimizer`, the optimizer file of the same
 * checkpoint: <path>.optim.safetensors, or the .prev file that a save keeps while
 * it commits. A save that commits between the two reads is seen as ids that
 * differ; the pair is read again (a few times) before that is reported.
 */
function readPair(path: string, withOptimizer: boolean): { model: ParsedSafetensors; optParsed: ParsedSafetensors | null; optSource: string } {
  const optPath = optimizerPath(path), prev = previousOptimizerPath(path);
  for (let attempt = 0; ; attempt++) {
    let id: string | undefined;
    // a save that holds the lock, or one that committed since the model was read (saves from other
    // processes follow each other), means the reads may have crossed a commit: read the pair again
    const moved = () => attempt < 50 && (existsSync(lockPathOf(path)) || (id !== undefined && checkpointIdOf(path) !== id));
    try {
      const model = readParsed(path);
      if (!withOptimizer) return { model, optParsed: null, optSource: optPath };
      id = model.metadata[META.id];
      if (existsSync(prev) && checkpointIdOf(prev) === id && checkpointIdOf(optPath) !== id) {
        return { model, optParsed: readParsed(prev), optSource: prev };
      }
      const optParsed = readParsed(optPath);
      if (optParsed.metadata[META.id] === id || !moved()) {
        return { model, optParsed, optSource: optPath }; // a mismatch here is reported by load()
      }
    } catch (e) {
      if (!moved()) throw e; // a file renamed away under a read is a commit in progress; anything else is reported
    }
    Bun.sleepSync(10);
  }
}

/** Can a stored dtype be loaded into a tensor of dtype `to`? (f32 and bf16 convert; others must match.) */
function loadableAs(from: DType, to: DType): boolean {
  const hp = (d: DType) => d === "float32" || d === "bfloat16" || d === "float16";
  return from === to || (hp(from) && hp(to));
}

/** Checks entries against destination tensors: none missing, none unexpected, shapes equal, dtypes compatible. */
function checkAgainst(parsed: ParsedSafetensors, own: Record<string, Tensor>, source: string, what: string, strict = true): { missing: string[]; unexpected: string[] } {
  own = Object.assign(Object.create(null), own); // only own keys count ("constructor" is not a tensor)
  const missing = Object.keys(own).filter((k) => !parsed.entries.has(k));
  if (missing.length && strict) fail(source, `missing ${what} tensor${missing.length > 1 ? "s" : ""} ${missing.map((k) => `'${k}'`).join(", ")}`);
  const unexpected = [...parsed.entries.keys()].filter((k) => !Object.hasOwn(own, k));
  if (unexpected.length && strict) fail(source, `unexpected tensor${unexpected.length > 1 ? "s" : ""} ${unexpected.map((k) => `'${k}'`).join(", ")} (not in the ${what})`);
  for (const [name, e] of parsed.entries) {
    const dst = own[name];
    if (!dst) continue; // unexpected, and strict is off
    if (dst.numel !== numel(e.shape) || (!sameShape(dst.shape, e.shape) && what === "model")) {
      fail(source, `tensor '${name}': shape ${fmtShape(e.shape)} in the file does not match ${fmtShape(dst.shape)} in the ${what}`);
    }
    if (!loadableAs(e.dtype, dst.dtype)) {
      fail(source, `tensor '${name}': dtype ${SAFETENSORS_DTYPE[e.dtype]} in the file cannot be loaded into ${dst.dtype} in the ${what}`);
    }
  }
  return { missing, unexpected };
}

/** Copies entry `name` into `dst` in place (dst keeps its identity and dtype). */
function assignFrom(parsed: ParsedSafetensors, name: string, dst: Tensor): void {
  const src = entryToTensor(parsed, name);
  const shaped = sameShape(src.shape, dst.shape) ? src : src.reshape(dst.shape);
  const converted = shaped.to({ dtype: dst.dtype, device: dst.device });
  dst.assign(converted);
  for (const t of new Set([src, shaped, converted])) t.dispose();
}

/**
 * Loads a checkpoint written by save() (or any safetensors file with the model's
 * keys, such as a torch/torchao state_dict saved by Python's safetensors) into
 * `module` (and `optimizer`): parameters, buffers, Float8Linear delayed-scaling
 * state, optimizer state and step count. Both files are validated completely
 * before anything changes; a problem throws a Float8Error naming the file, the
 * tensor and the problem. With `strict: false` (torch's load_state_dict(strict=False))
 * keys missing from the file or absent from the module are skipped and reported
 * in `missingKeys` / `unexpectedKeys` instead (shapes and dtypes of the shared keys
 * are still checked; the optimizer file is always strict).
 */
export function load(
  module: Module, path: string, opts: { optimizer?: Optimizer; strict?: boolean } = {},
): { metadata: Record<string, string>; missingKeys: string[]; unexpectedKeys: string[] } {
  const opt = opts.optimizer;
  const { model, optParsed: optFile, optSource } = readPair(path, !!opt);
  const own = module.stateDict();
  {
    // load() writes into the module's own tensors; a state-dict hook that put other tensors in
    // (fullyShard's fullStateDict gathers full ones) would make it write into temporaries
    const live = new Set([...module.namedParameters(), ...module.namedBuffers()].map(([, t]) => t));
    const made = Object.values(own).filter((t) => !live.has(t));
    if (made.length > 0) {
      made.forEach((t) => t.dispose());
      fail(path, "the module's state-dict hooks replace its tensors (e.g. fullyShard({ fullStateDict: true })); load it with module.loadStateDict(io.loadFile(path).tensors), which runs its load hooks");
    }
  }
  const strict = opts.strict ?? true;
  if (typeof strict !== "boolean") fail(path, `strict must be a boolean, got ${typeof strict}`);
  const { missing, unexpected } = checkAgainst(model, own, path, "model", strict);
  const layers = parseLayers(model.metadata[META.float8Layers], path);

  let optParsed: ParsedSafetensors | null = optFile;
  let stepCount = 0;
  let optOwn: Record<string, Tensor> = {};
  if (opt && optParsed) {
    const p = optSource;
    const meta = optParsed.metadata;
    if (meta[META.id] !== model.metadata[META.id]) {
      fail(p, `belongs to a different checkpoint than ${path} (checkpoint ids ${meta[META.id]} and ${model.metadata[META.id]})`);
    }
    if (meta[META.optimizer] !== opt.name) fail(p, `holds ${meta[META.optimizer]} state, but the optimizer is ${opt.name}`);
    stepCount = Number(meta[META.stepCount]);
    if (!Number.isSafeInteger(stepCount) || stepCount < 0) fail(p, `step count ${JSON.stringify(meta[META.stepCount])} is not a non-negative integer`);
    const savedFqns = parseJson(meta[META.paramFqns], p, META.paramFqns);
    const fqns = paramFqns(module, opt);
    if (!Array.isArray(savedFqns) || savedFqns.length !== fqns.length) {
      fail(p, `was saved for ${Array.isArray(savedFqns) ? savedFqns.length : "?"} parameters, the optimizer has ${fqns.length}`);
    }
    fqns.forEach((f, i) => {
      if (f && savedFqns[i] && f !== savedFqns[i]) fail(p, `parameter ${i} is '${savedFqns[i]}' in the file but '${f}' in the model`);
    });
    optOwn = opt.stateDict();
    checkAgainst(optParsed, optOwn, p, "optimizer");
  }

  // every check passed: assign
  noGrad(() => {
    for (const name of model.entries.keys()) if (own[name]) assignFrom(model, name, own[name]);
    if (opt && optParsed) {
      for (const name of optParsed.entries.keys()) assignFrom(optParsed, name, optOwn[name]);
      opt.stepCount = stepCount;
    }
  });
  for (const [fqn, m] of module.namedModules()) {
    if (!(m instanceof Float8Linear)) continue;
    const saved = layers?.[fqn];
    // a file from elsewhere has no flags: an amax history with data means the layer had run
    m.isAmaxInitialized = saved ? saved.amaxInitialized : m.isAmaxInitialized || historyHasData(m);
    m.amaxAndScaleSynced = saved ? saved.synced : true;
  }
  return { metadata: Object.assign(Object.create(null), model.metadata), missingKeys: missing, unexpectedKeys: unexpected };
}

function parseJson(text: string | undefined, source: string, key: string): any {
  if (text === undefined) fail(source, `__metadata__ has no '${key}'`);
  try {
    return JSON.parse(text);
  } catch {
    fail(source, `__metadata__['${key}'] is not valid JSON`);
  }
}

function parseLayers(text: string | undefined, source: string): Record<string, { amaxInitialized: boolean; synced: boolean }> | null {
  if (text === undefined) return null;
  const v = parseJson(text, source, META.float8Layers);
  if (v === null || typeof v !== "object") fail(source, `__metadata__['${META.float8Layers}'] is not an object`);
  return v;
}

function historyHasData(m: Float8Linear): boolean {
  return Object.values(m.scaling).some((st) => st.history !== null && st.history.toArray().some((v) => v !== 0));
}
