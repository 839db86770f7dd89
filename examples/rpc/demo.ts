/**
 * The main job (`deno task demo`): starts a registry on the embedded defaults (127.0.0.1:10606), the two seed
 * callees (UserServiceRpc on 8800, InfoServiceRpc on 8801), then the caller, each as its own process; prints
 * every line each one writes, prefixed with its role; shuts everything down and exits with the caller's status.
 */

const here = new URL(".", import.meta.url);
const deno = Deno.execPath();

interface Role {
  name: string;
  child: Deno.ChildProcess;
  ready: Promise<void>;
  done: Promise<Deno.CommandStatus>;
}

function start(name: string, args: string[], readyPattern: RegExp | undefined): Role {
  const child = new Deno.Command(deno, {
    args: ["run", "-A", ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const ready = Promise.withResolvers<void>();
  if (readyPattern === undefined) ready.resolve();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      let eol: number;
      while ((eol = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, eol);
        pending = pending.slice(eol + 1);
        console.log(`[${name}] ${line}`);
        if (readyPattern?.test(line)) ready.resolve();
      }
    }
    if (pending !== "") console.log(`[${name}] ${pending}`);
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const done = child.status.then(async (status) => {
    await pumps;
    ready.reject(new Error(`${name} exited with status ${status.code} before it was ready`));
    return status;
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
  const registry = start("registry", [new URL("../../registry/main.ts", here).pathname], /^READY /);
  roles.push(registry);
  await within(registry.ready, 15_000, "starting the registry");
  const callee = start(
    "callee",
    [new URL("callee.ts", here).pathname, "-i", new URL("provider.json", here).pathname],
    /^READY /,
  );
  const callee2 = start("callee2", [
    new URL("callee2.ts", here).pathname,
    "-i",
    new URL("provider2.json", here).pathname,
  ], /^READY /);
  roles.push(callee, callee2);
  await within(Promise.all([callee.ready, callee2.ready]), 15_000, "starting the callees");
  const caller = start(
    "caller",
    [new URL("caller.ts", here).pathname, "-i", new URL("caller.json", here).pathname],
    undefined,
  );
  roles.push(caller);
  const status = await within(caller.done, 30_000, "the caller");
  code = status.code;
  console.log(code === 0 ? "demo ok: every call succeeded" : `demo FAILED: the caller exited with ${code}`);
} catch (error) {
  console.error(`demo FAILED: ${(error as Error).message}`);
} finally {
  // Callees first (they unpublish from the registry), then the registry.
  for (const role of roles.slice(1).reverse()) {
    try {
      role.child.kill("SIGTERM");
    } catch {
      // already exited
    }
    await within(role.done, 10_000, `stopping ${role.name}`).catch(() => role.child.kill("SIGKILL"));
  }
  if (roles[0] !== undefined) {
    try {
      roles[0].child.kill("SIGTERM");
    } catch {
      // already exited
    }
    await within(roles[0].done, 10_000, "stopping the registry").catch(() => roles[0]!.child.kill("SIGKILL"));
  }
}
Deno.exit(code);
