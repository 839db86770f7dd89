// RPC and registry over TLS with a self-signed certificate: the whole path (sessions, publishing, discovery, calls)
// encrypted, and a caller that does not trust the certificate gets nothing.
import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { selfSignedCertificate } from "../reactor/testdata/self_signed.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { RegistryServer } from "../registry/server/registry_server.ts";
import { RpcChannel, type StubMethod } from "./rpc_channel.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { RpcProvider } from "./rpc_provider.ts";
import { parseProto, serviceDefinition } from "./service_definition.ts";
import { needs } from "../reactor/testdata/permissions.ts";

const ECHO = serviceDefinition(
  parseProto(
    `syntax = "proto3"; package tls; message M { string text = 1; } service Echo { rpc Say (M) returns (M); }`,
  ),
  "tls.Echo",
);

Deno.test({
  ...needs("read", "write", "run"),
  name: "Registry and RPC over TLS: a trusted caller calls; an untrusting one is refused",
  async fn() {
    const certificate = await selfSignedCertificate();
    const trust = { caCerts: [certificate.cert] };
    const loop = new EventLoop();
    const server = new RegistryServer({ port: 0, loop, tls: certificate });
    await server.start();
    const providerRegistry = await RegistryClient.connect(server.address, { loop, tls: trust });
    const callerRegistry = await RegistryClient.connect(server.address, { loop, tls: trust });
    const provider = new RpcProvider({ loop, registry: providerRegistry, tls: certificate });
    provider.registerService(ECHO, { Say: (request: { text: string }) => ({ text: `secure ${request.text}` }) });
    await provider.start();
    const channel = new RpcChannel({ loop, registry: callerRegistry, tls: trust });
    const untrusting = new RpcChannel({ loop, registry: callerRegistry, maxRetries: 0 });
    try {
      const reply = await channel.stub<{ Say: StubMethod }>(ECHO).Say({ text: "hello" });
      assert.equal(reply.text, "secure hello");
      await assert.rejects(untrusting.stub<{ Say: StubMethod }>(ECHO).Say({ text: "x" }), (error: unknown) => {
        assert.ok(error instanceof RpcError);
        assert.equal(error.code, RpcCode.UNAVAILABLE);
        return true;
      });
      // Without trust the registry refuses to open a session, with a clear error, in time.
      await assert.rejects(RegistryClient.connect(server.address, { loop, connectTimeoutMs: 1000 }));
      assert.equal((await channel.stub<{ Say: StubMethod }>(ECHO).Say({ text: "again" })).text, "secure again");
    } finally {
      await untrusting.close();
      await channel.close();
      await provider.stop({ graceMs: 100 });
      await providerRegistry.close();
      await callerRegistry.close();
      await server.stop();
    }
  },
});

Deno.test({
  ...needs("read", "write", "run"),
  name: "RpcApplication configs name the TLS files: provider and caller talk over TLS to a TLS registry",
  async fn() {
    const certificate = await selfSignedCertificate();
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/cert.pem`, certificate.cert);
    await Deno.writeTextFile(`${dir}/key.pem`, certificate.key);
    const loop = new EventLoop();
    const server = new RegistryServer({ port: 0, loop, tls: certificate });
    await server.start();
    const common = { dwt_src_ip: "127.0.0.1", dwt_src_port: server.address.port, log_level: "ERROR" };
    await Deno.writeTextFile(
      `${dir}/provider.json`,
      JSON.stringify({
        ...common,
        rpcserver_ip: "127.0.0.1",
        rpcserver_port: 0,
        tls_cert_file: `${dir}/cert.pem`,
        tls_key_file: `${dir}/key.pem`,
        dwt_src_tls_ca_file: `${dir}/cert.pem`,
      }),
    );
    await Deno.writeTextFile(
      `${dir}/caller.json`,
      JSON.stringify({ ...common, tls_ca_file: `${dir}/cert.pem`, dwt_src_tls_ca_file: `${dir}/cert.pem` }),
    );
    const { RpcApplication } = await import("./rpc_application.ts");
    const providerApp = await RpcApplication.init(["-i", `${dir}/provider.json`], { loop });
    const callerApp = await RpcApplication.init(["-i", `${dir}/caller.json`], { loop });
    const provider = await providerApp.provider();
    provider.registerService(ECHO, { Say: (request: { text: string }) => ({ text: `app ${request.text}` }) });
    await provider.start();
    const channel = await callerApp.channel();
    try {
      assert.equal((await channel.stub<{ Say: StubMethod }>(ECHO).Say({ text: "tls" })).text, "app tls");
      await assert.rejects(
        RpcApplication.init(["-i", `${dir}/bad.json`]).then(() => {}),
        /Cannot load RPC config/,
      );
    } finally {
      await channel.close();
      await provider.stop({ graceMs: 100 });
      await providerApp.close();
      await callerApp.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
