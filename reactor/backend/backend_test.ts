import assert from "node:assert/strict";
import { denoBackend } from "./deno.ts";
import { defaultBackend } from "./default.ts";
import type { NetBackend, RawSocket, RawSocketHandlers } from "./net_backend.ts";
import { nodeBackend } from "./node.ts";
import { needs } from "../testdata/permissions.ts";

interface Recorder extends RawSocketHandlers {
  data: string;
  ended: Promise<void>;
  closed: Promise<void>;
  errors: Error[];
}

function recorder(): Recorder {
  const ended = Promise.withResolvers<void>();
  const closed = Promise.withResolvers<void>();
  const decoder = new TextDecoder();
  const r: Recorder = {
    data: "",
    ended: ended.promise,
    closed: closed.promise,
    errors: [],
    onData: (chunk) => void (r.data += decoder.decode(chunk)),
    onEnd: () => ended.resolve(),
    onError: (error) => void r.errors.push(error),
    onClose: () => closed.resolve(),
  };
  return r;
}

function write(socket: RawSocket, text: string): Promise<void> {
  return new Promise((resolve, reject) =>
    socket.write(new TextEncoder().encode(text), (e) => e ? reject(e) : resolve())
  );
}

for (const backend of [denoBackend, nodeBackend] as NetBackend[]) {
  Deno.test(`${backend.name} backend: connect, exchange, half-close and close`, async () => {
    const listener = await backend.listen({ hostname: "127.0.0.1", port: 0 });
    const [server, client] = await Promise.all([
      listener.accept(),
      backend.connect({ hostname: "127.0.0.1", port: listener.address.port }),
    ]);
    assert.equal(client.remoteAddress.port, listener.address.port);
    assert.equal(server.remoteAddress.port, client.localAddress.port);
    const atServer = recorder();
    const atClient = recorder();
    server.start(atServer);
    client.start(atClient);
    await write(client, "request");
    client.shutdownWrite();
    await atServer.ended;
    assert.equal(atServer.data, "request");
    // Half-closed: the server can still answer.
    await write(server, "reply");
    server.close();
    await atClient.ended;
    assert.equal(atClient.data, "reply");
    client.close();
    await Promise.all([atServer.closed, atClient.closed]);
    listener.close();
    await assert.rejects(listener.accept());
  });

  Deno.test(`${backend.name} backend: pause stops data until resume`, async () => {
    const listener = await backend.listen({ hostname: "127.0.0.1", port: 0 });
    const [server, client] = await Promise.all([
      listener.accept(),
      backend.connect({ hostname: "127.0.0.1", port: listener.address.port }),
    ]);
    const atServer = recorder();
    server.start(atServer);
    client.start(recorder());
    await write(client, "one");
    const deadline = performance.now() + 2000;
    while (atServer.data !== "one" && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    server.pauseReading();
    await new Promise((r) => setTimeout(r, 10)); // let a read already in flight settle
    const before = atServer.data.length;
    await write(client, "two");
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(atServer.data.length, before, "no data while paused");
    server.resumeReading();
    while (!atServer.data.endsWith("two") && performance.now() < deadline + 2000) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(atServer.data, "onetwo");
    client.close();
    server.close();
    listener.close();
  });

  Deno.test(
    `${backend.name} backend: files append, sync, read, rename, remove, list`,
    needs("read", "write"),
    async () => {
      const dir = await Deno.makeTempDir();
      const fs = backend.fs;
      await fs.mkdir(`${dir}/a/b`);
      const file = await fs.openAppend(`${dir}/a/b/log`);
      await file.write(new TextEncoder().encode("one\n"));
      await file.write(new TextEncoder().encode("two\n"));
      await file.sync();
      file.close();
      assert.equal(new TextDecoder().decode(await fs.readFile(`${dir}/a/b/log`)), "one\ntwo\n");
      await fs.writeFile(`${dir}/a/snap.tmp`, new Uint8Array([1, 2, 3]));
      await fs.rename(`${dir}/a/snap.tmp`, `${dir}/a/snap`);
      assert.deepEqual((await fs.readDir(`${dir}/a`)).sort(), ["b", "snap"]);
      assert.deepEqual([...await fs.readFile(`${dir}/a/snap`)], [1, 2, 3]);
      const durable = await fs.openDurableAppend(`${dir}/a/wal`);
      await durable.append(new TextEncoder().encode("r1"));
      await durable.append(new TextEncoder().encode("r2"));
      // Overlapping appends (a log writes its next batch while the previous one syncs) land in call order.
      await Promise.all(["r3", "r4", "r5"].map((text) => durable.append(new TextEncoder().encode(text))));
      assert.equal(await durable.size(), 10);
      durable.close();
      await assert.rejects(durable.append(new Uint8Array(1)), /closed/);
      assert.equal(new TextDecoder().decode(await fs.readFile(`${dir}/a/wal`)), "r1r2r3r4r5");
      await fs.remove(`${dir}/a/wal`);
      await fs.remove(`${dir}/a/snap`);
      await fs.remove(`${dir}/a/snap`);
      await assert.rejects(fs.readFile(`${dir}/a/snap`), { name: "NotFound" });
      assert.deepEqual(await fs.readDir(`${dir}/missing`), []);
      await Deno.remove(dir, { recursive: true });
    },
  );

  Deno.test(
    `${backend.name} backend: a preallocated durable file keeps zeros ahead of its appends and cuts them`,
    needs("read", "write"),
    async () => {
      const dir = await Deno.makeTempDir();
      const path = `${dir}/wal`;
      const fs = backend.fs;
      const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
      const fileSize = async () => (await Deno.stat(path)).size;
      const log = await fs.openDurableAppend(path, { preallocateBytes: 256 * 1024 });
      await log.append(new TextEncoder().encode("r1"));
      assert.equal(await fileSize(), 2 + 64 * 1024, "the first step of zeros follows the append");
      assert.equal(await log.size(), 2);
      await Promise.all(["r2", "r3"].map((t) => log.append(new TextEncoder().encode(t))));
      // Appends fill the zeros from the front; each step (64, 128, 256 KiB: doubling up to the limit) is written
      // once fewer than 32 KiB of zeros are left.
      const big = new Uint8Array(100 * 1024).fill(0x61);
      await log.append(big);
      await log.append(big);
      assert.equal(await log.size(), 6 + 200 * 1024);
      // The first runs past the first step's zeros, so the next step starts after it.
      assert.equal(await fileSize(), 6 + 100 * 1024 + (128 + 256) * 1024);
      const bytes = await fs.readFile(path);
      assert.equal(text(bytes.subarray(0, 6)), "r1r2r3");
      assert.ok(bytes.subarray(6, 6 + 200 * 1024).every((b) => b === 0x61));
      assert.ok(bytes.subarray(6 + 200 * 1024).every((b) => b === 0), "zeros after the appends");
      // A cut drops the zeros; the next append goes at the cut and writes zeros ahead again.
      await log.truncate(4);
      assert.equal(await fileSize(), 4);
      await log.append(new TextEncoder().encode("x"));
      assert.equal(text((await fs.readFile(path)).subarray(0, 5)), "r1r2x");
      assert.ok(await fileSize() > 5);
      // Trimmed, it grows exactly by what is appended (a sealed log's seal ends its file).
      await log.trim();
      assert.equal(await fileSize(), 5);
      await log.append(new TextEncoder().encode("seal"));
      assert.equal(await fileSize(), 9);
      // A truncate starts preallocation over (after a refused step or a trim that an undone roll follows).
      await log.truncate(9);
      await log.append(new TextEncoder().encode("+"));
      assert.ok(await fileSize() > 10);
      log.close();
      // Reopened, appends go at its end; a clean close cuts the zeros.
      const again = await fs.openDurableAppend(path, { preallocateBytes: 256 * 1024 });
      assert.equal(await again.size(), 10);
      await again.append(new TextEncoder().encode("!"));
      assert.ok(await fileSize() > 11);
      again.close();
      assert.equal(text(await fs.readFile(path)), "r1r2xseal+!");
      // Without preallocation the file is exactly its appends.
      const plain = await fs.openDurableAppend(path);
      await plain.append(new TextEncoder().encode("?"));
      assert.equal(await fileSize(), 12);
      plain.close();
      await Deno.remove(dir, { recursive: true });
    },
  );
}

Deno.test("deno backend: two listeners share a port with reusePort", async () => {
  assert.equal(denoBackend.supportsReusePort, true);
  const first = await denoBackend.listen({ hostname: "127.0.0.1", port: 0, reusePort: true });
  const second = await denoBackend.listen({ hostname: "127.0.0.1", port: first.address.port, reusePort: true });
  assert.equal(second.address.port, first.address.port);
  first.close();
  second.close();
});

Deno.test("node backend under Deno refuses reusePort with a TypeError", async () => {
  assert.equal(nodeBackend.supportsReusePort, false);
  await assert.rejects(nodeBackend.listen({ hostname: "127.0.0.1", port: 0, reusePort: true }), TypeError);
});

Deno.test("deno backend: a worker answers messages and terminates", needs("read"), async () => {
  const worker = denoBackend.workers.spawn(new URL("./testdata/echo_worker.ts", import.meta.url).href);
  const reply = Promise.withResolvers<unknown>();
  worker.onMessage((message) => reply.resolve(message));
  worker.postMessage("ping");
  assert.deepEqual(await reply.promise, { echo: "ping", inWorker: true });
  worker.terminate();
  assert.equal(denoBackend.workers.parentPort(), undefined);
});

Deno.test("defaultBackend picks the Deno backend under Deno", () => {
  assert.equal(defaultBackend(), denoBackend);
  assert.equal(denoBackend.process.pid, Deno.pid);
});
