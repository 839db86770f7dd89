/**
 * The fuzz run (`deno task fuzz [--seconds 20] [--seed N]`): for a fixed time,
 *
 * 1. the RPC, registry and ZooKeeper (jute) decoders are fed random and mutated frames in-process: each must
 *    return or throw, never hang;
 * 2. a registry process and a provider process are fed random bytes and mutated valid frames over many TCP
 *    connections, and garbage datagrams on the heartbeat port, while a well-behaved client keeps calling both and
 *    keeps a session alive by heartbeats;
 * 3. the provider is also fed valid but hostile RPC envelopes: huge metadata (one 64 KiB value, 100,000
 *    entries), duplicate call ids, extreme deadlines (1 ms, 2^31, 2^32 - 1), unknown names of 10 KiB, payloads
 *    that do not parse, a thousand pipelined calls, cancels of unknown ids, pings and drains from the caller's
 *    side. Each must be answered (or its connection closed), never crash or stall the provider.
 *
 * Passes when both servers are still running at the end, every health call succeeded, the honest session never
 * expired, and the servers closed the connections that sent them garbage. Prints its figures and a last line
 * `N passed, M failed`, as CI reads.
 *
 * @module
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { framed, QUIET } from "./_harness.ts";
import { denoRun, spawnReady } from "../reactor/testdata/spawn_ready.ts";
import { newUserServiceRpcStub } from "../examples/rpc/user_pb.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import { decodeClientFrame, decodeServerFrame, encodeClientFrame } from "../registry/_codec.ts";
import { JuteReader } from "../registry/zookeeper/_jute.ts";
import { NodeType } from "../registry/server/data_tree.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { decodeRpcFrame } from "../rpc/_rpc_decoder.ts";
import { encodeRpcFrame } from "../rpc/_rpc_encoder.ts";
import { RpcChannel } from "../rpc/rpc_channel.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: { seconds: { type: "string", default: "20" }, seed: { type: "string" } },
});
const seconds = Number(values.seconds);
const seed = Number(values.seed ?? Math.floor(Math.random() * 2 ** 31));
getLogger().level = LogLevel.ERROR;

// A small seeded PRNG (mulberry32), so a failing run can be replayed with --seed.
let state = seed >>> 0;
function random(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n: number) => Math.floor(random() * n);
const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));

/** A copy of `bytes` with a few bytes flipped, cut, repeated or inserted. */
function mutate(bytes: Uint8Array): Uint8Array {
  let out = bytes.slice();
  for (let i = 0, n = 1 + int(4); i < n; i++) {
    switch (int(4)) {
      case 0:
        if (out.length > 0) out[int(out.length)] = int(256);
        break;
      case 1:
        out = out.subarray(0, int(out.length + 1));
        break;
      case 2: {
        const at = int(out.length + 1);
        const merged = new Uint8Array(out.length + 4);
        merged.set(out.subarray(0, at));
        merged.set(randomBytes(4), at);
        merged.set(out.subarray(at), at + 4);
        out = merged;
        break;
      }
      default:
        out = Uint8Array.from([...out, ...out.subarray(0, int(out.length + 1))]);
    }
  }
  return out;
}

const deadline = performance.now() + seconds * 1000;
const figures = {
  seed,
  decoderInputs: 0,
  decoderBytes: 0,
  decoderRejected: 0,
  tcpConnections: 0,
  tcpBytes: 0,
  closedByServer: 0,
  datagrams: 0,
  hostileEnvelopes: 0,
  hostileAnswered: 0,
  registryMixes: 0,
  registryMixRequests: 0,
  registryMixAnswered: 0,
  registryMixExpired: 0,
  healthCalls: 0,
  healthFailures: 0,
  sessionExpired: false,
};
const failures: string[] = [];

// --- 1. decoders in-process (a third of the time) ---

