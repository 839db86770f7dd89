// A caller that half-closes on the seed port (not the seed's own caller, but `nc -N`, a script, a careful client):
// after a whole frame it still gets its answer, even from a handler that takes a while; inside a frame (1–3 bytes
// and close, the packet that crashes the seed's provider, or a frame whose lengths lie) the connection is closed
// and counted as a refusal, like the same bytes left open until the deadline.
import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { RpcProvider } from "../../rpc/rpc_provider.ts";
import { parseProto, serviceDefinition } from "../../rpc/service_definition.ts";

const root = parseProto(`syntax = "proto3"; package demo;
  message Msg { bytes text = 1; }
  service Echo { rpc Say (Msg) returns (Msg); }`);
const ECHO = serviceDefinition(root, "demo.Echo");
const encoder = new TextEncoder();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function slowEchoProvider(): Promise<RpcProvider> {
  // A read deadline far beyond the test: a close seen here is the half-close's, not the deadline's.
  const provider = new RpcProvider({ loop: new EventLoop(), seedPort: 0, handshakeTimeoutMs: 60_000 });
  provider.registerService(ECHO, {
    Say: async (request: { text: Uint8Array }) => {
      await sleep(300);
      return request;
    },
  });
  await provider.start();
  return provider;
}

/** Write `bytes`, half-close, and read until the provider closes: what came back and how long the close took. */
async function writeThenHalfClose(port: number, bytes: Uint8Array): Promise<{ answer: Uint8Array; ms: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(bytes);
    await conn.closeWrite();
    const started = performance.now();
    const received: number[] = [];
    const buffer = new Uint8Array(4096);
    for (let n; (n = await conn.read(buffer).catch(() => null)) !== null;) received.push(...buffer.subarray(0, n));
    return { answer: Uint8Array.from(received), ms: performance.now() - started };
  } finally {
    conn.close();
  }
}

/** The seed's frame written from §3.4: LE header length, RpcHeader{service, method, args_size}, args. */
function frame(service: string, method: string, args: Uint8Array, argsSize = args.length): Uint8Array {
  const header = [
    0x0a,
    service.length,
    ...encoder.encode(service),
    0x12,
    method.length,
    ...encoder.encode(method),
    0x18,
    argsSize,
  ];
  return Uint8Array.from([header.length, 0, 0, 0, ...header, ...args]);
}

Deno.test("seed port: a caller that half-closes after its frame still gets the answer of a slow handler", async () => {
  const provider = await slowEchoProvider();
  try {
    const args = Uint8Array.from([0x0a, 0x05, ...encoder.encode("hello")]);
    const { answer } = await writeThenHalfClose(provider.seedAddress!.port, frame("Echo", "Say", args));
    assert.deepEqual(answer, args);
    assert.deepEqual(provider.stats().calls["demo.Echo.Say"], { OK: 1 });
  } finally {
    await provider.stop();
  }
});

Deno.test("seed port: a caller that half-closes inside its frame is closed at once and counted", async () => {
  const provider = await slowEchoProvider();
  try {
    const args = Uint8Array.from([0x0a, 0x05, ...encoder.encode("hello")]);
    const whole = frame("Echo", "Say", args);
    const cases: [string, Uint8Array][] = [
      ["1 byte", Uint8Array.of(0x19)],
      ["3 bytes", Uint8Array.of(0x19, 0x00, 0x00)],
      ["a header cut short", whole.subarray(0, 9)],
      ["args_size beyond the frame", frame("Echo", "Say", args, 100)],
    ];
    for (const [name, bytes] of cases) {
      const before = provider.stats().limitsHit.seed_frame ?? 0;
      const { answer, ms } = await writeThenHalfClose(provider.seedAddress!.port, bytes);
      assert.equal(answer.length, 0, name);
      assert.ok(ms < 5000, `${name}: closed after ${ms.toFixed(0)} ms`);
      assert.equal(provider.stats().limitsHit.seed_frame, before + 1, `${name}: counted as seed_frame`);
    }
    // Nothing ran, and nothing is held.
    assert.equal(provider.stats().calls["demo.Echo.Say"], undefined);
  } finally {
    await provider.stop();
  }
});
