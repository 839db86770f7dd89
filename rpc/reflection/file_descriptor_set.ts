/**
 * The schema of a provider's services as one `google.protobuf.FileDescriptorSet` (what `protoc
 * --include_imports -o` writes): for download, so that `buf curl --schema <file>` and `grpcurl -protoset <file>` can
 * call the services without their .proto files.
 *
 * @module
 */

import type { ServiceDefinition } from "../service_definition.ts";
import { DescriptorPool } from "./_descriptor_pool.ts";

/**
 * A serialized `google.protobuf.FileDescriptorSet` of the .proto files `services` came from, with their imports
 * (well-known types included), each file after the files it imports. A provider's services are
 * `provider.services`. The files are those server reflection serves, named the same.
 *
 * @example
 * ```ts
 * import descriptor from "protobufjs/ext/descriptor/index.js";
 * import { parseProto, serviceDefinition } from "../service_definition.ts";
 * import { fileDescriptorSet } from "./file_descriptor_set.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo; import "google/protobuf/timestamp.proto";
 *   message Msg { string text = 1; google.protobuf.Timestamp at = 2; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`, { fileName: "demo/echo.proto" });
 * const bytes = fileDescriptorSet([serviceDefinition(root, "demo.Echo")]);
 * const set = descriptor.FileDescriptorSet.decode(bytes) as unknown as { file: { name: string }[] };
 * assert.deepEqual(set.file.map((file) => file.name), ["google/protobuf/timestamp.proto", "demo/echo.proto"]);
 * ```
 */
export function fileDescriptorSet(services: Iterable<ServiceDefinition>): Uint8Array {
  return new DescriptorPool(services).fileDescriptorSet();
}
