// The command line of `deno task call`, its help text and its exit statuses. A command line it cannot run is one
// line on stderr and exit status 2, as in every program here (parseArgsOrExit for the syntax, ConfigError for the
// rest).

import type { ProcessBackend } from "../../reactor/backend/net_backend.ts";
import { parseArgsOrExit, USAGE_EXIT_STATUS } from "../../reactor/backend/parse_args.ts";
import { ConfigError } from "../config_error.ts";
import { MAX_CALL_TIMEOUT_MS } from "../rpc_channel.ts";
import { RpcCode, rpcCodeName } from "../rpc_error.ts";

/**
 * Exit statuses: 0 OK; 1 a failure that has no RPC code; 2 usage; 64 + the gRPC code when the call, or a step
 * it needed (discovery, the schema), failed with that code. 64 + code, as grpcurl does, keeps the codes apart from
 * 1 and 2 (CANCELLED is 1 and UNKNOWN 2 in gRPC's numbering).
 */
export const CallExit = {
  OK: 0,
  FAILED: 1,
  USAGE: USAGE_EXIT_STATUS,
  RPC_BASE: 64,
} as const;

/** The exit status of a command that ended with RPC code `code`. */
export function exitStatusOf(code: RpcCode): number {
  return code === RpcCode.OK ? CallExit.OK : CallExit.RPC_BASE + code;
}

// Four codes a line, under the text they continue.
const CODE_TABLE = Object.values(RpcCode).filter((code) => code !== RpcCode.OK)
  .map((code, index) => `${index % 4 === 0 ? "\n          " : " "}${exitStatusOf(code)} ${rpcCodeName(code)},`)
  .join("").slice(0, -1);

/** `deno task call --help`. */
export const CALL_USAGE: string = `Usage: deno task call [options] list [SERVICE]
       deno task call [options] describe SYMBOL
       deno task call [options] SERVICE/METHOD [JSON]

grpcurl for dwt-rpc: lists, describes and calls the services of a registry (ours or ZooKeeper, as a caller's config
says) or of one provider, with requests and responses in the canonical proto3 JSON mapping.

Commands:
  list                   the services the registry lists (those with a provider now), or --provider's, or those
                         of --proto/--protoset when neither -i nor --provider is given
  list SERVICE           the methods of SERVICE
  describe SYMBOL        a service, a method (pkg.Service.Method or pkg.Service/Method), a message or an enum, as
                         .proto text; a method or message with every message and enum it uses
  SERVICE/METHOD [JSON]  call the method (pkg.Service/Method or pkg.Service.Method) with the request JSON

Where:
  -i, --config FILE      a caller's config (examples/rpc/caller.json): the registry (dwt_src_ip/dwt_src_port or
                         zookeeper_ip/zookeeper_port/zookeeper_connect), tls_ca_file, log_path, log_level
  --provider HOST:PORT   one provider, without a registry (with -i, only its TLS and logging keys are used)
  -l, --loglevel LEVEL   the log level (a name or 0-4), over the config's log_level

Schema (default: the server reflection of a provider of the service):
  --proto FILE           a .proto file; its imports are read beside it (repeatable)
  --protoset FILE        a binary FileDescriptorSet: protoc --include_imports -o FILE, buf build -o FILE (repeatable)

Call:
  -d, --data DATA        the request: JSON text, @FILE, or @- for stdin. Client and bidirectional streams take one
                         JSON request per line (NDJSON), from stdin when neither -d nor JSON is given; unary and
                         server-streaming calls send {} then
  -H, --header KEY:VALUE request metadata (repeatable)
  --timeout MS           the deadline of the whole command (discovery, schema, the call), in milliseconds; the call
                         gets what is left. None by default
  -h, --help             this text

Output: each response message as one line of JSON, a stream's as they arrive; errors as one line on stderr.
Ctrl-C cancels the call at the provider.

Exit status:
  0       OK
  1       a failure that has no RPC code: a schema that cannot be used, stdout closed
  2       usage: the command line, the config file, a --proto, --protoset or -d @FILE that cannot be read
  64 + N  the call, or a step it needed, failed with gRPC code N:${CODE_TABLE}.
          A service, method or symbol that is nowhere is 69 NOT_FOUND; no provider or an unreachable registry is
          78 UNAVAILABLE; a provider without reflection is 76 UNIMPLEMENTED; a request that is not JSON, or not
          JSON of its message, is 67 INVALID_ARGUMENT; --timeout passing (in the call or before it)
          is 68 DEADLINE_EXCEEDED
`;

/** Options that say where and how, shared by every command. */
export interface CallTargetArgs {
  /** `-i`: a caller's config file. */
  readonly configPath?: string;
  /** `-l`: a log level over the config's. */
  readonly logLevel?: string;
  /** `--provider HOST:PORT`. */
  readonly provider?: string;
  /** `--proto` files. */
  readonly protoFiles: readonly string[];
  /** `--protoset` files. */
  readonly protosetFiles: readonly string[];
  /** `--timeout`, in milliseconds. */
  readonly timeoutMs?: number;
}

