/**
 * The runtimes the benchmarks run the framework on, as command lines that run a .ts file: Deno itself, Node
 * through tsx (as e2e/ runs us) and Bun, at the versions the tasks pin. The Node and Bun lines are resolved once
 * through npx to the programs it runs (node with tsx's loader, bun's binary), so a benchmark's child is the
 * runtime itself: killing it kills the server, and no npx start-up sits in a measured run.
 */

/** A runtime's name as the tables print it. */
export type RuntimeName = "deno" | "node" | "bun";

/** The npx packages that give Node its TypeScript loader and give us Bun. */
export const TSX = "tsx@4.23.15";
export const BUN = "bun@1.4.5";

const probe = "console.log(JSON.stringify([process.execPath, ...process.execArgv]))";

async function resolveThroughNpx(pkg: string): Promise<string[]> {
  const output = await new Deno.Command("npx", {
    args: ["--yes", pkg, "-e", probe],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!output.success) throw new Error(`npx --yes ${pkg} failed (exit ${output.code})`);
  const argv = JSON.parse(new TextDecoder().decode(output.stdout).trim().split("\n").pop()!) as string[];
  // The probe ran as an -e/--eval script: keep what comes before it (tsx's --require/--import of its loader).
  const evalAt = argv.findIndex((arg, i) => i > 0 && (arg === "-e" || arg === "--eval"));
  return evalAt < 0 ? argv : argv.slice(0, evalAt);
}

/** The argv prefix that runs a .ts file (with every permission, on Deno) on `runtime`. */
export async function runtimeCommand(runtime: RuntimeName): Promise<string[]> {
  if (runtime === "deno") return [Deno.execPath(), "run", "-A"];
  return await resolveThroughNpx(runtime === "node" ? TSX : BUN);
}

/** Parses a `--runtimes deno,node,bun` list, rejecting unknown names. */
export function parseRuntimes(list: string): RuntimeName[] {
  const names = list.split(",").map((name) => name.trim()).filter((name) => name !== "");
  for (const name of names) {
    if (name !== "deno" && name !== "node" && name !== "bun") {
      throw new Error(`Unknown runtime '${name}' (deno, node or bun)`);
    }
  }
  return names as RuntimeName[];
}
