/**
 * The registry CLI (the seed's client_cli):
 *
 * ```text
 * deno run -A --unstable-net jsr:@dwt/rpc/registry-cli [--server HOST:PORT] [command ...]
 * ```
 *
 * (`--unstable-net` for the session's UDP heartbeats; in this repository: `deno task registry-cli ...`), or with
 * `--zookeeper HOST:PORT[/chroot]` the same commands against ZooKeeper.
 * With a command it runs it and exits (0 success, 1 failure, 2 usage; `exists` exits 1 when the node is missing);
 * without one it opens an interactive shell. Commands: create, get, set, delete, ls, stat, exists, watch, tree.
 *
 * @module
 */

import { defaultBackend } from "../reactor/backend/default.ts";
import type { NetBackend } from "../reactor/backend/net_backend.ts";
import { parseArgs } from "../reactor/backend/parse_args.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import { EventType, NodeType, type Stat } from "./server/data_tree.ts";
import { joinPath } from "./path.ts";
import type { Registry } from "./registry.ts";
import { RegistryClient } from "./client/registry_client.ts";
import { RegistryError, RegistryErrorCode } from "./registry_error.ts";
import { REGISTRY_SERVER_DEFAULTS } from "./server/registry_server_options.ts";
import { ZooKeeperRegistry } from "./zookeeper/zookeeper_registry.ts";

const HELP = `Commands:
  create <path> [data] [type]   create a node; type 1 persistent (default), 2 ephemeral; add 's' for sequential (1s, 2s)
  get <path>                    print a node's data
  set <path> [data] [version]   replace a node's data (only at that version when given)
  delete <path> [version]       delete a childless node
  ls <path>                     list children as [a, b, c]
  stat <path>                   print a node's stat
  exists <path>                 print exists / not exists
  watch <path> [count]          print changes to a node and its children (count events, or until interrupted)
  tree [path]                   print the subtree
  help [command], history, !N, quit         (every command also takes --help)`;

/** Each command's own help: `registry-cli help ls`, `registry-cli ls --help`, or `help ls` in the shell. */
const COMMAND_HELP: Record<string, string> = {
  create: `create <path> [data] [type]
  Create a node with data (default empty). type: 1 persistent (default), 2 ephemeral (goes with this session),
  1s or 2s for sequential (a 10-digit counter is appended). Fails with NODE_EXISTS, NO_NODE (missing parent) or
  NO_CHILDREN_FOR_EPHEMERALS. Prints the created path.`,
  get: `get <path>
  Print a node's data as text. NO_NODE if it does not exist.`,
  set: `set <path> [data] [version]
  Replace a node's data. With a version, only if the node is at that version (else BAD_VERSION). Prints the new
  version.`,
  delete: `delete <path> [version]
  Delete a node without children (else NOT_EMPTY); with a version, only at that version.`,
  ls: `ls <path>
  List the children as [a, b, c].`,
  stat: `stat <path>
  Print the stat: nodeType, dataLength, numChildren, ephemeralOwner, version, cversion, zxids, ctime, mtime.`,
  exists: `exists <path>
  Print exists / not exists; the exit status is 1 when it does not exist (for scripts).`,
  watch: `watch <path> [count]
  Print each change to the node and its children as it happens, until count events (default: until interrupted
  with Ctrl-C). Watches are re-armed after each event and after a reconnect.`,
  tree: `tree [path]
  Print the subtree under path (default /), one node per line, indented.`,
};

function commandHelp(command: string): string | undefined {
  return COMMAND_HELP[command];
}

const decoder = new TextDecoder();

const EVENT_NAMES: Record<number, string> = {
  0: "Reconnected",
  [EventType.NODE_CREATED]: "NodeCreated",
  [EventType.NODE_DELETED]: "NodeDeleted",
  [EventType.NODE_DATA_CHANGED]: "NodeDataChanged",
  [EventType.NODE_CHILDREN_CHANGED]: "NodeChildrenChanged",
};

/** Split a command line into words; single or double quotes keep spaces. */
function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const match of line.matchAll(pattern)) {
    words.push(match[1]?.replace(/\\(.)/g, "$1") ?? match[2] ?? match[3]!);
  }
  return words;
}

/** Thrown for wrong usage (exit code 2). */
class UsageError extends Error {}

