import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { NodeType } from "./data_tree.ts";
import { RegistryClient } from "../client/registry_client.ts";
import { RegistryServer } from "./registry_server.ts";
import { startRegistryStatus } from "./registry_status.ts";

async function get(url: string, accept = "text/plain"): Promise<{ status: number; type: string; text: string }> {
  const response = await fetch(url, { headers: { accept } });
  return { status: response.status, type: response.headers.get("content-type") ?? "", text: await response.text() };
}

/** A raw request over TCP: what a bad client sends. */
async function raw(address: InetAddress, bytes: string): Promise<string> {
  const conn = await Deno.connect({ hostname: address.hostname, port: address.port });
  await conn.write(new TextEncoder().encode(bytes));
  let text = "";
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  conn.close();
  return text;
}

Deno.test("The registry's status pages: ruok, status, metrics, tree, sessions, the HTML page, bad requests", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, heartbeatTimeoutMs: 100, heartbeatMaxCount: 3 });
  await server.start();
  const http = await startRegistryStatus(loop, server, new InetAddress("127.0.0.1", 0));
  const base = `http://${http.address}`;
  const client = await RegistryClient.connect(server.address, { loop });
  const holder = await RegistryClient.connect(server.address, { loop });
  try {
    await client.create("/svc", "x");
    await holder.create("/svc/eph", "127.0.0.1:1", { nodeType: NodeType.EPHEMERAL });
    await client.get("/missing").catch(() => {});

    assert.deepEqual(await get(`${base}/ruok`), { status: 200, type: "text/plain; charset=utf-8", text: "imok" });
    const status = (await get(`${base}/status`)).text;
    assert.match(status, /^sessions 2$/m);
    assert.match(status, /^nodes 3$/m);
    assert.match(status, /^requests\.create 2$/m);
    assert.match(status, /^errors\.NO_NODE 1$/m);

    const metrics = await get(`${base}/metrics`);
    assert.match(metrics.type, /version=0\.0\.4/);
    assert.match(metrics.text, /^# TYPE dwt_registry_sessions gauge$/m);
    assert.match(metrics.text, /^dwt_registry_sessions 2$/m);
    assert.match(metrics.text, /^dwt_registry_requests_total\{op="create"\} 2$/m);
    assert.match(metrics.text, /^dwt_registry_errors_total\{code="NO_NODE"\} 1$/m);
    // Every sample line is `name{labels} number`: what Prometheus parses.
    for (const line of metrics.text.trim().split("\n").filter((l) => !l.startsWith("#"))) {
      assert.match(line, /^[a-z_]+(\{[a-z]+="[^"]*"\})? -?[0-9.e+]+$/, line);
    }

    const treeText = (await get(`${base}/tree`)).text;
    assert.match(treeText, new RegExp(`^/svc/eph\\tephemeral owner=0x${holder.sessionId.toString(16)} version=0`, "m"));
    const tree = JSON.parse((await get(`${base}/tree?format=json`)).text) as Array<{ path: string; type: string }>;
    assert.deepEqual(tree.map((n) => n.path), ["/", "/svc", "/svc/eph"]);
    const sessions = JSON.parse((await get(`${base}/sessions?format=json`)).text) as Array<
      { id: string; ephemerals: string[]; connected: boolean }
    >;
    const held = sessions.find((s) => s.id === `0x${holder.sessionId.toString(16)}`);
    assert.deepEqual(held?.ephemerals, ["/svc/eph"]);
    assert.equal(held?.connected, true);

    const page = await get(`${base}/`, "text/html");
    assert.match(page.type, /text\/html/);
    assert.match(page.text, /<table id="tree">/);
    assert.match((await get(`${base}/tree`, "text/html,application/xhtml+xml")).text, /<!doctype html>/);
    assert.equal((await get(`${base}/nope`)).status, 404);

    // Bad requests get a 4xx and close only their own connection.
    assert.match(await raw(http.address, "garbage\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.match(await raw(http.address, "POST /status HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"), /^HTTP\/1\.1 405 /);
    assert.match(await raw(http.address, `GET /${"a".repeat(20_000)}`), /^HTTP\/1\.1 413 /);
    const head = await raw(http.address, "HEAD /ruok HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert.match(head, /Content-Length: 4\r\n/);
    assert.ok(head.endsWith("\r\n\r\n"), "no body for HEAD");
    // Two requests on one keep-alive connection, sent together.
    const both = await raw(http.address, "GET /ruok HTTP/1.1\r\n\r\nGET /ruok HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert.equal(both.match(/imok/g)?.length, 2);

    // The session's ephemeral node leaves the pages once it closes.
    await holder.close();
    const after = JSON.parse((await get(`${base}/tree?format=json`)).text) as Array<{ path: string }>;
    assert.deepEqual(after.map((n) => n.path), ["/", "/svc"]);
    assert.equal((await get(`${base}/ruok`)).text, "imok");
  } finally {
    await client.close();
    await holder.close();
    await http.stop();
    await server.stop();
  }
});
