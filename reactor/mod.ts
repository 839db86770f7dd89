/**
 * The reactor: muduo's networking toolkit carried into TypeScript. One {@linkcode EventLoop} per isolate
 * (main thread or Worker), a heap-based timer queue, {@linkcode Buffer}, {@linkcode TcpConnection},
 * {@linkcode TcpServer} (multi-core through Workers and SO_REUSEPORT), {@linkcode TcpClient}, a
 * {@linkcode UdpSocket}, length-prefixed framing and a {@linkcode Logger}. Runtime specifics live behind
 * {@linkcode NetBackend} in `backend/`.
 *
 * @module
 */
export * from "./backend/mod.ts";
export * from "./acceptor.ts";
export * from "./buffer.ts";
export * from "./callbacks.ts";
export * from "./connector.ts";
export * from "./event_loop.ts";
export * from "./inet_address.ts";
export * from "./length_header_codec.ts";
export * from "./logger.ts";
export * from "./tcp_client.ts";
export * from "./tcp_connection.ts";
export * from "./tcp_server.ts";
export * from "./timer_queue.ts";
export * from "./timestamp.ts";
export * from "./udp_socket.ts";
export * from "./http_server.ts";
export * from "./flow_control.ts";
export * from "./prometheus_text.ts";