const rpcValid = encodeRpcFrame({
  request: { callId: 7, service: "dwt.UserServiceRpc", method: "Login", timeoutMs: 1000, payload: randomBytes(20) },
});
const registryValid = encodeClientFrame({ xid: 3, create: { path: "/a/b", data: randomBytes(8), nodeType: 1 } });
const rpcDrain = encodeRpcFrame({ drain: { lastCallId: 9, status: 3, reason: "fuzz", graceMs: 100 } });
const rpcPing = encodeRpcFrame({ ping: { data: 77, ack: true } });
const decoders: Array<[string, (bytes: Uint8Array) => unknown, Uint8Array]> = [
  ["rpc", decodeRpcFrame, rpcValid],
  ["rpc drain", decodeRpcFrame, rpcDrain],
  ["rpc ping", (bytes) => decodeRpcFrame(bytes, 64), rpcPing],
  ["registry client frame", decodeClientFrame, registryValid],
  ["registry server frame", decodeServerFrame, registryValid],
  ["jute", (bytes) => {
    const reader = new JuteReader(bytes);
    reader.int();
    reader.long();
    reader.buffer();
    reader.strings();
  }, framed(registryValid)],
];
const decodeUntil = performance.now() + (seconds * 1000) / 3;
while (performance.now() < decodeUntil) {
  for (const [name, decode, valid] of decoders) {
    const input = int(2) === 0 ? randomBytes(int(512)) : mutate(valid);
    figures.decoderInputs++;
    figures.decoderBytes += input.length;
    const start = performance.now();
    try {
      decode(input);
    } catch {
      figures.decoderRejected++;
    }
    if (performance.now() - start > 1000) failures.push(`the ${name} decoder took over 1 s on one input`);
  }
}

// --- 2. the servers, as processes ---

const dir = await Deno.makeTempDir({ prefix: "fuzz-" });
await Deno.writeTextFile(
  `${dir}/registry.json`,
  JSON.stringify({ ip: "127.0.0.1", port: 0, heartbeatTimeout: 200, heartbeatMaxCount: 5, dataDir: `${dir}/data` }),
);
const registry = await spawnReady(
  denoRun(new URL("../registry/main.ts", import.meta.url).pathname, "--config", `${dir}/registry.json`),
  QUIET,
);
const [registryHost, registryPort] = registry.ready.split(":") as [string, string];
await Deno.writeTextFile(
  `${dir}/provider.json`,
  JSON.stringify({
    rpcserver_ip: "127.0.0.1",
    rpcserver_port: 0,
    dwt_src_ip: registryHost,
    dwt_src_port: registryPort,
  }),
);
const provider = await spawnReady(
  denoRun(new URL("../examples/rpc/callee.ts", import.meta.url).pathname, "-i", `${dir}/provider.json`),
  QUIET,
);
const providerPort = provider.ready.split(":")[1]!;

const loop = EventLoop.current();
const honest = await RegistryClient.connect(registry.ready, { loop });
honest.onSessionEvent((event) => {
  if (event.type === "expired") figures.sessionExpired = true;
});
await honest.create("/fuzz-honest", "", { nodeType: NodeType.EPHEMERAL });
// A node whose children listing is over the registry's 4 MiB reply limit, for the pipelined mixes.
await honest.create("/fuzz-big", "");
await honest.create("/fuzz", "");
for (let i = 0; i < 4400; i += 200) {
  await Promise.all(Array.from({ length: 200 }, (_, j) => honest.create(`/fuzz-big/${"n".repeat(990)}${i + j}`, "")));
}
const channel = new RpcChannel({ loop, registry: honest, timeoutMs: 2000 });
const users = newUserServiceRpcStub(channel);

