// Every program, run as a user runs it, with a config file or command line it cannot use: one line on stderr naming
// the key (or option) and the file, exit status 2, no stack trace, nothing on stdout.
import assert from "node:assert/strict";
import { USAGE_EXIT_STATUS } from "./config_error.ts";
import { needs } from "../reactor/testdata/permissions.ts";

const program = (path: string) => new URL(`../${path}`, import.meta.url).pathname;

/** One bad start: the arguments, and what the one line must contain besides the status. */
interface BadStart {
  readonly name: string;
  readonly args: string[];
  readonly mentions: (string | RegExp)[];
}

async function runBadStart(main: string, start: BadStart): Promise<void> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, ...start.args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  const context = `${main} ${start.args.join(" ")} (${start.name}): status ${output.code}, stderr:\n${stderr}`;
  assert.equal(output.code, USAGE_EXIT_STATUS, context);
  assert.equal(stdout, "", context);
  assert.doesNotMatch(stderr, /^\s+at /m, context);
  assert.doesNotMatch(stderr, /Uncaught|error: /, context);
  assert.ok(stderr.endsWith("\n") && stderr.indexOf("\n") === stderr.length - 1, `not one line: ${context}`);
  for (const mention of start.mentions) {
    if (typeof mention === "string") assert.ok(stderr.includes(mention), `no ${mention}: ${context}`);
    else assert.match(stderr, mention, context);
  }
}

