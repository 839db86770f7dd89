import assert from "node:assert/strict";
import { denoBackend } from "./backend/deno.ts";
import { nodeBackend } from "./backend/node.ts";
import { EventLoop } from "./event_loop.ts";
import { InetAddress } from "./inet_address.ts";
import { MAX_DATAGRAM_BYTES, UdpSocket } from "./udp_socket.ts";

for (const backend of [denoBackend, nodeBackend]) {
  Deno.test(`UdpSocket exchanges datagrams both ways on ${backend.name}`, async () => {
    const loop = new EventLoop({ backend });
    const a = await UdpSocket.bind(loop, new InetAddress("127.0.0.1", 0));
    const b = await UdpSocket.bind(loop, new InetAddress("127.0.0.1", 0));
    const atB: string[] = [];
    const atA = Promise.withResolvers<string>();
    b.setMessageCallback((data, from) => {
      atB.push(new TextDecoder().decode(data));
      if (atB.length === 3) b.send(new TextEncoder().encode("ack"), from);
    });
    a.setMessageCallback((data, from) => {
      assert.equal(from.port, b.address.port);
      atA.resolve(new TextDecoder().decode(data));
    });
    for (const beat of ["1", "2", "3"]) a.send(new TextEncoder().encode(beat), b.address);
    assert.equal(await atA.promise, "ack");
    assert.deepEqual(atB, ["1", "2", "3"]);
    assert.equal(b.received, 3);
    await a.close();
    await b.close();
  });
}

Deno.test("UdpSocket refuses an oversized datagram and survives a throwing callback", async () => {
  const loop = new EventLoop();
  const a = await UdpSocket.bind(loop, new InetAddress("127.0.0.1", 0));
  assert.throws(() => a.send(new Uint8Array(MAX_DATAGRAM_BYTES + 1), a.address), {
    name: "RangeError",
    message: /at most 65507 bytes: current value is 65508/,
  });
  let calls = 0;
  const second = Promise.withResolvers<void>();
  a.setMessageCallback(() => {
    calls++;
    if (calls === 1) throw new Error("bad handler");
    second.resolve();
  });
  a.send(new Uint8Array([1]), a.address);
  a.send(new Uint8Array([2]), a.address);
  await second.promise;
  assert.equal(calls, 2);
  await a.close();
});
