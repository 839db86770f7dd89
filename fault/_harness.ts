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

/**
 * A small deterministic generator (xorshift32) of numbers in [0, 1), so a run's workload and fault schedule can be
 * repeated from its seed.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
}
