/**
 * An emulation of the C++ seed's `client_cli` (dwt_src `client/client_cli.cpp`), written from
 * ../shared/seed/seed-spec.md §2.8 on top of the client library emulation (seed_src_client.ts): the same prompt,
 * commands and output lines. Like the seed's it ignores its flags (`-i`, `-p`, `-t` are never parsed) and talks to
 * 127.0.0.1:10606 with 10-s heartbeats; for tests only, the environment variables SEED_CLI_PORT and
 * SEED_CLI_INTERVAL_MS stand in for the values the seed compiled in. The seed's WARN lines carry a Chinese text
 * the spec does not give: here they read `request failed: <errmsg>`. Log lines go to stdout, as the seed's do.
 *
 * ```text
 * deno run -A seed/testdata/seed_client_cli.ts      # then: create /a x, get /a, ls /, stat /a, exists /a, ...
 * ```
 *
 * @module
 */

import { SeedFatal, SeedSrcClient } from "./seed_src_client.ts";

const encoder = new TextEncoder();

function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}

function stamp(): string {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${now.getFullYear()}/${pad(now.getMonth() + 1)}/${pad(now.getDate())} ` +
    `${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
}

function log(level: "INFO" | "WARN" | "FATAL", message: string): void {
  print(`[${level.padEnd(6)}] ${stamp()} : ${message}\n`);
}

/** Run the CLI on stdin; resolves with the exit status (the seed's LOG_FATAL exits with -1, i.e. 255). */
export async function runSeedClientCli(): Promise<number> {
  const ip = "127.0.0.1";
  const port = Number(Deno.env.get("SEED_CLI_PORT") ?? 10606);
  const intervalMs = Number(Deno.env.get("SEED_CLI_INTERVAL_MS") ?? 10_000);
  const client = new SeedSrcClient();
  print(`addr: ${ip}:${port} interval=${Math.round(intervalMs / 1000)}\n`);
  try {
    await client.connect(ip, port, intervalMs);
    log("INFO", `connect success, sessionId = ${client.sessionId}`);
    let op = "";
    let prompt = true;
    const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
    let pending = "";
    const reader = lines.getReader();
    for (;;) {
      if (prompt) print("SRCCLI$ ");
      let eol = pending.indexOf("\n");
      while (eol < 0) {
        const { value, done } = await reader.read();
        if (done) {
          await client.disconnect();
          return 0;
        }
        pending += value;
        eol = pending.indexOf("\n");
      }
      const line = pending.slice(0, eol);
      pending = pending.slice(eol + 1);
      const words = line.split(/\s+/).filter((word) => word !== "");
      // `op` is not cleared: an empty line repeats the previous command with empty arguments.
      if (words.length > 0) op = words[0]!;
      const [path = "", data = "", type = ""] = words.slice(1);
      const before = client.warnings.length;
      const output = await command(client, op, path, data, type);
      for (const warning of client.warnings.slice(before)) log("WARN", `request failed: ${warning}`);
      if (output === undefined) {
        print("invalid operation\n");
        prompt = false;
        continue;
      }
      print(output);
      prompt = true;
    }
  } catch (error) {
    if (!(error instanceof SeedFatal)) throw error;
    log("FATAL", error.message);
    return 255;
  } finally {
    await client.disconnect();
  }
}

async function command(
  client: SeedSrcClient,
  op: string,
  path: string,
  data: string,
  typeText: string,
): Promise<string | undefined> {
  switch (op) {
    case "create": {
      const parsed = Number.parseInt(typeText, 10);
      const type = Number.isNaN(parsed) || parsed === 0 ? 1 : parsed;
      return (await client.createNode(path, data, type)) ? "create success\n" : "create error\n";
    }
    case "get":
      return `${await client.getNode(path)}\n`;
    case "set":
      return (await client.setNode(path, data)) ? "set success\n" : "set error\n";
    case "delete":
      // The seed prints "set" here (a copy-paste slip kept for fidelity).
      return (await client.deleteNode(path)) ? "set success\n" : "set error\n";
    case "ls":
      return `[${(await client.lsNode(path)).join(", ")}]\n`;
    case "stat": {
      const state = await client.statNode(path);
      return `nodeType: ${state.nodeType}\ndataLength: ${state.dataLength}\nnumChildren: ${state.numChildren}\n` +
        `ephemeralOwner: ${state.ephemeralOwner.toString(16)}\n\n`;
    }
    case "exists":
      return (await client.existsNode(path)) ? "exists\n" : "not exists\n";
    default:
      return undefined;
  }
}

if (import.meta.main) Deno.exit(await runSeedClientCli());
