// Idle connections cannot lock seed clients out of the seed port: at `maxConnections`, a newcomer takes the place
// of the oldest connection that owes nothing (no request yet, a partial one, or already answered), as the RPC side's
// ConnectionGate does, so a flood of idle sockets from a few addresses (each under the per-address cap) leaves the
// seed's client library working. Before, newcomers were closed on arrival until the flood's sockets timed out, and
// the seed's client library exits its process when the registry does not answer.
import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { RegistryServer } from "../../registry/server/registry_server.ts";
import { SeedSrcClient } from "../testdata/seed_src_client.ts";
import { SeedRegistryListener } from "./seed_registry_listener.ts";

const CAP = 64;

Deno.test("Seed port: at maxConnections, idle connections make room for a seed client, which is served", async () => {
  // A deadline far beyond the test: only eviction can make room.
  const seed = new SeedRegistryListener({ port: 0, maxConnections: CAP, requestTimeoutMs: 60_000 });
  const server = new RegistryServer({ port: 0, loop: new EventLoop(), listeners: [seed] });
  await server.start();
  const port = seed.address.port;
  const held: Deno.TcpConn[] = [];
  try {
    // The cap filled with what a flood leaves: silent sockets, partial requests, and answered ones kept open.
    for (let i = 0; i < CAP; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      if (i % 3 === 1) await conn.write(Uint8Array.of(0x08, 0x02, 0x12, 0x40)); // a request that never ends
      if (i % 3 === 2) {
        await conn.write(Uint8Array.of(0x08, 0x01)); // a session, then the socket is held
        assert.ok((await conn.read(new Uint8Array(1024)) ?? 0) > 0);
      }
      held.push(conn);
    }
    const started = performance.now();
    const client = new SeedSrcClient();
    assert.equal(await client.connect("127.0.0.1", port, 60_000), true);
    assert.equal(await client.createNode("/through", "127.0.0.1:8800", 2), true);
    assert.equal(await client.getNode("/through"), "127.0.0.1:8800");
    assert.deepEqual(await client.lsNode("/"), ["through"]);
    const ms = performance.now() - started;
    await client.disconnect();
    const stats = seed.stats();
    // The client's first connection took an idle one's place (later ones, each opened after the one before closed,
    // may too when the server sees the open before the close); none was refused.
    assert.ok(stats.evicted_idle >= 1 && stats.evicted_idle <= 5, JSON.stringify(stats));
    assert.equal(stats.refused_connections, 0);
    assert.ok(seed.openConnections <= CAP, `${seed.openConnections} open`);
    // A counter, as /metrics exports it: every connection accepted (the held ones and the client's four), never
    // how many are open now.
    assert.equal(stats.connections, CAP + 4);
    assert.ok(ms < 5000, `served in ${ms.toFixed(0)} ms`);
  } finally {
    for (const conn of held) conn.close();
    await server.stop();
  }
});
