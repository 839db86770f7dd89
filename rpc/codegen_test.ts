import assert from "node:assert/strict";
import { generateTypeScript } from "./codegen.ts";
import { main as gen } from "./gen.ts";
import { readImports } from "./_proto_imports.ts";
import { loadProtoFile, parseProto, serviceDefinition } from "./service_definition.ts";
import { defaultBackend } from "../reactor/backend/default.ts";
import { needs } from "../reactor/testdata/permissions.ts";

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

Deno.test("generateTypeScript refuses a streaming method, naming it", () => {
  const proto = `syntax = "proto3"; package chat; message M { string text = 1; }
    service Chat { rpc Send(M) returns (M); rpc Watch(M) returns (stream M); rpc Talk(stream M) returns (stream M); }`;
  assert.throws(() => generateTypeScript(proto, { fileName: "chat.proto" }), {
    name: "TypeError",
    message:
      "Cannot generate method chat.Chat.Watch: it is server streaming ('stream'), and streaming is not supported yet; only unary methods are",
  });
  assert.throws(
    () => generateTypeScript(proto.replace("rpc Watch(M) returns (stream M);", ""), { fileName: "chat.proto" }),
    { message: /^Cannot generate method chat\.Chat\.Talk: it is bidirectional streaming/ },
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
