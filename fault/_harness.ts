/** What the fault suite and the fuzz run share: how their server processes are started, and framing. */
import type { SpawnReadyOptions } from "../reactor/testdata/spawn_ready.ts";

/** How the fault harnesses start their servers with `spawnReady`: logs at ERROR, stderr discarded. */
export const QUIET: SpawnReadyOptions = { env: { DWT_LOG_LEVEL: "ERROR" }, stderr: "null" };

/** `body` behind a 4-byte big-endian length: one frame of LengthHeaderCodec. */
export function framed(body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}
