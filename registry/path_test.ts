import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { decodeClientFrame, decodeServerFrame, encodeClientFrame, invalidFrameXid } from "./_codec.ts";
import { basename, joinPath, parentOf, validatePath } from "./path.ts";
import { RegistryClient } from "./client/registry_client.ts";
import { RegistryError, RegistryErrorCode } from "./registry_error.ts";
import { RegistryServer } from "./server/registry_server.ts";
import { needs } from "../reactor/testdata/permissions.ts";

Deno.test("validatePath accepts absolute paths and says what is wrong with bad ones", () => {
  for (const good of ["/", "/a", "/userService/userinfo", "/a-b_c.d/0001"]) assert.equal(validatePath(good), good);
  const cases: Array<[string, RegExp]> = [
    ["", /empty/],
    ["a/b", /start with '\/'/],
    ["/a/", /end with '\/'/],
    ["/a//b", /empty segment/],
    ["/a/../b", /'\.\.' segment/],
    ["/a\u0000b", /control character/],
    ["/" + "x".repeat(1024), /longer than 1024/],
  ];
  for (const [bad, why] of cases) {
    assert.throws(
      () => validatePath(bad),
      (error: RegistryError) => error.codeName === "BAD_ARGUMENTS" && why.test(error.message),
    );
  }
});

Deno.test("parentOf, basename and joinPath split and join paths", () => {
  assert.equal(parentOf("/a/b"), "/a");
  assert.equal(parentOf("/a"), "/");
  assert.equal(basename("/a/b"), "b");
  assert.equal(joinPath("/", "a"), "/a");
  assert.equal(joinPath("/a", "b"), "/a/b");
});

Deno.test("validatePath refuses lone surrogates and ZooKeeper's forbidden ranges, and accepts well-formed pairs", () => {
  for (const good of ["/caf\u00e9", "/\u{1F600}/x", "/\u4e2d\u6587", "/a b"]) assert.equal(validatePath(good), good);
  const cases: Array<[string, RegExp]> = [
    ["/a\uD800", /lone surrogate U\+D800 at index 2/],
    ["/a\uDBFF", /lone surrogate U\+DBFF at index 2/],
    ["/\uDC00b", /lone surrogate U\+DC00 at index 1/],
    ["/a\u0001", /control character U\+0001/],
    ["/a\u007f", /control character U\+007F/],
    ["/a\u0085", /control character U\+0085/],
    ["/a\u009f", /control character U\+009F/],
    ["/a\ue000", /forbidden character U\+E000/],
    ["/a\uf8ff", /forbidden character U\+F8FF/],
    ["/a\ufffd", /forbidden character U\+FFFD/],
    ["/a\uffff", /forbidden character U\+FFFF/],
  ];
  for (const [bad, why] of cases) {
    assert.throws(
      () => validatePath(bad),
      (error: RegistryError) => error.codeName === "BAD_ARGUMENTS" && why.test(error.message),
      `${JSON.stringify(bad)} should fail with ${why}`,
    );
  }
});

Deno.test("validatePath quotes a bad path with its unprintable characters escaped", () => {
  assert.throws(
    () => validatePath("/a\nINFO forged\u0000\uD800"),
    (error: RegistryError) =>
      !["\n", "\u0000", "\uD800"].some((c) => error.message.includes(c)) && error.message.includes("\\u000A"),
  );
});

/** Hand-encode a ClientFrame `{ xid, create: { path: <raw bytes> } }`, so the path can hold any bytes at all. */
function rawCreateFrame(xid: number, pathBytes: number[]): Uint8Array {
  const create = [0x0a, pathBytes.length, ...pathBytes, 0x18, 0x01]; // path = 1 (bytes), node_type = 3 (PERSISTENT)
  return new Uint8Array([0x08, xid, 0x5a, create.length, ...create]); // xid = 1, create = 11
}

// Raw invalid UTF-8 and lone surrogates (as protobufjs writes them: the 3-byte form of the lone unit).
const BAD_PATHS: Array<[string, number[]]> = [
  ["0xFF", [0x2f, 0x61, 0xff]],
  ["0xFE", [0x2f, 0x61, 0xfe]],
  ["lone U+D800", [0x2f, 0x61, 0xed, 0xa0, 0x80]],
  ["lone U+DBFF", [0x2f, 0x61, 0xed, 0xaf, 0xbf]],
  ["overlong '/'", [0x2f, 0x61, 0xc0, 0xaf]],
  ["truncated sequence", [0x2f, 0x61, 0xe2, 0x82]],
];

