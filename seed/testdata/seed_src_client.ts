/**
 * An emulation of the C++ seed's registry client library (dwt_src `client/src_client.{h,cpp}`, `SRCCLient`),
 * written from ../shared/seed/seed-spec.md §2.7, byte for byte on the wire: connect sends `08 01` and reads once
 * (at most 1,024 bytes); every operation opens a new TCP connection, sends one WrappedRequest{Service,
 * ServiceRequest{type, params, sessionId}} in one write, reads once (at most 64 KiB) and closes; a heartbeat task
 * sends HeartbeatMessage{sessionId} over UDP to the same ip:port at once and then every interval. Where the seed
 * exits the process (an Error reply, a reply that does not parse, a refused connection) this throws
 * {@linkcode SeedFatal}; where it logs a WARN and returns a neutral value, this records the warning and does the same.
 * Test code: it uses Deno's sockets directly.
 *
 * @module
 */

import {
  decodeSeedNodeResponse,
  decodeSeedServiceResponse,
  decodeSeedSessionId,
  decodeSeedWrapped,
  encodeSeedNodeRequest,
  encodeSeedServiceRequest,
  encodeSeedSessionId,
  encodeSeedWrapped,
  SeedMessageType,
  type SeedNodeResponse,
  type SeedNodeState,
  SeedServiceType,
} from "../registry/seed_messages.ts";

/** What the seed does with `LOG_FATAL` / `exit(1)`: the process would end here. */
export class SeedFatal extends Error {}

const decoder = new TextDecoder();

/** The seed's client library, one instance per "process". */
export class SeedSrcClient {
  #ip = "";
  #port = 0;
  #sessionId = 0n;
  #heartbeat: Promise<void> | undefined;
  #stopHeartbeat: (() => void) | undefined;
  /** Heartbeats sent. */
  heartbeatsSent = 0;
  /** The WARN lines the library would print (its text after the level and date). */
  readonly warnings: string[] = [];

  /** The session id (0 before connect and after disconnect). */
  get sessionId(): bigint {
    return this.#sessionId;
  }

  /** `connect(ip, port, seconds)`: open a session and start heartbeats every `intervalMs`. */
  async connect(ip: string, port: number, intervalMs = 10_000): Promise<boolean> {
    if (this.#sessionId !== 0n) {
      this.warnings.push("already connected");
      return false;
    }
    this.#ip = ip;
    this.#port = port;
    const reply = await this.#exchange(Uint8Array.of(0x08, 0x01), 1024);
    let wrapped;
    try {
      wrapped = decodeSeedWrapped(reply);
    } catch {
      throw new SeedFatal("connect: the reply does not parse");
    }
    if (wrapped.type === SeedMessageType.ERROR) throw new SeedFatal(`connect: ${decoder.decode(wrapped.data)}`);
    if (wrapped.type === SeedMessageType.CONNECTION) {
      try {
        this.#sessionId = decodeSeedSessionId(wrapped.data);
      } catch {
        throw new SeedFatal("connect: the ConnectionResponse does not parse");
      }
    }
    this.#startHeartbeats(intervalMs);
    return true;
  }

  /** Hold `id` as the session without connecting or heartbeats (a test's ended, forged or foreign session). */
  adoptSession(ip: string, port: number, id: bigint): void {
    this.#ip = ip;
    this.#port = port;
    this.#sessionId = id;
  }

  /** `disconnect()`: forget the session; the heartbeat task stops after its current sleep. The server is not told. */
  async disconnect(): Promise<void> {
    this.#sessionId = 0n;
    this.#stopHeartbeat?.();
    await this.#heartbeat;
    this.#heartbeat = undefined;
  }

