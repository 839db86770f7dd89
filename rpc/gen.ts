/**
 * The code generator's command line:
 *
 * ```text
 * deno run -A jsr:@dwt/rpc/gen [--check] [--import MODULE] [-I DIR]... <file.proto>... [--out FILE]
 * ```
 *
 * (in this repository: `deno task gen ...`).
 * Writes `<file>_pb.ts` beside each .proto by default. Imports are read beside the file that names them, then from
 * each `-I`/`--proto_path` directory; Google's well-known types ship with protobufjs. With `--check` nothing is
 * written: it exits 1 naming every output that differs from what the generator would write now (a CI gate).
 *
 * @module
 */

import { defaultBackend } from "../reactor/backend/default.ts";
import { parseArgs } from "../reactor/backend/parse_args.ts";
import { generateTypeScript } from "./codegen.ts";
import { readImports } from "./_proto_imports.ts";

const USAGE = "usage: deno task gen [--check] [--import MODULE] [-I DIR]... <file.proto>... [--out FILE]\n";

/**
 * Run the generator with command-line `args`; resolves with the exit status (0 done, 1 failed or stale, 2 usage).
 *
 * @example
 * ```ts
 * import { main } from "./gen.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/echo.proto`, `syntax = "proto3"; package demo; message Msg { string text = 1; }`);
 * assert.equal(await main([`${dir}/echo.proto`]), 0); // wrote echo_pb.ts beside it
 * assert.equal(await main(["--check", `${dir}/echo.proto`]), 0); // and it is current
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const backend = defaultBackend();
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        out: { type: "string", short: "o" },
        import: { type: "string" },
        proto_path: { type: "string", short: "I", multiple: true },
        check: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    backend.process.writeStderr(`Cannot read the command line: ${(error as Error).message} (${USAGE.trimEnd()})\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    backend.process.writeStdout(USAGE);
    return 0;
  }
  if (positionals.length === 0 || (values.out !== undefined && positionals.length !== 1)) {
    backend.process.writeStderr(USAGE);
    return 2;
  }
  const decoder = new TextDecoder();
  const readText = async (path: string) => decoder.decode(await backend.fs.readFile(path));
  let status = 0;
  for (const input of positionals) {
    const output = values.out ?? input.replace(/\.proto$/, "") + "_pb.ts";
    let code: string;
    try {
      const text = await readText(input);
      const imports = await readImports(input, text, { readText, includeDirs: values.proto_path ?? [] });
      code = generateTypeScript(text, {
        fileName: input.slice(input.lastIndexOf("/") + 1),
        importFrom: values.import,
        imports,
      });
    } catch (error) {
      backend.process.writeStderr(`Cannot generate code from ${input}: ${(error as Error).message}\n`);
      status = 1;
      continue;
    }
    if (values.check) {
      let current: string | undefined;
      try {
        current = await readText(output);
      } catch {
        current = undefined;
      }
      if (current === code) {
        backend.process.writeStdout(`${output} is current\n`);
      } else {
        backend.process.writeStderr(
          `${output} ${current === undefined ? "is missing" : "differs from what the generator writes"}: ` +
            `run deno task gen${values.import === undefined ? "" : ` --import ${values.import}`} ${input}\n`,
        );
        status = 1;
      }
      continue;
    }
    try {
      await backend.fs.writeFile(output, new TextEncoder().encode(code));
    } catch (error) {
      backend.process.writeStderr(`Cannot write ${output}: ${(error as Error).message}\n`);
      status = 1;
      continue;
    }
    backend.process.writeStdout(`wrote ${output}\n`);
  }
  return status;
}

if (defaultBackend().process.isMain(import.meta)) {
  defaultBackend().process.exit(await main(defaultBackend().process.args()));
}
