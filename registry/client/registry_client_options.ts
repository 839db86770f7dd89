/**
 * The options of a {@linkcode RegistryClient} (`RegistryClient.connect`), and how the client fills in their
 * defaults and checks them.
 *
 * @module
 */

import type { TlsClientOptions } from "../../reactor/backend/net_backend.ts";
import type { EventLoop } from "../../reactor/event_loop.ts";
import { InetAddress } from "../../reactor/inet_address.ts";

/**
 * Options of {@linkcode RegistryClient.connect}.
 *
 * @example
 * ```ts
 * import { RegistryClient, type RegistryClientOptions } from "./registry_client.ts";
 *
 * const options: RegistryClientOptions = { requestTimeoutMs: 3_000, authToken: "s3cret", recreateEphemerals: true };
 * const connect = () => RegistryClient.connect("127.0.0.1:10606", options);
 * ```
 */
export interface RegistryClientOptions {
  /**
   * The loop to run on.
   * @default {EventLoop.current()}
   */
  loop?: EventLoop;
  /**
   * How long a request may wait for its answer, in milliseconds.
   * @default {10000}
   */
  requestTimeoutMs?: number;
  /**
   * How long the first connection may take, in milliseconds.
   * @default {10000}
   */
  connectTimeoutMs?: number;
  /**
   * A shared token for servers that require one for changes.
   * @default {undefined}
   */
  authToken?: string;
  /**
   * After an expiry, open a new session and re-create the ephemeral nodes this client created (sequential ones
   * are re-created as new sequential nodes).
   * @default {false}
   */
  recreateEphemerals?: boolean;
  /**
   * The first reconnect delay in milliseconds (doubling to 2 s).
   * @default {100}
   */
  reconnectDelayMs?: number;
  /**
   * Largest frame accepted from the server, and sent to it, in bytes: a request whose frame would be larger (a `set`
   * of more data) is refused with `LIMIT_EXCEEDED` before anything is sent.
   * @default {8388608}
   */
  maxFrameBytes?: number;
  /**
   * Speak TLS, trusting these certificates in addition to the system's.
   * @default {undefined}
   */
  tls?: TlsClientOptions;
  /**
   * Treat the connection as lost when nothing at all has arrived from the server for this long, in milliseconds
   * (the connection is closed, and the client reconnects and resumes its session). It catches a connection that a
   * partition or a dead peer left open without a close. Before the first session, when the timeout the server
   * grants is not known yet, only `requestTimeoutMs` and `connectTimeoutMs` apply.
   * @default {two thirds of the session timeout the server grants}
   */
  readTimeoutMs?: number;
  /**
   * Send a ping when no request has been sent for this long, in milliseconds, so an idle connection still
   * hears from the server within the read timeout (and the server counts the ping as a sign of life).
   * @default {half the read timeout: a third of the session timeout}
   */
  pingIntervalMs?: number;
  /**
   * Where UDP heartbeats go (`host:port` or an InetAddress), when the server cannot be reached there directly:
   * through a NAT, a UDP proxy, or a port mapping. The server answers a heartbeat of an expired session with an
   * expiry notice to the heartbeat's source address, so the path must carry datagrams both ways.
   * @default {the server's host and the heartbeat port it announces}
   */
  heartbeatAddress?: InetAddress | string;
}

/** The options with their defaults filled in, as the client keeps them (the loop apart). */
export type ResolvedRegistryClientOptions =
  & Required<
    Omit<RegistryClientOptions, "loop" | "authToken" | "tls" | "readTimeoutMs" | "pingIntervalMs" | "heartbeatAddress">
  >
  & {
    authToken?: string;
    tls?: TlsClientOptions;
    readTimeoutMs?: number;
    pingIntervalMs?: number;
    heartbeatAddress?: InetAddress;
  };

/** Fill in the defaults; a RangeError names an option that is out of range, a TypeError an address that is not one. */
export function resolveRegistryClientOptions(options: RegistryClientOptions): ResolvedRegistryClientOptions {
  const heartbeatAddress = options.heartbeatAddress;
  return {
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    authToken: options.authToken,
    recreateEphemerals: options.recreateEphemerals ?? false,
    reconnectDelayMs: options.reconnectDelayMs ?? 100,
    maxFrameBytes: options.maxFrameBytes ?? 8 * 1024 * 1024,
    tls: options.tls,
    readTimeoutMs: optionalPositive("readTimeoutMs", options.readTimeoutMs),
    pingIntervalMs: optionalPositive("pingIntervalMs", options.pingIntervalMs),
    heartbeatAddress: typeof heartbeatAddress === "string" ? InetAddress.parse(heartbeatAddress) : heartbeatAddress,
  };
}

function optionalPositive(name: string, value: number | undefined): number | undefined {
  if (value !== undefined && (!Number.isFinite(value) || value <= 0)) {
    throw new RangeError(`Cannot connect as '${name}' must be a positive number: current value is ${value}`);
  }
  return value;
}
