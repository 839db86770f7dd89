/**
 * Runtime backends: the one place that names Deno, Node or Bun. {@linkcode defaultBackend} picks the current
 * runtime's; pass another to `EventLoop` to override it. {@linkcode NetBackend} is the whole contract a new
 * runtime implements.
 *
 * @module
 */
export type {
  AppendFile,
  DurableAppendFile,
  DurableAppendOptions,
  FileModeOptions,
  FileSystemBackend,
} from "./net_backend.ts";
export type { BindUdpOptions, ConnectOptions, DatagramHandler, ListenOptions, NetBackend } from "./net_backend.ts";
export type { ChildProcessHandle, ParentPort, ProcessBackend, WorkerBackend, WorkerHandle } from "./net_backend.ts";
export type { RawListener, RawSocket, RawSocketHandlers, RawUdpSocket, SocketAddress } from "./net_backend.ts";
export type { TlsClientOptions, TlsServerOptions } from "./net_backend.ts";
export { denoBackend } from "./deno.ts";
export { nodeBackend } from "./node.ts";
export { defaultBackend } from "./default.ts";
