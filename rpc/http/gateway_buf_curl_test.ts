// `buf curl` (npm @bufbuild/buf, its offline binary) calling a provider's gateway over HTTP/1.1: with the examples'
// .proto files as its schema, with a schema that imports well-known types, and with the FileDescriptorSet it
// downloads from the gateway itself. buf runs with its proxies pointed at a closed port on 127.0.0.1, so a try to
// reach the Buf Schema Registry (or anything off this machine) fails the test instead of passing by luck.

import assert from "node:assert/strict";
import { needs } from "../../reactor/testdata/permissions.ts";
import {
  CLIENTS_DIR,
  installClientPackages,
  run,
  type RunResult,
  startClientsProvider,
} from "./testdata/clients/clients_provider.ts";

const BUF = `${CLIENTS_DIR}npm/node_modules/.bin/buf`;
const USER_PROTO = new URL("../../examples/rpc/user.proto", import.meta.url).pathname;
const FEED_PROTO = new URL("../../examples/streaming/feed.proto", import.meta.url).pathname;
const LOGIN = "/dwt.UserServiceRpc/Login";
const FOLLOW = "/dwt.streaming.FeedService/Follow";

/** A scratch folder as buf's home, cache and working directory, removed on dispose. */
async function bufHome(): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "gateway-buf-" });
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

/** What one `buf curl` did: its exit code, the messages it printed, and its verbose log. */
interface BufCurl {
  code: number;
  messages: unknown[];
  stderr: string;
}

/** `buf ARGS` offline, in `home`. */
function offlineBuf(home: string, args: string[]): Promise<RunResult> {
  const offline = "http://127.0.0.1:9"; // the discard port, closed here: any proxied request fails at once
  return run(BUF, args, {
    cwd: home,
    env: {
      HOME: home,
      BUF_CACHE_DIR: `${home}/cache`,
      HTTP_PROXY: offline,
      HTTPS_PROXY: offline,
      ALL_PROXY: offline,
      NO_PROXY: "",
    },
  });
}