/** A command line `deno task call` can run. */
export type CallArgs =
  | { readonly command: "help" }
  | CallTargetArgs & { readonly command: "list"; readonly service?: string }
  | CallTargetArgs & { readonly command: "describe"; readonly symbol: string }
  | CallTargetArgs & {
    readonly command: "call";
    readonly service: string;
    readonly method: string;
    /** `-d` or the JSON argument: JSON text, `@FILE` or `@-`. */
    readonly data?: string;
    /** `-H` entries. */
    readonly metadata: Readonly<Record<string, string>>;
  };

const FULL_NAME = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

function refuse(message: string): never {
  throw new ConfigError(`Cannot read the command line: ${message} (deno task call --help)`);
}

/**
 * Read `args`. Exits with status 2 on a syntax error (an unknown option, an option without its value); throws a
 * ConfigError for the rest (a missing command, a bad --timeout).
 */
export function parseCallArgs(args: string[], process?: ProcessBackend): CallArgs {
  const { values, positionals } = parseArgsOrExit({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: "string", short: "i" },
      loglevel: { type: "string", short: "l" },
      provider: { type: "string" },
      proto: { type: "string", multiple: true },
      protoset: { type: "string", multiple: true },
      data: { type: "string", short: "d" },
      header: { type: "string", short: "H", multiple: true },
      timeout: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  }, process);
  if (values.help) return { command: "help" };
  const [command, ...rest] = positionals;
  if (command === undefined) refuse("give a command: list, describe SYMBOL or SERVICE/METHOD");
  const target: CallTargetArgs = {
    configPath: values.config,
    logLevel: values.loglevel,
    provider: values.provider === undefined ? undefined : providerAddress(values.provider),
    protoFiles: values.proto ?? [],
    protosetFiles: values.protoset ?? [],
    timeoutMs: values.timeout === undefined ? undefined : timeoutMs(values.timeout),
  };
  const hasSchema = target.protoFiles.length + target.protosetFiles.length > 0;
  const hasTarget = target.configPath !== undefined || target.provider !== undefined;
  if (command === "list" || command === "describe") {
    if (values.data !== undefined || values.header !== undefined) refuse(`'-d' and '-H' are for calls, not ${command}`);
    if (!hasTarget && !hasSchema) refuse(`give -i CONFIG, --provider HOST:PORT, --proto FILE or --protoset FILE`);
  }
  if (command === "list") {
    if (rest.length > 1) refuse(`'list' takes at most one service: current value is ${rest.join(" ")}`);
    const service = rest[0];
    if (service !== undefined && !FULL_NAME.test(service)) refuse(`'${service}' is not a service's full name`);
    return { ...target, command, service };
  }
  if (command === "describe") {
    if (rest.length !== 1) refuse("'describe' takes one symbol, such as dwt.UserServiceRpc.Login");
    const symbol = rest[0]!.replace(/\/(?=[^/]*$)/, ".");
    if (!FULL_NAME.test(symbol)) refuse(`'${rest[0]}' is not a full name, such as dwt.UserServiceRpc.Login`);
    return { ...target, command, symbol };
  }
  if (!hasTarget) refuse("give -i CONFIG (a caller's config naming the registry) or --provider HOST:PORT");
  if (rest.length > 1) refuse(`a call takes one JSON argument: current value is ${rest.join(" ")}`);
  if (rest.length === 1 && values.data !== undefined) refuse("give the request either as -d or as an argument");
  const split = command.includes("/") ? command.lastIndexOf("/") : command.lastIndexOf(".");
  const service = command.slice(0, split);
  const method = command.slice(split + 1);
  if (split < 0 || !FULL_NAME.test(service) || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(method)) {
    refuse(
      `'${command}' is no command and no method: give list, describe or SERVICE/METHOD (dwt.UserServiceRpc/Login)`,
    );
  }
  return {
    ...target,
    command: "call",
    service,
    method,
    data: rest[0] ?? values.data,
    metadata: metadataOf(values.header ?? []),
  };
}

function providerAddress(value: string): string {
  const match = /^(.+):(\d+)$/.exec(value);
  const port = Number(match?.[2]);
  if (match === null || !(port >= 1 && port <= 65535)) {
    refuse(`'--provider' must be HOST:PORT with a port in [1, 65535]: current value is '${value}'`);
  }
  return value;
}

function timeoutMs(value: string): number {
  const ms = Number(value);
  if (!/^\d+$/.test(value) || !(ms >= 1 && ms <= MAX_CALL_TIMEOUT_MS)) {
    refuse(`'--timeout' must be an integer in [1, ${MAX_CALL_TIMEOUT_MS}] (milliseconds): current value is '${value}'`);
  }
  return ms;
}

function metadataOf(headers: readonly string[]): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const header of headers) {
    const colon = header.indexOf(":");
    const key = header.slice(0, colon).trim();
    if (colon < 0 || key === "" || /\s/.test(key)) refuse(`'-H' must be KEY:VALUE: current value is '${header}'`);
    if (Object.hasOwn(metadata, key)) refuse(`'-H' gives key '${key}' twice`);
    metadata[key] = header.slice(colon + 1).trimStart();
  }
  return metadata;
}
