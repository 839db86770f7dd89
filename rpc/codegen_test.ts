import assert from "node:assert/strict";
import { generateTypeScript } from "./codegen.ts";
import { main as gen } from "./gen.ts";
import { readImports } from "./_proto_imports.ts";
import { loadProtoFile, parseProto, serviceDefinition } from "./service_definition.ts";
import type { CallContext } from "./server_handler.ts";
import { defaultBackend } from "../reactor/backend/default.ts";
import { needs } from "../reactor/testdata/permissions.ts";
import { FeedBase, type FeedStub, type Post, type Topic, type UploadSummary } from "./testdata/codegen/streams_pb.ts";

const GOLDEN = new URL("./testdata/codegen/", import.meta.url);

async function goldenInput(name: string): Promise<{ text: string; imports: Record<string, string> }> {
  const path = new URL(name, GOLDEN).pathname;
  const text = await Deno.readTextFile(path);
  return { text, imports: await readImports(path, text, { readText: (file) => Deno.readTextFile(file) }) };
}

Deno.test(
  "generateTypeScript writes the golden output byte for byte (relative and well-known imports)",
  needs("read"),
  async () => {
    const { text, imports } = await goldenInput("orders.proto");
    assert.deepEqual(Object.keys(imports), ["common/money.proto"]);
    const code = generateTypeScript(text, { fileName: "orders.proto", importFrom: "../../mod.ts", imports });
    // Regenerate after a deliberate change: deno task gen --import ../../mod.ts rpc/testdata/codegen/orders.proto
    assert.equal(code, await Deno.readTextFile(new URL("orders_pb.ts", GOLDEN)));
  },
);

Deno.test("the examples' generated modules are what the generator writes now", needs("read"), async () => {
  for (const name of ["user", "info"]) {
    const path = new URL(`../examples/rpc/${name}.proto`, import.meta.url);
    const code = generateTypeScript(await Deno.readTextFile(path), {
      fileName: `${name}.proto`,
      importFrom: "../../rpc/mod.ts",
    });
    assert.equal(code, await Deno.readTextFile(new URL(`../examples/rpc/${name}_pb.ts`, import.meta.url)), name);
  }
});

Deno.test(
  "generated code with imports round-trips well-known and imported types, 64-bit fields as bigint",
  needs("read"),
  async () => {
    const generated = await import("./testdata/codegen/orders_pb.ts");
    const definition = generated.Orders;
    assert.equal(definition.fullName, "shop.Orders");
    assert.equal(definition.methods.get("Ping")!.requestType.fullName, ".google.protobuf.Empty");
    const Order = generated.root.lookupType("shop.Order");
    const bytes = Order.encode(Order.fromObject({
      id: "18446744073709551615",
      placedAt: { seconds: 1_700_000_000, nanos: 5 },
      lines: [{ sku: "a", quantity: 2, price: { currency: "EUR", units: 3, nanos: 0 } }],
      note: { value: "gift" },
    })).finish();
    const decoded = Order.toObject(Order.decode(bytes), { longs: String }) as Record<string, unknown>;
    assert.equal(decoded.id, "18446744073709551615");
    assert.deepEqual(decoded.placedAt, { seconds: "1700000000", nanos: 5 });
    assert.deepEqual(decoded.note, { value: "gift" });
    assert.equal(((decoded.lines as Record<string, unknown>[])[0]!.price as Record<string, unknown>).currency, "EUR");
  },
);

