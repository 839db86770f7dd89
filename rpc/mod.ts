/**
 * The RPC layer: publish protobuf services with {@linkcode RpcProvider} and call them by name through
 * {@linkcode RpcChannel}, with providers discovered in the registry, balanced, and failed over. Deadlines,
 * cancellation (inherited by nested calls through `{ parent: context }`), gRPC status codes ({@linkcode RpcError}),
 * retries only of calls no handler saw, drain on stop, keepalive and outlier ejection, interceptors and metadata.
 *
 * @module
 */
export * from "./load_balancer.ts";
export * from "./rpc_channel.ts";
export * from "./rpc_controller.ts";
export * from "./rpc_error.ts";
export * from "./rpc_provider.ts";
export * from "./service_definition.ts";
export * from "./codegen.ts";
export * from "./rpc_application.ts";
export * from "./provider_status.ts";
