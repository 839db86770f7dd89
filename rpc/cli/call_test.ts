// `deno task call` as users run it: the program as a child process against a real registry process (and a real
// ZooKeeper), the examples' providers (the seed's UserServiceRpc, the streaming feed) and a test provider
// (testdata/echo_provider.ts: metadata, deadlines, error codes, a field of every JSON kind).
import assert from "node:assert/strict";
import { fnv1a } from "../../examples/streaming/feed_service.ts";
import { EventLoop } from "../../reactor/event_loop.ts";
import { needs } from "../../reactor/testdata/permissions.ts";
import { denoRun, type ReadyProcess, spawnReady } from "../../reactor/testdata/spawn_ready.ts";
import { ensureDebianPackage } from "../../registry/testdata/debian_package.ts";
import { startZooKeeper } from "../../registry/testdata/zookeeper_server.ts";
import { ZooKeeperRegistry } from "../../registry/zookeeper/zookeeper_registry.ts";
import { fileDescriptorSet } from "../reflection/mod.ts";
import { loadProtoFile, serviceDefinition } from "../service_definition.ts";
import { defaultBackend } from "../../reactor/backend/default.ts";

const CALL = new URL("./call.ts", import.meta.url).pathname;
const REGISTRY_MAIN = new URL("../../registry/main.ts", import.meta.url).pathname;
const CALLEE = new URL("../../examples/rpc/callee.ts", import.meta.url).pathname;
const FEED_PROVIDER = new URL("../../examples/streaming/feed_provider.ts", import.meta.url).pathname;
const ECHO_PROVIDER = new URL("./testdata/echo_provider.ts", import.meta.url).pathname;
const ECHO_PROTO = new URL("./testdata/echo.proto", import.meta.url).pathname;
const TESTDATA = new URL("./testdata/", import.meta.url).pathname;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How a finished `deno task call` went. */
interface CallResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `deno task call ...args` to its end, with `input` on stdin (else stdin is closed). */
async function call(args: string[], input?: string): Promise<CallResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CALL, ...args],
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  if (input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode(input));
    await writer.close();
  }
  const output = await child.output();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

/** `call` that must exit `code`; the result, for more checks. */
async function expectExit(code: number, args: string[], input?: string): Promise<CallResult> {
  const result = await call(args, input);
  assert.equal(result.code, code, `deno task call ${args.join(" ")}: ${result.stdout}${result.stderr}`);
  return result;
}

/** A `deno task call` still running: its stdout lines as they come, its stdin open. */
class RunningCall {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reading: Promise<void>;
  readonly #stderr: Promise<string>;
  /** Complete lines of stdout so far. */
  readonly lines: string[] = [];
  #wake = () => {};

