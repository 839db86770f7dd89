/**
 * The reactor: muduo's networking toolkit carried into TypeScript. One {@linkcode EventLoop} per isolate
 * (main thread or Worker) with a heap-based timer queue, {@linkcode Buffer}, {@linkcode TcpConnection},
 * {@linkcode TcpServer} (multi-core through Workers and SO_REUSEPORT), {@linkcode TcpClient}, a
 * {@linkcode UdpSocket}, length-prefixed framing, a small {@linkcode HttpServer} for status pages and a
 * {@linkcode Logger}. Runtime specifics live behind {@linkcode NetBackend}, whose implementations are the only
 * code that names Deno, Node or Bun.
 *
 * @example An echo server
 * ```ts
 * import { EventLoop, InetAddress, TcpServer } from "./mod.ts";
 *
 * const server = new TcpServer(new EventLoop(), new InetAddress("127.0.0.1", 0), "echo");
 * server.setMessageCallback((connection, buffer) => connection.send(buffer));
 * await server.start();
 * await server.stop();
 * ```
 *
 * @module
 */

// The loop and its timers.
export { EventLoop, type EventLoopOptions } from "./event_loop.ts";
export type { HostTimer, TimerCallback, TimerId } from "./timer_queue.ts";

// TCP: connections, servers, clients, and the callbacks that drive them.
export { Buffer } from "./buffer.ts";
export { InetAddress } from "./inet_address.ts";
export { TcpConnection, TcpConnectionState } from "./tcp_connection.ts";
export { TcpServer, type TcpServerOptions } from "./tcp_server.ts";
export { TcpClient, type TcpClientOptions } from "./tcp_client.ts";
export { Connector, type ConnectorOptions, ConnectorState } from "./connector.ts";
export type { CloseCallback, ConnectionCallback, HalfCloseCallback, HighWaterMarkCallback } from "./callbacks.ts";
export type { MessageCallback } from "./callbacks.ts";
export { defaultConnectionCallback, defaultMessageCallback, type WriteCompleteCallback } from "./callbacks.ts";
export { applyFlowControl, type FlowControlOptions } from "./flow_control.ts";

// Framing, datagrams, HTTP status pages and metrics.
export { type FrameCallback, type FrameErrorCallback, LengthHeaderCodec } from "./length_header_codec.ts";
export type { LengthHeaderCodecOptions, LengthHeaderCodecStats } from "./length_header_codec.ts";
export { type DatagramCallback, UdpSocket } from "./udp_socket.ts";
export { type HttpHandler, type HttpRequest, type HttpResponse, HttpServer } from "./http_server.ts";
export type { HttpServerInit, HttpServerOptions, HttpServerStats } from "./http_server.ts";
export { type MetricLabels, PrometheusText } from "./prometheus_text.ts";

// Logging.
export { getLogger, type LogFields, Logger, type LoggerOptions, LogLevel, type LogLevelName } from "./logger.ts";
export { DailyFileLogOutput, type DailyFileLogOutputOptions, type LogOutput, parseLogLevel } from "./logger.ts";
export { setLogger, StderrLogOutput } from "./logger.ts";

// Runtime backends: pick one with defaultBackend(), or pass another to EventLoop.
export { defaultBackend, denoBackend, type NetBackend, nodeBackend } from "./backend/mod.ts";
export type { RawListener, RawSocket, RawSocketHandlers, RawUdpSocket, SocketAddress } from "./backend/mod.ts";
export type { BindUdpOptions, ConnectOptions, DatagramHandler, ListenOptions } from "./backend/mod.ts";
export type { TlsClientOptions, TlsServerOptions } from "./backend/mod.ts";
export type {
  AppendFile,
  DurableAppendFile,
  DurableAppendOptions,
  FileModeOptions,
  FileSystemBackend,
} from "./backend/mod.ts";
export type { ChildProcessHandle, ParentPort, ProcessBackend, WorkerBackend, WorkerHandle } from "./backend/mod.ts";
