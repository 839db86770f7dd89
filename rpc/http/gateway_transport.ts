/**
 * The HTTP gateway: a {@linkcode ServerTransport} a provider runs on a port of its own (option `httpPort`, config
 * key `rpcserver_http_port`), so curl, browsers, connect-web, grpc-web and `buf curl` call its services with no
 * proxy and no extra code. It speaks HTTP/1.1 on the reactor (Http1Connection: bounded heads and bodies, streamed
 * responses with back-pressure, hostile input refused and counted) and, per request:
 *
 * | request                                         | served by                                               |
 * |-------------------------------------------------|---------------------------------------------------------|
 * | `OPTIONS` preflight                             | CORS (gateway_cors.ts), when configured                 |
 * | `GET /dwt.rpc.Reflection/FileDescriptorSet`     | the services' `google.protobuf.FileDescriptorSet` (binary, `application/octet-stream`), for `buf curl --schema` and `grpcurl -protoset` |
 * | `POST /<pkg.Service>/<Method>`, `application/grpc-web*` | gRPC-Web (grpc_web_handler.ts)                  |
 * | `POST` or `GET /<pkg.Service>/<Method>`, anything else  | Connect (connect_handler.ts; 415 for a content type it does not speak) |
 * | any other path                                  | 404                                                     |
 *
 * Each request is a call on a connection of its own ({@linkcode GatewayCall}), offered to the provider's dispatch
 * like any other: interceptors, deadlines, limits on calls and metadata, accounting and drain cover it unchanged.
 * The TCP connections are kept in the provider's {@linkcode ConnectionGate} rules (connection caps in all and per
 * address, the handshake deadline for a connection that never sends a whole request, eviction of silent ones at
 * the cap), like the native port's. Messages are bounded by the provider's `maxFrameBytes` (uncompressed), and all
 * request bytes held at once by its `maxBufferedFrameBytes` (limit `http_buffered_bytes`). HTTP refusals are
 * counted as limits `http_<reason>` (`http_smuggling`, `http_head_timeout`, ...) in the provider's `/metrics`.
 *
 * Drain: {@linkcode GatewayTransport.drain} closes idle keep-alive connections and makes every response from then
 * on close its connection (`Connection: close`); the provider's drain lets requests in flight finish within its
 * grace and answers new ones `unavailable` (503).
 *
 * @module
 */

import type { TlsServerOptions } from "../../reactor/backend/net_backend.ts";
import type { EventLoop } from "../../reactor/event_loop.ts";
import type { InetAddress } from "../../reactor/inet_address.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import { TcpServer } from "../../reactor/tcp_server.ts";
import { ConnectionGate, type GatedConnection } from "../_connection_gate.ts";
import type { ServerLimits } from "../_server_limits.ts";
import type { ServerTransport, ServerTransportHandler } from "../server_transport.ts";
import { type Http1ConnectionOptions, type Http1Settings, resolveHttp1Settings } from "./_http1_settings.ts";
import { ConnectHandler } from "./connect_handler.ts";
import { ByteBudget } from "./gateway_budget.ts";
import { GatewayCors, type GatewayCorsOptions } from "./gateway_cors.ts";
import { type GatewayContext, GatewayRequest } from "./gateway_request.ts";
import { GrpcWebHandler } from "./grpc_web_handler.ts";
import { parseGrpcWebContentType } from "./grpc_web_protocol.ts";
import { Http1Connection, type Http1Request } from "./http1_connection.ts";
import type { Http1ResponseWriter } from "./http1_response_writer.ts";
import { Http1Counters, type Http1Stats } from "./http1_stats.ts";

/** Where the services' FileDescriptorSet is served for download (`GET`). */
export const FILE_DESCRIPTOR_SET_PATH = "/dwt.rpc.Reflection/FileDescriptorSet";

/**
 * Options of {@linkcode GatewayTransport}.
 *
 * @example
 * ```ts
 * import type { GatewayTransportOptions } from "./gateway_transport.ts";
 *
 * const options: GatewayTransportOptions = {
 *   cors: { allowedOrigins: ["https://app.example"] },
 *   http: { idleTimeoutMs: 30_000, headerTimeoutMs: 5_000 },
 * };
 * ```
 */
export interface GatewayTransportOptions {
  /** Limits and deadlines of each HTTP/1.1 connection (heads, bodies, idle, output). @default {Http1Connection's} */
  http?: Http1ConnectionOptions;
  /** Let browsers on other origins call (CORS). @default {undefined: no CORS headers, preflights answered 204 without them} */
  cors?: GatewayCorsOptions;
  /**
   * The serialized FileDescriptorSet served at {@linkcode FILE_DESCRIPTOR_SET_PATH}, made on the first download
   * (a provider passes `fileDescriptorSet(provider.services)`).
   * @default {undefined: 404}
   */
  fileDescriptorSet?: () => Uint8Array;
  /** Serve HTTPS with this PEM certificate and key. @default {undefined} */
  tls?: TlsServerOptions;
  /** The server's name in logs. @default {"RpcGateway"} */
  name?: string;
}