/** `buf curl -v ARGS` offline, in `home`. */
async function bufCurl(home: string, args: string[]): Promise<BufCurl> {
  const result = await offlineBuf(home, ["curl", "-v", ...args]);
  // buf prints each message as indented JSON, one after the other, each opening at the start of a line.
  const out = result.stdout.trim();
  const messages = out === "" ? [] : out.split(/\n(?=\{)/).map((part) => JSON.parse(part));
  return { code: result.code, messages, stderr: result.stderr };
}

/** The ticks Follow sends for `symbol`, `count` of them, in buf's JSON. */
function ticks(symbol: string, count: number): unknown[] {
  return Array.from({ length: count }, (_, i) => ({ symbol, sequence: String(i + 1), price: 100 + (i + 1) / 4 }));
}

const LOGIN_DATA = JSON.stringify({ name: btoa("dwt"), password: btoa("pw") });
const LOGIN_REPLY = { result: {}, success: true };

Deno.test(
  "buf curl --schema <.proto> calls a unary method and a server stream over HTTP/1.1, Connect and gRPC-Web",
  needs("read", "run", "write"),
  async () => {
    await installClientPackages();
    await using served = await startClientsProvider();
    await using home = await bufHome();
    const follow = (symbol: string) => JSON.stringify({ symbol, count: 3, intervalMs: 1 });
    const [unary, stream, webUnary, webStream, failed] = await Promise.all([
      bufCurl(home.dir, ["--schema", USER_PROTO, "--data", LOGIN_DATA, served.base + LOGIN]),
      bufCurl(home.dir, ["--schema", FEED_PROTO, "--data", follow("BUF"), served.base + FOLLOW]),
      bufCurl(home.dir, ["--protocol", "grpcweb", "--schema", USER_PROTO, "--data", LOGIN_DATA, served.base + LOGIN]),
      bufCurl(home.dir, [
        "--protocol",
        "grpcweb",
        "--schema",
        FEED_PROTO,
        "--data",
        follow("WEB"),
        served.base + FOLLOW,
      ]),
      bufCurl(home.dir, ["--schema", FEED_PROTO, "--data", "{}", served.base + FOLLOW]),
    ]);
    for (const [name, call] of Object.entries({ unary, stream, webUnary, webStream })) {
      assert.equal(call.code, 0, `${name}: ${call.stderr}`);
      assert.match(call.stderr, /< \(#1\) HTTP\/1\.1 200 OK/, `${name} went over HTTP/1.1`);
    }
    assert.match(unary.stderr, /Content-Type: application\/proto/);
    assert.deepEqual(unary.messages, [LOGIN_REPLY]);
    assert.match(webUnary.stderr, /Content-Type: application\/grpc-web\+proto/);
    assert.deepEqual(webUnary.messages, [LOGIN_REPLY]);

    // buf asks for gzip on a Connect stream: the gateway compresses its messages, and the trailer comes at the end.
    assert.match(stream.stderr, /Content-Type: application\/connect\+proto/);
    assert.match(stream.stderr, /< \(#1\) Connect-Content-Encoding: gzip/);
    assert.deepEqual(stream.messages, ticks("BUF", 3));
    assert.match(stream.stderr, /< \(#1\) \[\*\] Ticks-Sent: 3/);
    assert.deepEqual(webStream.messages, ticks("WEB", 3));
    assert.match(webStream.stderr, /< \(#1\) \[\*\] Ticks-Sent: 3/);

    // An error ends buf with 8 × the code (invalid_argument: 3) and prints it as Connect's JSON.
    assert.equal(failed.code, 8 * 3, failed.stderr);
    assert.deepEqual(failed.messages, []);
    assert.match(failed.stderr, /"code": "invalid_argument",\s*"message": "Follow needs a symbol"/);
  },
);

Deno.test(
  "buf curl --schema <.proto importing well-known types> works offline (buf's own copies, no registry)",
  needs("read", "run", "write"),
  async () => {
    await installClientPackages();
    await using served = await startClientsProvider();
    await using home = await bufHome();
    // The seed's user.proto, plus imports buf must resolve by itself; the wire is the same.
    const proto = (await Deno.readTextFile(USER_PROTO)).replace(
      "package dwt;",
      [
        "package dwt;",
        'import "google/protobuf/timestamp.proto";',
        'import "google/protobuf/wrappers.proto";',
        "message LoginSeen { google.protobuf.Timestamp at = 1; google.protobuf.StringValue who = 2; }",
      ].join("\n"),
    );
    assert.notEqual(proto, await Deno.readTextFile(USER_PROTO));
    await Deno.writeTextFile(`${home.dir}/user_wkt.proto`, proto);
    const call = await bufCurl(home.dir, [
      "--schema",
      `${home.dir}/user_wkt.proto`,
      "--data",
      LOGIN_DATA,
      served.base + LOGIN,
    ]);
    assert.equal(call.code, 0, call.stderr);
    assert.deepEqual(call.messages, [LOGIN_REPLY]);
  },
);

Deno.test(
  "buf curl --schema <the FileDescriptorSet downloaded from the gateway> lists and calls its services",
  needs("read", "run", "write"),
  async () => {
    await installClientPackages();
    await using served = await startClientsProvider();
    await using home = await bufHome();
    const download = await fetch(`${served.base}/dwt.rpc.Reflection/FileDescriptorSet`);
    assert.equal(download.status, 200);
    // buf reads a binary image or descriptor set by its extension: .binpb (or .bin), not .pb.
    const set = `${home.dir}/gateway.binpb`;
    await Deno.writeFile(set, new Uint8Array(await download.arrayBuffer()));

    const [list, register, stream] = await Promise.all([
      offlineBuf(home.dir, ["curl", "--schema", set, "--list-methods"]),
      bufCurl(home.dir, ["--schema", set, "--data", LOGIN_DATA, `${served.base}/dwt.UserServiceRpc/Register`]),
      bufCurl(home.dir, ["--schema", set, "--data", '{"symbol":"SET","count":2}', served.base + FOLLOW]),
    ]);
    assert.equal(list.code, 0, list.stderr);
    const methods = list.stdout.trim().split("\n");
    for (
      const method of ["dwt.UserServiceRpc/Login", "dwt.UserServiceRpc/Register", "dwt.streaming.FeedService/Follow"]
    ) {
      assert.ok(methods.includes(method), `${method} in ${methods}`);
    }
    assert.equal(register.code, 0, register.stderr);
    const reply = register.messages[0] as { result: { errmsg: string }; success: boolean; id: number };
    assert.equal(register.messages.length, 1);
    assert.equal(reply.result.errmsg, btoa("success"));
    assert.equal(reply.success, true);
    assert.ok(reply.id >= 1 && reply.id <= 500, `id ${reply.id}`);
    assert.equal(stream.code, 0, stream.stderr);
    assert.deepEqual(stream.messages, ticks("SET", 2));
  },
);