Deno.test(
  "generateTypeScript writes the streaming golden byte for byte, and it passes deno check and deno lint",
  needs("read", "run"),
  async () => {
    const { text, imports } = await goldenInput("streams.proto");
    const code = generateTypeScript(text, { fileName: "streams.proto", importFrom: "../../mod.ts", imports });
    // Regenerate after a deliberate change: deno task gen --import ../../mod.ts rpc/testdata/codegen/streams.proto
    assert.equal(code, await Deno.readTextFile(new URL("streams_pb.ts", GOLDEN)));
    // This module imports the golden, so `deno test` checks it too; a check of its own says so even under --no-check,
    // and lint finds an import the module does not use.
    const path = new URL("streams_pb.ts", GOLDEN).pathname;
    for (const command of ["check", "lint"]) {
      const output = await new Deno.Command(Deno.execPath(), {
        args: [command, path],
        cwd: new URL("../", import.meta.url).pathname,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decoder = new TextDecoder();
      assert.equal(output.code, 0, `deno ${command}: ${decoder.decode(output.stdout)}${decoder.decode(output.stderr)}`);
    }
  },
);

// The generated base class takes generator methods, async or not, as a service author writes them; a wrong shape
// is a compile error (the @ts-expect-error lines fail the type check when it is not).
class FeedService extends FeedBase {
  Latest(request: Topic): Partial<Post> {
    return { topic: request.name, text: "latest" };
  }
  async *Watch(request: Topic, context: CallContext): AsyncGenerator<Partial<Post>> {
    for (let sequence = 1n; sequence <= 3n && !context.signal.aborted; sequence++) {
      yield { topic: request.name, sequence };
    }
  }
  async Upload(requests: AsyncIterable<Post>): Promise<Partial<UploadSummary>> {
    let posts = 0;
    let bytes = 0n;
    for await (const post of requests) {
      posts++;
      bytes += BigInt(post.text.length);
    }
    return { posts, bytes };
  }
  async *Chat(requests: AsyncIterable<Post>): AsyncGenerator<Partial<Post>> {
    for await (const post of requests) yield { ...post, text: post.text.toUpperCase() };
  }
}

// Checked for their types only: what else the base class takes, what it refuses, and what the stub's callers get.
abstract class _SyncWatch extends FeedBase {
  // A server-streaming handler may be a plain generator.
  *Watch(request: Topic): Generator<Partial<Post>> {
    yield { topic: request.name };
  }
}

abstract class _WrongShapes extends FeedBase {
  // @ts-expect-error: a bidirectional handler returns an AsyncIterable, not a plain generator.
  *Chat(): Generator<Partial<Post>> {}
  // @ts-expect-error: a client-streaming handler reads an AsyncIterable of requests, not one request.
  Upload(request: Post): Partial<UploadSummary> {
    return { posts: request.text === "" ? 0 : 1 };
  }
  // @ts-expect-error: the responses are Posts, whose sequence is a bigint.
  async *Watch(): AsyncGenerator<{ sequence: string }> {}
}

const _stubCalls = {
  watch: async (stub: FeedStub): Promise<bigint[]> => {
    const sequences: bigint[] = [];
    for await (const post of stub.Watch({ name: "news" })) sequences.push(post.sequence);
    return sequences;
  },
  upload: (stub: FeedStub): Promise<UploadSummary> => stub.Upload([{ text: "a" }, { text: "bc" }]),
  chat: (stub: FeedStub, texts: AsyncIterable<string>): AsyncIterable<Post> =>
    stub.Chat((async function* () {
      for await (const text of texts) yield { text };
    })()),
  // @ts-expect-error: a streaming stub method's result is iterated, not awaited as one response.
  wrongWatch: async (stub: FeedStub): Promise<Post> => await stub.Watch({ name: "news" }),
};

Deno.test("a class extending a generated base implements each streaming kind with generator methods", async () => {
  const controller = new AbortController();
  const context: CallContext = {
    service: "feed.Feed",
    method: "",
    signal: controller.signal,
    metadata: {},
    responseMetadata: {},
    peer: "test",
    timeRemainingMs: () => Infinity,
  };
  const service: FeedBase = new FeedService();
  const collect = async <T>(iterable: AsyncIterable<T> | Iterable<T>) => {
    const items: T[] = [];
    for await (const item of iterable) items.push(item);
    return items;
  };
  async function* posts(...texts: string[]): AsyncGenerator<Post> {
    for (const text of texts) yield { topic: "t", text, sequence: 0n };
  }
  assert.deepEqual(await service.Latest({ name: "t" }, context), { topic: "t", text: "latest" });
  assert.deepEqual((await collect(service.Watch({ name: "t" }, context))).map((post) => post.sequence), [1n, 2n, 3n]);
  assert.deepEqual(await service.Upload(posts("a", "bc"), context), { posts: 2, bytes: 3n });
  assert.deepEqual((await collect(service.Chat(posts("hi", "yo"), context))).map((post) => post.text), ["HI", "YO"]);
});

Deno.test("generateTypeScript imports only the names the module uses", () => {
  const importsOf = (proto: string) =>
    /^import \{\n([^}]*)\} from/m.exec(generateTypeScript(proto, { fileName: "x.proto" }))![1]!
      .trim().split(/,\s*/).filter((name) => name !== "");
  const messages = `syntax = "proto3"; package p; message M { string text = 1; }`;
  assert.deepEqual(importsOf(messages), ["parseProto"]);
  assert.deepEqual(importsOf(`${messages} service S {}`), [
    "parseProto",
    "type RpcChannel",
    "serviceDefinition",
    "type ServiceDefinition",
  ]);
  assert.deepEqual(importsOf(`${messages} service S { rpc Watch(M) returns (stream M); }`), [
    "type CallContext",
    "parseProto",
    "type RpcChannel",
    "type ServerStreamingStubMethod",
    "serviceDefinition",
    "type ServiceDefinition",
  ]);
  assert.deepEqual(
    importsOf(`${messages} service S { rpc Talk(stream M) returns (stream M); rpc Say(M) returns (M); }`),
    [
      "type BidiStreamingStubMethod",
      "type CallContext",
      "parseProto",
      "type RpcChannel",
      "serviceDefinition",
      "type ServiceDefinition",
      "type StubMethod",
    ],
  );
});

Deno.test("generateTypeScript names an import it cannot resolve and a TypeScript name clash", () => {
  assert.throws(
    () => generateTypeScript(`syntax = "proto3"; import "other.proto";`, { fileName: "a.proto" }),
    { name: "TypeError", message: /^Cannot resolve import 'other\.proto' of the \.proto/ },
  );
  assert.throws(
    () => generateTypeScript(`syntax = "proto3"; import "google/protobuf/descriptor.proto";`, { fileName: "a.proto" }),
    { message: /well-known types available are google\/protobuf\/any\.proto/ },
  );
  assert.throws(
    () =>
      generateTypeScript(`syntax = "proto3"; package p; import "b.proto"; message q_A { .q.A x = 1; }`, {
        fileName: "a.proto",
        imports: { "b.proto": `syntax = "proto3"; message q { message A {} }` },
      }),
    { message: "Cannot generate both p.q_A and q.A: both would be named q_A in TypeScript" },
  );
});

Deno.test(
  "parseProto resolves well-known imports by itself; loadProtoFile reads relative imports",
  needs("read"),
  async () => {
    const root = parseProto(`syntax = "proto3"; import "google/protobuf/duration.proto";
    message T { google.protobuf.Duration d = 1; }`);
    assert.equal(root.lookupType("T").fields.d!.resolvedType!.fullName, ".google.protobuf.Duration");
    const loaded = await loadProtoFile(defaultBackend(), new URL("orders.proto", GOLDEN).pathname);
    assert.equal(serviceDefinition(loaded, "shop.Orders").methods.size, 3);
    assert.equal(loaded.lookupType("shop.common.Money").fields.units!.type, "int64");
  },
);

Deno.test(
  "deno task gen --check passes on current output, fails naming a stale one, writes nothing",
  needs("read", "write"),
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.mkdir(`${dir}/common`);
      await Deno.copyFile(new URL("orders.proto", GOLDEN), `${dir}/orders.proto`);
      await Deno.copyFile(new URL("common/money.proto", GOLDEN), `${dir}/common/money.proto`);
      assert.equal(await gen(["--check", "--import", "../../mod.ts", `${dir}/orders.proto`]), 1); // missing
      assert.equal(await gen(["--import", "../../mod.ts", `${dir}/orders.proto`]), 0);
      assert.equal(
        await Deno.readTextFile(`${dir}/orders_pb.ts`),
        await Deno.readTextFile(new URL("orders_pb.ts", GOLDEN)),
      );
      assert.equal(await gen(["--check", "--import", "../../mod.ts", `${dir}/orders.proto`]), 0);
      await Deno.writeTextFile(`${dir}/common/money.proto`, "\n// changed\n", { append: true });
      const before = await Deno.readTextFile(`${dir}/orders_pb.ts`);
      assert.equal(await gen(["--check", "--import", "../../mod.ts", `${dir}/orders.proto`]), 1);
      assert.equal(await Deno.readTextFile(`${dir}/orders_pb.ts`), before);
      assert.equal(await gen([]), 2);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