/** One hostile connection: garbage or mutated frames, then wait to see whether the server closes it. */
async function attack(port: number, valid: Uint8Array): Promise<void> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return;
  }
  figures.tcpConnections++;
  const payload = int(3) === 0
    ? randomBytes(1 + int(2048))
    : int(2) === 0
    ? framed(mutate(valid))
    : Uint8Array.from([0xff, 0xff, 0xff, 0xff, ...randomBytes(16)]); // an oversized length prefix
  try {
    await conn.write(payload);
    figures.tcpBytes += payload.length;
    const buf = new Uint8Array(4096);
    const closed = await Promise.race([
      (async () => {
        for (;;) if ((await conn.read(buf)) === null) return true;
      })().catch(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 300)),
    ]);
    if (closed) figures.closedByServer++;
  } catch {
    figures.closedByServer++;
  } finally {
    try {
      conn.close();
    } catch {
      // closed
    }
  }
}

/** A valid envelope with hostile contents, as framed bytes (one write). */
function hostileEnvelope(): Uint8Array {
  const login = { service: "dwt.UserServiceRpc", method: "Login", payload: new Uint8Array([0x0a, 1, 0x61]) };
  const request = (fields: Partial<Parameters<typeof encodeRpcFrame>[0]["request"] & object>) =>
    framed(encodeRpcFrame({ request: { callId: 1 + int(1000), ...login, ...fields } }));
  const concat = (parts: Uint8Array[]) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  };
  switch (int(8)) {
    case 0:
      return request({ metadata: { big: "x".repeat(64 * 1024) } });
    case 1: {
      const metadata: Record<string, string> = {};
      for (let i = 0; i < 100_000; i++) metadata[`k${i}`] = "";
      return request({ metadata });
    }
    case 2: {
      const same = request({ callId: 5 });
      return concat([same, same, same]); // duplicate ids
    }
    case 3:
      return request({ timeoutMs: [1, 0x8000_0000, 0xffff_ffff][int(3)]! });
    case 4:
      return request({ service: "s".repeat(10 * 1024), method: "m".repeat(int(2) * 10 * 1024) });
    case 5:
      return request({ payload: randomBytes(1 + int(64)) });
    case 6:
      return concat(Array.from({ length: 1000 }, (_, i) => request({ callId: i + 1 })));
    default:
      return concat([
        framed(encodeRpcFrame({ cancel: { callId: 99_999 } })),
        framed(encodeRpcFrame({ ping: { data: int(1000), ack: int(2) === 0 } })),
        framed(encodeRpcFrame({ drain: { lastCallId: int(10), reason: "from a caller" } })),
        request({}),
      ]);
  }
}

/** One hostile-but-valid envelope on a new connection: it must be answered or the connection closed. */
async function hostile(port: number): Promise<void> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return;
  }
  figures.hostileEnvelopes++;
  try {
    const bytes = hostileEnvelope();
    await conn.write(bytes);
    figures.tcpBytes += bytes.length;
    const answered = await Promise.race([
      conn.read(new Uint8Array(4096)).then(() => true, () => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000)),
    ]);
    if (answered) figures.hostileAnswered++;
  } catch {
    figures.hostileAnswered++; // reset by the provider: closed
  } finally {
    try {
      conn.close();
    } catch {
      // closed
    }
  }
}

// --- registry: pipelined mixes of valid-but-hostile requests ---

const MIX_PATHS = ["/fuzz", "/fuzz/a", "/fuzz/a/b", "/fuzz/e", "/fuzz-big", "/", "/fuzz/seq-", "/nope/x"];

/** A raw ClientFrame `{ xid, create: { path } }` whose path bytes are not valid UTF-8 (no encoder would write it). */
function badUtf8Create(xid: number): Uint8Array {
  const path = Uint8Array.from([0x2f, 0x66, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xff]); // "/f", a bad pair, a surrogate, 0xff
  const create = Uint8Array.from([0x0a, path.length, ...path]);
  const varint: number[] = [];
  for (let v = xid;; v >>>= 7) {
    if (v < 0x80) {
      varint.push(v);
      break;
    }
    varint.push((v & 0x7f) | 0x80);
  }
  return Uint8Array.from([0x08, ...varint, 0x5a, create.length, ...create]); // field 1: xid, field 11: create
}

