/**
 * Code generation from a `.proto` (protoc's `cc_generic_services` for TypeScript): message interfaces, enum
 * objects, a service definition, an abstract base class a service author extends, and a typed stub to call the
 * service, for unary and streaming methods alike. The schema text is embedded, and protobufjs does the encoding at
 * run time.
 *
 * @module
 */

import protobuf from "protobufjs";
import { parseWithImports } from "./_proto_imports.ts";
import { MethodKind } from "./service_definition.ts";

/**
 * Options of {@linkcode generateTypeScript}.
 *
 * @example
 * ```ts
 * import { generateTypeScript, type GenerateOptions } from "./codegen.ts";
 *
 * const options: GenerateOptions = { fileName: "echo.proto", importFrom: "jsr:@dwt/rpc/rpc" };
 * const code = generateTypeScript(`syntax = "proto3"; package demo; message Msg { string text = 1; }`, options);
 * ```
 */
export interface GenerateOptions {
  /** The .proto file's name, for the header comment. */
  fileName: string;
  /**
   * The module the generated code imports the RPC layer from.
   * @default {"@dwt/rpc/rpc"}
   */
  importFrom?: string;
  /**
   * The text of every file the .proto imports (and they import), keyed by the import path as written; the
   * generated module embeds them. Google's well-known types need no entry (protobufjs ships them).
   * @default {{}}
   */
  imports?: Readonly<Record<string, string>>;
}

const SCALARS: Record<string, string> = {
  double: "number",
  float: "number",
  int32: "number",
  uint32: "number",
  sint32: "number",
  fixed32: "number",
  sfixed32: "number",
  // The RPC layer hands 64-bit values over as bigint, always (rpc/_proto3_defaults.ts); it takes bigint, number
  // or a decimal string when encoding, which Partial<> request types may give as bigint.
  int64: "bigint",
  uint64: "bigint",
  sint64: "bigint",
  fixed64: "bigint",
  sfixed64: "bigint",
  bool: "boolean",
  string: "string",
  bytes: "Uint8Array",
};

/** A TypeScript identifier for a type's full name (`.dwt.User.Address` → `User_Address` within package dwt). */
function typeName(type: protobuf.ReflectionObject, packageName: string): string {
  let name = type.fullName.replace(/^\./, "");
  if (packageName !== "" && name.startsWith(`${packageName}.`)) name = name.slice(packageName.length + 1);
  return name.replace(/\./g, "_");
}

function fieldType(field: protobuf.Field, packageName: string): string {
  field.resolve();
  const resolved = field.resolvedType;
  const base = resolved === null ? SCALARS[field.type] ?? "unknown" : typeName(resolved, packageName);
  if (field instanceof protobuf.MapField) return `Record<string, ${base}>`;
  return field.repeated ? `${base}[]` : base;
}

function doc(comment: string | null, indent = ""): string {
  return comment ? `${indent}/** ${comment.replace(/\*\//g, "*\\/").replace(/\n/g, ` `)} */\n` : "";
}

/** The types and enums `start` needs, transitively, through fields and methods (itself included). */
function reachable(start: readonly protobuf.ReflectionObject[]): protobuf.ReflectionObject[] {
  const seen = new Set<protobuf.ReflectionObject>();
  const order: protobuf.ReflectionObject[] = [];
  const add = (object: protobuf.ReflectionObject | null) => {
    if (object === null || seen.has(object)) return;
    seen.add(object);
    order.push(object);
    if (object instanceof protobuf.Type) {
      for (const field of object.fieldsArray) add(field.resolve().resolvedType);
    } else if (object instanceof protobuf.Service) {
      for (const method of object.methodsArray) {
        method.resolve();
        add(method.resolvedRequestType);
        add(method.resolvedResponseType);
      }
    }
  };
  for (const object of start) add(object);
  return order;
}

/** Throws a TypeError naming the first construct of `declared` the generator cannot express yet. */
function checkSupported(declared: readonly protobuf.ReflectionObject[]): void {
  for (const object of declared) {
    if (!(object instanceof protobuf.Type)) continue;
    const extension = object.fieldsArray.find((field) => field.extend !== undefined || field.name.startsWith("."));
    if (extension !== undefined) {
      throw new TypeError(
        `Cannot generate message ${object.fullName.replace(/^\./, "")}: extensions ('extend') are not supported yet`,
      );
    }
  }
}

/** A method as the generator writes it: names of its TypeScript types and how its messages flow. */
interface GeneratedMethod {
  readonly name: string;
  readonly kind: MethodKind;
  readonly request: string;
  readonly response: string;
  readonly comment: string | null;
}

function generatedMethods(service: protobuf.Service, packageName: string): GeneratedMethod[] {
  return service.methodsArray.map((method) => {
    method.resolve();
    const kind = method.requestStream
      ? (method.responseStream ? MethodKind.BIDI_STREAMING : MethodKind.CLIENT_STREAMING)
      : (method.responseStream ? MethodKind.SERVER_STREAMING : MethodKind.UNARY);
    return {
      name: method.name,
      kind,
      request: typeName(method.resolvedRequestType!, packageName),
      response: typeName(method.resolvedResponseType!, packageName),
      comment: method.comment,
    };
  });
}

