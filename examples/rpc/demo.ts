/**
 * The main job (`deno task demo`): starts a registry on the embedded defaults (127.0.0.1:10606), the two seed
 * callees (UserServiceRpc on 8800, InfoServiceRpc on 8801), then the caller, each as its own process; prints
 * every line each one writes, prefixed with its role; shuts everything down and exits with the caller's status.
 */

import { defaultBackend } from "../../reactor/backend/mod.ts";
import type { ChildProcessHandle } from "../../reactor/backend/net_backend.ts";

const here = new URL(".", import.meta.url);
// Every role runs on the runtime the demo runs on (Deno, Node through tsx, or Bun), through the backend.
const { process } = defaultBackend();

interface Role {
  name: string;
  child: ChildProcessHandle;
  ready: Promise<void>;
  done: Promise<number>;
}

function start(name: string, module: string, args: string[], readyPattern: RegExp | undefined): Role {
  const child = process.spawn([...process.commandFor(new URL(module, here).href), ...args], {
    env: { NO_COLOR: "1" },
  });
  const ready = Promise.withResolvers<void>();
  if (readyPattern === undefined) ready.resolve();
  const pump = async (lines: AsyncIterable<string>) => {
    for await (const line of lines) {
      console.log(`[${name}] ${line}`);
      if (readyPattern?.test(line)) ready.resolve();
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

const roles: Role[] = [];
let code = 1;
try {
  const registry = start("registry", "../../registry/main.ts", [], /^READY /);
  roles.push(registry);
  await within(registry.ready, 15_000, "starting the registry");
  const config = (name: string) => new URL(name, here).pathname;
  const callee = start("callee", "callee.ts", ["-i", config("provider.json")], /^READY /);
  const callee2 = start("callee2", "callee2.ts", ["-i", config("provider2.json")], /^READY /);
  roles.push(callee, callee2);
  await within(Promise.all([callee.ready, callee2.ready]), 15_000, "starting the callees");
  const caller = start("caller", "caller.ts", ["-i", config("caller.json")], undefined);
  roles.push(caller);
  code = await within(caller.done, 30_000, "the caller");
  console.log(code === 0 ? "demo ok: every call succeeded" : `demo FAILED: the caller exited with ${code}`);
} catch (error) {
  console.error(`demo FAILED: ${(error as Error).message}`);
} finally {
  // Callees first (they unpublish from the registry), then the registry.
  for (const role of roles.slice(1).reverse()) {
    role.child.kill("SIGTERM");
    await within(role.done, 10_000, `stopping ${role.name}`).catch(() => role.child.kill("SIGKILL"));
  }
  if (roles[0] !== undefined) {
    roles[0].child.kill("SIGTERM");
    await within(roles[0].done, 10_000, "stopping the registry").catch(() => roles[0]!.child.kill("SIGKILL"));
  }
}
process.exit(code);
