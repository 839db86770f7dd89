/**
 * Services as the RPC layer sees them: a full name and methods with their request and response message types,
 * taken from a `.proto` through protobufjs reflection (or from generated code, which embeds the same).
 *
 * @module
 */

import protobuf from "protobufjs";
import type { NetBackend } from "../reactor/backend/net_backend.ts";
import { parseWithImports, readImports } from "./_proto_imports.ts";

/**
 * How a method's messages flow: one each way, or a stream on one or both sides (`stream` in the .proto).
 *
 * @example
 * ```ts
 * import { MethodKind, parseProto, serviceDefinition } from "./service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo; message Msg { string text = 1; }
 *   service Feed { rpc Watch (Msg) returns (stream Msg); }`);
 * assert.equal(serviceDefinition(root, "demo.Feed").methods.get("Watch")!.kind, MethodKind.SERVER_STREAMING);
 * ```
 */
export const MethodKind = {
  UNARY: "unary",
  SERVER_STREAMING: "server_streaming",
  CLIENT_STREAMING: "client_streaming",
  BIDI_STREAMING: "bidi_streaming",
} as const;

/** One of the {@linkcode MethodKind} values. */
export type MethodKind = typeof MethodKind[keyof typeof MethodKind];

/**
 * One method of a service.
 *
 * @example
 * ```ts
 * import { parseProto, serviceDefinition } from "./service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * const echo = serviceDefinition(root, "demo.Echo");
 * const say = echo.methods.get("Say")!;
 * assert.equal(say.requestType.fullName, ".demo.Msg");
 * ```
 */
export interface MethodDefinition {
  /** The method's name as in the .proto (`Login`). */
  readonly name: string;
  /**
   * Unary, or which side streams (`stream` in the .proto); absent means unary. It decides the handler's and the
   * stub method's shape, and a call must open the method as its kind (a mismatch is answered UNIMPLEMENTED).
   */
  readonly kind?: MethodKind;
  /** The request message type. */
  readonly requestType: protobuf.Type;
  /** The response message type. */
  readonly responseType: protobuf.Type;
}

/**
 * A service: its full name (with package) and methods.
 *
 * @example
 * ```ts
 * import { parseProto, serviceDefinition } from "./service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * const echo = serviceDefinition(root, "demo.Echo");
 * assert.equal(echo.fullName, "demo.Echo");
 * assert.deepEqual([...echo.methods.keys()], ["Say"]);
 * ```
 */
export interface ServiceDefinition {
  /** The full name, `dwt.UserServiceRpc`. */
  readonly fullName: string;
  /** The methods by name. */
  readonly methods: ReadonlyMap<string, MethodDefinition>;
}

/**
 * Options of {@linkcode parseProto}.
 *
 * @example
 * ```ts
 * import { parseProto, type ParseProtoOptions } from "./service_definition.ts";
 *
 * const money = `syntax = "proto3"; message Money { int64 cents = 1; }`;
 * const options: ParseProtoOptions = { imports: { "money.proto": money } };
 * const root = parseProto(`syntax = "proto3"; import "money.proto"; message Order { Money total = 1; }`, options);
 * ```
 */
export interface ParseProtoOptions {
  /**
   * The text of every file the .proto imports (and they import), keyed by the import path as written
   * (`"common/money.proto"`). Google's well-known types (`google/protobuf/timestamp.proto`, `duration`, `empty`,
   * `wrappers`, `any`, `struct`, `field_mask`) need no entry: their definitions ship with protobufjs.
   * @default {{}}
   */
  imports?: Readonly<Record<string, string>>;
  /**
   * The file's name as server reflection reports it (`user.proto`, or `shop/orders.proto` as protoc would name it
   * relative to its import root); its imports are named by their import paths. {@linkcode loadProtoFile} gives the
   * file's base name.
   * @default {a name made of the package and the first service or type, `dwt/UserServiceRpc.proto`}
   */
  fileName?: string;
}

