/**
 * The boot epoch of a data directory: a counter raised and persisted at every start, the high half of the
 * heartbeat counter floor, so heartbeat datagrams recorded before a restart are rejected after it.
 *
 * @module
 */

import type { NetBackend } from "../../reactor/backend/net_backend.ts";

/** Read, raise and persist the boot epoch of a data directory (the heartbeat counter floor's high half). */
export async function nextBootEpoch(backend: NetBackend, dir: string): Promise<bigint> {
  let epoch = 0n;
  try {
    const text = new TextDecoder().decode(await backend.fs.readFile(`${dir}/epoch`)).trim();
    if (/^[0-9]{1,9}$/.test(text)) epoch = BigInt(text);
  } catch {
    // First start: epoch 0.
  }
  epoch++;
  await backend.fs.writeFile(`${dir}/epoch.tmp`, new TextEncoder().encode(`${epoch}\n`), { mode: 0o600 });
  await backend.fs.rename(`${dir}/epoch.tmp`, `${dir}/epoch`);
  await backend.fs.fsyncDir(dir);
  return epoch;
}
