/**
 * The streaming demo (`deno task demo-streaming`): starts a registry on the embedded defaults (127.0.0.1:10606),
 * the feed provider (FeedService on 127.0.0.1:8802), then the feed caller, each as its own process on the runtime
 * the demo runs on; prints every line each one writes, prefixed with its role; shuts everything down and exits with
 * the caller's status.
 */

import { defaultBackend } from "../../reactor/backend/mod.ts";
import type { ChildProcessHandle } from "../../reactor/backend/net_backend.ts";

const here = new URL(".", import.meta.url);
const { process } = defaultBackend();

/** A child process and what the demo waits for: its `READY` line, and its exit. */
interface Role {
  name: string;
  child: ChildProcessHandle;
  ready: Promise<void>;
  done: Promise<number>;
}

function start(name: string, module: string, args: string[], waitForReady: boolean): Role {
  const child = process.spawn([...process.commandFor(new URL(module, here).href), ...args], {
    env: { NO_COLOR: "1" },
  });
  const ready = Promise.withResolvers<void>();
  if (!waitForReady) ready.resolve();
  const pump = async (lines: AsyncIterable<string>) => {
    for await (const line of lines) {
      console.log(`[${name}] ${line}`);
      if (line.startsWith("READY ")) ready.resolve();
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const done = child.exited.then(async (code) => {
    await pumps;
    ready.reject(new Error(`${name} exited with status ${code} before it was ready`));
    return code;
  });
  ready.promise.catch(() => {});
  return { name, child, ready: ready.promise, done };
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function stop(role: Role): Promise<void> {
  role.child.kill("SIGTERM");
  await within(role.done, 10_000, `stopping ${role.name}`).catch(() => role.child.kill("SIGKILL"));
}

const config = (name: string) => new URL(name, here).pathname;
const roles: Role[] = [];
let code = 1;
try {
  const registry = start("registry", "../../registry/main.ts", [], true);
  roles.push(registry);
  await within(registry.ready, 15_000, "starting the registry");
  const provider = start("feed-provider", "feed_provider.ts", ["-i", config("provider.json")], true);
  roles.push(provider);
  await within(provider.ready, 15_000, "starting the feed provider");
  const caller = start("feed-caller", "feed_caller.ts", ["-i", config("caller.json")], false);
  roles.push(caller);
  code = await within(caller.done, 30_000, "the feed caller");
  console.log(
    code === 0
      ? "demo-streaming ok: every stream did what it should"
      : `demo-streaming FAILED: the feed caller exited with ${code}`,
  );
} catch (error) {
  console.error(`demo-streaming FAILED: ${(error as Error).message}`);
} finally {
  // The provider first (it unpublishes from the registry), then the registry.
  for (const role of roles.reverse()) await stop(role);
}
process.exit(code);
