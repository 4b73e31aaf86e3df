// libfp8 is opened on the first native call, not at import: importing the package
// and a script's --help work without a built library, and the first native call
// without one throws a Float8Error that says what to do.
import { expect, test } from "bun:test";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const noLib = { ...process.env, FLOAT8_LIB: join(root, "build", "no-such-dir", "libfp8.so") };

function run(args: string[]) {
  const p = Bun.spawnSync(["bun", ...args], { cwd: root, env: noLib, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

test("importing the package does not open libfp8", () => {
  const r = run(["-e", 'const f = await import("./src/index.ts"); console.log(typeof f.nn.Linear, typeof f.float8.convertToFloat8Training)']);
  expect(r.err).toBe("");
  expect(r.out.trim()).toBe("function function");
  expect(r.code).toBe(0);
});

test("examples' --help works without the library", () => {
  for (const e of ["demo", "dynamic", "delayed"]) {
    const r = run([join("examples", `${e}.ts`), "--help"]);
    expect(`${e}: ${r.code}`).toBe(`${e}: 0`);
    expect(r.out).toContain("usage");
  }
}, 60_000);

test("the first native call without the library throws a Float8Error with the fix", () => {
  const r = run(["-e", 'const f = await import("./src/index.ts"); try { f.zeros([2]) } catch (e) { console.log(e instanceof f.Float8Error, e.message) }']);
  expect(r.out).toContain("true load: libfp8 not found at");
  expect(r.out).toContain("FLOAT8_LIB names a file that does not exist");
});
