// gRPC server reflection on real sockets: a provider with the seed's example services, a .proto with imports (a
// well-known type and a file of ours) and a proto2 file with extensions, asked over the bidirectional stream as
// grpcurl would; the FileDescriptorProtos decoded with protobufjs's descriptor types and checked against the .proto.
import assert from "node:assert/strict";
import protobuf from "protobufjs";
import descriptor from "protobufjs/ext/descriptor/index.js";
import { defaultBackend } from "../../reactor/backend/default.ts";
import { EventLoop } from "../../reactor/event_loop.ts";
import { RegistryClient } from "../../registry/client/registry_client.ts";
import { RegistryServer } from "../../registry/server/registry_server.ts";
import { UserServiceRpc } from "../../examples/rpc/user_pb.ts";
import { InfoServiceRpc } from "../../examples/rpc/info_pb.ts";
import { parseRpcConfig } from "../rpc_application.ts";
import { RpcChannel, type StubMethod } from "../rpc_channel.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { RpcProvider, type RpcProviderOptions } from "../rpc_provider.ts";
import { loadProtoFile, parseProto, type ServiceDefinition, serviceDefinition } from "../service_definition.ts";
import { fileDescriptorSet } from "./file_descriptor_set.ts";
import { ServerReflection } from "./server_reflection.ts";
import {
  SERVER_REFLECTION_V1,
  SERVER_REFLECTION_V1ALPHA,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
  type ServerReflectionStub,
} from "./server_reflection_proto.ts";
import { needs } from "../../reactor/testdata/permissions.ts";

// What the tests read of a decoded google.protobuf.FileDescriptorProto (protobufjs's descriptor types: camelCase).
interface Field {
  name: string;
  number: number;
  label: number;
  type: number;
  typeName?: string;
  extendee?: string;
  jsonName?: string;
  oneofIndex?: number;
  proto3Optional?: boolean;
  defaultValue?: string;
}
interface Message {
  name: string;
  field: Field[];
  nestedType: Message[];
  enumType: { name: string; value: { name: string; number: number }[] }[];
  oneofDecl: { name: string }[];
  extension: Field[];
  extensionRange: { start: number; end: number }[];
  reservedRange: { start: number; end: number }[];
  reservedName: string[];
  options?: { mapEntry?: boolean };
}
interface Method {
  name: string;
  inputType: string;
  outputType: string;
  clientStreaming?: boolean;
  serverStreaming?: boolean;
  options?: { idempotencyLevel?: number };
}
interface File {
  name: string;
  package?: string;
  dependency: string[];
  messageType: Message[];
  enumType: { name: string; value: { name: string; number: number }[] }[];
  service: { name: string; method: Method[] }[];
  extension: Field[];
  syntax?: string;
}

const TYPE = { INT32: 5, INT64: 3, UINT32: 13, STRING: 9, GROUP: 10, MESSAGE: 11, ENUM: 14 } as const;
const LABEL = { OPTIONAL: 1, REQUIRED: 2, REPEATED: 3 } as const;

/** A field of a decoded message if it was on the wire (protobufjs answers unset ones from the prototype). */
function given<T extends object, K extends keyof T>(message: T, key: K): T[K] | undefined {
  return Object.hasOwn(message, key) ? message[key] : undefined;
}

function decodeFile(bytes: Uint8Array): File {
  return descriptor.FileDescriptorProto.decode(bytes) as unknown as File;
}

function filesOf(response: ServerReflectionResponse): File[] {
  assert.equal(response.errorResponse ?? undefined, undefined, JSON.stringify(response.errorResponse));
  assert.ok(response.fileDescriptorResponse, "a file_descriptor_response");
  return response.fileDescriptorResponse.fileDescriptorProto.map(decodeFile);
}

function namesOf(response: ServerReflectionResponse): string[] {
  return filesOf(response).map((file) => file.name);
}

/**
 * protoc's rule for a set of files: every type a file names is declared in it or in one of its direct imports,
 * every import is in the set, and no full name is declared twice.
 */
