// The seed port's answers byte for byte as seed-spec §2.2–2.3 gives them, written from the spec with literal bytes
// (not this directory's codec): an unknown operation gets the seed's Service reply with the payload "error" (its
// client reads an empty response and goes on; an Error reply would make it exit), bytes that are no request get
// the seed's exact Error text, and a refusal that is not about the path (data past maxDataBytes) says what it is
// instead of "path error".
import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { RegistryServer } from "../../registry/server/registry_server.ts";
import { SeedRegistryListener } from "./seed_registry_listener.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function withSeedPort(run: (port: number) => Promise<void>): Promise<void> {
  const seed = new SeedRegistryListener({ port: 0, requestTimeoutMs: 3000 });
  const server = new RegistryServer({ port: 0, loop: new EventLoop(), maxDataBytes: 16, listeners: [seed] });
  await server.start();
  try {
    await run(seed.address.port);
  } finally {
    await server.stop();
  }
}

/** Send `request` in one write and read everything until the server closes. */
async function exchange(port: number, request: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(request);
    const chunks: number[] = [];
    const buffer = new Uint8Array(65536);
    for (let n; (n = await conn.read(buffer)) !== null;) chunks.push(...buffer.subarray(0, n));
    return Uint8Array.from(chunks);
  } finally {
    conn.close();
  }
}

const bytesOf = (...parts: (number[] | string)[]) =>
  Uint8Array.from(parts.flatMap((part) => typeof part === "string" ? [...encoder.encode(part)] : part));

/** WrappedRequest{Service, ServiceRequest{serviceType, params, sessionId}} with one-byte lengths. */
function service(serviceType: number, params: Uint8Array, session: number[] = []): Uint8Array {
  const inner = bytesOf(
    [0x08, serviceType, 0x12, params.length],
    [...params],
    session.length ? [0x18, ...session] : [],
  );
  return bytesOf([0x08, 0x02, 0x12, inner.length], [...inner]);
}

/** The inner <Op>NodeResponse of a Service reply whose ServiceResponse echoes `serviceType`. */
function opResponse(reply: Uint8Array, serviceType: number): Uint8Array {
  assert.deepEqual([...reply.subarray(0, 3)], [0x08, 0x02, 0x12], `a Service reply: ${reply}`);
  assert.deepEqual([...reply.subarray(4, 7)], [0x08, serviceType, 0x12]);
  return reply.subarray(8, 8 + reply[7]!);
}

/** The session id varint of a Connection reply `08 01 12 <len> 08 <varint>`. */
async function connect(port: number): Promise<number[]> {
  const reply = await exchange(port, Uint8Array.of(0x08, 0x01));
  assert.deepEqual([...reply.subarray(0, 3)], [0x08, 0x01, 0x12]);
  assert.equal(reply[4], 0x08);
  return [...reply.subarray(5)];
}

Deno.test('Seed port: an unknown operation gets the seed\'s Service reply with the payload "error"', async () => {
  await withSeedPort(async (port) => {
    // ServiceType 9: WrappedResponse{Service, ServiceResponse{serviceType 9, data "error"}}.
    const nine = await exchange(port, service(9, bytesOf([0x0a, 0x02], "/a")));
    assert.deepEqual(nine, bytesOf([0x08, 0x02, 0x12, 0x09, 0x08, 0x09, 0x12, 0x05], "error"));
    // An empty ServiceRequest is ServiceType 0 (proto3 writes no zero): the same payload, no type field.
    const zero = await exchange(port, bytesOf([0x08, 0x02, 0x12, 0x00]));
    assert.deepEqual(zero, bytesOf([0x08, 0x02, 0x12, 0x07, 0x12, 0x05], "error"));
  });
});

Deno.test("Seed port: bytes that are no request get the seed's Error text word for word", async () => {
  await withSeedPort(async (port) => {
    const parseError = bytesOf([0x08, 0x03, 0x12, 19], "request parse error");
    assert.deepEqual(await exchange(port, Uint8Array.of(0xff, 0xff, 0xff, 0xff)), parseError);
    assert.deepEqual(await exchange(port, encoder.encode("GET / HTTP/1.1\r\n\r\n")), parseError);
    // A length past the limit is refused before it is read, with the same text.
    assert.deepEqual(await exchange(port, Uint8Array.of(0x08, 0x02, 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f)), parseError);
    const illegal = bytesOf([0x08, 0x03, 0x12, 26], "illegal request parameters");
    assert.deepEqual(await exchange(port, Uint8Array.of(0x08, 0x03)), illegal);
    const badService = bytesOf([0x08, 0x03, 0x12, 27], "service request parse error");
    assert.deepEqual(await exchange(port, Uint8Array.of(0x08, 0x02, 0x12, 0x02, 0xff, 0xff)), badService);
  });
});

Deno.test('Seed port: data past maxDataBytes is refused as such, not as "path error"', async () => {
  await withSeedPort(async (port) => {
    const session = await connect(port);
    const big = "x".repeat(17);
    // CreateNodeRequest{path, nodeData (field 3), nodeType 1}; the answer's errmsg is field 2.
    const create = opResponse(
      await exchange(port, service(1, bytesOf([0x0a, 0x02], "/n", [0x1a, big.length], big, [0x20, 0x01]), session)),
      1,
    );
    assert.equal(create[0], 0x12, "success=false: no field 1, errmsg first");
    const createText = decoder.decode(create.subarray(2, 2 + create[1]!));
    assert.notEqual(createText, "path error");
    assert.match(createText, /exceeds the limit of 16 bytes/);
    // Within the limit it is made; a set past it is refused the same way.
    const made = opResponse(await exchange(port, service(1, bytesOf([0x0a, 0x02], "/n", [0x20, 0x01]), session)), 1);
    assert.deepEqual([...made], [0x08, 0x01]);
    const set = opResponse(
      await exchange(port, service(3, bytesOf([0x0a, 0x02], "/n", [0x1a, big.length], big), session)),
      3,
    );
    assert.match(decoder.decode(set.subarray(2, 2 + set[1]!)), /exceeds the limit of 16 bytes/);
    // Paths the rules refuse are still the seed's "path error" (GetNodeResponse: errmsg is field 3).
    for (const path of ["/a//b", "/a/../b", "/a\u0001", "a", ""]) {
      const get = opResponse(await exchange(port, service(2, bytesOf([0x0a, encoder.encode(path).length], path))), 2);
      assert.deepEqual(get, bytesOf([0x1a, 10], "path error"), JSON.stringify(path));
    }
  });
});
