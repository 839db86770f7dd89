/**
 * The RPC layer: publish protobuf services with {@linkcode RpcProvider} and call them by name through
 * {@linkcode RpcChannel}, with providers discovered in the registry, balanced, and failed over. Deadlines,
 * cancellation (inherited by nested calls through `{ parent: context }`), gRPC status codes ({@linkcode RpcError}),
 * retries only of calls no handler saw, drain on stop, keepalive and outlier ejection, interceptors and metadata.
 * {@linkcode RpcApplication} sets all of it up from the seed's config file; `deno run -A jsr:@dwt/rpc/gen`
 * generates typed stubs from a `.proto` file.
 *
 * @module
 */

// The application: config file, registry, provider and channel in one.
export { parseRpcConfig, RpcApplication, type RpcApplicationOptions, type RpcConfig } from "./rpc_application.ts";
export type { RpcClientSettings, RpcServerLimits } from "./rpc_application.ts";
export { ConfigError, exitOnConfigError, USAGE_EXIT_STATUS } from "./config_error.ts";
export { exitOnFatalError, FAILURE_EXIT_STATUS, isEnvironmentError } from "./fatal_error.ts";

// Publishing services.
export { type CallContext, type MethodHandler, type RegisterServices, RpcProvider } from "./rpc_provider.ts";
export type { RpcProviderOptions, RpcProviderStats, ServerHandler, ServerInterceptor } from "./rpc_provider.ts";
export type { BidiStreamingHandler, ClientStreamingHandler, ServerStreamingHandler } from "./server_handler.ts";
export type { ServiceImplementation } from "./rpc_provider.ts";
export { providerMetrics, type ProviderStatsSource, providerStatusHandler } from "./provider_status.ts";

// Calling them.
export { type CallOptions, RpcChannel, type RpcChannelOptions, type Stub, type StubMethod } from "./rpc_channel.ts";
export type { ClientCall, ClientHandler, ClientInterceptor, ClientResult } from "./rpc_channel.ts";
export type { BidiStreamingStubMethod, ClientStreamingStubMethod, ServerStreamingStubMethod } from "./rpc_channel.ts";
export { RpcController } from "./rpc_controller.ts";
export { RpcCode, rpcCodeName, RpcError } from "./rpc_error.ts";

// The seam between calls and connections, the caller's side and the provider's (the reactor's TCP by default;
// streaming and gateways build on it), and both in memory, for tests.
export type { ClientTransport, ClientTransportEvents, ClientTransportFactory } from "./transport.ts";
export type { ResponseFrame, TransportCall } from "./transport.ts";
export type { CallAnswer, RequestFrame, ServerConnection, ServerConnectionHandler } from "./server_transport.ts";
export type { ServerTransport, ServerTransportHandler } from "./server_transport.ts";
export { MemoryServer, MemoryServerEnd, type MemoryServerOptions, MemoryTransport } from "./memory_transport.ts";
export type { MemoryTransportOptions } from "./memory_transport.ts";

// Service definitions, code generation, load balancing.
export { definitionOf, loadProtoFile, type MethodDefinition, MethodKind, parseProto } from "./service_definition.ts";
export { type ParseProtoOptions, type ServiceDefinition, serviceDefinition } from "./service_definition.ts";
export { type GenerateOptions, generateTypeScript } from "./codegen.ts";
export { fileDescriptorSet, SERVER_REFLECTION_V1, SERVER_REFLECTION_V1ALPHA } from "./reflection/mod.ts";
export type { ExtensionRequest, ServerReflectionRequest, ServerReflectionResponse } from "./reflection/mod.ts";
export type { ServerReflectionStub } from "./reflection/mod.ts";
export { type Candidate, createLoadBalancer, type LoadBalancer, type LoadBalancerName } from "./load_balancer.ts";
export { ConsistentHashBalancer, P2cBalancer, RandomBalancer, RoundRobinBalancer } from "./load_balancer.ts";

// The HTTP gateway's options (Connect and gRPC-Web on `httpPort`).
export type { GatewayCorsOptions } from "./http/gateway_cors.ts";
export type { Http1ConnectionOptions } from "./http/http1_connection.ts";