function assertResolvable(files: File[]): void {
  const declared = new Map<string, Set<string>>();
  const owner = new Map<string, string>();
  for (const file of files) {
    const names = new Set<string>();
    const scope = file.package ? `.${file.package}.` : ".";
    const addMessage = (message: Message, prefix: string) => {
      names.add(`${prefix}${message.name}`);
      for (const nested of message.nestedType) addMessage(nested, `${prefix}${message.name}.`);
      for (const enumeration of message.enumType) names.add(`${prefix}${message.name}.${enumeration.name}`);
    };
    for (const message of file.messageType) addMessage(message, scope);
    for (const enumeration of file.enumType) names.add(`${scope}${enumeration.name}`);
    for (const service of file.service) names.add(`${scope}${service.name}`);
    for (const name of names) {
      assert.equal(owner.get(name) ?? file.name, file.name, `${name} declared in ${owner.get(name)} and ${file.name}`);
      owner.set(name, file.name);
    }
    declared.set(file.name, names);
  }
  for (const file of files) {
    const visible = new Set(declared.get(file.name));
    for (const dependency of file.dependency) {
      assert.ok(declared.has(dependency), `${file.name} imports ${dependency}, which is not in the set`);
      for (const name of declared.get(dependency)!) visible.add(name);
    }
    const check = (typeName: string | undefined, where: string) => {
      if (typeName === undefined || typeName === "") return;
      assert.ok(typeName.startsWith("."), `${where}: '${typeName}' is fully qualified`);
      assert.ok(visible.has(typeName), `${file.name}: ${where} names ${typeName}, not declared in it or its imports`);
    };
    const checkMessage = (message: Message) => {
      for (const field of [...message.field, ...message.extension]) {
        check(field.typeName, `${message.name}.${field.name}`);
        check(field.extendee, `${message.name}.${field.name}`);
      }
      message.nestedType.forEach(checkMessage);
    };
    file.messageType.forEach(checkMessage);
    for (const extension of file.extension) {
      check(extension.typeName, extension.name);
      check(extension.extendee, extension.name);
    }
    for (const service of file.service) {
      for (const method of service.method) {
        check(method.inputType, `${service.name}.${method.name}`);
        check(method.outputType, `${service.name}.${method.name}`);
      }
    }
  }
}

/** One reflection stream, asked one request at a time, as grpcurl does. */
class Conversation {
  readonly #queue: ServerReflectionRequest[] = [];
  readonly #responses: AsyncIterator<ServerReflectionResponse>;
  #wake: (() => void) | undefined;
  #closed = false;

  constructor(stub: ServerReflectionStub) {
    this.#responses = stub.ServerReflectionInfo(this.#requests())[Symbol.asyncIterator]();
  }

