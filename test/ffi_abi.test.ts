// The two sources of truth of the ABI agree: every function libfp8/include/fp8.h
// declares has a bun:ffi entry in src/ffi/*.ts with the same argument count and
// types, every entry is declared in the header, and each built library exports
// exactly the header's functions of its section (docs/architecture.md, "Layers
// and import rules": fp8.h is the contract, src/ffi binds it).
//
// When this fails, its message names the function, the file to edit and the
// line to write there.
import { describe, expect, test } from "bun:test";
import { FFIType } from "bun:ffi";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { symbols as coreSymbols, libraryPath } from "../src/ffi/library.ts";
import { symbols as cudaSymbols } from "../src/ffi/cuda.ts";
import { symbols as distSymbols } from "../src/ffi/dist.ts";

const root = join(import.meta.dir, "..");
const HEADER = "libfp8/include/fp8.h";

interface CFunction {
  name: string;
  returns: string;
  params: string[]; // C declarations, e.g. "const void *d_src"
  line: number;
}

/** Every `FP8_API <ret> name(params);` of the header, comments removed. */
function parseHeader(text: string): { functions: CFunction[]; pointerTypedefs: Set<string> } {
  // Blank comments out but keep newlines, so line numbers stay right.
  const code = text
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " "))
    .replace(/\/\/[^\n]*/g, (c) => " ".repeat(c.length));
  const pointerTypedefs = new Set<string>();
  for (const m of code.matchAll(/typedef\s+[^;]*\*\s*(\w+)\s*;/g)) pointerTypedefs.add(m[1]);
  const functions: CFunction[] = [];
  for (const m of code.matchAll(/FP8_API\s+([^;()]*?)\s*\b(fp8_\w+)\s*\(([^)]*)\)\s*;/g)) {
    const params = m[3].trim() === "void" || m[3].trim() === "" ? [] : m[3].split(",").map((p) => p.replace(/\s+/g, " ").trim());
    functions.push({ name: m[2], returns: m[1].replace(/\s+/g, " ").trim(), params, line: code.slice(0, m.index).split("\n").length });
  }
  return { functions, pointerTypedefs };
}

/** The bun:ffi type a C parameter or return type must have, as the tables spell it. */
function ffiTypeOf(decl: string, pointerTypedefs: Set<string>, isReturn: boolean): string {
  const type = isReturn ? decl : decl.replace(/\b\w+$/, "").trim(); // drop the parameter name
  if (type.includes("*")) return isReturn && /\bchar\b/.test(type) ? "cstring" : "ptr";
  const base = type.replace(/\bconst\b/g, "").trim();
  if (pointerTypedefs.has(base)) return "ptr";
  const map: Record<string, string> = { int32_t: "i32", int64_t: "i64", float: "f32", double: "f64", void: "void", uint8_t: "u8" };
  const t = map[base];
  if (!t) throw new Error(`${HEADER}: no bun:ffi type for C type '${type}' in '${decl}'; extend ffiTypeOf in test/ffi_abi.test.ts`);
  return t;
}

/** FFIType number -> the name the tables use (P, i32, I64, f32, f64, cstring). */
const SPELLING: Record<number, string> = {
  [FFIType.ptr]: "P",
  [FFIType.i32]: "i32",
  [FFIType.i64_fast]: "I64",
  [FFIType.i64]: "I64",
  [FFIType.f32]: "f32",
  [FFIType.f64]: "f64",
  [FFIType.cstring]: "cstring",
  [FFIType.u8]: "u8",
  [FFIType.void]: "void",
};
/** Header type -> the FFIType numbers that bind it correctly. */
const ACCEPTS: Record<string, number[]> = {
  ptr: [FFIType.ptr],
  i32: [FFIType.i32],
  i64: [FFIType.i64_fast, FFIType.i64],
  f32: [FFIType.f32],
  f64: [FFIType.f64],
  cstring: [FFIType.cstring],
  u8: [FFIType.u8],
  void: [FFIType.void],
};
const WRITE: Record<string, string> = { ptr: "P", i32: "i32", i64: "I64", f32: "f32", f64: "f64", cstring: "cstring", u8: "u8", void: "void" };

