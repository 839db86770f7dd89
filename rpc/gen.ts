/**
 * The code generator's command line: `deno task gen <file.proto> [--out FILE] [--import MODULE]`.
 * Writes `<file>_pb.ts` beside the .proto by default.
 *
 * @module
 */

import { defaultBackend } from "../reactor/backend/default.ts";
import { parseArgs } from "../reactor/backend/parse_args.ts";
import { generateTypeScript } from "./codegen.ts";

/** Run the generator with command-line `args`; resolves with the exit status. */
export async function main(args: string[]): Promise<number> {
  const backend = defaultBackend();
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { out: { type: "string", short: "o" }, import: { type: "string" } },
  });
  if (positionals.length !== 1) {
    backend.process.writeStderr("usage: deno task gen <file.proto> [--out FILE] [--import MODULE]\n");
    return 2;
  }
  const input = positionals[0]!;
  const output = values.out ?? input.replace(/\.proto$/, "") + "_pb.ts";
  try {
    const text = new TextDecoder().decode(await backend.fs.readFile(input));
    const code = generateTypeScript(text, {
      fileName: input.slice(input.lastIndexOf("/") + 1),
      importFrom: values.import,
    });
    await backend.fs.writeFile(output, new TextEncoder().encode(code));
  } catch (error) {
    backend.process.writeStderr(`Cannot generate code from ${input}: ${(error as Error).message}\n`);
    return 1;
  }
  backend.process.writeStdout(`wrote ${output}\n`);
  return 0;
}

if (defaultBackend().process.isMain(import.meta)) {
  defaultBackend().process.exit(await main(defaultBackend().process.args()));
}