/**
 * A provider's HTTP face. Owned by the provider, which calls `listen` at start, `drain` as its stop begins and
 * `close` at its end. Runs on one loop.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { InetAddress } from "../../reactor/inet_address.ts";
 * import { RpcProvider } from "../rpc_provider.ts";
 * import { parseProto, serviceDefinition } from "../service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * // A provider with `httpPort` runs a GatewayTransport beside its TCP transport.
 * const provider = new RpcProvider({ loop: new EventLoop(), httpPort: 0 });
 * provider.registerService(serviceDefinition(root, "demo.Echo"), { Say: (request: { text: string }) => request });
 * await provider.start();
 * const response = await fetch(`http://${provider.httpAddress}/demo.Echo/Say`, {
 *   method: "POST",
 *   headers: { "content-type": "application/json" },
 *   body: JSON.stringify({ text: "hi" }),
 * });
 * assert.deepEqual(await response.json(), { text: "hi" });
 * await provider.stop();
 * ```
 */
export class GatewayTransport implements ServerTransport, GatewayContext {
  /** The gateway's loop. */
  readonly loop: EventLoop;
  /** The provider's limits. */
  readonly limits: ServerLimits;
  /** Bytes of request bodies held by all requests together, against `maxBufferedFrameBytes`. */
  readonly bodyBudget: ByteBudget;
  readonly #server: TcpServer;
  readonly #settings: Http1Settings;
  readonly #counters = new Http1Counters();
  readonly #cors: GatewayCors | undefined;
  readonly #makeDescriptorSet: (() => Uint8Array) | undefined;
  readonly #connect = new ConnectHandler();
  readonly #grpcWeb = new GrpcWebHandler();
  #descriptorSet: Uint8Array | undefined;
  #gate: ConnectionGate<GatewayConnection> | undefined;
  #provider: ServerTransportHandler | undefined;
  #draining = false;

  /** A gateway on `address` (port 0: any free one) within `limits`. A TypeError or RangeError for bad options. */
  constructor(loop: EventLoop, address: InetAddress, limits: ServerLimits, options: GatewayTransportOptions = {}) {
    this.loop = loop;
    this.limits = limits;
    this.bodyBudget = new ByteBudget(limits.maxBufferedFrameBytes);
    this.#settings = resolveHttp1Settings(options.http ?? {}, "GatewayTransport");
    this.#cors = options.cors === undefined ? undefined : new GatewayCors(options.cors);
    this.#makeDescriptorSet = options.fileDescriptorSet;
    this.#server = new TcpServer(loop, address, options.name ?? "RpcGateway", { tls: options.tls });
  }

  /** The listen address (after `listen`). */
  get address(): InetAddress {
    return this.#server.address;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#gate?.size ?? 0;
  }

  /** Connections open now that have not sent a whole request yet. */
  get silentConnections(): number {
    return this.#gate?.silent ?? 0;
  }