  /** `createNode(path, data, type)`. */
  async createNode(path: string, data = "", type = 1): Promise<boolean> {
    const params = encodeSeedNodeRequest({ path, nodeData: new TextEncoder().encode(data), nodeType: type });
    return (await this.#operation(SeedServiceType.CREATE, params)).success;
  }

  /** `getNode(path)`: the data, "" on failure. */
  async getNode(path: string): Promise<string> {
    const response = await this.#operation(SeedServiceType.GET, encodeSeedNodeRequest({ path }));
    return response.success ? decoder.decode(response.nodeData) : "";
  }

  /** `setNode(path, data)`. */
  async setNode(path: string, data = ""): Promise<boolean> {
    const params = encodeSeedNodeRequest({ path, nodeData: new TextEncoder().encode(data) });
    return (await this.#operation(SeedServiceType.SET, params)).success;
  }

  /** `deleteNode(path)`. */
  async deleteNode(path: string): Promise<boolean> {
    return (await this.#operation(SeedServiceType.DELETE, encodeSeedNodeRequest({ path }))).success;
  }

  /** `lsNode(path)`: the children, [] on failure. */
  async lsNode(path: string): Promise<string[]> {
    const response = await this.#operation(SeedServiceType.LS, encodeSeedNodeRequest({ path }));
    return response.success ? response.children ?? [] : [];
  }

  /** `statNode(path)`: zeros on failure. */
  async statNode(path: string): Promise<SeedNodeState> {
    const response = await this.#operation(SeedServiceType.STAT, encodeSeedNodeRequest({ path }));
    const zero = { ephemeralOwner: 0n, numChildren: 0, dataLength: 0, nodeType: 0 };
    return response.success ? response.state ?? zero : zero;
  }

  /** `existsNode(path)` (false where the seed's would be uninitialised). */
  async existsNode(path: string): Promise<boolean> {
    const response = await this.#operation(SeedServiceType.EXISTS, encodeSeedNodeRequest({ path }));
    return response.success ? response.exist ?? false : false;
  }

  async #operation(serviceType: number, parameters: Uint8Array): Promise<SeedNodeResponse> {
    const request = encodeSeedWrapped({
      type: SeedMessageType.SERVICE,
      data: encodeSeedServiceRequest({ serviceType, parameters, sessionId: this.#sessionId }),
    });
    const reply = await this.#exchange(request, 64 * 1024);
    let response: SeedNodeResponse;
    try {
      const wrapped = decodeSeedWrapped(reply);
      if (wrapped.type === SeedMessageType.ERROR) throw new SeedFatal(`error reply: ${decoder.decode(wrapped.data)}`);
      const service = decodeSeedServiceResponse(wrapped.data);
      response = decodeSeedNodeResponse(serviceType, service.data);
    } catch (error) {
      if (error instanceof SeedFatal) throw error;
      throw new SeedFatal("the reply does not parse");
    }
    if (!response.success) this.warnings.push(response.errmsg);
    return response;
  }

  /** New connection, one write, one read of at most `readBytes`, close. */
  async #exchange(request: Uint8Array, readBytes: number): Promise<Uint8Array> {
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: this.#ip, port: this.#port });
    } catch (error) {
      throw new SeedFatal(`connect error: ${(error as Error).message}`);
    }
    try {
      let written = 0;
      while (written < request.length) written += await conn.write(request.subarray(written));
      const buffer = new Uint8Array(readBytes);
      const n = await conn.read(buffer);
      return buffer.subarray(0, n ?? 0);
    } finally {
      conn.close();
    }
  }

  #startHeartbeats(intervalMs: number): void {
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const stopped = Promise.withResolvers<void>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    this.#stopHeartbeat = () => {
      clearTimeout(timer);
      stopped.resolve();
    };
    this.#heartbeat = (async () => {
      try {
        // First beat at once, then every interval, while the session is set (the seed's detached thread).
        while (this.#sessionId !== 0n) {
          await socket.send(encodeSeedSessionId(this.#sessionId), {
            transport: "udp",
            hostname: this.#ip,
            port: this.#port,
          });
          this.heartbeatsSent++;
          const slept = new Promise<void>((resolve) => timer = setTimeout(resolve, intervalMs));
          await Promise.race([slept, stopped.promise]);
        }
      } finally {
        socket.close();
      }
    })();
  }
}