function formatStat(stat: Stat): string {
  return [
    `nodeType: ${stat.nodeType} (${stat.nodeType === NodeType.EPHEMERAL ? "ephemeral" : "persistent"})`,
    `dataLength: ${stat.dataLength}`,
    `numChildren: ${stat.numChildren}`,
    `ephemeralOwner: 0x${stat.ephemeralOwner.toString(16)}`,
    `version: ${stat.version}`,
    `cversion: ${stat.cversion}`,
    `czxid: 0x${stat.czxid.toString(16)}`,
    `mzxid: 0x${stat.mzxid.toString(16)}`,
    `pzxid: 0x${stat.pzxid.toString(16)}`,
    `ctime: ${new Date(stat.ctime).toISOString()}`,
    `mtime: ${new Date(stat.mtime).toISOString()}`,
  ].join("\n");
}

function need(words: string[], count: number, usage: string): void {
  if (words.length < count + 1) throw new UsageError(`usage: ${usage}`);
}

function parseVersion(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const version = Number(text);
  if (!Number.isInteger(version) || version < -1) {
    throw new UsageError(`version must be an integer >= -1: current value is '${text}'`);
  }
  return version;
}

/**
 * Run one command line against a client, writing to `out`. Returns the exit status (0 ok, 1 not found for
 * `exists`); throws RegistryError for failures and UsageError for bad usage.
 */
async function runCommand(
  client: Registry,
  words: string[],
  out: (text: string) => void,
  signal: AbortSignal,
): Promise<number> {
  const [command, path, ...rest] = words;
  if (command !== undefined && (words.includes("--help") || words.includes("-h"))) {
    const help = commandHelp(command);
    if (help === undefined) throw new UsageError(`unknown command '${command}'; type help`);
    out(help);
    return 0;
  }
  if (command === "help") {
    out(path === undefined ? HELP : commandHelp(path) ?? `unknown command '${path}'`);
    return 0;
  }
  switch (command) {
    case "create": {
      need(words, 1, "create <path> [data] [type]");
      const type = rest[1] ?? "1";
      const match = /^([12])(s?)$/.exec(type);
      if (match === null) throw new UsageError(`type must be 1, 2, 1s or 2s: current value is '${type}'`);
      const created = await client.create(path!, rest[0] ?? "", {
        nodeType: Number(match[1]) as NodeType,
        sequential: match[2] === "s",
      });
      out(`Created ${created}`);
      return 0;
    }
    case "get":
      need(words, 1, "get <path>");
      out(decoder.decode((await client.get(path!)).data));
      return 0;
    case "set": {
      need(words, 1, "set <path> [data] [version]");
      const stat = await client.set(path!, rest[0] ?? "", { version: parseVersion(rest[1]) });
      out(`Set ${path} (version ${stat.version})`);
      return 0;
    }
    case "delete":
      need(words, 1, "delete <path> [version]");
      await client.delete(path!, { version: parseVersion(rest[0]) });
      out(`Deleted ${path}`);
      return 0;
    case "ls":
      need(words, 1, "ls <path>");
      out(`[${(await client.children(path!)).join(", ")}]`);
      return 0;
    case "stat": {
      need(words, 1, "stat <path>");
      const stat = await client.exists(path!);
      if (stat === undefined) {
        throw new RegistryError(RegistryErrorCode.NO_NODE, `Cannot stat '${path}' as it does not exist`);
      }
      out(formatStat(stat));
      return 0;
    }
    case "exists": {
      need(words, 1, "exists <path>");
      const stat = await client.exists(path!);
      out(stat === undefined ? "not exists" : "exists");
      return stat === undefined ? 1 : 0;
    }
    case "tree": {
      const root = path ?? "/";
      const visit = async (node: string, depth: number): Promise<void> => {
        const name = depth === 0 ? node : node.slice(node.lastIndexOf("/") + 1);
        out(`${"  ".repeat(depth)}${name}`);
        for (const child of await client.children(node)) await visit(joinPath(node, child), depth + 1);
      };
      await visit(root, 0);
      return 0;
    }
    case "watch": {
      need(words, 1, "watch <path> [count]");
      const limit = rest[0] === undefined ? Infinity : Number(rest[0]);
      let seen = 0;
      const done = Promise.withResolvers<void>();
      signal.addEventListener("abort", () => done.resolve(), { once: true });
      const arm = async () => {
        if (seen >= limit || signal.aborted) return done.resolve();
        const onEvent = (event: { type: number; path: string }) => {
          if (seen >= limit || signal.aborted) return;
          seen++;
          out(`${EVENT_NAMES[event.type] ?? event.type} ${event.path}`);
          arm().catch(done.reject);
        };
        // One callback per kind; each re-arms both, so no change between events is lost for good.
        let fired = false;
        const once = (event: { type: number; path: string }) => {
          if (fired) return;
          fired = true;
          onEvent(event);
        };
        await client.exists(path!, { watch: once });
        if (await client.exists(path!)) await client.children(path!, { watch: once });
      };
      out(`Watching ${path}${Number.isFinite(limit) ? ` for ${limit} event(s)` : ""}`);
      await arm();
      await done.promise;
      return 0;
    }
    default:
      throw new UsageError(`unknown command '${command}'; type help`);
  }
}

