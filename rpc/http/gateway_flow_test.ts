import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { until } from "../../reactor/testdata/until.ts";
import { CallDispatcher } from "../_call_dispatcher.ts";
import { CallLedger } from "../_call_ledger.ts";
import { serverLimits } from "../_server_limits.ts";
import { GatewayTransport } from "./gateway_transport.ts";
import { decode, demoType, encode, frame, RawHttpClient } from "./testdata/gateway_client.ts";
import { DEMO, demoHandlers, type DemoRecord, demoRecord } from "./testdata/gateway_service.ts";

// These tests look inside the gateway (what it holds), so they run one on a provider's dispatch without the
// provider around it.

const HIGH_WATER_MARK_BYTES = 64 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Gateway extends AsyncDisposable {
  gateway: GatewayTransport;
  record: DemoRecord;
  address: string;
}

async function startGateway(): Promise<Gateway> {
  const loop = new EventLoop();
  const limits = serverLimits({});
  const dispatcher = new CallDispatcher(loop, limits, new CallLedger());
  const record = demoRecord();
  dispatcher.register(DEMO, demoHandlers(record), []);
  const gateway = new GatewayTransport(loop, new InetAddress("127.0.0.1", 0), limits, {
    http: { highWaterMarkBytes: HIGH_WATER_MARK_BYTES },
  });
  await gateway.listen(dispatcher);
  return {
    gateway,
    record,
    address: gateway.address.toString(),
    async [Symbol.asyncDispose]() {
      gateway.drain();
      await dispatcher.drain(0);
      await gateway.close();
    },
  };
}

// Until `read()` gives the same value twice, 250 ms apart (and more than zero).
async function stalled(read: () => number, what: string): Promise<number> {
  let last = -1;
  const deadline = performance.now() + 15_000;
  for (;;) {
    const now = read();
    if (now > 0 && now === last) return now;
    if (performance.now() > deadline) throw new Error(`${what} never stalled (at ${now})`);
    last = now;
    await sleep(250);
  }
}

const countHead = "POST /test.gateway.Demo/Count HTTP/1.1\r\nhost: gw\r\ncontent-type: application/connect+proto";

Deno.test("GatewayTransport stalls a server stream's producer while its HTTP client does not read", async () => {
  await using gw = await startGateway();
  const client = await RawHttpClient.connect(gw.address);
  try {
    const size = 32 * 1024;
    await client.request(countHead, frame(0, encode(demoType("Count", "request"), { n: 0, size })));
    assert.equal((await client.head()).status, 200);
    // The client reads nothing more: the handler must stop at a `yield`, the gateway hold little.
    const produced = await stalled(() => gw.record.produced, "the producer");
    const held = gw.gateway.bufferedBytes;
    assert.ok(held <= HIGH_WATER_MARK_BYTES + 2 * size, `the gateway holds ${held} bytes`);
    await sleep(500);
    assert.equal(gw.record.produced, produced, "still stalled");

    // Reading on, every message arrives in order and the producer resumes.
    const itemType = demoType("Count", "response");
    for (let index = 0; index < produced + 20; index++) {
      const chunk = await client.chunk();
      assert.ok(chunk !== undefined);
      assert.equal(decode(itemType, chunk.subarray(5)).index ?? 0, index);
    }
    assert.ok(gw.record.produced >= produced + 20);
  } finally {
    client.close();
  }
  await until(() => gw.record.running === 0, 5000, "the handler to end after its client went away");
});

Deno.test("GatewayTransport cancels the handler of a stream whose HTTP client goes away, within 100 ms", async () => {
  await using gw = await startGateway();
  // On a loaded machine one measurement may be spoiled by the scheduler: the best of three counts.
  const elapsed: number[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    gw.record.abortedAt = undefined;
    const client = await RawHttpClient.connect(gw.address);
    await client.request(countHead, frame(0, encode(demoType("Count", "request"), { n: 0, intervalMs: 5 })));
    await client.head();
    for (let i = 0; i < 3; i++) assert.ok(await client.chunk() !== undefined);
    const closedAt = performance.now();
    client.close();
    await until(() => gw.record.abortedAt !== undefined, 5000, "the handler's signal");
    elapsed.push(gw.record.abortedAt! - closedAt);
    await until(() => gw.record.running === 0, 5000, "the handler to end");
    if (elapsed.at(-1)! < 100) break;
  }
  assert.ok(Math.min(...elapsed) < 100, `the signal fired ${elapsed.map((ms) => ms.toFixed(1)).join(", ")} ms after`);
});

Deno.test("GatewayTransport reads a client stream's body only as the provider's credit allows", async () => {
  // A handler that never reads: the body stops being read (so the HTTP layer stops reading the socket), and the
  // call's deadline ends it. While the socket is not read, a client that goes away is not seen (HTTP/1.1 tells it
  // only through the read side): the deadline, or the drain, is what ends such a call.
  await using gw = await startGateway();
  const client = await RawHttpClient.connect(gw.address);
  const item = frame(0, encode(demoType("Sum", "request"), { blob: new Uint8Array(16 * 1024) }));
  const messages = 2048; // 32 MiB: far more than the socket buffers take
  let sent = 0;
  const writing = (async () => {
    await client.send(
      "POST /test.gateway.Demo/Sum HTTP/1.1\r\nhost: gw\r\ncontent-type: application/connect+proto\r\n" +
        `x-mode: hold\r\nconnect-timeout-ms: 2000\r\ncontent-length: ${item.length * messages}\r\n\r\n`,
    );
    for (; sent < messages; sent++) await client.send(item);
  })().catch(() => {});
  try {
    await until(() => gw.record.running === 1, 5000, "the handler to start");
    await stalled(() => sent, "the client's upload");
    const held = gw.gateway.bufferedBytes;
    assert.ok(held < 512 * 1024, `the gateway holds ${held} bytes of a handler that reads nothing`);
    assert.ok(sent < messages, "the upload cannot finish");
    assert.equal(gw.record.taken, 0);
    await until(() => gw.record.running === 0, 10_000, "the handler to end at its deadline");
    assert.match(String(gw.record.abortReason), /DEADLINE_EXCEEDED/);
  } finally {
    client.close();
    await writing;
  }
});