type Table = Record<string, { readonly args: readonly number[]; readonly returns: number }>;

/** Which src/ffi file binds a function, by the header's section prefixes. */
function tableFor(name: string): { file: string; table: Table } {
  if (name.startsWith("fp8_cuda_")) return { file: "src/ffi/cuda.ts", table: cudaSymbols as unknown as Table };
  if (name.startsWith("fp8_dist_")) return { file: "src/ffi/dist.ts", table: distSymbols as unknown as Table };
  return { file: "src/ffi/library.ts", table: coreSymbols as unknown as Table };
}

const header = parseHeader(readFileSync(join(root, HEADER), "utf8"));

/** Every disagreement between fp8.h and the tables, each with its fix. */
function abiDrift(): string[] {
  const problems: string[] = [];
  const declared = new Set<string>();
  for (const fn of header.functions) {
    declared.add(fn.name);
    const { file, table } = tableFor(fn.name);
    const want = fn.params.map((p) => ffiTypeOf(p, header.pointerTypedefs, false));
    const wantRet = ffiTypeOf(fn.returns, header.pointerTypedefs, true);
    const entry = `${fn.name}: { args: [${want.map((t) => WRITE[t]).join(", ")}], returns: ${WRITE[wantRet]} },`;
    const where = `${HEADER}:${fn.line} declares ${fn.returns} ${fn.name}(${fn.params.join(", ") || "void"})`;
    const got = table[fn.name];
    if (!got) {
      problems.push(`${fn.name}: ${where}, but ${file} has no entry. Add to its symbols table:\n    ${entry}`);
      continue;
    }
    const diffs: string[] = [];
    if (got.args.length !== want.length) diffs.push(`${got.args.length} arguments in the table, ${want.length} in the header`);
    for (let i = 0; i < Math.min(got.args.length, want.length); i++) {
      if (!ACCEPTS[want[i]].includes(got.args[i])) {
        diffs.push(`argument ${i + 1} (${fn.params[i]}) is ${SPELLING[got.args[i]] ?? `FFIType ${got.args[i]}`} in the table, must be ${WRITE[want[i]]}`);
      }
    }
    if (!ACCEPTS[wantRet].includes(got.returns)) {
      diffs.push(`returns ${SPELLING[got.returns] ?? `FFIType ${got.returns}`} in the table, must be ${WRITE[wantRet]}`);
    }
    if (diffs.length > 0) {
      problems.push(`${fn.name}: ${where}; ${file} disagrees: ${diffs.join("; ")}. Replace its entry with:\n    ${entry}`);
    }
  }
  for (const [file, table] of [["src/ffi/library.ts", coreSymbols], ["src/ffi/cuda.ts", cudaSymbols], ["src/ffi/dist.ts", distSymbols]] as const) {
    for (const name of Object.keys(table)) {
      if (!declared.has(name)) {
        problems.push(`${name}: bound in ${file} but not declared in ${HEADER}. Declare it there (FP8_API int32_t ${name}(...);) or remove the entry from ${file}.`);
      } else if (tableFor(name).file !== file) {
        problems.push(`${name}: bound in ${file}, but its prefix puts it in ${tableFor(name).file}; move the entry there (that file opens the library that exports it).`);
      }
    }
  }
  return problems;
}

/** fp8_* functions a shared library exports (nm -D), or null when it is not built. */
function exportsOf(path: string): Set<string> | null {
  if (!existsSync(path)) return null;
  const p = Bun.spawnSync(["nm", "-D", "--defined-only", path], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`nm -D ${path} failed: ${p.stderr.toString()}`);
  const names = new Set<string>();
  for (const line of p.stdout.toString().split("\n")) {
    const m = /^\S+\s+[TW]\s+(fp8_\w+)$/.exec(line.trim());
    if (m) names.add(m[1]);
  }
  return names;
}