Deno.test("decodeClientFrame refuses a string that is not valid UTF-8 with BAD_ARGUMENTS naming the field", () => {
  for (const [what, bytes] of BAD_PATHS) {
    assert.throws(
      () => decodeClientFrame(rawCreateFrame(7, bytes)),
      (error: unknown) =>
        error instanceof RegistryError && error.codeName === "BAD_ARGUMENTS" &&
        /'create\.path' must be valid UTF-8/.test(error.message) && invalidFrameXid(error) === 7,
      what,
    );
  }
  // What protobufjs makes of a lone surrogate on the sending side is refused too.
  const encoded = encodeClientFrame({ xid: 9, connect: { authToken: "tok\uD800" } });
  assert.throws(() => decodeClientFrame(encoded), /'connect\.authToken' must be valid UTF-8/);
  // Valid text, ASCII or not, decodes exactly.
  for (const path of ["/plain", "/caf\u00e9/\u{1F600}", "/\u4e2d"]) {
    assert.equal(decodeClientFrame(encodeClientFrame({ xid: 1, create: { path } })).create?.path, path);
  }
  // A frame that does not parse at all is not mistaken for a bad string.
  let parseError: unknown;
  try {
    decodeClientFrame(new Uint8Array([0x5a, 0x7f]));
  } catch (error) {
    parseError = error;
  }
  assert.ok(parseError !== undefined && invalidFrameXid(parseError) === undefined);
});

Deno.test("decodeServerFrame refuses an invalid child name, naming its index", () => {
  const children = [0x0a, 0x01, 0x61, 0x0a, 0x02, 0x62, 0xff]; // children = ["a", "b\xFF"]
  const body = new Uint8Array([0x08, 0x03, 0x82, 0x01, children.length, ...children]); // xid 3, field 16
  assert.throws(() => decodeServerFrame(body), /'children\.children\[1\]' must be valid UTF-8/);
});

async function readFrame(conn: Deno.Conn, pending: { bytes: Uint8Array }): Promise<Uint8Array | null> {
  for (;;) {
    const { bytes } = pending;
    if (bytes.length >= 4) {
      const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
      if (bytes.length >= 4 + length) {
        pending.bytes = bytes.slice(4 + length);
        return bytes.slice(4, 4 + length);
      }
    }
    const chunk = new Uint8Array(4096);
    const n = await conn.read(chunk).catch(() => null);
    if (n === null) return null;
    const joined = new Uint8Array(bytes.length + n);
    joined.set(bytes);
    joined.set(chunk.subarray(0, n), bytes.length);
    pending.bytes = joined;
  }
}

function framed(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

Deno.test(
  "RegistryServer stores no node whose path is not valid UTF-8, so the tree is the same after a restart",
  needs("read", "write"),
  async () => {
    const loop = new EventLoop();
    const dir = await Deno.makeTempDir();
    let server = new RegistryServer({ port: 0, loop, dataDir: dir });
    await server.start();
    const port = server.address.port;
    try {
      for (const [what, bytes] of BAD_PATHS) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        const pending = { bytes: new Uint8Array(0) };
        try {
          await conn.write(framed(encodeClientFrame({ xid: 1, connect: { sessionTimeoutMs: 10_000 } })));
          const connected = decodeServerFrame((await readFrame(conn, pending))!);
          assert.equal(connected.errorCode ?? 0, 0);
          await conn.write(framed(rawCreateFrame(2, bytes)));
          // Either a BAD_ARGUMENTS answer or a closed connection; never a created node.
          const answer = await readFrame(conn, pending);
          if (answer !== null) {
            const frame = decodeServerFrame(answer);
            assert.equal(frame.errorCode, RegistryErrorCode.BAD_ARGUMENTS, `${what}: ${frame.errorMessage}`);
            assert.match(frame.errorMessage ?? "", /create\.path/);
          }
        } finally {
          conn.close();
        }
      }
      const honest = await RegistryClient.connect(server.address, { loop });
      await honest.create("/caf\u00e9", "");
      const before = await honest.children("/");
      await honest.close();
      await server.stop();
      server = new RegistryServer({ port, loop, dataDir: dir });
      await server.start();
      const again = await RegistryClient.connect(server.address, { loop });
      const after = await again.children("/");
      await again.close();
      assert.deepEqual(after, before);
      assert.ok(after.includes("caf\u00e9"));
      assert.ok(after.every((name) => name.isWellFormed() && !name.includes("\ufffd")), JSON.stringify(after));
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
