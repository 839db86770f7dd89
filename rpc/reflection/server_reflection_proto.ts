/**
 * The gRPC server reflection protocol's messages and service (`grpc/reflection/v1/reflection.proto`, a public API:
 * names and field numbers as gRPC publishes them), written out here, in both packages clients ask for:
 * `grpc.reflection.v1` and the older `grpc.reflection.v1alpha`, whose messages are the same. One bidirectional
 * stream, `ServerReflectionInfo`: each request is answered by one response, in order.
 *
 * | request field (number)                  | answered with (number)                                  |
 * |-----------------------------------------|---------------------------------------------------------|
 * | `file_by_filename` (3)                  | `file_descriptor_response` (4): the file and its imports |
 * | `file_containing_symbol` (4)            | `file_descriptor_response` (4)                          |
 * | `file_containing_extension` (5)         | `file_descriptor_response` (4)                          |
 * | `all_extension_numbers_of_type` (6)     | `all_extension_numbers_response` (5)                    |
 * | `list_services` (7)                     | `list_services_response` (6)                            |
 * | anything not found, or no request field | `error_response` (7), gRPC code and message             |
 *
 * @module
 */

import type { BidiStreamingStubMethod } from "../rpc_channel.ts";
import { parseProto, type ServiceDefinition, serviceDefinition } from "../service_definition.ts";

/** The .proto of one package of the protocol (v1 and v1alpha differ in nothing else). */
function reflectionProto(packageName: string): string {
  return `syntax = "proto3";

package ${packageName};

service ServerReflection {
  // One stream carries a conversation: every request gets one response, in order.
  rpc ServerReflectionInfo(stream ServerReflectionRequest) returns (stream ServerReflectionResponse);
}

message ServerReflectionRequest {
  string host = 1;
  oneof message_request {
    string file_by_filename = 3;
    // A full name: package.Service, package.Service.Method, package.Message, package.Enum...
    string file_containing_symbol = 4;
    ExtensionRequest file_containing_extension = 5;
    string all_extension_numbers_of_type = 6;
    // Its content is not looked at.
    string list_services = 7;
  }
}

message ExtensionRequest {
  string containing_type = 1;
  int32 extension_number = 2;
}

message ServerReflectionResponse {
  string valid_host = 1;
  ServerReflectionRequest original_request = 2;
  oneof message_response {
    FileDescriptorResponse file_descriptor_response = 4;
    ExtensionNumberResponse all_extension_numbers_response = 5;
    ListServiceResponse list_services_response = 6;
    ErrorResponse error_response = 7;
  }
}

message FileDescriptorResponse {
  // Serialized google.protobuf.FileDescriptorProto messages (bytes, so this file needs no descriptor.proto).
  repeated bytes file_descriptor_proto = 1;
}

message ExtensionNumberResponse {
  string base_type_name = 1;
  repeated int32 extension_number = 2;
}

message ListServiceResponse {
  repeated ServiceResponse service = 1;
}

message ServiceResponse {
  string name = 1;
}

message ErrorResponse {
  // A gRPC status code (5 NOT_FOUND, 3 INVALID_ARGUMENT).
  int32 error_code = 1;
  string error_message = 2;
}
`;
}

function definitionFor(version: "v1" | "v1alpha"): ServiceDefinition {
  const packageName = `grpc.reflection.${version}`;
  const root = parseProto(reflectionProto(packageName), { fileName: `grpc/reflection/${version}/reflection.proto` });
  return serviceDefinition(root, `${packageName}.ServerReflection`);
}

/**
 * `grpc.reflection.v1.ServerReflection`, the reflection service current gRPC tools ask for first.
 *
 * @example
 * ```ts
 * import { SERVER_REFLECTION_V1 } from "./server_reflection_proto.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(SERVER_REFLECTION_V1.fullName, "grpc.reflection.v1.ServerReflection");
 * assert.equal(SERVER_REFLECTION_V1.methods.get("ServerReflectionInfo")!.kind, "bidi_streaming");
 * ```
 */
export const SERVER_REFLECTION_V1: ServiceDefinition = definitionFor("v1");

/**
 * `grpc.reflection.v1alpha.ServerReflection`, the same service under its older package (grpcurl before 1.9 and
 * many other clients ask only for it).
 *
 * @example
 * ```ts
 * import { SERVER_REFLECTION_V1ALPHA } from "./server_reflection_proto.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(SERVER_REFLECTION_V1ALPHA.fullName, "grpc.reflection.v1alpha.ServerReflection");
 * ```
 */
