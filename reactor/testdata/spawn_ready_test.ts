import assert from "node:assert/strict";
import { type NotReadyError, spawnReady } from "./spawn_ready.ts";
import { needs } from "./permissions.ts";

const evalArgv = (code: string) => [Deno.execPath(), "eval", code];

Deno.test("spawnReady: resolves with the word after READY and keeps reading stdout", needs("run"), async () => {
  const child = await spawnReady(
    evalArgv(`console.log("starting"); console.log("READY 127.0.0.1:4242"); await new Promise((r) => setTimeout(r, 50));
      console.log("after"); setInterval(() => {}, 1000);`),
  );
  assert.equal(child.ready, "127.0.0.1:4242");
  assert.ok(child.running);
  while (!child.stdout().includes("after")) await new Promise((resolve) => setTimeout(resolve, 10));
  await child.stop();
  assert.equal(child.running, false);
  assert.equal((await child.status).signal, "SIGTERM");
});

Deno.test("spawnReady: a line cut across writes is awaited whole", needs("run"), async () => {
  const child = await spawnReady(
    evalArgv(`const out = (text) => Deno.stdout.write(new TextEncoder().encode(text));
      await out("READY 12"); await new Promise((r) => setTimeout(r, 100)); await out("34\\n"); setInterval(() => {}, 1000);`),
  );
  assert.equal(child.ready, "1234");
  await child.stop("SIGKILL");
});

Deno.test("spawnReady: a bare READY line gives an empty word", needs("run"), async () => {
  const child = await spawnReady(evalArgv(`console.log("READY"); setInterval(() => {}, 1000);`));
  assert.equal(child.ready, "");
  await child.stop();
});

Deno.test("spawnReady: a child that exits first fails with its code and captured stderr", needs("run"), async () => {
  const error = await spawnReady(evalArgv(`console.error("no config"); Deno.exit(3);`), { stderr: "capture" }).then(
    () => assert.fail("resolved"),
    (error: NotReadyError) => error,
  );
  assert.equal(error.code, 3);
  assert.equal(error.stderr, "no config\n");
  assert.match(error.message, /exited with code 3 before READY/);
});

Deno.test("spawnReady: a child silent past timeoutMs is killed and the call fails", needs("run"), async () => {
  const error = await spawnReady(evalArgv(`setInterval(() => {}, 1000);`), { timeoutMs: 300 }).then(
    () => assert.fail("resolved"),
    (error: NotReadyError) => error,
  );
  assert.equal(error.code, null);
  assert.match(error.message, /did not print READY within 300 ms/);
});

Deno.test("spawnReady: input goes to stdin and readyPattern picks the ready word", needs("run"), async () => {
  const child = await spawnReady(
    evalArgv(`for await (const chunk of Deno.stdin.readable) {
      console.log("got " + new TextDecoder().decode(chunk).trim()); }`),
    { input: "hello\n", readyPattern: /^got (\S+)$/m, env: { UNUSED: "1" } },
  );
  assert.equal(child.ready, "hello");
  await child.stop();
});
