/**
 * The reactor: muduo's networking toolkit carried into TypeScript. One {@linkcode EventLoop} per isolate
 * (main thread or Worker), a heap-based timer queue, {@linkcode Buffer}, {@linkcode TcpConnection},
 * {@linkcode TcpServer} (multi-core through Workers and SO_REUSEPORT), {@linkcode TcpClient}, a UDP socket
 * and a {@linkcode Logger}. Runtime specifics live behind {@linkcode NetBackend} in `backend/`.
 *
 * @module
 */
export * from "./backend/net_backend.ts";
