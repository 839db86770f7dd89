/**
 * gRPC server reflection: every RpcProvider answers `grpc.reflection.v1.ServerReflection` and
 * `grpc.reflection.v1alpha.ServerReflection` on its own port (unless its option `reflection`, config key
 * `rpcserver_reflection`, is false), with the `FileDescriptorProto`s of the .proto files its services came from,
 * imports included; {@linkcode fileDescriptorSet} gives the same files as one `FileDescriptorSet`. The reflection
 * services are not published in the registry: they describe the provider that answers them.
 *
 * @module
 */

export { fileDescriptorSet } from "./file_descriptor_set.ts";
export { ServerReflection } from "./server_reflection.ts";
export {
  SERVER_REFLECTION_SERVICES,
  SERVER_REFLECTION_V1,
  SERVER_REFLECTION_V1ALPHA,
} from "./server_reflection_proto.ts";
export type { ExtensionRequest, ServerReflectionRequest, ServerReflectionResponse } from "./server_reflection_proto.ts";
export type { ServerReflectionStub } from "./server_reflection_proto.ts";