  async *#requests(): AsyncGenerator<ServerReflectionRequest> {
    while (true) {
      while (this.#queue.length > 0) yield this.#queue.shift()!;
      if (this.#closed) return;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  async ask(request: ServerReflectionRequest): Promise<ServerReflectionResponse> {
    this.#queue.push(request);
    this.#wake?.();
    const next = await this.#responses.next();
    assert.equal(next.done, false, "the stream is still open");
    return next.value;
  }

  /** Half-close; the provider ends the stream OK. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    assert.equal((await this.#responses.next()).done, true);
  }
}

const TESTDATA = new URL("./testdata/", import.meta.url).pathname;

/** The services of the tests: the seed's two (generated code), shop.Orders (with imports) and legacy.Legacy. */
async function testServices(): Promise<{ orders: ServiceDefinition; legacy: ServiceDefinition }> {
  const backend = defaultBackend();
  const orders = serviceDefinition(await loadProtoFile(backend, `${TESTDATA}orders.proto`), "shop.Orders");
  const legacy = serviceDefinition(await loadProtoFile(backend, `${TESTDATA}legacy.proto`), "legacy.Legacy");
  return { orders, legacy };
}

interface Rig {
  provider: RpcProvider;
  channel: RpcChannel;
  loop: EventLoop;
  v1: ServerReflectionStub;
  v1alpha: ServerReflectionStub;
}

async function withReflection(use: (rig: Rig) => Promise<void>, options: Partial<RpcProviderOptions> = {}) {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop, ...options });
  const { orders, legacy } = await testServices();
  provider.registerService(UserServiceRpc, {
    Login: (request: { name: Uint8Array }) => ({ success: request.name.length > 0 }),
    Register: () => ({}),
  });
  provider.registerService(InfoServiceRpc, { GetInfo: () => ({}) });
  provider.registerService(orders, {
    GetOrder: () => ({}),
    Watch: async function* () {},
    Import: () => ({}),
    Sync: async function* () {},
  });
  provider.registerService(legacy, { Ping: (request: unknown) => request });
  await provider.start();
  const address = [provider.advertisedAddress];
  const channel = new RpcChannel({
    loop,
    providers: {
      [SERVER_REFLECTION_V1.fullName]: address,
      [SERVER_REFLECTION_V1ALPHA.fullName]: address,
      [UserServiceRpc.fullName]: address,
    },
  });
  try {
    await use({
      provider,
      channel,
      loop,
      v1: channel.stub<ServerReflectionStub>(SERVER_REFLECTION_V1),
      v1alpha: channel.stub<ServerReflectionStub>(SERVER_REFLECTION_V1ALPHA),
    });
  } finally {
    await channel.close();
    await provider.stop();
  }
}

const SERVED = ["dwt.UserServiceRpc", "dwt.InfoServiceRpc", "shop.Orders", "legacy.Legacy"];
const REFLECTION = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

Deno.test(
  "list_services names every service served, then the reflection services, on v1 and v1alpha",
  needs("read"),
  async () => {
    await withReflection(async ({ v1, v1alpha, provider }) => {
      for (const stub of [v1, v1alpha]) {
        const conversation = new Conversation(stub);
        const response = await conversation.ask({ host: "localhost", listServices: "" });
        assert.deepEqual(response.listServicesResponse?.service.map((service) => service.name), [
          ...SERVED,
          ...REFLECTION,
        ]);
        assert.equal(response.validHost, "localhost");
        assert.equal(response.originalRequest?.listServices, "", "the request comes back with its answer");
        await conversation.close();
      }
      assert.deepEqual(provider.services.map((service) => service.fullName), SERVED, "reflection is not 'services'");
    });
  },
);

Deno.test(
  "file_containing_symbol of a service sends its file, then each import, as the .proto declares them",
  needs("read"),
  async () => {
    await withReflection(async ({ v1 }) => {
      const conversation = new Conversation(v1);
      const files = filesOf(await conversation.ask({ fileContainingSymbol: "shop.Orders" }));
      assert.deepEqual(files.map((file) => file.name), [
        "orders.proto",
        "google/protobuf/timestamp.proto",
        "common/money.proto",
      ]);
      assertResolvable(files);
      const [orders, timestamp, money] = files as [File, File, File];
      assert.equal(orders.package, "shop");
      assert.equal(orders.syntax, "proto3");
      assert.deepEqual(orders.dependency, ["google/protobuf/timestamp.proto", "common/money.proto"]);
      assert.equal(timestamp.package, "google.protobuf");
      assert.deepEqual(timestamp.messageType.map((message) => message.name), ["Timestamp"]);
      assert.deepEqual(money.messageType[0]!.field.map((field) => [field.name, field.jsonName]), [
        ["currency_code", "currencyCode"],
        ["units", "units"],
        ["nanos", "nanos"],
      ]);

      // The service: each method's types and streaming flags, and its idempotency level.
      const service = orders.service[0]!;
      assert.equal(service.name, "Orders");
      const methods = service.method.map((method) => [
        method.name,
        method.inputType,
        method.outputType,
        method.clientStreaming ?? false,
        method.serverStreaming ?? false,
      ]);
      assert.deepEqual(methods, [
        ["GetOrder", ".shop.GetOrderRequest", ".shop.Order", false, false],
        ["Watch", ".shop.WatchRequest", ".shop.Order", false, true],
        ["Import", ".shop.Order", ".shop.GetOrderRequest", true, false],
        ["Sync", ".shop.Order", ".shop.Order", true, true],
      ]);
      assert.equal(service.method[0]!.options?.idempotencyLevel, 1, "NO_SIDE_EFFECTS");
      assert.equal(service.method[1]!.options, null, "no options where the .proto has none");

      // The messages: names as written (snake_case) with protoc's json_name, labels, types, nesting, map entry,
      // oneofs (the synthetic one of `optional` last), reserved ranges (end exclusive) and names.
      assert.deepEqual(orders.messageType.map((message) => message.name), ["Order", "GetOrderRequest", "WatchRequest"]);
      assert.deepEqual(orders.enumType[0]!.value.map((value) => [value.name, value.number]), [
        ["STATUS_UNSPECIFIED", 0],
        ["OPEN", 1],
        ["SHIPPED", 2],
      ]);
      const order = orders.messageType[0]!;
      const fields = order.field.map((field) => ({
        name: field.name,
        number: field.number,
        label: field.label,
        type: field.type,
        typeName: field.typeName || undefined,
        jsonName: field.jsonName,
        oneofIndex: given(field, "oneofIndex"),
        proto3Optional: given(field, "proto3Optional"),
      }));
      const one = (name: string, number: number, label: number, type: number, more: object = {}) => ({
        name,
        number,
        label,
        type,
        typeName: undefined,
        jsonName: name.replace(/_([a-z])/g, (_m, letter: string) => letter.toUpperCase()),
        oneofIndex: undefined,
        proto3Optional: undefined,
        ...more,
      });
      assert.deepEqual(fields, [
        one("order_id", 1, LABEL.OPTIONAL, TYPE.STRING),
        one("lines", 2, LABEL.REPEATED, TYPE.MESSAGE, { typeName: ".shop.Order.Line" }),
        one("placed_at", 3, LABEL.OPTIONAL, TYPE.MESSAGE, { typeName: ".google.protobuf.Timestamp" }),
        one("status", 4, LABEL.OPTIONAL, TYPE.ENUM, { typeName: ".shop.Status" }),
        one("stock_by_sku", 5, LABEL.REPEATED, TYPE.MESSAGE, { typeName: ".shop.Order.StockBySkuEntry" }),
        one("card_token", 6, LABEL.OPTIONAL, TYPE.STRING, { oneofIndex: 0 }),
        one("voucher_code", 7, LABEL.OPTIONAL, TYPE.STRING, { oneofIndex: 0 }),
        one("gift_note", 8, LABEL.OPTIONAL, TYPE.STRING, { oneofIndex: 1, proto3Optional: true }),
      ]);
      assert.deepEqual(order.oneofDecl.map((oneof) => oneof.name), ["payment", "_gift_note"]);
      assert.deepEqual(order.nestedType.map((nested) => nested.name), ["Line", "StockBySkuEntry"]);
      const entry = order.nestedType[1]!;
      assert.equal(entry.options?.mapEntry, true);
      assert.deepEqual(entry.field.map((field) => [field.name, field.number, field.type]), [
        ["key", 1, TYPE.STRING],
        ["value", 2, TYPE.INT64],
      ]);
      const line = order.nestedType[0]!;
      assert.deepEqual(line.field.map((field) => [field.name, field.type, field.typeName || undefined]), [
        ["sku", TYPE.STRING, undefined],
        ["quantity", TYPE.UINT32, undefined],
        ["unit_price", TYPE.MESSAGE, ".common.Money"],
      ]);
      assert.deepEqual(order.reservedRange.map((range) => [range.start, range.end]), [[9, 10], [12, 15]]);
      assert.deepEqual(order.reservedName, ["legacy"]);
      await conversation.close();
    });
  },
);

Deno.test(
  "On one stream each import is sent once; the file asked for always is; a new stream starts over",
  needs("read"),
  async () => {
    await withReflection(async ({ v1 }) => {
      const first = new Conversation(v1);
      assert.deepEqual(namesOf(await first.ask({ fileContainingSymbol: "shop.Order.Line" })), [
        "orders.proto",
        "google/protobuf/timestamp.proto",
        "common/money.proto",
      ]);
      assert.deepEqual(namesOf(await first.ask({ fileContainingSymbol: "shop.Orders.Watch" })), ["orders.proto"]);
      assert.deepEqual(namesOf(await first.ask({ fileByFilename: "orders.proto" })), ["orders.proto"]);
      assert.deepEqual(namesOf(await first.ask({ fileByFilename: "common/money.proto" })), ["common/money.proto"]);
      await first.close();

      const second = new Conversation(v1);
      assert.deepEqual(namesOf(await second.ask({ fileByFilename: "common/money.proto" })), ["common/money.proto"]);
      assert.deepEqual(namesOf(await second.ask({ fileContainingSymbol: "shop.Orders" })), [
        "orders.proto",
        "google/protobuf/timestamp.proto",
      ]);
      await second.close();
    });
  },
);

Deno.test("file_containing_symbol finds every kind of name, with or without a leading dot", needs("read"), async () => {
  await withReflection(async ({ v1 }) => {
    const conversation = new Conversation(v1);
    const fileOf = async (symbol: string) => namesOf(await conversation.ask({ fileContainingSymbol: symbol }))[0];
    const expected: [string, string][] = [
      ["shop.Orders", "orders.proto"], // service
      ["shop.Orders.GetOrder", "orders.proto"], // method
      ["shop.Order", "orders.proto"], // message
      [".shop.Order", "orders.proto"],
      ["shop.Order.Line", "orders.proto"], // nested message
      ["shop.Order.StockBySkuEntry", "orders.proto"], // map entry
      ["shop.Order.order_id", "orders.proto"], // field
      ["shop.Order.payment", "orders.proto"], // oneof
      ["shop.Status", "orders.proto"], // enum
      ["shop.OPEN", "orders.proto"], // enum value, scoped beside its enum
      ["common.Money", "common/money.proto"],
      ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
      ["legacy.trace_id", "legacy.proto"], // extension
      ["legacy.Envelope.Meta", "legacy.proto"], // group
      // Generated code parses its .proto with no file name: one file per service's .proto, named for it.
      ["dwt.UserServiceRpc", "user.proto"],
      ["dwt.LoginRequest", "user.proto"],
      ["dwt.InfoServiceRpc.GetInfo", "info.proto"],
      ["grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto"],
      ["grpc.reflection.v1alpha.ServerReflectionResponse", "grpc/reflection/v1alpha/reflection.proto"],
    ];
    for (const [symbol, file] of expected) assert.equal(await fileOf(symbol), file, symbol);
    await conversation.close();
  });
});

Deno.test("The seed's generated services and the reflection .proto are described in full", needs("read"), async () => {
  await withReflection(async ({ v1 }) => {
    const conversation = new Conversation(v1);
    const [user] = filesOf(await conversation.ask({ fileContainingSymbol: "dwt.UserServiceRpc.Login" }));
    assert.equal(user!.package, "dwt");
    assert.deepEqual(user!.dependency, []);
    assert.deepEqual(user!.messageType.map((message) => message.name), [
      "ResultCode",
      "LoginRequest",
      "LoginResponse",
      "RegisterRequest",
      "RegisterResponse",
    ]);
    assert.deepEqual(user!.messageType[2]!.field.map((field) => [field.name, field.type, field.typeName || ""]), [
      ["result", TYPE.MESSAGE, ".dwt.ResultCode"],
      ["success", 8, ""],
    ]);
    const [reflection] = filesOf(await conversation.ask({ fileContainingSymbol: REFLECTION[0]! }));
    const method = reflection!.service[0]!.method[0]!;
    assert.deepEqual([method.name, method.clientStreaming, method.serverStreaming], [
      "ServerReflectionInfo",
      true,
      true,
    ]);
    const request = reflection!.messageType.find((message) => message.name === "ServerReflectionRequest")!;
    assert.deepEqual(request.field.map((field) => [field.name, field.number, given(field, "oneofIndex")]), [
      ["host", 1, undefined],
      ["file_by_filename", 3, 0],
      ["file_containing_symbol", 4, 0],
      ["file_containing_extension", 5, 0],
      ["all_extension_numbers_of_type", 6, 0],
      ["list_services", 7, 0],
    ]);
    assert.deepEqual(request.oneofDecl.map((oneof) => oneof.name), ["message_request"]);
    await conversation.close();
  });
});

Deno.test(
  "proto2: required and default, groups, extensions found by number and listed by type",
  needs("read"),
  async () => {
    await withReflection(async ({ v1 }) => {
      const conversation = new Conversation(v1);
      const files = filesOf(
        await conversation.ask({
          fileContainingExtension: { containingType: "legacy.Envelope", extensionNumber: 101 },
        }),
      );
      assert.deepEqual(files.map((file) => file.name), ["legacy.proto"]);
      const legacy = files[0]!;
      assert.equal(legacy.syntax || "proto2", "proto2");
      const envelope = legacy.messageType[0]!;
      assert.deepEqual(envelope.field.map((field) => [field.name, field.label, field.type, field.defaultValue || ""]), [
        ["id", LABEL.REQUIRED, TYPE.STRING, ""],
        ["retries", LABEL.OPTIONAL, TYPE.INT32, "3"],
        ["meta", LABEL.OPTIONAL, TYPE.GROUP, ""],
      ]);
      assert.deepEqual(envelope.extensionRange.map((range) => [range.start, range.end]), [[100, 200]]);
      assert.deepEqual(legacy.extension.map((field) => [field.name, field.number, field.extendee, field.label]), [
        ["trace_id", 100, ".legacy.Envelope", LABEL.OPTIONAL],
        ["hops", 101, ".legacy.Envelope", LABEL.REPEATED],
      ]);
      assertResolvable(files);

      const numbers = await conversation.ask({ allExtensionNumbersOfType: "legacy.Envelope" });
      assert.deepEqual({ ...numbers.allExtensionNumbersResponse }, {
        baseTypeName: "legacy.Envelope",
        extensionNumber: [100, 101],
      });
      const none = await conversation.ask({ allExtensionNumbersOfType: ".shop.Order" });
      assert.deepEqual(none.allExtensionNumbersResponse?.extensionNumber, [], "a message with no extensions: none");
      await conversation.close();
    });
  },
);

Deno.test(
  "What is not there is answered NOT_FOUND in the stream, which goes on; a request of nothing INVALID_ARGUMENT",
  needs("read"),
  async () => {
    await withReflection(async ({ v1 }) => {
      const conversation = new Conversation(v1);
      const missing: ServerReflectionRequest[] = [
        { fileByFilename: "nope.proto" },
        { fileContainingSymbol: "shop.Nope" },
        { fileContainingSymbol: "" },
        { fileContainingExtension: { containingType: "shop.Order", extensionNumber: 100 } },
        { fileContainingExtension: { containingType: "legacy.Envelope", extensionNumber: 150 } },
        { allExtensionNumbersOfType: "shop.Nope" },
        { allExtensionNumbersOfType: "shop.Status" }, // an enum, not a message
      ];
      for (const request of missing) {
        const response = await conversation.ask(request);
        assert.equal(response.errorResponse?.errorCode, RpcCode.NOT_FOUND, JSON.stringify(request));
        assert.match(response.errorResponse.errorMessage, /^Cannot find/);
        assert.equal(response.fileDescriptorResponse ?? undefined, undefined);
      }
      const nothing = await conversation.ask({ host: "h" });
      assert.equal(nothing.errorResponse?.errorCode, RpcCode.INVALID_ARGUMENT);
      const list = await conversation.ask({ listServices: "*" });
      assert.equal(list.listServicesResponse?.service.length, SERVED.length + REFLECTION.length);
      assert.deepEqual(namesOf(await conversation.ask({ fileByFilename: "common/money.proto" })), [
        "common/money.proto",
      ]);
      await conversation.close();
    });
  },
);

Deno.test(
  "A provider with reflection off answers UNIMPLEMENTED; config key rpcserver_reflection turns it off",
  needs("read"),
  async () => {
    await withReflection(async ({ v1 }) => {
      await assert.rejects(
        async () => {
          for await (const _ of v1.ServerReflectionInfo([{ listServices: "" }])) {
            // nothing comes
          }
        },
        (error: RpcError) => error instanceof RpcError && error.code === RpcCode.UNIMPLEMENTED,
      );
    }, { reflection: false });
    const base = { dwt_src_ip: "127.0.0.1", dwt_src_port: 10606 };
    assert.equal(
      parseRpcConfig({ ...base, rpcserver_reflection: "false" }, "p.json").rpcserverLimits.reflection,
      false,
    );
    assert.equal(parseRpcConfig({ ...base, rpcserver_reflection: true }, "p.json").rpcserverLimits.reflection, true);
    assert.equal(parseRpcConfig(base, "p.json").rpcserverLimits.reflection, undefined, "absent: the default, on");
    assert.throws(() => parseRpcConfig({ ...base, rpcserver_reflection: "yes" }, "p.json"), /'rpcserver_reflection'/);
  },
);

Deno.test(
  "The registry gets the services, not the reflection services (they describe one provider)",
  needs("read"),
  async () => {
    const loop = new EventLoop();
    const server = new RegistryServer({ port: 0, loop });
    await server.start();
    const registry = await RegistryClient.connect(server.address, { loop });
    const provider = new RpcProvider({ loop, registry });
    provider.registerService(UserServiceRpc, { Login: () => ({}), Register: () => ({}) });
    try {
      await provider.start();
      assert.deepEqual(await registry.children("/dwt.UserServiceRpc"), [provider.advertisedAddress]);
      for (const name of REFLECTION) assert.equal(await registry.exists(`/${name}`), undefined, name);
    } finally {
      await provider.stop();
      await registry.close();
      await server.stop();
    }
  },
);

Deno.test(
  "fileDescriptorSet: every file once, each after its imports; protobufjs loads it and encodes alike",
  needs("read"),
  async () => {
    const { orders, legacy } = await testServices();
    const bytes = fileDescriptorSet([UserServiceRpc, orders, legacy]);
    const set = descriptor.FileDescriptorSet.decode(bytes) as unknown as { file: File[] };
    assert.deepEqual(set.file.map((file) => file.name), [
      "user.proto",
      "google/protobuf/timestamp.proto",
      "common/money.proto",
      "orders.proto",
      "legacy.proto",
    ]);
    assertResolvable(set.file);

    // The schema from the set encodes an Order as the original does (field numbers, types and nesting agree).
    const loaded = (protobuf.Root as unknown as { fromDescriptor(bytes: Uint8Array): protobuf.Root }).fromDescriptor(
      bytes,
    );
    const method = loaded.lookupService("shop.Orders").methods["Sync"]!;
    assert.deepEqual([method.requestStream, method.responseStream], [true, true]);
    const order = {
      orderId: "o-1",
      lines: [{ sku: "tea", quantity: 2, unitPrice: { currencyCode: "EUR", units: 3, nanos: 500_000_000 } }],
      placedAt: { seconds: 1_700_000_000, nanos: 1 },
      status: 1,
      stockBySku: { tea: 7 },
      voucherCode: "V",
      giftNote: "",
    };
    const original = orders.methods.get("GetOrder")!.responseType;
    const copy = loaded.lookupType("shop.Order");
    const encoded = original.encode(original.fromObject(order)).finish();
    const decoded = copy.toObject(copy.decode(encoded), { longs: Number }); // the copy keeps the .proto's names
    assert.deepEqual(copy.encode(copy.fromObject(decoded)).finish(), encoded);
    assert.equal(decoded["order_id"], "o-1");
    assert.deepEqual(decoded["lines"][0]["unit_price"], { currency_code: "EUR", units: 3, nanos: 500_000_000 });
    // protobufjs's fromDescriptor reads a map as the repeated entries it is on the wire.
    assert.deepEqual(decoded["stock_by_sku"], [{ key: "tea", value: 7 }]);
    assert.equal(decoded["voucher_code"], "V");
    assert.equal(decoded["gift_note"], "", "a proto3 optional set to its default is kept");
  },
);

Deno.test(
  "Files with no name: one per Root and package, the same file from two Roots once, a clash numbered",
  needs("read"),
  () => {
    const text = `syntax = "proto3"; package demo; message Msg { string text = 1; }
    service Echo { rpc Say (Msg) returns (Msg); }`;
    const a = serviceDefinition(parseProto(text), "demo.Echo");
    const b = serviceDefinition(parseProto(text), "demo.Echo");
    const other = serviceDefinition(
      parseProto(`syntax = "proto3"; package demo; message Other { int32 n = 1; }
    service Echo { rpc Say (Other) returns (Other); }`),
      "demo.Echo",
    );
    const names = (services: ServiceDefinition[]) =>
      (descriptor.FileDescriptorSet.decode(fileDescriptorSet(services)) as unknown as { file: File[] }).file
        .map((file) => file.name);
    assert.deepEqual(names([a, b]), ["demo/Echo.proto"]);
    assert.deepEqual(names([a, other]), ["demo/Echo.proto", "demo/Echo_2.proto"]);

    // A definition made by hand (no Service in its Root) gets a file of its own importing its types' file.
    const msg = a.methods.get("Say")!.requestType;
    const handMade: ServiceDefinition = {
      fullName: "hand.Made",
      methods: new Map([["Do", { name: "Do", kind: "server_streaming", requestType: msg, responseType: msg }]]),
    };
    const set = descriptor.FileDescriptorSet.decode(fileDescriptorSet([handMade])) as unknown as { file: File[] };
    assert.deepEqual(set.file.map((file) => [file.name, file.dependency]), [
      ["demo/Echo.proto", []],
      ["hand.Made.proto", ["demo/Echo.proto"]],
    ]);
    const made = set.file[1]!.service[0]!.method[0]!;
    assert.deepEqual([made.inputType, made.serverStreaming, made.clientStreaming ?? false], [".demo.Msg", true, false]);
    assertResolvable(set.file);
  },
);

Deno.test("ServerReflection.answer works without a socket and on plain objects", needs("read"), () => {
  const reflection = new ServerReflection([UserServiceRpc]);
  const sent = new Set<string>();
  const answer = reflection.answer({ fileContainingSymbol: "dwt.LoginResponse" }, sent);
  assert.equal(answer.fileDescriptorResponse?.fileDescriptorProto.length, 1);
  assert.deepEqual([...sent], ["user.proto"]);
  assert.deepEqual(reflection.serviceNames, ["dwt.UserServiceRpc", ...REFLECTION]);
});

Deno.test(
  "A hostile reflection client: long names, a message past the window, thousands of requests unread; an honest caller is served meanwhile",
  needs("read"),
  async () => {
    await withReflection(async ({ v1, channel }) => {
      const login = channel.stub<{ Login: StubMethod }>(UserServiceRpc);
      // A name near the stream window (64 KiB) is looked up and answered NOT_FOUND, its echo and all.
      const conversation = new Conversation(v1);
      const long = "x".repeat(60_000);
      const answer = await conversation.ask({ fileContainingSymbol: long });
      assert.equal(answer.errorResponse?.errorCode, RpcCode.NOT_FOUND);
      assert.ok(answer.errorResponse.errorMessage.length < 400, "the message does not repeat the name");
      assert.equal((await login.Login({ name: new TextEncoder().encode("a") })).success, true);
      await conversation.close();

      // A message past the window comes alone (the window bounds what is buffered, not a message's size): answered
      // NOT_FOUND, briefly, like the long name above.
      const huge: ServerReflectionResponse[] = [];
      for await (const response of v1.ServerReflectionInfo([{ fileContainingSymbol: "y".repeat(200_000) }])) {
        huge.push(response);
      }
      assert.equal(huge.length, 1);
      assert.equal(huge[0]!.errorResponse?.errorCode, RpcCode.NOT_FOUND);
      assert.ok(huge[0]!.errorResponse!.errorMessage.length < 400, "the message does not repeat the name");

      // 5,000 requests sent at once, their answers read only after: every one answered, in order, with the
      // imports sent once; the honest caller is answered while they flow.
      const count = 5_000;
      const requests = function* (): Generator<ServerReflectionRequest> {
        for (let i = 0; i < count; i++) {
          yield i % 2 === 0
            ? { fileContainingSymbol: "shop.Orders", host: String(i) }
            : { fileByFilename: `nope-${i}.proto`, host: String(i) };
        }
      };
      let answered = 0;
      let files = 0;
      const honest = login.Login({ name: new TextEncoder().encode("b") });
      for await (const response of v1.ServerReflectionInfo(requests(), { timeoutMs: 30_000 })) {
        assert.equal(response.validHost, String(answered));
        if (answered % 2 === 0) files += response.fileDescriptorResponse!.fileDescriptorProto.length;
        else assert.equal(response.errorResponse?.errorCode, RpcCode.NOT_FOUND);
        answered++;
      }
      assert.equal(answered, count);
      assert.equal(files, count / 2 + 2, "orders.proto every time, its two imports once");
      assert.equal((await honest).success, true);
    });
  },
);

Deno.test("Workers serve reflection too (threads: 2)", needs("read"), async () => {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop, threads: 2 });
  await provider.registerModule(new URL("../../examples/rpc/user_service.ts", import.meta.url).href);
  await provider.start();
  const channels: RpcChannel[] = [];
  try {
    // Several connections, so that both Workers' sockets are reached.
    for (let i = 0; i < 6; i++) {
      const channel = new RpcChannel({
        loop,
        providers: { [SERVER_REFLECTION_V1.fullName]: [provider.advertisedAddress] },
      });
      channels.push(channel);
      const conversation = new Conversation(channel.stub<ServerReflectionStub>(SERVER_REFLECTION_V1));
      const response = await conversation.ask({ listServices: "" });
      assert.deepEqual(response.listServicesResponse?.service.map((service) => service.name), [
        "dwt.UserServiceRpc",
        ...REFLECTION,
      ]);
      await conversation.close();
    }
  } finally {
    for (const channel of channels) await channel.close();
    await provider.stop();
  }
});
