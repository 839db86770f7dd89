/**
 * connect-web and protobuf-es for a browser page, bundled by esbuild from npm: the versions pinned in `npm/`
 * (installed with `npm ci` the first time), one IIFE that sets `globalThis.ConnectWeb` to what the page script
 * uses. The entry is given on stdin, so no file here names an npm package (`deno check .` reads every script).
 */

const NPM = new URL("./npm/", import.meta.url).pathname;
const ESBUILD = `${NPM}node_modules/.bin/esbuild`;

const ENTRY = `
export { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
export { Code, ConnectError, createClient } from "@connectrpc/connect";
export { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
export { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
`;

/** Install the pinned packages if they are not there yet, then bundle them: the script's text. */
export async function bundleConnectWeb(): Promise<string> {
  try {
    await Deno.stat(ESBUILD);
  } catch {
    await run("npm", ["ci", "--no-audit", "--no-fund", "--silent"]);
  }
  return await run(ESBUILD, ["--bundle", "--format=iife", "--global-name=ConnectWeb", "--log-level=warning"], ENTRY);
}

async function run(command: string, args: string[], input?: string): Promise<string> {
  const child = new Deno.Command(command, {
    args,
    cwd: NPM,
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (${code}): ${new TextDecoder().decode(stderr).slice(-2000)}`);
  }
  return new TextDecoder().decode(stdout);
}