/**
 * The abstract method of the base class, in the shapes of server_handler.ts's handler types. Responses are
 * `Partial<>`, as unary ones always were (an unset field goes out as its default). A server-streaming handler may
 * be a plain generator; a bidirectional one is async, as its responses usually wait on the requests it reads.
 */
function baseMethod({ name, kind, request, response }: GeneratedMethod): string {
  switch (kind) {
    case MethodKind.UNARY:
      return `  abstract ${name}(request: ${request}, context: CallContext): Partial<${response}> | Promise<Partial<${response}>>;`;
    case MethodKind.SERVER_STREAMING:
      return `  abstract ${name}(request: ${request}, context: CallContext): AsyncIterable<Partial<${response}>> | Iterable<Partial<${response}>>;`;
    case MethodKind.CLIENT_STREAMING:
      return `  abstract ${name}(requests: AsyncIterable<${request}>, context: CallContext): Partial<${response}> | Promise<Partial<${response}>>;`;
    case MethodKind.BIDI_STREAMING:
      return `  abstract ${name}(requests: AsyncIterable<${request}>, context: CallContext): AsyncIterable<Partial<${response}>>;`;
  }
}

/** The type of a stub's method, by kind (each one of rpc_channel.ts's, imported by the generated module). */
const STUB_METHOD_TYPES: Readonly<Record<MethodKind, string>> = {
  [MethodKind.UNARY]: "StubMethod",
  [MethodKind.SERVER_STREAMING]: "ServerStreamingStubMethod",
  [MethodKind.CLIENT_STREAMING]: "ClientStreamingStubMethod",
  [MethodKind.BIDI_STREAMING]: "BidiStreamingStubMethod",
};

/**
 * Everything a generated module may import, in the order it lists them (sorted by name, ignoring case). A module
 * imports only the names it uses, so that it passes `deno lint` (no unused imports).
 */
const IMPORTABLE: readonly { readonly name: string; readonly typeOnly: boolean }[] = [
  { name: "BidiStreamingStubMethod", typeOnly: true },
  { name: "CallContext", typeOnly: true },
  { name: "ClientStreamingStubMethod", typeOnly: true },
  { name: "parseProto", typeOnly: false },
  { name: "RpcChannel", typeOnly: true },
  { name: "ServerStreamingStubMethod", typeOnly: true },
  { name: "serviceDefinition", typeOnly: false },
  { name: "ServiceDefinition", typeOnly: true },
  { name: "StubMethod", typeOnly: true },
];

/**
 * Generate the TypeScript module for `protoText`: unary and streaming methods (server, client, bidirectional) each
 * get a typed abstract method in the base class and a typed method in the stub. Throws a TypeError naming the
 * message of a construct not supported yet (extensions) or an import that cannot be resolved.
 *
 * @example
 * ```ts
 * import { generateTypeScript } from "./codegen.ts";
 * import assert from "node:assert/strict";
 *
 * const code = generateTypeScript(
 *   `syntax = "proto3"; package demo; message Msg { string text = 1; } service Echo { rpc Say (Msg) returns (Msg); }`,
 *   { fileName: "echo.proto" },
 * );
 * assert.match(code, /export interface Msg \{/);
 * assert.match(code, /from "@dwt\/rpc\/rpc"/);
 * ```
 */
