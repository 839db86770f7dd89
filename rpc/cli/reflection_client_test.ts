// The reflection client of `deno task call` against providers whose reflection lies, stalls, floods or is not
// there: each ends in a clear error within its deadline, and an honest but terse one (imports left out) is asked
// for what is missing.
import assert from "node:assert/strict";
import descriptor from "protobufjs/ext/descriptor/index.js";
import { defaultBackend } from "../../reactor/backend/default.ts";
import { EventLoop } from "../../reactor/event_loop.ts";
import {
  fileDescriptorSet,
  SERVER_REFLECTION_V1,
  SERVER_REFLECTION_V1ALPHA,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../reflection/mod.ts";
import type { CallContext } from "../server_handler.ts";
import { RpcChannel } from "../rpc_channel.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { RpcProvider } from "../rpc_provider.ts";
import { loadProtoFile, type ServiceDefinition, serviceDefinition } from "../service_definition.ts";
import { SchemaError } from "./_descriptor_schema.ts";
import { ReflectionClient } from "./_reflection_client.ts";
import { needs } from "../../reactor/testdata/permissions.ts";

type ReflectionHandler = (
  requests: AsyncIterable<ServerReflectionRequest>,
  context: CallContext,
) => AsyncIterable<Partial<ServerReflectionResponse>>;

/** The serialized FileDescriptorProtos of testdata/echo.proto and its import, by file name. */
async function echoFiles(): Promise<Map<string, Uint8Array>> {
  const root = await loadProtoFile(defaultBackend(), new URL("./testdata/echo.proto", import.meta.url).pathname);
  const set = descriptor.FileDescriptorSet.decode(fileDescriptorSet([serviceDefinition(root, "test.cli.Echo")]));
  const files = new Map<string, Uint8Array>();
  for (const file of (set as unknown as { file: { name: string }[] }).file) {
    files.set(file.name, descriptor.FileDescriptorProto.encode(file).finish());
  }
  return files;
}

/**
 * A provider whose reflection (under `services`) is `handler`, its own turned off, and a client of it; `run` gets
 * the client, then everything is closed.
 */
async function withReflection(
  handler: ReflectionHandler,
  run: (client: ReflectionClient) => Promise<void>,
  options: { services?: readonly ServiceDefinition[]; timeoutMs?: number } = {},
): Promise<void> {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop, reflection: false });
  for (const service of options.services ?? [SERVER_REFLECTION_V1]) {
    provider.registerService(service, { ServerReflectionInfo: handler });
  }
  await provider.start();
  const address = provider.advertisedAddress;
  const channel = new RpcChannel({
    loop,
    providers: { [SERVER_REFLECTION_V1.fullName]: [address], [SERVER_REFLECTION_V1ALPHA.fullName]: [address] },
  });
  try {
    await run(new ReflectionClient(channel, address, { timeoutMs: options.timeoutMs ?? 5000 }));
  } finally {
    await channel.close();
    await provider.stop();
  }
}

async function rejectsWith(promise: Promise<unknown>, code: RpcCode, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RpcError, String(error));
    assert.equal(error.codeName, new RpcError(code, "").codeName, error.message);
    assert.match(error.rawMessage, message);
    return true;
  });
}

Deno.test(
  "ReflectionClient asks by name for the imports a terse provider left out, on the same stream",
  needs("read"),
  async () => {
    const files = await echoFiles();
    const seen: ServerReflectionRequest[] = [];
    await withReflection(async function* (requests) {
      for await (const request of requests) {
        seen.push(request);
        const name = request.fileContainingSymbol ? "echo.proto" : request.fileByFilename!;
        yield { fileDescriptorResponse: { fileDescriptorProto: [files.get(name)!] } }; // never the imports
      }
    }, async (client) => {
      const schema = await client.schemaOf("test.cli.Echo");
      // The well-known import is not asked for: protobufjs has it.
      assert.deepEqual(schema.files.map((file) => file.name).sort(), ["echo.proto", "types.proto"]);
      assert.equal(schema.service("test.cli.Echo").methods.get("Echo")!.requestType.fullName, ".test.cli.Sample");
    });
    assert.deepEqual(seen.map((request) => request[request.messageRequest!]), [
      "test.cli.Echo",
      "types.proto",
    ]);
  },
);

