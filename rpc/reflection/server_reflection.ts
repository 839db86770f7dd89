/**
 * gRPC server reflection for a provider's services: the implementation of `ServerReflectionInfo` that an
 * RpcProvider registers, at start, under both `grpc.reflection.v1` and `grpc.reflection.v1alpha`
 * (`server_reflection_proto.ts`), so grpcurl, `buf curl`, Postman and `deno task call` can list the services and
 * fetch their schema from the provider itself.
 *
 * Each request on the stream gets one response, in order. Files go out as serialized `FileDescriptorProto`s: the
 * one asked for, then its imports, transitively, each import at most once per stream (a client keeps what it was
 * sent, as gRPC's reflection allows). What is not found, and a request that sets no request field, is answered
 * with an `error_response` (NOT_FOUND, INVALID_ARGUMENT) and the stream goes on.
 *
 * @module
 */

import type { CallContext } from "../server_handler.ts";
import type { ServiceDefinition } from "../service_definition.ts";
import { RpcCode } from "../rpc_error.ts";
import { DescriptorPool } from "./_descriptor_pool.ts";
import {
  SERVER_REFLECTION_SERVICES,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "./server_reflection_proto.ts";

/** Names in error messages are cut to this many characters (a client may send a megabyte of one). */
const MAX_NAME_SHOWN = 200;

function shown(name: string): string {
  return name.length <= MAX_NAME_SHOWN ? `'${name}'` : `'${name.slice(0, MAX_NAME_SHOWN)}...' (${name.length} chars)`;
}

/**
 * The reflection service of a set of services: register it under {@linkcode SERVER_REFLECTION_SERVICES}' two
 * definitions (RpcProvider does so at start, unless its option `reflection` is false). The files are described
 * on the first request, once; the services given are all there is to reflect, the reflection services joined to
 * them.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { RpcChannel } from "../rpc_channel.ts";
 * import { RpcProvider } from "../rpc_provider.ts";
 * import { parseProto, serviceDefinition } from "../service_definition.ts";
 * import { SERVER_REFLECTION_V1, type ServerReflectionStub } from "./server_reflection_proto.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo; message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`, { fileName: "demo/echo.proto" });
 * const loop = new EventLoop();
 * const provider = new RpcProvider({ loop }); // registers ServerReflection at start
 * provider.registerService(serviceDefinition(root, "demo.Echo"), { Say: (request: { text: string }) => request });
 * await provider.start();
 * const channel = new RpcChannel({
 *   loop,
 *   providers: { [SERVER_REFLECTION_V1.fullName]: [provider.advertisedAddress] },
 * });
 * const reflection = channel.stub<ServerReflectionStub>(SERVER_REFLECTION_V1);
 * const answers = [];
 * for await (const answer of reflection.ServerReflectionInfo([{ listServices: "" }, { fileContainingSymbol: "demo.Msg" }])) {
 *   answers.push(answer);
 * }
 * assert.deepEqual(answers[0]!.listServicesResponse!.service.map((service) => service.name), [
 *   "demo.Echo",
 *   "grpc.reflection.v1.ServerReflection",
 *   "grpc.reflection.v1alpha.ServerReflection",
 * ]);
 * assert.equal(answers[1]!.fileDescriptorResponse!.fileDescriptorProto.length, 1); // demo/echo.proto, no imports
 * await channel.close();
 * await provider.stop();
 * ```
 */
export class ServerReflection {
  readonly #services: readonly ServiceDefinition[];
  #pool: DescriptorPool | undefined;

  /** Reflect `services` (and the reflection services, which join them unless already there). */
  constructor(services: Iterable<ServiceDefinition>) {
    const all = [...services];
    for (const reflection of SERVER_REFLECTION_SERVICES) {
      if (!all.some((service) => service.fullName === reflection.fullName)) all.push(reflection);
    }
    this.#services = all;
  }

  /** The full names `list_services` answers: the services given, then the reflection services. */
  get serviceNames(): string[] {
    return this.#services.map((service) => service.fullName);
  }

  /** The files, described on first use. */
  get #files(): DescriptorPool {
    return this.#pool ??= new DescriptorPool(this.#services);
  }

  /**
   * The handler of `ServerReflectionInfo` (the provider calls it, one call per stream): answers each request in
   * order until the caller half-closes or the stream ends.
   */
  async *ServerReflectionInfo(
    requests: AsyncIterable<ServerReflectionRequest>,
    _context: CallContext,
  ): AsyncGenerator<ServerReflectionResponse> {
    const sent = new Set<string>();
    for await (const request of requests) yield this.answer(request, sent);
  }

  /**
   * The response to one request on a stream that has sent the files named in `sent` (the files this response
   * carries are added to it). Called by the handler, once per request; safe to call from tests.
   */
  answer(request: ServerReflectionRequest, sent: Set<string>): ServerReflectionResponse {
    const response: ServerReflectionResponse = { validHost: request.host ?? "", originalRequest: request };
    const files = (name: string | undefined, what: () => string): ServerReflectionResponse => {
      if (name === undefined || this.#files.file(name) === undefined) return notFound(response, what());
      return { ...response, fileDescriptorResponse: { fileDescriptorProto: this.#files.withDependencies(name, sent) } };
    };
    switch (requestKind(request)) {
      case "listServices":
        return { ...response, listServicesResponse: { service: this.serviceNames.map((name) => ({ name })) } };
      case "fileByFilename": {
        const name = request.fileByFilename!;
        return files(name, () => `Cannot find file ${shown(name)}`);
      }
      case "fileContainingSymbol": {
        const symbol = request.fileContainingSymbol!;
        return files(this.#files.fileContainingSymbol(symbol), () => `Cannot find symbol ${shown(symbol)}`);
      }
      case "fileContainingExtension": {
        const { containingType = "", extensionNumber = 0 } = request.fileContainingExtension!;
        return files(
          this.#files.fileContainingExtension(containingType, extensionNumber),
          () => `Cannot find extension ${extensionNumber} of ${shown(containingType)}`,
        );
      }
      case "allExtensionNumbersOfType": {
        const typeName = request.allExtensionNumbersOfType!;
        const numbers = this.#files.extensionNumbers(typeName);
        if (numbers === undefined) return notFound(response, `Cannot find message type ${shown(typeName)}`);
        return {
          ...response,
          allExtensionNumbersResponse: { baseTypeName: typeName.replace(/^\./, ""), extensionNumber: numbers },
        };
      }
      default:
        return {
          ...response,
          errorResponse: {
            errorCode: RpcCode.INVALID_ARGUMENT,
            errorMessage: "Cannot answer a reflection request that sets no request field",
          },
        };
    }
  }
}

/** Which request field is set: protobufjs's oneof on a decoded message, the first field set on a plain object. */
function requestKind(request: ServerReflectionRequest): ServerReflectionRequest["messageRequest"] {
  if (request.messageRequest !== undefined) return request.messageRequest;
  const kinds = [
    "fileByFilename",
    "fileContainingSymbol",
    "fileContainingExtension",
    "allExtensionNumbersOfType",
    "listServices",
  ] as const;
  return kinds.find((kind) => Object.hasOwn(request, kind) && request[kind] !== undefined && request[kind] !== null);
}

function notFound(response: ServerReflectionResponse, message: string): ServerReflectionResponse {
  return { ...response, errorResponse: { errorCode: RpcCode.NOT_FOUND, errorMessage: message } };
}