export function generateTypeScript(protoText: string, options: GenerateOptions): string {
  const parsed = parseWithImports(protoText, options.imports ?? {}, { keepCase: false, alternateCommentMode: true });
  const packageName = parsed.packageName;
  checkSupported(parsed.declared);
  // The main file's declarations first, in its order; then what they use from imports, in order of first use.
  const used = reachable(parsed.declared);
  const emitted = [...parsed.declared, ...used.filter((object) => !parsed.declared.includes(object))];
  const types = emitted.filter((object): object is protobuf.Type => object instanceof protobuf.Type);
  const enums = emitted.filter((object): object is protobuf.Enum => object instanceof protobuf.Enum);
  const services = parsed.declared.filter((object): object is protobuf.Service => object instanceof protobuf.Service);
  const imported = parsed.importsUsed;
  const owners = new Map<string, string>();
  for (const object of emitted) {
    const name = typeName(object, packageName);
    const fullName = object.fullName.replace(/^\./, "");
    const other = owners.get(name);
    if (other !== undefined) {
      throw new TypeError(`Cannot generate both ${other} and ${fullName}: both would be named ${name} in TypeScript`);
    }
    owners.set(name, fullName);
  }

  const serviceMethods = new Map(services.map((service) => [service, generatedMethods(service, packageName)]));
  const allMethods = [...serviceMethods.values()].flat();
  // What the module below names of the RPC layer, for its import list.
  const uses = new Set(["parseProto"]);
  if (services.length > 0) ["RpcChannel", "serviceDefinition", "ServiceDefinition"].forEach((name) => uses.add(name));
  if (allMethods.length > 0) uses.add("CallContext");
  for (const method of allMethods) uses.add(STUB_METHOD_TYPES[method.kind]);

  const importFrom = options.importFrom ?? "@dwt/rpc/rpc";
  const out: string[] = [];
  out.push(`// Code generated by dwt-rpc (deno task gen) from ${options.fileName}. DO NOT EDIT.`);
  out.push("");
  out.push(`import {`);
  for (const { name, typeOnly } of IMPORTABLE) if (uses.has(name)) out.push(`  ${typeOnly ? "type " : ""}${name},`);
  out.push(`} from ${JSON.stringify(importFrom)};`);
  out.push("");
  out.push(`/** The schema of ${options.fileName}. */`);
  out.push(`export const PROTO: string = ${JSON.stringify(protoText)};`);
  if (imported.length > 0) {
    out.push("");
    out.push(
      `/** The schemas ${options.fileName} imports, by import path (Google's well-known types ship with protobufjs). */`,
    );
    out.push(`export const PROTO_IMPORTS: Readonly<Record<string, string>> = {`);
    for (const name of imported) out.push(`  ${JSON.stringify(name)}: ${JSON.stringify(options.imports![name])},`);
    out.push(`};`);
  }
  out.push("");
  out.push(`/** The parsed schema. */`);
  // The file's name goes with it, so reflection describes the services as the file they came from.
  const parseOptions = `{ fileName: ${JSON.stringify(options.fileName)}${
    imported.length > 0 ? ", imports: PROTO_IMPORTS" : ""
  } }`;
  out.push(`export const root: ReturnType<typeof parseProto> = parseProto(PROTO, ${parseOptions});`);

  for (const e of enums) {
    const name = typeName(e, packageName);
    out.push("");
    out.push(doc(e.comment).trimEnd() || `/** The enum ${e.fullName.replace(/^\./, "")}. */`);
    out.push(`export const ${name} = {`);
    for (const [key, value] of Object.entries(e.values)) out.push(`  ${key}: ${value},`);
    out.push(`} as const;`);
    out.push(`/** One of the {@linkcode ${name}} values. */`);
    out.push(`export type ${name} = typeof ${name}[keyof typeof ${name}];`);
  }

  for (const type of types) {
    const name = typeName(type, packageName);
    out.push("");
    out.push(doc(type.comment).trimEnd() || `/** The message ${type.fullName.replace(/^\./, "")}. */`);
    // A message without fields (google.protobuf.Empty) is an empty interface on purpose: the lint rule is off for
    // it, and the generated file says why beside the switch.
    if (type.fieldsArray.length === 0) {
      out.push("// No fields: an empty interface on purpose.", "// deno-lint-ignore no-empty-interface");
    }
    out.push(`export interface ${name} {`);
    for (const field of type.fieldsArray) {
      field.resolve();
      // Decoded messages carry every scalar and repeated field; an unset message field is null.
      const optional = field.resolvedType instanceof protobuf.Type && !field.repeated && !field.map;
      out.push(
        `${doc(field.comment, "  ")}  ${field.name}${optional ? "?" : ""}: ${fieldType(field, packageName)}${
          optional ? " | null" : ""
        };`,
      );
    }
    out.push(`}`);
  }

  for (const service of services) {
    const name = typeName(service, packageName);
    const fullName = service.fullName.replace(/^\./, "");
    const methods = serviceMethods.get(service)!;
    out.push("");
    out.push(`/** The definition of service ${fullName}. */`);
    out.push(`export const ${name}: ServiceDefinition = serviceDefinition(root, ${JSON.stringify(fullName)});`);
    out.push("");
    out.push(`/** Extend this class to implement ${fullName}, then register it with an RpcProvider. */`);
    out.push(`export abstract class ${name}Base {`);
    out.push(`  /** The service this class implements. */`);
    out.push(`  static readonly definition: ServiceDefinition = ${name};`);
    for (const method of methods) {
      out.push(doc(method.comment, "  ").trimEnd() || `  /** ${method.name}. */`);
      out.push(baseMethod(method));
    }
    out.push(`}`);
    out.push("");
    out.push(`/** Typed calls on ${fullName}. */`);
    out.push(`export interface ${name}Stub {`);
    for (const method of methods) {
      out.push(`  /** Call ${method.name}. */`);
      out.push(`  ${method.name}: ${STUB_METHOD_TYPES[method.kind]}<Partial<${method.request}>, ${method.response}>;`);
    }
    out.push(`}`);
    out.push("");
    out.push(`/** A stub of ${fullName} over a channel (protobuf's ${name}_Stub). */`);
    out.push(`export function new${name}Stub(channel: RpcChannel): ${name}Stub {`);
    out.push(`  return channel.stub<${name}Stub>(${name});`);
    out.push(`}`);
  }
  out.push("");
  return out.join("\n");
}
