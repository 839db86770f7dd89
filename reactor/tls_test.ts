import assert from "node:assert/strict";
import { denoBackend } from "./backend/deno.ts";
import { nodeBackend } from "./backend/node.ts";
import { EventLoop } from "./event_loop.ts";
import { InetAddress } from "./inet_address.ts";
import { TcpClient } from "./tcp_client.ts";
import { TcpServer } from "./tcp_server.ts";
import { needs } from "./testdata/permissions.ts";
import { selfSignedCertificate } from "./testdata/self_signed.ts";

// Made by the first test that runs, not at load: openssl and a temp dir need --allow-run, --allow-write, --allow-read.
let madeCertificate: Promise<{ cert: string; key: string }> | undefined;

for (const backend of [denoBackend, nodeBackend]) {
  Deno.test({
    name: `${backend.name} backend: TLS echo with a self-signed certificate; untrusted and plain clients are refused`,
    // node:tls reads the system's CA store, which takes --allow-sys.
    ...(backend === nodeBackend ? needs("read", "write", "run", "sys") : needs("read", "write", "run")),
    async fn() {
      const certificate = await (madeCertificate ??= selfSignedCertificate());
      const loop = new EventLoop({ backend });
      const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "tls-echo", { tls: certificate });
      server.setMessageCallback((connection, buffer) => connection.send(buffer));
      await server.start();
      const echo = async (caCerts?: string[]) => {
        const client = new TcpClient(loop, server.address, "tls-client", {
          tls: { caCerts },
          maxAttempts: 1,
          connectTimeoutMs: 3000,
        });
        const result = Promise.withResolvers<string>();
        client.setConnectionCallback((connection) => connection.connected && connection.send("secret"));
        client.setMessageCallback((_connection, buffer) => result.resolve(buffer.retrieveAllAsString()));
        client.setConnectFailedCallback((error) => result.reject(error));
        client.connect();
        try {
          return await result.promise;
        } finally {
          await client.close();
        }
      };
      try {
        assert.equal(await echo([certificate.cert]), "secret");
        await assert.rejects(echo(), /certificate|UnknownIssuer|self.signed|verify/i);
        // A plain-text client gets nothing, and the server keeps serving TLS.
        const plain = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
        await plain.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
        const buf = new Uint8Array(1024);
        const n = await plain.read(buf).catch(() => null);
        assert.ok(n === null || !new TextDecoder().decode(buf.subarray(0, n)).includes("GET"), "no plain echo");
        plain.close();
        assert.equal(await echo([certificate.cert]), "secret");
      } finally {
        await server.stop();
      }
    },
  });
}