Deno.test("ReflectionClient: bytes that are no FileDescriptorProto are a SchemaError", needs("read"), async () => {
  await withReflection(async function* (requests) {
    for await (const _ of requests) {
      yield { fileDescriptorResponse: { fileDescriptorProto: [new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])] } };
    }
  }, async (client) => {
    await assert.rejects(client.schemaOf("x.Y"), (error: unknown) => {
      assert.ok(error instanceof SchemaError, String(error));
      assert.match(error.message, /^Cannot use the schema from the reflection of 127\.0\.0\.1:\d+: /);
      return true;
    });
  });
});

Deno.test(
  "ReflectionClient: names that would inject declarations make the schema fail, not parse",
  needs("read"),
  async () => {
    const type = descriptor.FileDescriptorProto;
    const evil = type.encode(type.fromObject({
      name: "evil.proto",
      package: "x",
      syntax: "proto3",
      messageType: [{ name: "Y { } service Evil { rpc Go(Y) returns (Y); } message Z" }],
    })).finish();
    await withReflection(async function* (requests) {
      for await (const _ of requests) yield { fileDescriptorResponse: { fileDescriptorProto: [evil] } };
    }, async (client) => {
      const schema = await client.schemaOf("x.Y");
      assert.throws(() => schema.root(), SchemaError);
      assert.equal(schema.lookup("x.Evil"), undefined);
    });
  },
);

Deno.test(
  "ReflectionClient: a provider that never answers costs the deadline, then DEADLINE_EXCEEDED",
  needs("read"),
  async () => {
    await withReflection(async function* (requests, context) {
      for await (const _ of requests) {
        await new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }));
      }
      yield* [];
    }, async (client) => {
      const startedMs = performance.now();
      await rejectsWith(client.listServices(), RpcCode.DEADLINE_EXCEEDED, /deadline/);
      const tookMs = performance.now() - startedMs;
      assert.ok(tookMs >= 250 && tookMs < 3000, `the conversation ended after ${tookMs} ms`);
    }, { timeoutMs: 300 });
  },
);

Deno.test("ReflectionClient: more answers than requests, or none, are INTERNAL", needs("read"), async () => {
  await withReflection(async function* (requests) {
    for await (const _ of requests) {
      for (let i = 0; i < 1000; i++) yield { listServicesResponse: { service: [{ name: `flood.S${i}` }] } };
    }
  }, async (client) => {
    await rejectsWith(client.listServices(), RpcCode.INTERNAL, /answered more reflection requests than were sent/);
  });
  await withReflection(async function* () {
    yield* [];
  }, async (client) => {
    await rejectsWith(client.listServices(), RpcCode.INTERNAL, /ended the reflection stream with requests unanswered/);
  });
});

Deno.test(
  "ReflectionClient: the provider's error_response is its code; an unknown code is UNKNOWN",
  needs("read"),
  async () => {
    await withReflection(async function* (requests) {
      for await (const request of requests) {
        const errorCode = request.fileContainingSymbol === "x.Missing" ? RpcCode.NOT_FOUND : 4242;
        yield { errorResponse: { errorCode, errorMessage: "Cannot find it" } };
      }
    }, async (client) => {
      await rejectsWith(
        client.schemaOf("x.Missing"),
        RpcCode.NOT_FOUND,
        /cannot describe symbol 'x\.Missing': Cannot find it/,
      );
      await rejectsWith(client.schemaOf("x.Other"), RpcCode.UNKNOWN, /Cannot find it/);
    });
  },
);

Deno.test(
  "ReflectionClient falls back to v1alpha; with neither, UNIMPLEMENTED says to give --proto",
  needs("read"),
  async () => {
    await withReflection(async function* (requests) {
      for await (const _ of requests) yield { listServicesResponse: { service: [{ name: "old.Service" }] } };
    }, async (client) => {
      assert.deepEqual(await client.listServices(), ["old.Service"]);
    }, { services: [SERVER_REFLECTION_V1ALPHA] });
    await withReflection(async function* () {}, async (client) => {
      await rejectsWith(client.listServices(), RpcCode.UNIMPLEMENTED, /does not serve server reflection .*--proto/);
    }, { services: [] });
  },
);
