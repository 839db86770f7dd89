// Test helper: a test that needs more than the network skips itself, with a printed reason, when those permissions
// were not granted, so `deno test --allow-net` passes and `deno task test` (--allow-all) still runs everything.

/** A permission a test may need beyond --allow-net. */
export type Permission = "read" | "write" | "run" | "env" | "sys" | "ffi" | "net";

const said = new Set<string>();

/** The named permissions not granted in full (a grant for some paths or hosts only counts as not granted). */
export function missing(...permissions: Permission[]): Permission[] {
  return permissions.filter((name) => Deno.permissions.querySync({ name }).state !== "granted");
}

/**
 * Test options that ignore the test unless every named permission is granted, for
 * `Deno.test(name, needs("read", "write"), fn)` or `Deno.test({ name, ...needs("run"), fn })`. The first time a
 * module skips for a reason, one line says which module and which flags; Deno lists each skipped test as ignored.
 */
export function needs(...permissions: Permission[]): { ignore: boolean } {
  const lacking = missing(...permissions);
  if (lacking.length > 0) {
    const reason = `tests in ${callerModule()} that need ${lacking.map((name) => `--allow-${name}`).join(" ")}`;
    if (!said.has(reason)) {
      said.add(reason);
      console.log(`skipping ${reason} (not granted; \`deno task test\` grants all)`);
    }
  }
  return { ignore: lacking.length > 0 };
}

const root = new URL("../../", import.meta.url).href;

/** The test module that called `needs`, relative to the repository (Deno.cwd would itself need --allow-read). */
function callerModule(): string {
  // Frames: the message, callerModule, needs, the test module.
  const frame = new Error().stack?.split("\n")[3] ?? "";
  const url = /(file:\/\/[^\s()]+?):\d+:\d+\)?$/.exec(frame)?.[1];
  if (url === undefined) return "this module";
  return url.startsWith(root) ? `./${decodeURIComponent(url.slice(root.length))}` : url;
}
