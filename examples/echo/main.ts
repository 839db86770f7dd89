/**
 * The echo example in one process (`deno task echo`): an EchoServer on 127.0.0.1, an EchoClient that sends a few
 * lines over a real TCP connection and prints each echo, then both shut down and the program exits 0.
 */

import { EventLoop, InetAddress } from "../../reactor/mod.ts";
import { EchoClient } from "./echo_client.ts";
import { EchoServer } from "./echo_server.ts";

const loop = EventLoop.current();
const server = new EchoServer(loop, new InetAddress("127.0.0.1", 0));
await server.start();
console.log(`echo server listening on ${server.address}`);

const lines = ["hello, reactor", "one loop per thread", "muduo in TypeScript", "x".repeat(64 * 1024)];
const client = new EchoClient(loop, server.address, lines, (line) => {
  const shown = line.length > 60 ? `${line.slice(0, 20)}... (${line.length} bytes)` : line;
  console.log(`echoed: ${shown}`);
});
const echoed = await client.run();
await server.stop();
loop.quit();

const ok = echoed.length === lines.length && echoed.every((line, i) => line === lines[i]);
console.log(ok ? `echo ok: ${echoed.length} lines came back intact` : "echo FAILED: lines differ");
if (!ok) Deno.exit(1);
