import assert from "node:assert/strict";
import { denoBackend } from "./backend/deno.ts";
import { nodeBackend } from "./backend/node.ts";
import { Connector, ConnectorState } from "./connector.ts";
import { EventLoop } from "./event_loop.ts";
import { InetAddress } from "./inet_address.ts";
import { TcpClient } from "./tcp_client.ts";
import { TcpServer } from "./tcp_server.ts";
import { until } from "./testdata/until.ts";

async function echoServer(loop: EventLoop, port = 0): Promise<TcpServer> {
  const server = new TcpServer(loop, new InetAddress("127.0.0.1", port), "echo");
  server.setMessageCallback((connection, buffer) => connection.send(buffer));
  await server.start();
  return server;
}

/** A port with nothing listening (bound, then released). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

for (const backend of [denoBackend, nodeBackend]) {
  Deno.test(`TcpClient echoes through a TcpServer and disconnect delivers everything on ${backend.name}`, async () => {
    const loop = new EventLoop({ backend });
    const server = await echoServer(loop);
    const client = new TcpClient(loop, server.address, "client");
    const payload = "z".repeat(256 * 1024);
    let received = "";
    let down = false;
    client.setConnectionCallback((connection) => {
      if (connection.connected) {
        connection.send(payload);
      } else {
        down = true;
      }
    });
    client.setMessageCallback((connection, buffer) => {
      received += buffer.retrieveAllAsString();
      if (received.length === payload.length) client.disconnect();
      void connection;
    });
    client.connect();
    await until(() => down, 5000, "the connection to close");
    assert.equal(received, payload);
    assert.equal(client.connection, undefined);
    await client.close();
    await server.stop();
  });
}

Deno.test("Connector backs off 20, 40, 80, 80 ms against a closed port and stop leaves nothing pending", async () => {
  const attemptTimes: number[] = [];
  const recording = {
    ...denoBackend,
    connect: (options: Parameters<typeof denoBackend.connect>[0]) => {
      attemptTimes.push(performance.now());
      return denoBackend.connect(options);
    },
  };
  const loop = new EventLoop({ backend: recording });
  const connector = new Connector(loop, new InetAddress("127.0.0.1", closedPort()), {
    initialRetryDelayMs: 20,
    maxRetryDelayMs: 80,
  });
  connector.start();
  await until(() => attemptTimes.length >= 5, 5000, "five attempts");
  connector.stop();
  const gaps = attemptTimes.slice(1, 5).map((t, i) => t - attemptTimes[i]!);
  [20, 40, 80, 80].forEach((expected, i) => {
    assert.ok(gaps[i]! >= expected - 1 && gaps[i]! < expected + 60, `gap ${i} was ${gaps[i]} ms, expected ${expected}`);
  });
  assert.equal(connector.state, ConnectorState.DISCONNECTED);
  assert.equal(loop.timerCount, 0);
});

Deno.test("TcpClient with retry reconnects after the server restarts on the same port", async () => {
  const loop = new EventLoop();
  let server = await echoServer(loop);
  const port = server.address.port;
  const client = new TcpClient(loop, server.address, "retrying", {
    retry: true,
    initialRetryDelayMs: 20,
    maxRetryDelayMs: 100,
  });
  let ups = 0;
  let echoed = "";
  client.setConnectionCallback((connection) => {
    if (connection.connected) {
      ups++;
      connection.send(`hello ${ups}`);
    }
  });
  client.setMessageCallback((_connection, buffer) => echoed = buffer.retrieveAllAsString());
  client.connect();
  await until(() => echoed === "hello 1", 5000, "the first echo");
  await server.stop();
  await until(() => !client.connected, 5000, "the client to notice");
  server = await echoServer(loop, port);
  await until(() => echoed === "hello 2", 5000, "the echo after the restart");
  assert.equal(ups, 2);
  await client.close();
  await server.stop();
});

Deno.test("TcpClient close before connecting resolves and leaves no timers", async () => {
  const loop = new EventLoop();
  const client = new TcpClient(loop, new InetAddress("127.0.0.1", closedPort()), "never", { initialRetryDelayMs: 10 });
  client.connect();
  await new Promise((resolve) => setTimeout(resolve, 30));
  await client.close();
  assert.equal(loop.timerCount, 0);
  assert.equal(client.connected, false);
});

Deno.test("Connector rejects a non-positive delay with a RangeError naming it", () => {
  const loop = new EventLoop();
  assert.throws(() => new Connector(loop, new InetAddress("127.0.0.1", 1), { maxRetryDelayMs: 0 }), {
    name: "RangeError",
    message: /'maxRetryDelayMs'.*0/,
  });
});