export const SERVER_REFLECTION_V1ALPHA: ServiceDefinition = definitionFor("v1alpha");

/**
 * Both reflection services, v1 first.
 *
 * @example
 * ```ts
 * import { SERVER_REFLECTION_SERVICES } from "./server_reflection_proto.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(SERVER_REFLECTION_SERVICES.map((service) => service.fullName), [
 *   "grpc.reflection.v1.ServerReflection",
 *   "grpc.reflection.v1alpha.ServerReflection",
 * ]);
 * ```
 */
export const SERVER_REFLECTION_SERVICES: readonly ServiceDefinition[] = [
  SERVER_REFLECTION_V1,
  SERVER_REFLECTION_V1ALPHA,
];

/**
 * `ExtensionRequest`: an extension by the message it extends and its field number.
 *
 * @example
 * ```ts
 * import type { ExtensionRequest } from "./server_reflection_proto.ts";
 *
 * const request: ExtensionRequest = { containingType: "shop.Order", extensionNumber: 100 };
 * ```
 */
export interface ExtensionRequest {
  /** The extended message's full name. */
  containingType: string;
  /** The extension's field number. */
  extensionNumber: number;
}

/**
 * `ServerReflectionRequest` as a handler reads it and a stub sends it: set one of the request fields.
 *
 * @example
 * ```ts
 * import type { ServerReflectionRequest } from "./server_reflection_proto.ts";
 *
 * const requests: ServerReflectionRequest[] = [{ listServices: "" }, { fileContainingSymbol: "dwt.UserServiceRpc" }];
 * ```
 */
export interface ServerReflectionRequest {
  /** The host the client meant (answered back as `validHost`). */
  host?: string;
  /** A file by its name (`shop/orders.proto`). */
  fileByFilename?: string | null;
  /** The file that declares a full name. */
  fileContainingSymbol?: string | null;
  /** The file that declares an extension. */
  fileContainingExtension?: ExtensionRequest | null;
  /** The field numbers of a message's extensions. */
  allExtensionNumbersOfType?: string | null;
  /** The services served (the value is not looked at). */
  listServices?: string | null;
  /** Which request field is set (decoded messages only: protobufjs's oneof). */
  readonly messageRequest?:
    | "fileByFilename"
    | "fileContainingSymbol"
    | "fileContainingExtension"
    | "allExtensionNumbersOfType"
    | "listServices";
}

/**
 * `ServerReflectionResponse`: the request it answers, and one of the answers.
 *
 * @example
 * ```ts
 * import type { ServerReflectionResponse } from "./server_reflection_proto.ts";
 *
 * const notFound: ServerReflectionResponse = {
 *   errorResponse: { errorCode: 5, errorMessage: "Cannot find symbol 'shop.Nope'" },
 * };
 * ```
 */
export interface ServerReflectionResponse {
  /** The request's `host`. */
  validHost?: string;
  /** The request this answers. */
  originalRequest?: ServerReflectionRequest | null;
  /** Serialized `google.protobuf.FileDescriptorProto`s: the file asked for first, then imports not sent before. */
  fileDescriptorResponse?: { fileDescriptorProto: Uint8Array[] } | null;
  /** A message's extension numbers. */
  allExtensionNumbersResponse?: { baseTypeName: string; extensionNumber: number[] } | null;
  /** The services' full names. */
  listServicesResponse?: { service: { name: string }[] } | null;
  /** Why the request has no answer: a gRPC code and a message. */
  errorResponse?: { errorCode: number; errorMessage: string } | null;
}

/**
 * A stub of either reflection service: `channel.stub<ServerReflectionStub>(SERVER_REFLECTION_V1)`.
 *
 * @example
 * ```ts
 * import type { ServerReflectionStub } from "./server_reflection_proto.ts";
 *
 * async function listServices(stub: ServerReflectionStub): Promise<string[]> {
 *   for await (const response of stub.ServerReflectionInfo([{ listServices: "" }])) {
 *     return response.listServicesResponse?.service.map((service) => service.name) ?? [];
 *   }
 *   return [];
 * }
 * ```
 */
export interface ServerReflectionStub {
  /** The conversation: requests in, one response each out. */
  ServerReflectionInfo: BidiStreamingStubMethod<ServerReflectionRequest, ServerReflectionResponse>;
}
