/**
 * Architecture check run by CI: only `reactor/backend/` may name the runtime (`Deno.`, `Bun.`, `node:`).
 * Tests, test fixtures, benchmarks, the fault and fuzz harnesses, examples and tools are exempt. Comment lines are not code and are skipped.
 */

const ROOT = new URL("..", import.meta.url).pathname;
const EXEMPT_DIRS = ["node_modules", ".git", "reactor/backend", "bench", "fault", "examples", "tools", "testdata"];
const FORBIDDEN = /\bDeno\.|\bBun\.|["']node:/;

async function* walk(dir: string, relative: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const rel = relative === "" ? entry.name : `${relative}/${entry.name}`;
    if (entry.isDirectory) {
      if (EXEMPT_DIRS.some((exempt) => rel === exempt || rel.endsWith(`/${exempt}`))) continue;
      yield* walk(`${dir}/${entry.name}`, rel);
    } else if (entry.isFile && /\.(ts|js|mjs)$/.test(entry.name) && !/_test\.ts$|^_.*_suite\.ts$/.test(entry.name)) {
      yield rel;
    }
  }
}

let violations = 0;
for await (const file of walk(ROOT.replace(/\/$/, ""), "")) {
  const lines = (await Deno.readTextFile(`${ROOT}${file}`)).split("\n");
  lines.forEach((line, index) => {
    const trimmed = line.trim();
    if (trimmed.startsWith("//") || trimmed.startsWith("*") || trimmed.startsWith("/*")) return;
    if (FORBIDDEN.test(line)) {
      console.error(`${file}:${index + 1}: names the runtime outside reactor/backend/: ${trimmed}`);
      violations++;
    }
  });
}
if (violations > 0) {
  console.error(`${violations} runtime name(s) outside reactor/backend/`);
  Deno.exit(1);
}
console.log("Runtime names appear only in reactor/backend/ (tests, bench, examples, tools exempt).");