/**
 * Run the CLI program with command-line `args`; resolves with the exit status (0 success, 1 failure, 2 usage).
 *
 * @example
 * ```ts
 * import { main } from "./cli.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await main(["help"]), 0); // prints every command
 * ```
 */
export async function main(args: string[], backend: NetBackend = defaultBackend()): Promise<number> {
  const write = (text: string) => backend.process.writeStdout(`${text}\n`);
  const writeError = (text: string) => backend.process.writeStderr(`${text}\n`);
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        server: { type: "string", short: "s" },
        zookeeper: { type: "string", short: "z" },
        auth: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    writeError(`Cannot read the command line: ${(error as Error).message} (see registry-cli --help)`);
    return 2;
  }
  // Help needs no server: `--help`, `help`, `help ls`, `ls --help`.
  const [first, second] = parsed.positionals;
  if (parsed.values.help || first === "help") {
    const command = first === "help" ? second : first;
    if (command !== undefined) {
      const help = commandHelp(command);
      if (help === undefined) {
        writeError(`Error: unknown command '${command}'; see registry-cli --help`);
        return 2;
      }
      write(help);
      return 0;
    }
    write(
      `usage: registry-cli [--server HOST:PORT | --zookeeper CONNECT_STRING] [--auth TOKEN] [command ...]\n${HELP}`,
    );
    return 0;
  }
  // The library's INFO lines (reconnects) would clutter a CLI's output.
  getLogger().level = LogLevel.WARN;
  const loop = EventLoop.current();
  if (parsed.values.server !== undefined && parsed.values.zookeeper !== undefined) {
    writeError("Error: give --server or --zookeeper, not both");
    return 2;
  }
  // ZooKeeper connect strings are its own: host:port[,host:port...][/chroot].
  const target = parsed.values.zookeeper ?? parsed.values.server ??
    `${REGISTRY_SERVER_DEFAULTS.host}:${REGISTRY_SERVER_DEFAULTS.port}`;
  const backendName = parsed.values.zookeeper !== undefined ? "ZooKeeper" : "the registry";
  let client: Registry & { readonly sessionId: bigint };
  try {
    client = parsed.values.zookeeper !== undefined
      ? await ZooKeeperRegistry.connect(target, { loop, connectTimeoutMs: 5000 })
      : await RegistryClient.connect(target, { loop, authToken: parsed.values.auth, connectTimeoutMs: 5000 });
  } catch (error) {
    writeError(`Error: cannot connect to ${backendName} at ${target}: ${(error as Error).message}`);
    return 1;
  }
  const interrupted = new AbortController();
  const removeSignal = backend.process.onSignal("SIGINT", () => interrupted.abort());
  const run = async (words: string[]): Promise<number> => {
    try {
      return await runCommand(client, words, write, interrupted.signal);
    } catch (error) {
      if (error instanceof UsageError) {
        writeError(`Error: ${error.message}`);
        return 2;
      }
      const registryError = RegistryError.from(error);
      writeError(`Error: ${registryError.codeName}: ${registryError.message}`);
      return 1;
    }
  };
  let status = 0;
  try {
    if (parsed.positionals.length > 0) {
      status = await run(parsed.positionals);
    } else {
      write(`Connected to ${backendName} at ${target}, session 0x${client.sessionId.toString(16)}. Type help.`);
      const history: string[] = [];
      backend.process.writeStdout("dwt> ");
      for await (let line of backend.process.stdinLines()) {
        const bang = /^!(\d+)$/.exec(line.trim());
        if (bang !== null) {
          line = history[Number(bang[1]) - 1] ?? "";
          write(line);
        }
        const words = splitCommandLine(line);
        if (words.length > 0) {
          if (words[0] === "quit" || words[0] === "exit") break;
          history.push(line);
          if (words[0] === "history") history.forEach((entry, i) => write(`${i + 1}  ${entry}`));
          else status = await run(words);
        }
        backend.process.writeStdout("dwt> ");
      }
    }
  } finally {
    removeSignal();
    await client.close();
  }
  return status;
}

if (defaultBackend().process.isMain(import.meta)) {
  const backend = defaultBackend();
  backend.process.exit(await main(backend.process.args(), backend));
}