describe("fp8.h and the bun:ffi tables (src/ffi/*.ts)", () => {
  test("the header parses into the functions it declares", () => {
    // Guards the parser: a regex that silently matched nothing would pass every check below.
    expect(header.functions.length).toBeGreaterThan(100);
    // Every FP8_API outside the #define lines became a function (none was skipped by the regex).
    const text = readFileSync(join(root, HEADER), "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    const uses = text.split("\n").filter((l) => !l.trimStart().startsWith("#")).join("\n").match(/\bFP8_API\b/g) ?? [];
    expect(header.functions.length).toBe(uses.length);
    const names = header.functions.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
    const scaledMm = header.functions.find((f) => f.name === "fp8_cuda_scaled_mm");
    expect(scaledMm?.params.length).toBe(15);
    expect(ffiTypeOf(scaledMm!.params[0], header.pointerTypedefs, false)).toBe("ptr"); // fp8_cuda_ctx_t
    expect(header.functions.find((f) => f.name === "fp8_last_error")?.params).toEqual([]);
  });

  test("every header function has a table entry with the same argument count and types, and every entry is in the header", () => {
    const problems = abiDrift();
    if (problems.length > 0) throw new Error(`fp8.h and src/ffi disagree in ${problems.length} place(s):\n\n${problems.join("\n\n")}\n`);
    expect(problems).toEqual([]);
  });

  test("the checker catches drift: a changed argument type, a dropped argument and a missing entry", () => {
    const table = coreSymbols as unknown as Record<string, { args: number[]; returns: number }>;
    const saved = table.fp8_cpu_amax;
    try {
      table.fp8_cpu_amax = { args: [FFIType.ptr, FFIType.ptr, FFIType.i64_fast, FFIType.i64_fast], returns: FFIType.i32 };
      expect(abiDrift().join("\n")).toContain("fp8_cpu_amax: libfp8/include/fp8.h:");
      expect(abiDrift().join("\n")).toContain("argument 3 (int32_t src_dtype) is I64 in the table, must be i32");
      table.fp8_cpu_amax = { args: [FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.i32 };
      expect(abiDrift().join("\n")).toContain("3 arguments in the table, 4 in the header");
      delete (table as Record<string, unknown>).fp8_cpu_amax;
      expect(abiDrift().join("\n")).toContain("fp8_cpu_amax: { args: [P, P, i32, I64], returns: i32 },");
    } finally {
      table.fp8_cpu_amax = saved;
    }
    expect(abiDrift()).toEqual([]);
  });

  // nm (binutils) comes with the C toolchain the build needs; without it there is nothing to read exports with
  test.skipIf(!Bun.which("nm"))("each built library exports exactly the header functions of its section", () => {
    const dir = dirname(libraryPath);
    const sections: [string, (n: string) => boolean][] = [
      ["libfp8.so", (n) => !n.startsWith("fp8_cuda_") && !n.startsWith("fp8_dist_")],
      ["libfp8_cuda.so", (n) => n.startsWith("fp8_cuda_")],
      ["libfp8_cuda_emu.so", (n) => n.startsWith("fp8_cuda_")],
      ["libfp8_dist.so", (n) => n.startsWith("fp8_dist_")],
    ];
    const problems: string[] = [];
    let checked = 0;
    for (const [lib, inSection] of sections) {
      const exported = exportsOf(join(dir, lib));
      if (exported === null) continue; // not built on this machine (no nvcc / no MPI)
      checked++;
      const want = new Set(header.functions.map((f) => f.name).filter(inSection));
      for (const name of want) if (!exported.has(name)) problems.push(`${name}: declared in ${HEADER} but ${lib} does not export it (define it with FP8_API, or remove the declaration)`);
      // the emulator's own test controls (fp8_cuda_emu_*) are declared in libfp8/src/cuda/emu/fp8_cuda_emu.h, not in the public header
      for (const name of exported) if (!want.has(name) && !name.startsWith("fp8_cuda_emu_")) problems.push(`${name}: exported by ${lib} but not declared in ${HEADER} (declare it in the header's section for ${lib}, or make it static / hidden)`);
    }
    expect(checked).toBeGreaterThan(0); // libfp8.so at least
    if (problems.length > 0) throw new Error(`library exports and fp8.h disagree:\n${problems.join("\n")}`);
  });
});
