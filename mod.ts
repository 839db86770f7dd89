/**
 * dwt-rpc: a TypeScript RPC framework on protobuf with its own ZooKeeper-like registry and a muduo-style
 * reactor network layer. Deno first; Bun and Node too.
 *
 * The root holds what an application needs to publish or call services and to use or run a registry: all of
 * `@dwt/rpc/rpc` and `@dwt/rpc/registry`, and the reactor's loop, addresses, logging and backend choice. Sockets,
 * servers, framing and the backend contract are in `@dwt/rpc/reactor`. The programs run as
 * `deno run -A jsr:@dwt/rpc/registry-server`, `.../registry-cli`, `.../registry-repair` and `.../gen`.
 *
 * @example Publish a service and call it
 * ```ts
 * import { EventLoop, parseProto, RpcChannel, RpcProvider, serviceDefinition, type StubMethod } from "./mod.ts";
 *
 * const root = parseProto(`syntax = "proto3"; package demo; message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * const echo = serviceDefinition(root, "demo.Echo");
 * const loop = new EventLoop();
 * const provider = new RpcProvider({ loop });
 * provider.registerService(echo, { Say: (request: { text: string }) => ({ text: request.text + "!" }) });
 * await provider.start();
 * const channel = new RpcChannel({ loop, providers: { "demo.Echo": [provider.advertisedAddress] } });
 * console.log(await channel.stub<{ Say: StubMethod }>(echo).Say({ text: "hi" })); // { text: "hi!" }
 * await channel.close();
 * await provider.stop();
 * ```
 *
 * @module
 */

// The RPC layer (`@dwt/rpc/rpc`).
export { parseRpcConfig, RpcApplication, type RpcApplicationOptions, type RpcConfig } from "./rpc/mod.ts";
export { type CallContext, type MethodHandler, type RegisterServices, RpcProvider } from "./rpc/mod.ts";
export type {
  RpcClientSettings,
  RpcProviderOptions,
  RpcProviderStats,
  RpcServerLimits,
  ServerHandler,
} from "./rpc/mod.ts";
export type { ServerInterceptor, ServiceImplementation } from "./rpc/mod.ts";
export type { BidiStreamingHandler, ClientStreamingHandler, ServerStreamingHandler } from "./rpc/mod.ts";
export { type CallOptions, RpcChannel, type RpcChannelOptions, type Stub, type StubMethod } from "./rpc/mod.ts";
export type { ClientCall, ClientHandler, ClientInterceptor, ClientResult } from "./rpc/mod.ts";
export type { BidiStreamingStubMethod, ClientStreamingStubMethod, ServerStreamingStubMethod } from "./rpc/mod.ts";
export { RpcCode, rpcCodeName, RpcController, RpcError } from "./rpc/mod.ts";
export {
  definitionOf,
  loadProtoFile,
  type MethodDefinition,
  MethodKind,
  parseProto,
  type ParseProtoOptions,
} from "./rpc/mod.ts";
export { type GenerateOptions, generateTypeScript, type ServiceDefinition, serviceDefinition } from "./rpc/mod.ts";
export { type Candidate, createLoadBalancer, type LoadBalancer, type LoadBalancerName } from "./rpc/mod.ts";
export { ConsistentHashBalancer, P2cBalancer, RandomBalancer, RoundRobinBalancer } from "./rpc/mod.ts";
export { providerMetrics, providerStatusHandler } from "./rpc/mod.ts";

// The registry (`@dwt/rpc/registry`).
export { type CreateOptions, type Registry, RegistryClient, type RegistryClientOptions } from "./registry/mod.ts";
export { EventType, NodeType, type SessionEvent, type Stat, type WatchCallback } from "./registry/mod.ts";
export type { WatchedEvent, ZooKeeperConnectString, ZooKeeperRegistryOptions } from "./registry/mod.ts";
export { RegistryError, RegistryErrorCode, registryErrorCodeName, ZooKeeperRegistry } from "./registry/mod.ts";
export { RegistryServer, type RegistryServerOptions, type RegistryServerStats } from "./registry/mod.ts";
export { type SessionInfo, StorageError } from "./registry/mod.ts";
export {
  DEFAULT_REGISTRY_CONFIG,
  loadRegistryConfig,
  parseRegistryConfig,
  type RegistryConfig,
} from "./registry/mod.ts";
export { registryServerOptions, registryStatusOptions } from "./registry/mod.ts";
export { registryMetrics, registryStatusHandler, startRegistryStatus } from "./registry/mod.ts";

// From the reactor (`@dwt/rpc/reactor`): the loop, addresses, logging, the runtime backend.
export { EventLoop, type EventLoopOptions, InetAddress, type TimerCallback, type TimerId } from "./reactor/mod.ts";
export { getLogger, type LogFields, Logger, type LoggerOptions, LogLevel, type LogLevelName } from "./reactor/mod.ts";
export { DailyFileLogOutput, type DailyFileLogOutputOptions, type LogOutput, parseLogLevel } from "./reactor/mod.ts";
export { setLogger, StderrLogOutput } from "./reactor/mod.ts";
export { defaultBackend, type NetBackend } from "./reactor/mod.ts";