  /** The provider's dispatch (after `listen`). */
  get provider(): ServerTransportHandler {
    if (this.#provider === undefined) throw new TypeError("Cannot serve a gateway before listen");
    return this.#provider;
  }

  /** Whether the gateway drains: every response closes its connection. */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Bytes the gateway holds for its clients now: unparsed input, request bodies waiting to be read, unsent output
   * (each connection's), and partial messages (the byte budget).
   */
  get bufferedBytes(): number {
    let bytes = this.bodyBudget.held;
    for (const connection of this.#gate?.connections() ?? []) bytes += connection.http.bufferedBytes;
    return bytes;
  }

  /** The HTTP counters: requests, refusals by reason, timeouts. */
  get httpStats(): Http1Stats {
    return this.#counters.snapshot();
  }

  /** Listen; each request becomes a call offered to `provider`. */
  async listen(provider: ServerTransportHandler): Promise<void> {
    this.#provider = provider;
    const server = this.#server;
    this.#gate = new ConnectionGate(this.loop, this.limits, provider);
    server.setConnectionCallback((tcp) => {
      if (tcp.connected) this.#accept(tcp);
      else this.#closed(tcp);
    });
    server.setMessageCallback((tcp, buffer) => {
      const connection = tcp.context as GatewayConnection | undefined;
      if (connection === undefined) buffer.retrieveAll();
      else connection.http.handleMessage(buffer);
    });
    server.setWriteCompleteCallback((tcp) =>
      (tcp.context as GatewayConnection | undefined)?.http.handleWriteComplete()
    );
    await server.start();
  }

  /**
   * Begin the end: idle keep-alive connections close now, busy ones after their response, and every response
   * from now on says `Connection: close`. The provider's drain does the rest (in-flight calls finish within its
   * grace, new ones are answered unavailable).
   */
  drain(): void {
    this.#draining = true;
    for (const connection of this.#gate?.connections() ?? []) connection.http.drain();
  }

  /** Stop listening and close every connection left (dropping unsent output). */
  async close(): Promise<void> {
    this.#draining = true;
    this.#gate?.close();
    await this.#server.stop();
  }

  /** HTTP refusals and timeouts, as limits `http_<reason>`. */
  limitsHit(): Record<string, number> {
    const stats = this.#counters.snapshot();
    const limits: Record<string, number> = {};
    for (const [reason, count] of Object.entries(stats.refusals)) if (count > 0) limits[`http_${reason}`] = count;
    if (stats.idleTimeouts > 0) limits.http_idle = stats.idleTimeouts;
    if (stats.sendTimeouts > 0) limits.http_send_timeout = stats.sendTimeouts;
    return limits;
  }

  #accept(tcp: TcpConnection): void {
    const gate = this.#gate!;
    const host = tcp.peerAddress.hostname;
    if (!gate.admit(host, tcp.name)) {
      tcp.forceClose();
      return;
    }
    const connection = new GatewayConnection(tcp, host);
    connection.http = new Http1Connection(tcp, {
      ...this.#settings,
      handler: (request, response) => this.#serve(connection, request, response),
      counters: this.#counters,
    });
    tcp.context = connection;
    gate.add(connection);
  }

  #closed(tcp: TcpConnection): void {
    const connection = tcp.context as GatewayConnection | undefined;
    if (connection === undefined) return; // refused
    tcp.context = undefined;
    this.#gate!.remove(connection);
    connection.http.handleClose();
  }

  async #serve(connection: GatewayConnection, http: Http1Request, response: Http1ResponseWriter): Promise<void> {
    if (!connection.spoke) this.#gate!.spoke(connection);
    if (this.#draining) response.headers.set("connection", "close");
    const cors = this.#cors;
    const origin = http.headers.get("origin");
    if (cors !== undefined && origin !== undefined) {
      if (cors.isPreflight(http)) return await cors.preflight(http, response);
      cors.decorate(origin, response.headers);
    }
    if (http.method === "OPTIONS") return await plain(response, 204, undefined, { allow: "GET, POST, OPTIONS" });
    if (http.path === FILE_DESCRIPTOR_SET_PATH) return await this.#download(http, response);
    const route = serviceMethod(http.path);
    if (route === undefined) return await plain(response, 404, `No service method at ${printable(http.path)}`);
    if (http.method !== "POST" && http.method !== "GET") {
      return await plain(response, 405, `${http.method} is not served here`, { allow: "POST, GET" });
    }
    const request = new GatewayRequest(this, http, response, route);
    try {
      const grpcWeb = http.method === "POST" ? parseGrpcWebContentType(http.headers.get("content-type")) : undefined;
      if (grpcWeb !== undefined) await this.#grpcWeb.serve(request, grpcWeb);
      else await this.#connect.serve(request);
    } finally {
      request.close();
    }
  }

  async #download(http: Http1Request, response: Http1ResponseWriter): Promise<void> {
    if (http.method !== "GET" && http.method !== "HEAD") {
      return await plain(response, 405, "The descriptor set is downloaded with GET", { allow: "GET, HEAD" });
    }
    if (this.#makeDescriptorSet === undefined) return await plain(response, 404, "No descriptor set is served here");
    try {
      this.#descriptorSet ??= this.#makeDescriptorSet();
    } catch (error) {
      getLogger().warn("RpcGateway could not describe its services", { error });
      return await plain(response, 500, "The services could not be described");
    }
    response.headers.set("content-type", "application/octet-stream");
    response.headers.set("content-disposition", 'attachment; filename="services.binpb"');
    response.writeHead(200);
    await response.end(this.#descriptorSet);
  }
}

// One TCP connection of the gateway, as its ConnectionGate counts it.
class GatewayConnection implements GatedConnection {
  readonly tcp: TcpConnection;
  readonly peerHost: string;
  spoke = false;
  http!: Http1Connection;

  constructor(tcp: TcpConnection, peerHost: string) {
    this.tcp = tcp;
    this.peerHost = peerHost;
  }

  get name(): string {
    return this.tcp.name;
  }

  forceClose(): void {
    this.tcp.forceClose();
  }
}

async function plain(
  response: Http1ResponseWriter,
  status: number,
  text: string | undefined,
  headers: Readonly<Record<string, string>> = {},
): Promise<void> {
  for (const [name, value] of Object.entries(headers)) response.headers.set(name, value);
  if (text !== undefined) response.headers.set("content-type", "text/plain; charset=utf-8");
  response.writeHead(status);
  await response.end(text === undefined ? undefined : `${text}\n`);
}

// `/<service>/<method>`, both non-empty and free of `/` (what /^\/([^/]+)\/([^/]+)$/ matches), or undefined;
// by index, not a regular expression: it runs for every request.
function serviceMethod(path: string): { service: string; method: string } | undefined {
  const slash = path.indexOf("/", 1);
  if (path.charCodeAt(0) !== 0x2f || slash <= 1 || slash === path.length - 1) return undefined;
  if (path.indexOf("/", slash + 1) >= 0) return undefined;
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}

function printable(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200).replace(/[^\x20-\x7e]/g, "?")}...` : text;
}