/**
 * Parse `.proto` text, with its imports, into a protobufjs Root. Throws a TypeError naming an import that is
 * neither well-known nor in `options.imports`.
 *
 * @example
 * ```ts
 * import { parseProto } from "./service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   import "google/protobuf/timestamp.proto";
 *   import "money.proto";
 *   message Order { google.protobuf.Timestamp at = 1; demo.Money total = 2; }`, {
 *   imports: { "money.proto": `syntax = "proto3"; package demo; message Money { int64 cents = 1; }` },
 * });
 * assert.equal(root.lookupType("demo.Order").fieldsArray.length, 2);
 * ```
 */
export function parseProto(text: string, options: ParseProtoOptions = {}): protobuf.Root {
  return parseWithImports(text, options.imports ?? {}, { keepCase: false, fileName: options.fileName }).root;
}

/**
 * Read and parse a `.proto` file, with the files it imports (looked up beside the file that imports them).
 *
 * @example
 * ```ts
 * import { defaultBackend } from "../reactor/backend/default.ts";
 * import { loadProtoFile, serviceDefinition } from "./service_definition.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".proto" });
 * await Deno.writeTextFile(path, `syntax = "proto3"; package demo; message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * const echo = serviceDefinition(await loadProtoFile(defaultBackend(), path), "demo.Echo");
 * await Deno.remove(path);
 * ```
 */
export async function loadProtoFile(backend: NetBackend, path: string): Promise<protobuf.Root> {
  const decoder = new TextDecoder();
  const readText = async (file: string) => decoder.decode(await backend.fs.readFile(file));
  const text = await readText(path);
  const fileName = path.slice(path.lastIndexOf("/") + 1);
  return parseProto(text, { imports: await readImports(path, text, { readText }), fileName });
}

/**
 * The definition of the service named `name` (full or simple name) in `root`. Throws a TypeError if missing.
 *
 * @example
 * ```ts
 * import { parseProto, serviceDefinition } from "./service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * const echo = serviceDefinition(root, "demo.Echo");
 * assert.equal(serviceDefinition(root, "Echo").fullName, "demo.Echo"); // the simple name works too
 * assert.throws(() => serviceDefinition(root, "demo.Missing"), TypeError);
 * ```
 */
export function serviceDefinition(root: protobuf.Root, name: string): ServiceDefinition {
  let service: protobuf.Service | undefined;
  try {
    service = root.lookupService(name);
  } catch {
    service = undefined;
  }
  if (service === undefined) {
    const names: string[] = [];
    const visit = (ns: protobuf.NamespaceBase) => {
      for (const nested of ns.nestedArray) {
        if (nested instanceof protobuf.Service) names.push(nested.fullName.replace(/^\./, ""));
        else if (nested instanceof protobuf.Namespace) visit(nested);
      }
    };
    visit(root);
    throw new TypeError(`Cannot find service '${name}' in the proto: it has ${names.join(", ") || "no services"}`);
  }
  return definitionOf(service);
}

/**
 * The definition of a protobufjs Service.
 *
 * @example
 * ```ts
 * import { definitionOf, parseProto } from "./service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo; message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * assert.equal(definitionOf(root.lookupService("demo.Echo")).fullName, "demo.Echo");
 * ```
 */
export function definitionOf(service: protobuf.Service): ServiceDefinition {
  service.resolveAll();
  const methods = new Map<string, MethodDefinition>();
  for (const method of service.methodsArray) {
    method.resolve();
    const kind = method.requestStream
      ? (method.responseStream ? MethodKind.BIDI_STREAMING : MethodKind.CLIENT_STREAMING)
      : (method.responseStream ? MethodKind.SERVER_STREAMING : MethodKind.UNARY);
    methods.set(method.name, {
      name: method.name,
      kind,
      requestType: method.resolvedRequestType!,
      responseType: method.resolvedResponseType!,
    });
  }
  return { fullName: service.fullName.replace(/^\./, ""), methods };
}
