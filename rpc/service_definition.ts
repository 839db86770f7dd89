/**
 * Services as the RPC layer sees them: a full name and methods with their request and response message types,
 * taken from a `.proto` through protobufjs reflection (or from generated code, which embeds the same).
 *
 * @module
 */

import protobuf from "protobufjs";
import type { NetBackend } from "../reactor/backend/net_backend.ts";

/** One method of a service. */
export interface MethodDefinition {
  /** The method's name as in the .proto (`Login`). */
  readonly name: string;
  /** The request message type. */
  readonly requestType: protobuf.Type;
  /** The response message type. */
  readonly responseType: protobuf.Type;
}

/** A service: its full name (with package) and methods. */
export interface ServiceDefinition {
  /** The full name, `dwt.UserServiceRpc`. */
  readonly fullName: string;
  /** The methods by name. */
  readonly methods: ReadonlyMap<string, MethodDefinition>;
}

/** Parse `.proto` text into a protobufjs Root (no imports). */
export function parseProto(text: string): protobuf.Root {
  const root = protobuf.parse(text, { keepCase: false }).root;
  root.resolveAll();
  return root;
}

/** Read and parse a `.proto` file. */
export async function loadProtoFile(backend: NetBackend, path: string): Promise<protobuf.Root> {
  return parseProto(new TextDecoder().decode(await backend.fs.readFile(path)));
}

/** The definition of the service named `name` (full or simple name) in `root`. Throws a TypeError if missing. */
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

/** The definition of a protobufjs Service. */
export function definitionOf(service: protobuf.Service): ServiceDefinition {
  service.resolveAll();
  const methods = new Map<string, MethodDefinition>();
  for (const method of service.methodsArray) {
    method.resolve();
    methods.set(method.name, {
      name: method.name,
      requestType: method.resolvedRequestType!,
      responseType: method.resolvedResponseType!,
    });
  }
  return { fullName: service.fullName.replace(/^\./, ""), methods };
}
