/**
 * The echo client: connects with a TcpClient, sends lines, and prints each echoed line.
 * Run alone with `deno task echo-client [--port N] [--count N]` against `deno task echo-server`.
 */

import { parseArgsOrExit } from "../../reactor/backend/parse_args.ts";
import { type Buffer, EventLoop, InetAddress, TcpClient, type TcpConnection } from "../../reactor/mod.ts";

/** Sends `count` lines, collects the echoes, and resolves with them once all have come back. */
export class EchoClient {
  readonly #client: TcpClient;
  readonly #lines: string[];
  readonly #received: string[] = [];
  readonly #onLine: (line: string) => void;
  readonly #done: PromiseWithResolvers<string[]> = Promise.withResolvers<string[]>();

  constructor(loop: EventLoop, serverAddress: InetAddress, lines: string[], onLine: (line: string) => void = () => {}) {
    this.#lines = lines;
    this.#onLine = onLine;
    this.#client = new TcpClient(loop, serverAddress, "EchoClient");
    this.#client.setConnectionCallback((connection) => this.#onConnection(connection));
    this.#client.setMessageCallback((connection, buffer) => this.#onMessage(connection, buffer));
  }

  /** Connect, send every line, and resolve with the echoed lines. */
  async run(): Promise<string[]> {
    this.#client.connect();
    const received = await this.#done.promise;
    await this.#client.close();
    return received;
  }

  #onConnection(connection: TcpConnection): void {
    if (!connection.connected) {
      if (this.#received.length < this.#lines.length) {
        this.#done.reject(
          new Error(`Connection closed after ${this.#received.length} of ${this.#lines.length} echoes`),
        );
      }
      return;
    }
    for (const line of this.#lines) connection.send(`${line}\n`);
  }

  #onMessage(_connection: TcpConnection, buffer: Buffer): void {
    for (let eol = buffer.findEOL(); eol >= 0; eol = buffer.findEOL()) {
      const line = buffer.retrieveAsString(eol);
      buffer.retrieve(1);
      this.#received.push(line);
      this.#onLine(line);
      if (this.#received.length === this.#lines.length) this.#done.resolve(this.#received);
    }
  }
}

if (import.meta.main) {
  const { values } = parseArgsOrExit({
    args: Deno.args,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "2007" },
      count: { type: "string", default: "5" },
    },
  });
  const lines = Array.from({ length: Number(values.count) }, (_, i) => `hello #${i + 1} from the echo client`);
  const client = new EchoClient(
    EventLoop.current(),
    new InetAddress(values.host, Number(values.port)),
    lines,
    (line) => console.log(`echoed: ${line}`),
  );
  await client.run();
}
