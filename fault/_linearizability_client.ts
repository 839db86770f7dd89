/**
 * A client of `fault/linearizability.ts` in a process of its own, to be killed with `kill -9`: it opens a session
 * (printing `SESSION <hex id>`), creates one ephemeral sequential node, prints `READY <actual path>` (or
 * `READY FAILED:<code>` for a definite refusal, `READY UNKNOWN` when no definite answer came) and then holds the
 * session until it is killed. Usage: _linearizability_client.ts HOST:PORT HEARTBEAT_HOST:PORT PATH DATA
 */
import { EventLoop } from "../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import { NodeType } from "../registry/registry.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { RegistryError, RegistryErrorCode, registryErrorCodeName } from "../registry/registry_error.ts";

getLogger().level = LogLevel.FATAL;
const [address, heartbeatAddress, path, data] = Deno.args as [string, string, string, string];
const client = await RegistryClient.connect(address, {
  loop: EventLoop.current(),
  heartbeatAddress,
  requestTimeoutMs: 2000,
});
console.log(`SESSION ${client.sessionId.toString(16)}`);
const definite: number[] = [
  RegistryErrorCode.NO_NODE,
  RegistryErrorCode.NODE_EXISTS,
  RegistryErrorCode.NO_CHILDREN_FOR_EPHEMERALS,
];
try {
  console.log(`READY ${await client.create(path, data, { nodeType: NodeType.EPHEMERAL, sequential: true })}`);
} catch (error) {
  const code = error instanceof RegistryError && definite.includes(error.code) ? error.code : undefined;
  console.log(code === undefined ? "READY UNKNOWN" : `READY FAILED:${registryErrorCodeName(code)}`);
}
setInterval(() => {}, 60_000); // hold the session until killed
