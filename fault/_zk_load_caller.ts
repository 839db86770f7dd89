/**
 * The load caller of `fault/zk_ensemble.ts`: an application as users write one (`RpcApplication` from a config
 * naming ZooKeeper, one channel, a generated stub) calling `dwt.UserServiceRpc.Login` at a steady rate, and telling
 * its parent what happened as JSON lines on stdout, each with the wall-clock time `t` in milliseconds:
 *
 * - `{"k":"tick","t","ok","failed"}` every 100 ms: calls answered and failed since the last tick;
 * - `{"k":"fail","t","code","message"}` per failed call (`t` when it failed);
 * - `{"k":"view","t","view"}` whenever the channel's provider list changes (looked at every 10 ms);
 * - `{"k":"session","t","type","sessionId"}` per session event of its registry client.
 *
 * `deno run -A fault/_zk_load_caller.ts -i caller.json [--rate 200] [--timeout-ms 2000]`; prints `READY` once the
 * first providers are known; stops on SIGTERM after a last tick.
 *
 * @module
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { RpcApplication } from "../rpc/rpc_application.ts";
import { RpcError } from "../rpc/rpc_error.ts";
import { newUserServiceRpcStub } from "../examples/rpc/user_pb.ts";

const SERVICE = "dwt.UserServiceRpc";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    i: { type: "string" },
    rate: { type: "string", default: "200" },
    "timeout-ms": { type: "string", default: "2000" },
  },
});
const rate = Number(values.rate);
const timeoutMs = Number(values["timeout-ms"]);
const out = (line: Record<string, unknown>) => console.log(JSON.stringify(line));

const app = await RpcApplication.init(["-i", values.i!], { name: "zk-load-caller" });
const registry = await app.registry();
registry.onSessionEvent((event) => {
  out({
    k: "session",
    t: Date.now(),
    type: event.type,
    sessionId: "sessionId" in event ? event.sessionId.toString(16) : undefined,
  });
});
const channel = await app.channel({ timeoutMs });
const users = newUserServiceRpcStub(channel);
const encoder = new TextEncoder();
const request = { name: encoder.encode("dwt"), password: encoder.encode("password") };

let view = "";
const lookAtView = async () => {
  const now = (await channel.providersOf(SERVICE)).sort().join(",");
  if (now !== view) {
    view = now;
    out({ k: "view", t: Date.now(), view: now === "" ? [] : now.split(",") });
  }
};
await lookAtView();
const viewTimer = setInterval(() => lookAtView().catch(() => {}), 10);

let ok = 0;
let failed = 0;
let issued = 0;
const started = performance.now();
const call = () => {
  issued++;
  users.Login(request).then(
    () => void ok++,
    (error) => {
      failed++;
      const rpcError = RpcError.from(error);
      out({ k: "fail", t: Date.now(), code: rpcError.code, message: rpcError.rawMessage });
    },
  );
};
// Open loop: the calls due by now are made now, so a stalled moment does not lower the rate (at most 50 at once).
const callTimer = setInterval(() => {
  const due = Math.floor((performance.now() - started) * rate / 1000) - issued;
  for (let i = 0; i < Math.min(due, 50); i++) call();
  if (due > 50) issued += due - 50;
}, 5);
const tick = () => {
  out({ k: "tick", t: Date.now(), ok, failed });
  ok = 0;
  failed = 0;
};
const tickTimer = setInterval(tick, 100);
console.log("READY");

const stop = async () => {
  clearInterval(callTimer);
  clearInterval(viewTimer);
  await new Promise((resolve) => setTimeout(resolve, timeoutMs + 100)); // the calls in flight end
  clearInterval(tickTimer);
  tick();
  await channel.close();
  await app.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", () => void stop());