function mixRequest(xid: number): Uint8Array {
  const path = MIX_PATHS[int(MIX_PATHS.length)]!;
  const watch = int(2) === 0;
  switch (int(14)) {
    case 0:
      return encodeClientFrame({
        xid,
        create: { path, data: randomBytes(int(64)), nodeType: 1 + int(2), sequential: int(3) === 0 },
      });
    case 1:
      // Data just over the 1 MiB limit (refused before it costs the disk anything), now and then at it.
      return encodeClientFrame({
        xid,
        set: { path, data: new Uint8Array(1024 * 1024 + (int(8) === 0 ? 0 : 1)), expectedVersion: -1 },
      });
    case 2:
      return encodeClientFrame({ xid, set: { path, data: randomBytes(8), expectedVersion: int(4) - 1 } });
    case 3:
      return encodeClientFrame({ xid, delete: { path, expectedVersion: int(3) - 1 } });
    case 4:
      return encodeClientFrame({ xid, get: { path, watch } });
    case 5:
      return encodeClientFrame({ xid, exists: { path, watch } });
    case 6:
    case 7:
      // The big node's listing is over the reply limit.
      return encodeClientFrame({ xid, children: { path: int(2) === 0 ? "/fuzz-big" : path, watch } });
    case 8:
      return encodeClientFrame({ xid, ping: {} });
    case 9:
      return encodeClientFrame({ xid, connect: { sessionId: String(int(1000)) } }); // a second connect
    case 10:
      return badUtf8Create(xid);
    case 11:
      return encodeClientFrame({ xid }); // no operation at all
    case 12:
      return encodeClientFrame({
        xid,
        create: { path: `${path}/${"\ud800".repeat(int(3))}x`, data: new Uint8Array(0) },
      });
    default:
      return encodeClientFrame({ xid, exists: { path: `/${"z".repeat(int(2000))}` } });
  }
}

/** One connection: a session, then 20-200 pipelined requests in one write; every one must be answered in order. */
async function registryMix(port: number): Promise<void> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return;
  }
  figures.registryMixes++;
  const count = 20 + int(180);
  const bodies = [encodeClientFrame({ xid: 1, connect: { sessionId: "0" } })];
  for (let i = 0; i < count; i++) bodies.push(mixRequest(2 + i));
  if (int(10) === 0) bodies.push(encodeClientFrame({ xid: 2 + count, close: {} }));
  const expected = bodies.length;
  figures.registryMixRequests += expected;
  const xids: number[] = [];
  let last = "";
  // The mix sends no heartbeats: a server that stops reading it (its answers back up) may expire its session,
  // which it must say (a SESSION_EXPIRED frame) before it closes.
  let expired = false;
  let ended = "";
  try {
    const payload = new Uint8Array(bodies.reduce((sum, body) => sum + 4 + body.length, 0));
    let offset = 0;
    for (const body of bodies) {
      payload.set(framed(body), offset);
      offset += 4 + body.length;
    }
    const writing = (async () => {
      for (let sent = 0; sent < payload.length;) sent += await conn.write(payload.subarray(sent));
    })().catch(() => {});
    let pending = new Uint8Array(0);
    const buf = new Uint8Array(256 * 1024);
    const until = performance.now() + 15_000;
    while (xids.length < expected && performance.now() < until) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        conn.read(buf).catch((error) => (ended = `reset (${error.message})`, null)),
        new Promise<null>((r) => timer = setTimeout(() => (ended = "timeout", r(null)), until - performance.now())),
      ]).finally(() => clearTimeout(timer));
      if (n === null) {
        if (ended === "") ended = "closed by the server";
        break;
      }
      const joined = new Uint8Array(pending.length + n);
      joined.set(pending);
      joined.set(buf.subarray(0, n), pending.length);
      let at = 0;
      while (joined.length - at >= 4) {
        const length = new DataView(joined.buffer, at).getUint32(0);
        if (joined.length - at - 4 < length) break;
        const frame = decodeServerFrame(joined.subarray(at + 4, at + 4 + length));
        if (frame.xid !== 0) xids.push(frame.xid); // xid 0: a watch event, or the end of the session
        else if (frame.errorCode === -112) expired = true;
        if (frame.errorCode) last = `xid ${frame.xid}: ${frame.errorCode} ${frame.errorMessage?.slice(0, 120)}`;
        at += 4 + length;
      }
      pending = joined.slice(at);
    }
    await writing;
    const inOrder = xids.every((xid, i) => xid === i + 1);
    if (!inOrder) failures.push(`registry answers out of order: ${xids.slice(0, 20).join(",")}`);
    if (expired && inOrder) figures.registryMixExpired++;
    if ((xids.length === expected || expired) && inOrder) figures.registryMixAnswered += expected;
    else if (inOrder) {
      failures.push(
        `registry answered ${xids.length} of ${expected} pipelined requests (${ended}); last error ${last}`,
      );
    }
  } catch (error) {
    failures.push(`registry mix: ${(error as Error).message}`);
  } finally {
    try {
      conn.close();
    } catch {
      // closed
    }
  }
}

