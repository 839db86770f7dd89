/**
 * Test program: holds an ephemeral node with `recreateEphemerals`, printing session events as lines
 * (`READY`, `connected resumed=...`, `expired`, `recreated`). Usage: ephemeral_holder.ts HOST:PORT PATH
 */
import { defaultBackend } from "../../reactor/backend/default.ts";
import { EventLoop } from "../../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../../reactor/logger.ts";
import { NodeType } from "../server/data_tree.ts";
import { RegistryClient } from "../client/registry_client.ts";

getLogger().level = LogLevel.ERROR;
const [address, path] = defaultBackend().process.args() as [string, string];
const client = await RegistryClient.connect(address, {
  loop: EventLoop.current(),
  recreateEphemerals: true,
  reconnectDelayMs: 20,
});
client.onSessionEvent(async (event) => {
  if (event.type === "connected") console.log(`connected resumed=${event.resumed}`);
  if (event.type === "expired") console.log("expired");
  if (event.type === "connected" && !event.resumed) {
    // Wait for the re-created node, then say so.
    for (let i = 0; i < 100; i++) {
      if (await client.exists(path)) {
        console.log("recreated");
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
});
await client.create(path, "held", { nodeType: NodeType.EPHEMERAL });
console.log("READY");
