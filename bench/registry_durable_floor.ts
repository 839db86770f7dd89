/**
 * The floor under a durable registry write, for `bench/registry_vs_zookeeper.ts`: a plain Deno socket server that,
 * for each 32-byte request frame, appends one record of `--record-bytes` to a file in a temp dir (the same disk as
 * the registry's data directory) and fdatasyncs it before it echoes the frame. Frames that arrive in one read share
 * one sync (as a log's group commit). No parsing, no tree, no protocol: a loopback round trip plus an append and an
 * fdatasync, so no durable write with one round trip beats it. Prints `READY <port>`; the file goes at exit.
 *
 * With `--preallocate`, the file is first filled with 64 MiB of zeros (synced) and the records overwrite them from
 * the front, as the registry's log does with the space it keeps written ahead: its fdatasync then has no new file
 * size to write, which on ext4 saves an inode write per sync. That is the floor for a log that preallocates.
 *
 *   deno run -A bench/registry_durable_floor.ts --record-bytes 60 [--preallocate]
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";

const FRAME_BYTES = 32;
const { values } = parseArgsOrExit({
  args: Deno.args,
  options: { "record-bytes": { type: "string", default: "64" }, preallocate: { type: "boolean", default: false } },
});
const recordBytes = Number(values["record-bytes"]);
const dir = await Deno.makeTempDir({ prefix: "registry-floor-" });
const file = await Deno.open(`${dir}/log`, { create: true, write: true, mode: 0o600 });
if (values.preallocate) {
  const zeros = new Uint8Array(1024 * 1024);
  for (let i = 0; i < 64; i++) for (let at = 0; at < zeros.length;) at += file.writeSync(zeros.subarray(at));
  file.syncSync();
  file.seekSync(0, Deno.SeekMode.Start);
}
const record = new Uint8Array(recordBytes).fill(0x5a);

async function serve(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const buffer = new Uint8Array(64 * 1024);
  let partial = 0;
  try {
    for (;;) {
      const n = await conn.read(buffer.subarray(partial));
      if (n === null) break;
      const whole = Math.floor((partial + n) / FRAME_BYTES);
      if (whole > 0) {
        const records = whole === 1 ? record : new Uint8Array(whole * recordBytes).fill(0x5a);
        for (let at = 0; at < records.length;) at += file.writeSync(records.subarray(at));
        await file.syncData();
        const reply = buffer.slice(0, whole * FRAME_BYTES);
        for (let at = 0; at < reply.length;) at += await conn.write(reply.subarray(at));
      }
      partial = (partial + n) % FRAME_BYTES;
      buffer.copyWithin(0, whole * FRAME_BYTES, whole * FRAME_BYTES + partial);
    }
  } catch {
    // The bench closed the connection.
  } finally {
    conn.close();
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const cleanUp = () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } finally {
    Deno.exit(0);
  }
};
Deno.addSignalListener("SIGTERM", cleanUp);
Deno.addSignalListener("SIGINT", cleanUp);
console.log(`READY ${(listener.addr as Deno.NetAddr).port}`);
for await (const conn of listener) serve(conn);