async function health(): Promise<void> {
  while (performance.now() < deadline) {
    figures.healthCalls++;
    try {
      await users.Login({ name: new TextEncoder().encode("fuzz"), password: new TextEncoder().encode("p") });
      await honest.exists("/fuzz-honest");
    } catch (error) {
      figures.healthFailures++;
      failures.push(`a health call failed: ${(error as Error).message}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function attacker(): Promise<void> {
  while (performance.now() < deadline) {
    const choice = int(4);
    if (choice === 3) await registryMix(Number(registryPort));
    else if (choice === 0) await attack(Number(registryPort), registryValid);
    else if (choice === 1) await attack(Number(providerPort), rpcValid);
    else await hostile(Number(providerPort));
  }
}

const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
async function datagrams(): Promise<void> {
  while (performance.now() < deadline) {
    await udp.send(randomBytes(int(100)), { transport: "udp", hostname: registryHost, port: Number(registryPort) });
    figures.datagrams++;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

await Promise.all([health(), attacker(), attacker(), attacker(), attacker(), datagrams()]);
udp.close();

const checks: Array<[string, boolean]> = [
  ["the registry process is still running", registry.running],
  ["the provider process is still running", provider.running],
  ["every health call succeeded", figures.healthFailures === 0 && figures.healthCalls > 0],
  ["the honest session never expired", !figures.sessionExpired],
  [
    "the servers closed the connections that sent garbage",
    figures.tcpConnections > 0 && figures.closedByServer >= figures.tcpConnections * 0.9,
  ],
  [
    "the provider answered the hostile valid envelopes",
    figures.hostileEnvelopes > 0 && figures.hostileAnswered >= figures.hostileEnvelopes * 0.9,
  ],
  ["the honest ephemeral node is still there", (await honest.exists("/fuzz-honest")) !== undefined],
  [
    "the registry answered every pipelined mix in order",
    figures.registryMixes > 0 && figures.registryMixAnswered === figures.registryMixRequests,
  ],
];
await channel.close();
await honest.close();
for (const p of [provider, registry]) await p.stop();
await Deno.remove(dir, { recursive: true });

console.log(JSON.stringify(figures));
for (const failure of failures.slice(0, 10)) console.log(`failure: ${failure}`);
let passed = 0;
for (const [name, ok] of checks) {
  console.log(`${ok ? "ok    " : "FAILED"} ${name}`);
  if (ok) passed++;
}
console.log(`${passed} passed, ${checks.length - passed} failed`);
Deno.exit(passed === checks.length ? 0 : 1);
