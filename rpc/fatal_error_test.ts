// A program that cannot use the world it runs in (a port another process holds, a registry nobody answers at) says so
// in one line and exits 1; a bug keeps its stack trace.
import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { needs } from "../reactor/testdata/permissions.ts";
import type { ProcessBackend } from "../reactor/backend/net_backend.ts";
import { RegistryError, RegistryErrorCode } from "../registry/registry_error.ts";
import { RegistryServer } from "../registry/server/registry_server.ts";
import { ConfigError, USAGE_EXIT_STATUS } from "./config_error.ts";
import { exitOnFatalError, FAILURE_EXIT_STATUS, isEnvironmentError } from "./fatal_error.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";

class Exited extends Error {
  readonly status: number;
  constructor(status: number) {
    super(`exit ${status}`);
    this.status = status;
  }
}

/** A process backend that records what a program would write and how it would exit. */
function recordingProcess(): { process: ProcessBackend; stderr: string[] } {
  const stderr: string[] = [];
  const process = {
    writeStderr: (text: string) => stderr.push(text),
    exit: (code: number): never => {
      throw new Exited(code);
    },
  } as unknown as ProcessBackend;
  return { process, stderr };
}

function exitOf(error: unknown): { status: number; stderr: string[] } {
  const { process, stderr } = recordingProcess();
  try {
    exitOnFatalError(error, process);
  } catch (thrown) {
    if (thrown instanceof Exited) return { status: thrown.status, stderr };
    throw thrown;
  }
  throw new Error("exitOnFatalError returned");
}

Deno.test("exitOnFatalError: a config error is a usage error, the world's errors one line and status 1, bugs rethrown", () => {
  assert.deepEqual(exitOf(new ConfigError("Cannot load RPC config a.json: 'x' is not a key")), {
    status: USAGE_EXIT_STATUS,
    stderr: ["Cannot load RPC config a.json: 'x' is not a key\n"],
  });
  const unreachable = new RegistryError(RegistryErrorCode.CONNECTION_LOSS, "Cannot connect to the registry\nat 1:2");
  assert.deepEqual(exitOf(unreachable), {
    status: FAILURE_EXIT_STATUS,
    stderr: ["Cannot connect to the registry at 1:2\n"],
  });
  assert.equal(exitOf(new RpcError(RpcCode.UNAVAILABLE, "no provider")).status, FAILURE_EXIT_STATUS);
  const inUse = Object.assign(new Error("listen EADDRINUSE: address already in use 127.0.0.1:1"), {
    code: "EADDRINUSE",
  });
  assert.equal(exitOf(inUse).status, FAILURE_EXIT_STATUS, "Node's and Bun's errno errors");
  assert.equal(exitOf(new Deno.errors.AddrInUse("Address already in use")).status, FAILURE_EXIT_STATUS);
  assert.equal(exitOf(new Deno.errors.PermissionDenied("Permission denied")).status, FAILURE_EXIT_STATUS);
  // Bugs: a plain TypeError, an Error with no code, a thrown string.
  for (const bug of [new TypeError("x is undefined"), new Error("assertion"), "a string"]) {
    assert.equal(isEnvironmentError(bug), false);
    assert.throws(() => exitOnFatalError(bug, recordingProcess().process), (thrown) => thrown === bug);
  }
});

Deno.test(
  "a provider whose port another process holds says where, in one line, and exits 1",
  needs("run", "read", "write"),
  async () => {
    const loop = new EventLoop();
    const registry = new RegistryServer({ port: 0, heartbeatPort: 0, loop });
    await registry.start();
    const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const dir = await Deno.makeTempDir({ prefix: "fatal_error_" });
    try {
      const config = `${dir}/provider.json`;
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          rpcserver_ip: "127.0.0.1",
          rpcserver_port: holder.addr.port,
          dwt_src_ip: "127.0.0.1",
          dwt_src_port: registry.address.port,
          log_level: "ERROR",
        }),
      );
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL("../examples/rpc/callee.ts", import.meta.url).pathname, "-i", config],
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      const context = `status ${output.code}, stderr:\n${stderr}`;
      assert.equal(output.code, FAILURE_EXIT_STATUS, context);
      assert.equal(new TextDecoder().decode(output.stdout), "", context);
      assert.match(
        stderr,
        new RegExp(`^Cannot listen on 127\\.0\\.0\\.1:${holder.addr.port}: .*in use.*\\n$`, "i"),
        context,
      );
    } finally {
      holder.close();
      await Deno.remove(dir, { recursive: true });
      await registry.stop();
      loop.quit();
    }
  },
);
