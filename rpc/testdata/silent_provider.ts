/**
 * A provider in a process of its own, for attacks too large to share a process with their attacker (11,000
 * sockets each side do not fit one process's descriptor limit): `deno run -A silent_provider.ts '<config JSON>'`
 * takes the `rpcserver_` keys of an RPC config, serves test.Peer (whose Who answers the caller's address as the
 * provider sees it) on 127.0.0.1 with its status pages, prints `READY <calls address>,<status address>` and runs
 * until killed.
 */

import { EventLoop } from "../../reactor/event_loop.ts";
import { parseRpcConfig } from "../rpc_application.ts";
import { type CallContext, RpcProvider } from "../rpc_provider.ts";
import { parseProto, serviceDefinition } from "../service_definition.ts";

/** The service: Who answers `context.peer`, so a caller sees whether its connection was replaced. */
export const PEER = serviceDefinition(
  parseProto(`syntax = "proto3"; package test;
    message Address { string address = 1; }
    service Peer { rpc Who (Address) returns (Address); }`),
  "test.Peer",
);

if (import.meta.main) {
  const raw = { dwt_src_ip: "127.0.0.1", dwt_src_port: 1, ...JSON.parse(Deno.args[0] ?? "{}") };
  const provider = new RpcProvider({
    loop: new EventLoop(),
    host: "127.0.0.1",
    statusPort: 0,
    ...parseRpcConfig(raw, "argv").rpcserverLimits,
  });
  provider.registerService(PEER, { Who: (_request: unknown, context: CallContext) => ({ address: context.peer }) });
  await provider.start();
  console.log(`READY ${provider.advertisedAddress},${provider.statusAddress}`);
}