  constructor(args: string[]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CALL, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#stderr = new Response(child.stderr).text();
    this.#reading = (async () => {
      let pending = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        let eol: number;
        while ((eol = pending.indexOf("\n")) >= 0) {
          this.lines.push(pending.slice(0, eol));
          pending = pending.slice(eol + 1);
        }
        this.#wake();
      }
    })();
  }

  /** Resolves once `count` lines have come; rejects after `timeoutMs`. */
  async waitForLines(count: number, timeoutMs = 20_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.lines.length < count) {
      const leftMs = deadline - performance.now();
      if (leftMs <= 0) {
        throw new Error(`${count} lines did not come within ${timeoutMs} ms: ${JSON.stringify(this.lines)}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, Math.min(leftMs, 100));
      });
      clearTimeout(timer);
    }
  }

  write(text: string): Promise<void> {
    return this.#writer.write(encoder.encode(text));
  }

  closeStdin(): Promise<void> {
    return this.#writer.close().catch(() => {});
  }

  kill(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Its exit status and stderr, once it has exited. */
  async done(): Promise<{ code: number; stderr: string }> {
    const { code } = await this.#child.status;
    await this.#reading;
    await this.closeStdin();
    return { code, stderr: await this.#stderr };
  }
}

/** Start a registry or a provider (`deno run -A ...args`) and wait for its `READY <address>`. */
function spawnServer(...args: string[]): Promise<ReadyProcess> {
  return spawnReady(denoRun(...args), { env: { DWT_LOG_LEVEL: "WARN" }, stderr: "null", timeoutMs: 30_000 });
}

/** Resolves once `check` holds; fails after `timeoutMs`, saying `what`. */
async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A request of every JSON kind (test.cli.Sample), and what the echo provider answers to it. */
const SAMPLE = {
  big: "-9007199254740993",
  ubig: "18446744073709551615",
  blob: "AAEC/w==",
  color: "GREEN",
  counts: { a: 1, b: -2 },
  point: { x: -3, y: 4 },
  maybe: 0,
  points: [{ x: 1 }, {}],
  at: "2024-01-02T03:04:05.678Z",
  ratio: 0.5,
  snakeCaseName: "s",
  alias: 7,
};

const LOGIN_DESCRIBED = `// dwt.UserServiceRpc.Login (user.proto)
rpc Login(LoginRequest) returns (LoginResponse);

// dwt.LoginRequest (user.proto)
message LoginRequest {
  bytes name = 1;
  bytes password = 2;
}

// dwt.LoginResponse (user.proto)
message LoginResponse {
  ResultCode result = 1;
  bool success = 2;
}

// dwt.ResultCode (user.proto)
message ResultCode {
  int32 errcode = 1;
  bytes errmsg = 2;
}
`;

Deno.test(
  "deno task call against a registry process and the examples' providers",
  needs("read", "write", "run"),
  async (t) => {
    const dir = await Deno.makeTempDir();
    const registryConfig = `${dir}/registry.json`;
    await Deno.writeTextFile(registryConfig, JSON.stringify({ ip: "127.0.0.1", port: 0, dataDir: "" }));
    const registry = await spawnServer(REGISTRY_MAIN, "--config", registryConfig);
    const [registryIp, registryPort] = registry.ready.split(":") as [string, string];
    const callerConfig = `${dir}/caller.json`;
    await Deno.writeTextFile(callerConfig, JSON.stringify({ dwt_src_ip: registryIp, dwt_src_port: registryPort }));
    const providerKeys = {
      rpcserver_ip: "127.0.0.1",
      rpcserver_port: 0,
      dwt_src_ip: registryIp,
      dwt_src_port: registryPort,
    };
    const providerConfig = `${dir}/provider.json`;
    await Deno.writeTextFile(providerConfig, JSON.stringify(providerKeys));
    const providers: ReadyProcess[] = [];
    try {
      providers.push(
        ...await Promise.all(
          [CALLEE, FEED_PROVIDER, ECHO_PROVIDER].map((main) => spawnServer(main, "-i", providerConfig)),
        ),
      );
      const [callee, feed, echo] = providers as [ReadyProcess, ReadyProcess, ReadyProcess];
      const i = ["-i", callerConfig];

      await t.step("list: the registry's services, a provider's services, a service's methods", async () => {
        const services = await expectExit(0, [...i, "list"]);
        assert.equal(services.stdout, "dwt.UserServiceRpc\ndwt.streaming.FeedService\ntest.cli.Echo\n");
        assert.equal(services.stderr, "");
        const methods = await expectExit(0, [...i, "list", "dwt.streaming.FeedService"]);
        assert.equal(
          methods.stdout,
          ["Follow", "Upload", "Chat", "Stats"].map((m) => `dwt.streaming.FeedService.${m}\n`).join(""),
        );
        const provided = await expectExit(0, ["--provider", echo.ready, "list"]);
        assert.equal(
          provided.stdout,
          "test.cli.Echo\ngrpc.reflection.v1.ServerReflection\ngrpc.reflection.v1alpha.ServerReflection\n",
        );
      });

      await t.step("describe: a service with its rpc lines, a method with its messages, as .proto", async () => {
        const service = await expectExit(0, [...i, "describe", "dwt.UserServiceRpc"]);
        assert.equal(
          service.stdout,
          "// dwt.UserServiceRpc (user.proto)\nservice UserServiceRpc {\n  rpc Login(LoginRequest) returns (LoginResponse);\n" +
            "  rpc Register(RegisterRequest) returns (RegisterResponse);\n}\n",
        );
        assert.equal((await expectExit(0, [...i, "describe", "dwt.UserServiceRpc.Login"])).stdout, LOGIN_DESCRIBED);
        assert.equal((await expectExit(0, [...i, "describe", "dwt.UserServiceRpc/Login"])).stdout, LOGIN_DESCRIBED);
        const feedService = await expectExit(0, [...i, "describe", "dwt.streaming.FeedService"]);
        assert.match(feedService.stdout, /^ {2}rpc Follow\(FollowRequest\) returns \(stream Tick\);$/m);
        assert.match(feedService.stdout, /^ {2}rpc Upload\(stream Chunk\) returns \(UploadSummary\);$/m);
        assert.match(feedService.stdout, /^ {2}rpc Chat\(stream ChatLine\) returns \(stream ChatLine\);$/m);
        // A message (found by asking the providers in turn), from a file that imports another.
        const sample = await expectExit(0, [...i, "describe", "test.cli.EchoReply"]);
        assert.match(sample.stdout, /^\/\/ test\.cli\.EchoReply \(echo\.proto\)\nmessage EchoReply \{\n/);
        assert.match(sample.stdout, /^\/\/ test\.cli\.Sample \(types\.proto\)$/m);
        assert.match(sample.stdout, /^ {2}int32 renamed = 13 \[json_name = "alias"\];$/m);
      });

      await t.step("a unary call: JSON in and out, from -d, an argument, -d @file and -d @- (stdin)", async () => {
        const login = { name: "ZHd0", password: "cGFzc3dvcmQ=" }; // "dwt", "password"
        const answer = '{"result":{},"success":true}\n';
        assert.equal(
          (await expectExit(0, [...i, "dwt.UserServiceRpc/Login", "-d", JSON.stringify(login)])).stdout,
          answer,
        );
        assert.equal((await expectExit(0, [...i, "dwt.UserServiceRpc.Login", JSON.stringify(login)])).stdout, answer);
        const file = `${dir}/login.json`;
        await Deno.writeTextFile(file, JSON.stringify(login, null, 2)); // one value over several lines
        assert.equal((await expectExit(0, [...i, "dwt.UserServiceRpc/Login", "-d", `@${file}`])).stdout, answer);
        const stdin = await expectExit(0, [...i, "dwt.UserServiceRpc/Login", "-d", "@-"], '{"name": "ZHd0"}\n');
        const refused = { result: { errcode: 1, errmsg: btoa("login error: name and password are required") } };
        assert.deepEqual(JSON.parse(stdin.stdout), refused);
        await eventually(() => (callee.stdout().match(/name: dwt, password: password/g)?.length ?? 0) === 3, "callee");
      });

      await t.step("a server stream prints one JSON object per line as each message arrives", async () => {
        const ticks = (symbol: string, count: number) =>
          Array.from({ length: count }, (_, index) => ({
            symbol,
            sequence: String(index + 1),
            price: 100 + (index + 1) / 4,
          }));
        const three = await expectExit(0, [
          ...i,
          "dwt.streaming.FeedService/Follow",
          "-d",
          '{"symbol":"DWT","count":3,"intervalMs":20}',
        ]);
        assert.deepEqual(three.stdout.trimEnd().split("\n").map((line) => JSON.parse(line)), ticks("DWT", 3));
        // A stream that never ends: its lines can only have been printed as they came.
        const endless = new RunningCall([
          ...i,
          "dwt.streaming.FeedService/Follow",
          "-d",
          '{"symbol":"E","intervalMs":20}',
        ]);
        await endless.waitForLines(3);
        endless.kill("SIGINT");
        await endless.done();
        assert.deepEqual(endless.lines.slice(0, 3).map((line) => JSON.parse(line)), ticks("E", 3));
      });

      await t.step("a client stream reads NDJSON from stdin (blank lines skipped) and prints the answer", async () => {
        const chunks = ["hello", "stream", "world"].map((text) => encoder.encode(text));
        const ndjson = chunks.map((chunk) => JSON.stringify({ data: btoa(String.fromCharCode(...chunk)) })).join(
          "\n\n",
        );
        const upload = await expectExit(0, [...i, "dwt.streaming.FeedService/Upload"], `${ndjson}\n`);
        const hash = chunks.reduce((sum, chunk) => fnv1a(chunk, sum), fnv1a(new Uint8Array()));
        assert.deepEqual(JSON.parse(upload.stdout), { chunks: 3, bytes: "16", fnv1a: hash });
        // The same from -d @file.
        const file = `${dir}/chunks.ndjson`;
        await Deno.writeTextFile(file, ndjson);
        assert.deepEqual(
          JSON.parse((await expectExit(0, [...i, "dwt.streaming.FeedService/Upload", "-d", `@${file}`])).stdout),
          {
            chunks: 3,
            bytes: "16",
            fnv1a: hash,
          },
        );
      });

      await t.step("bidirectional: each answer is printed before the next request is sent", async () => {
        const chat = new RunningCall([...i, "dwt.streaming.FeedService/Chat"]);
        await chat.write('{"from":"ann","text":"hi"}\n');
        await chat.waitForLines(1);
        await chat.write('{"from":"bob","text":"yo"}\n');
        await chat.waitForLines(2);
        await chat.closeStdin();
        const { code, stderr } = await chat.done();
        assert.equal(code, 0, stderr);
        assert.deepEqual(chat.lines.map((line) => JSON.parse(line)), [
          { from: "feed", text: 'ann said "hi" (line 1)' },
          { from: "feed", text: 'bob said "yo" (line 2)' },
        ]);
      });

      await t.step("-H metadata reaches the handler", async () => {
        const echoed = await expectExit(0, [...i, "test.cli.Echo/Echo", "-H", "x-user:dwt", "-H", "x-trace: a:b c"]);
        assert.deepEqual(JSON.parse(echoed.stdout).metadata, { "x-user": "dwt", "x-trace": "a:b c" });
      });

      await t.step(
        "every JSON kind: the same answer with the schema from reflection, --proto and --protoset",
        async () => {
          const expected = { sample: SAMPLE };
          const args = ["test.cli.Echo/Echo", "-d", JSON.stringify(SAMPLE)];
          assert.deepEqual(JSON.parse((await expectExit(0, [...i, ...args])).stdout), expected);
          assert.deepEqual(JSON.parse((await expectExit(0, [...i, "--proto", ECHO_PROTO, ...args])).stdout), expected);
          // A FileDescriptorSet as this framework writes it...
          const ours = `${dir}/echo_ours.pb`;
          const root = await loadProtoFile(defaultBackend(), ECHO_PROTO);
          await Deno.writeFile(ours, fileDescriptorSet([serviceDefinition(root, "test.cli.Echo")]));
          assert.deepEqual(JSON.parse((await expectExit(0, [...i, "--protoset", ours, ...args])).stdout), expected);
          // ...and as protoc writes it (Debian's protobuf-compiler, installed when missing and root).
          let protoc = true;
          await ensureDebianPackage("protobuf-compiler", "/usr/bin/protoc").catch((error) => {
            console.log(`skipping the protoc-made --protoset: ${error.message}`);
            protoc = false;
          });
          if (protoc) {
            const theirs = `${dir}/echo_protoc.pb`;
            const made = await new Deno.Command("/usr/bin/protoc", {
              args: ["--include_imports", "-o", theirs, "-I", TESTDATA, "echo.proto"],
            }).output();
            assert.ok(made.success, decoder.decode(made.stderr));
            assert.deepEqual(JSON.parse((await expectExit(0, [...i, "--protoset", theirs, ...args])).stdout), expected);
            const described = await expectExit(0, ["--protoset", theirs, "describe", "test.cli.Echo.Sleep"]);
            assert.match(described.stdout, /^message SleepReply \{\n {2}uint32 slept_ms = 1;\n\}$/m);
          }
        },
      );

      await t.step("--timeout: DEADLINE_EXCEEDED is exit status 68, and the provider sees the call end", async () => {
        const startedMs = performance.now();
        const slow = await expectExit(68, [...i, "test.cli.Echo/Sleep", "-d", '{"ms":20000}', "--timeout", "4000"]);
        assert.match(slow.stderr, /^\[DEADLINE_EXCEEDED\] The call to test\.cli\.Echo\.Sleep .*\n$/);
        assert.ok(performance.now() - startedMs < 10_000, "the command outlived its --timeout by far");
        await eventually(() => echo.stdout().includes("Sleep cancelled"), "the provider's handler cancelled");
        // A stream too: the deadline covers it all.
        const follow = await expectExit(68, [
          ...i,
          "dwt.streaming.FeedService/Follow",
          "-d",
          '{"symbol":"T","count":0,"intervalMs":100}',
          "--timeout",
          "3000",
        ]);
        assert.ok(follow.stdout.split("\n").length > 2, follow.stdout);
        assert.match(follow.stderr, /^\[DEADLINE_EXCEEDED\]/);
      });

      await t.step("a provider's error is the exit status 64 + its code, its message one line", async () => {
        const failed = await expectExit(71, [...i, "test.cli.Echo/Fail", '{"code":7,"message":"not you"}']);
        assert.equal(failed.stderr, "[PERMISSION_DENIED] not you\n");
        const refused = await expectExit(67, [...i, "dwt.streaming.FeedService/Follow", "-d", "{}"]);
        assert.equal(refused.stderr, "[INVALID_ARGUMENT] Follow needs a symbol\n");
      });

      await t.step("an unknown service, method or symbol: NOT_FOUND (69), naming what there is", async () => {
        const service = await expectExit(69, [...i, "dwt.Nope/Login"]);
        assert.equal(
          service.stderr,
          `[NOT_FOUND] Cannot find service 'dwt.Nope' in the registry at ${registry.ready}: it lists ` +
            "dwt.UserServiceRpc, dwt.streaming.FeedService, test.cli.Echo\n",
        );
        const method = await expectExit(69, [...i, "dwt.UserServiceRpc/Logout"]);
        assert.equal(
          method.stderr,
          "[NOT_FOUND] Service dwt.UserServiceRpc has no method 'Logout': it has Login, Register\n",
        );
        const symbol = await expectExit(69, [...i, "describe", "dwt.UserServiceRpc.Logout"]);
        assert.match(symbol.stderr, /^\[NOT_FOUND\] .*'dwt\.UserServiceRpc\.Logout'/);
        const offline = await expectExit(69, ["--proto", ECHO_PROTO, "describe", "test.cli.Nope"]);
        assert.equal(offline.stderr, `[NOT_FOUND] Cannot find 'test.cli.Nope' in --proto ${ECHO_PROTO}\n`);
      });

      await t.step(
        "a request that is not JSON of its message: INVALID_ARGUMENT (67) naming the field or line",
        async () => {
          const field = await expectExit(67, [...i, "dwt.UserServiceRpc/Login", '{"nam":"ZHd0"}']);
          assert.match(field.stderr, /^\[INVALID_ARGUMENT\] .*'nam' is not a field of dwt\.LoginRequest/);
          const notJson = await expectExit(67, [...i, "dwt.UserServiceRpc/Login", "{name:1}"]);
          assert.match(notJson.stderr, /^\[INVALID_ARGUMENT\] Cannot read the request as JSON: /);
          const line = await expectExit(67, [...i, "dwt.streaming.FeedService/Upload"], '{"data":""}\n\n{"data":7}\n');
          assert.match(line.stderr, /^\[INVALID_ARGUMENT\] Cannot use request 2 \(line 3\): .*'data'/);
        },
      );

      await t.step("Ctrl-C cancels a stream at the provider: CANCELLED, exit status 65", async () => {
        const follow = new RunningCall([
          ...i,
          "dwt.streaming.FeedService/Follow",
          "-d",
          '{"symbol":"C","intervalMs":50}',
        ]);
        await follow.waitForLines(2);
        follow.kill("SIGINT");
        const { code, stderr } = await follow.done();
        assert.equal(code, 65, stderr);
        assert.match(stderr, /^\[CANCELLED\]/);
        await eventually(async () => {
          const stats = JSON.parse((await expectExit(0, [...i, "dwt.streaming.FeedService/Stats"])).stdout);
          return (stats.running ?? 0) === 0 && (stats.stoppedEarly ?? 0) >= 1;
        }, "the provider's Follow stopped early");
        assert.match(feed.stdout(), /Follow\(C\) stopped after \d+ ticks: \[CANCELLED\]/);
      });

      await t.step(
        "a reader that goes away: stdout closed mid-stream is exit 1, the stream stops at the provider",
        async () => {
          const child = new Deno.Command(Deno.execPath(), {
            args: ["run", "-A", CALL, ...i, "dwt.streaming.FeedService/Follow", "-d", '{"symbol":"R","intervalMs":50}'],
            stdin: "null",
            stdout: "piped",
            stderr: "piped",
          }).spawn();
          const stderr = new Response(child.stderr).text();
          const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
          let text = "";
          while ((text.match(/\n/g)?.length ?? 0) < 2) {
            const { value, done } = await reader.read();
            if (done) break;
            text += value;
          }
          await reader.cancel(); // like `| head -2`
          assert.equal((await child.status).code, 1, await stderr);
          assert.match(await stderr, /^Cannot write to stdout: /);
          await eventually(
            () => /Follow\(R\) stopped after \d+ ticks/.test(feed.stdout()),
            "the provider's Follow stopped",
          );
        },
      );

      await t.step("usage errors: one line on stderr, exit status 2", async () => {
        const usage: [string[], RegExp][] = [
          [[], /^Cannot read the command line: give a command/],
          [["--bogus", "list"], /^Cannot read the command line: Unknown option '--bogus'/],
          [[...i, "--timeout", "soon", "list"], /'--timeout' must be an integer in \[1, 2147483647\]/],
          [[...i, "-H", "no-colon", "dwt.UserServiceRpc/Login"], /'-H' must be KEY:VALUE: current value is 'no-colon'/],
          [[...i, "-H", "a:1", "-H", "a:2", "dwt.UserServiceRpc/Login"], /'-H' gives key 'a' twice/],
          [["dwt.UserServiceRpc/Login"], /give -i CONFIG .* or --provider HOST:PORT/],
          [["--provider", "localhost", "list"], /'--provider' must be HOST:PORT/],
          [[...i, "dwt.UserServiceRpc/Login", "-d", `@${dir}/missing.json`], /^Cannot read the request file -d @/],
          [[...i, "--proto", `${dir}/missing.proto`, "list"], /^Cannot load --proto .*missing\.proto/],
          [["-i", `${dir}/missing.json`, "list"], /^Cannot load RPC config .*missing\.json/],
          [[...i, "describe"], /'describe' takes one symbol/],
          [[...i, "list", "-d", "{}"], /'-d' and '-H' are for calls, not list/],
          [[...i, "dwt.UserServiceRpc/Login", "{}", "-d", "{}"], /give the request either as -d or as an argument/],
        ];
        await Deno.writeFile(`${dir}/junk.pb`, encoder.encode("not a descriptor set"));
        usage.push([["--protoset", `${dir}/junk.pb`, "list"], /junk\.pb as it is not a FileDescriptorSet/]);
        await Deno.writeTextFile(`${dir}/typo.json`, JSON.stringify({ dwt_src_ip: registryIp, dwt_src_prot: 1 }));
        usage.push([["-i", `${dir}/typo.json`, "list"], /key 'dwt_src_prot' is unknown/]);
        for (const [args, message] of usage) {
          const result = await expectExit(2, args);
          assert.match(result.stderr, message, args.join(" "));
          assert.equal(result.stderr.split("\n").length, 2, `one line: ${result.stderr}`);
          assert.equal(result.stdout, "");
        }
        const help = await expectExit(0, ["--help"]);
        assert.match(help.stdout, /^Usage: deno task call/);
        assert.match(help.stdout, /68 DEADLINE_EXCEEDED,\s+69 NOT_FOUND/);
      });

      await t.step(
        "nobody there: UNAVAILABLE (78) from a provider address; a registry that does not answer within --timeout (68)",
        async () => {
          const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
          const port = (listener.addr as Deno.NetAddr).port;
          listener.close();
          const provider = await expectExit(78, ["--provider", `127.0.0.1:${port}`, "list"]);
          assert.match(provider.stderr, /^\[UNAVAILABLE\] /);
          const deadConfig = `${dir}/dead.json`;
          await Deno.writeTextFile(deadConfig, JSON.stringify({ dwt_src_ip: "127.0.0.1", dwt_src_port: port }));
          const startedMs = performance.now();
          // The registry client keeps trying to connect: --timeout is what ends the wait.
          const registryDown = await expectExit(68, ["-i", deadConfig, "--timeout", "1000", "list"]);
          assert.match(
            registryDown.stderr,
            /^\[DEADLINE_EXCEEDED\] Cannot reach the registry at 127\.0\.0\.1:\d+ before the --timeout of 1000 ms passed\n$/,
          );
          assert.ok(performance.now() - startedMs < 8000, "the command outlived its --timeout by far");
        },
      );

      await t.step("a provider without reflection: UNIMPLEMENTED (76) with a hint; --proto calls it", async () => {
        const offConfig = `${dir}/no_reflection.json`;
        await Deno.writeTextFile(offConfig, JSON.stringify({ ...providerKeys, rpcserver_reflection: false }));
        const off = await spawnServer(ECHO_PROVIDER, "-i", offConfig);
        try {
          const listed = await expectExit(76, ["--provider", off.ready, "list"]);
          assert.match(listed.stderr, /does not serve server reflection .* give the schema with --proto or --protoset/);
          await expectExit(76, ["--provider", off.ready, "test.cli.Echo/Echo"]);
          const args = ["test.cli.Echo/Echo", "-d", JSON.stringify(SAMPLE)];
          const withProto = await expectExit(0, ["--provider", off.ready, "--proto", ECHO_PROTO, ...args]);
          assert.deepEqual(JSON.parse(withProto.stdout), { sample: SAMPLE });
          // Through the registry the schema comes from whichever provider of the service has reflection.
          for (let attempt = 0; attempt < 3; attempt++) await expectExit(0, [...i, ...args]);
        } finally {
          await off.stop();
        }
      });
    } finally {
      for (const provider of providers) await provider.stop();
      await registry.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** Whether a ZooKeeper can be started here: installed, or installable (root with apt-get). */
function zookeeperAvailable(): boolean {
  try {
    Deno.statSync("/usr/share/java/zookeeper.jar");
    return true;
  } catch {
    if (Deno.uid() === 0) return true;
    console.log(
      "skipping deno task call through ZooKeeper: no /usr/share/java/zookeeper.jar and not root to install it",
    );
    return false;
  }
}

Deno.test({
  name: "deno task call through ZooKeeper: list (ZooKeeper's own nodes skipped), describe, a call, a server stream",
  ...(() => {
    const permissions = needs("read", "write", "run", "sys");
    return { ignore: permissions.ignore || !zookeeperAvailable() };
  })(),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const zk = await startZooKeeper({ tickTimeMs: 200 });
    const providers: ReadyProcess[] = [];
    try {
      // No chroot: the services sit beside ZooKeeper's own /zookeeper node and another application's node.
      const loop = new EventLoop();
      const zookeeper = await ZooKeeperRegistry.connect(zk.connectString, { loop });
      await zookeeper.create("/other_app", "");
      await zookeeper.create("/other_app/config", "not JSON");
      await zookeeper.close();
      const keys = { zookeeper_connect: zk.connectString, zookeeper_session_timeout_ms: 2000 };
      const providerConfig = `${dir}/provider.json`;
      await Deno.writeTextFile(
        providerConfig,
        JSON.stringify({ rpcserver_ip: "127.0.0.1", rpcserver_port: 0, ...keys }),
      );
      const callerConfig = `${dir}/caller.json`;
      await Deno.writeTextFile(callerConfig, JSON.stringify(keys));
      providers.push(
        ...await Promise.all([CALLEE, FEED_PROVIDER].map((main) => spawnServer(main, "-i", providerConfig))),
      );
      const i = ["-i", callerConfig];
      assert.equal((await expectExit(0, [...i, "list"])).stdout, "dwt.UserServiceRpc\ndwt.streaming.FeedService\n");
      assert.equal((await expectExit(0, [...i, "describe", "dwt.UserServiceRpc.Login"])).stdout, LOGIN_DESCRIBED);
      const login = await expectExit(0, [...i, "dwt.UserServiceRpc/Login", '{"name":"ZHd0","password":"cHc="}']);
      assert.equal(login.stdout, '{"result":{},"success":true}\n');
      const follow = await expectExit(0, [...i, "dwt.streaming.FeedService/Follow", '{"symbol":"ZK","count":2}']);
      assert.deepEqual(follow.stdout.trimEnd().split("\n").map((line) => JSON.parse(line).sequence), ["1", "2"]);
      const missing = await expectExit(69, [...i, "other_app/config"]);
      assert.match(
        missing.stderr,
        new RegExp(`^\\[NOT_FOUND\\] Cannot find service 'other_app' in ZooKeeper at ${zk.connectString}`),
      );
    } finally {
      for (const provider of providers) await provider.stop();
      await zk.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
