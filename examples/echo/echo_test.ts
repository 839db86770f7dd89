import assert from "node:assert/strict";
import { EventLoop, InetAddress } from "../../reactor/mod.ts";
import { EchoClient } from "./echo_client.ts";
import { EchoServer } from "./echo_server.ts";
import { needs } from "../../reactor/testdata/permissions.ts";

Deno.test("EchoServer and EchoClient echo lines in one process", async () => {
  const loop = new EventLoop();
  const server = new EchoServer(loop, new InetAddress("127.0.0.1", 0));
  await server.start();
  const lines = ["a", "b b", "c".repeat(100_000)];
  assert.deepEqual(await new EchoClient(loop, server.address, lines).run(), lines);
  await server.stop();
});

Deno.test("EchoServer runs on 2 Worker threads", needs("read"), async () => {
  const loop = new EventLoop();
  const server = new EchoServer(loop, new InetAddress("127.0.0.1", 0));
  server.setThreadNum(2);
  await server.start();
  const lines = Array.from({ length: 20 }, (_, i) => `line ${i}`);
  const results = await Promise.all([1, 2, 3, 4].map(() => new EchoClient(loop, server.address, lines).run()));
  for (const echoed of results) assert.deepEqual(echoed, lines);
  await server.stop();
});

Deno.test("deno task echo (the README's main job) exits 0 and prints every echo", needs("run"), async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./main.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, stdout + new TextDecoder().decode(output.stderr));
  assert.match(stdout, /echo ok: 4 lines came back intact/);
});