/** Run every bad start of one program, a few at a time. */
async function runBadStarts(main: string, starts: BadStart[]): Promise<void> {
  const queue = [...starts];
  const worker = async () => {
    for (let start = queue.shift(); start !== undefined; start = queue.shift()) await runBadStart(main, start);
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

/** Writes config files into a fresh directory; `file(name, body)` returns the path. */
async function withConfigDir(body: (file: (name: string, text: string | object) => string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "config_errors_" });
  try {
    await body((name, text) => {
      const path = `${dir}/${name}`;
      Deno.writeTextFileSync(path, typeof text === "string" ? text : JSON.stringify(text, null, 2));
      return path;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// No registry runs: every one of these is refused before a connection is tried.
const REGISTRY = { dwt_src_ip: "127.0.0.1", dwt_src_port: 1 };
const PROVIDER = { rpcserver_ip: "127.0.0.1", rpcserver_port: 0, ...REGISTRY };

/** The bad configs every RPC program refuses, written from its good config `base`. */
function rpcBadStarts(file: (name: string, text: string | object) => string, base: object): BadStart[] {
  const unknown = file("newer.json", { ...base, rpcserver_quic_port: 8443 });
  const notJson = file("not_json.json", `{\n  "dwt_src_ip": "127.0.0.1",\n}\n`);
  const wrongType = file("wrong_type.json", { ...base, dwt_src_port: "ten" });
  const { dwt_src_port: _, ...withoutPort } = base as typeof REGISTRY;
  const missingKey = file("missing_key.json", withoutPort);
  const absent = `${unknown}.absent`;
  return [
    {
      name: "a key of a newer version",
      args: ["-i", unknown],
      mentions: [unknown, "'rpcserver_quic_port' is unknown"],
    },
    { name: "not JSON", args: ["-i", notJson], mentions: [notJson, "not valid JSON", "line 3, column 1"] },
    { name: "a value of the wrong type", args: ["-i", wrongType], mentions: [wrongType, /'dwt_src_port'.*"ten"/] },
    { name: "a required key left out", args: ["-c", missingKey], mentions: [missingKey, "'dwt_src_port' is missing"] },
    { name: "no such file", args: ["-i", absent], mentions: [absent] },
  ];
}

const RPC_PROGRAMS = [
  { main: "examples/rpc/callee.ts", provider: true },
  { main: "examples/rpc/callee2.ts", provider: true },
  { main: "examples/streaming/feed_provider.ts", provider: true },
  { main: "examples/rpc/caller.ts", provider: false },
  { main: "examples/streaming/feed_caller.ts", provider: false },
];

for (const { main, provider } of RPC_PROGRAMS) {
  Deno.test(
    `${main} refuses a bad config or command line in one line naming the key and the file, exit 2`,
    needs("read", "write", "run"),
    async () => {
      await withConfigDir(async (file) => {
        const starts = rpcBadStarts(file, provider ? PROVIDER : REGISTRY);
        starts.push({ name: "no config file given", args: [], mentions: ["-i FILE"] });
        starts.push({ name: "a bad log level", args: ["-i", file("ok.json", REGISTRY), "-l", "9"], mentions: ["'9'"] });
        if (provider) {
          const callerOnly = file("caller_only.json", REGISTRY);
          starts.push({
            name: "a provider without an address",
            args: ["-i", callerOnly],
            mentions: [callerOnly, "'rpcserver_ip'"],
          });
          const tls = file("tls.json", {
            ...PROVIDER,
            tls_cert_file: "/nonexistent/c.pem",
            tls_key_file: "/nonexistent/k.pem",
          });
          starts.push({
            name: "a certificate that is not there",
            args: ["-i", tls],
            mentions: [tls, "'tls_cert_file'", "/nonexistent/c.pem"],
          });
        } else {
          const tls = file("tls.json", { ...REGISTRY, tls_ca_file: "/nonexistent/ca.pem" });
          starts.push({
            name: "a CA file that is not there",
            args: ["-i", tls],
            mentions: [tls, "'tls_ca_file'", "/nonexistent/ca.pem"],
          });
        }
        await runBadStarts(program(main), starts);
      });
    },
  );
}

Deno.test(
  "registry/main.ts refuses a bad config or command line in one line naming the key and the file, exit 2",
  needs("read", "write", "run"),
  async () => {
    await withConfigDir(async (file) => {
      const base = { ip: "127.0.0.1", port: 0, dataDir: "" };
      const unknown = file("newer.json", { ...base, rpcserver_quic_port: 8443 });
      const notJson = file("not_json.json", `{\n  "port": 0\n  "dataDir": ""\n}\n`);
      const wrongType = file("wrong_type.json", { ...base, heartbeatMaxCount: "many" });
      const halfTls = file("half_tls.json", { ...base, tlsCertFile: "/nonexistent/c.pem" });
      const tls = file("tls.json", { ...base, tlsCertFile: "/nonexistent/c.pem", tlsKeyFile: "/nonexistent/k.pem" });
      const absent = `${unknown}.absent`;
      const noData = ["--data-dir", `${unknown}.data`];
      await runBadStarts(program("registry/main.ts"), [
        {
          name: "an unknown key",
          args: ["--config", unknown],
          mentions: [unknown, "'rpcserver_quic_port' is unknown"],
        },
        { name: "not JSON", args: ["--config", notJson], mentions: [notJson, "line 3, column 3"] },
        { name: "a wrong value", args: ["--config", wrongType], mentions: [wrongType, /'heartbeatMaxCount'.*"many"/] },
        { name: "a key left out", args: ["--config", halfTls], mentions: [halfTls, "'tlsKeyFile'"] },
        {
          name: "a certificate not there",
          args: ["--config", tls],
          mentions: [tls, "'tlsCertFile'", "/nonexistent/c.pem"],
        },
        { name: "no such file", args: ["--config", absent], mentions: [absent] },
        { name: "a port that is not a number", args: ["--port", "abc", ...noData], mentions: ["'--port'", "'abc'"] },
        { name: "an unknown option", args: ["--bogus", ...noData], mentions: ["'--bogus'"] },
      ]);
    });
  },
);

Deno.test(
  "the CLIs, the code generator and the echo, bench and fault programs refuse an unknown option in one line, exit 2",
  needs("read", "run"),
  async () => {
    const bogus: BadStart = { name: "an unknown option", args: ["--bogus"], mentions: ["'--bogus'"] };
    for (const main of ["registry/cli.ts", "registry/repair.ts", "rpc/gen.ts", "examples/echo/echo_server.ts"]) {
      await runBadStarts(program(main), [bogus]);
    }
    await runBadStarts(program("registry/repair.ts"), [{ name: "no --data", args: [], mentions: ["'--data DIR'"] }]);
    await runBadStarts(program("examples/echo/echo_client.ts"), [{
      ...bogus,
      args: ["--port"],
      mentions: ["'--port"],
    }]);
    await runBadStarts(program("bench/pingpong_server.ts"), [bogus]);
    await runBadStarts(program("fault/fuzz.ts"), [bogus]);
  },
);
