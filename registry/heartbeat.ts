/**
 * The UDP heartbeat datagram (layout in proto/registry.proto): it proves its sender holds the session's secret
 * without sending it, and a strictly increasing counter stops replays, so a stranger who learns a session id
 * cannot keep the session alive.
 *
 * ```text
 * offset size field
 * 0      2    magic 0x6468 ("dh")
 * 2      1    version = 1
 * 3      1    flags: 0 for a heartbeat (client to server), 1 for an expiry notice (server to client)
 * 4      8    session id, uint64 big-endian
 * 12     8    counter, uint64 big-endian
 * 20     20   proof: first 20 bytes of HMAC-SHA256(session secret, bytes 0..19)
 * ```
 *
 * @module
 */

/** Bytes in a heartbeat datagram. */
export const HEARTBEAT_BYTES = 40;
/** Flags of a heartbeat (client to server). */
export const HEARTBEAT_FLAG_NONE = 0;
/** Flags of an expiry notice (server to client): the session is gone; signed with its secret. */
export const HEARTBEAT_FLAG_EXPIRED = 1;
const MAGIC = 0x6468;
const VERSION = 1;
const SIGNED_BYTES = 20;

/** Import a session secret as an HMAC key. */
export function importHeartbeatKey(secret: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", secret as Uint8Array<ArrayBuffer>, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
}

/** Build a heartbeat (or, with `flags` 1, an expiry notice) for `sessionId` with `counter`, signed by `key`. */
export async function encodeHeartbeat(
  sessionId: bigint,
  counter: bigint,
  key: CryptoKey,
  flags: number = HEARTBEAT_FLAG_NONE,
): Promise<Uint8Array> {
  const datagram = new Uint8Array(HEARTBEAT_BYTES);
  const view = new DataView(datagram.buffer);
  view.setUint16(0, MAGIC);
  view.setUint8(2, VERSION);
  view.setUint8(3, flags);
  view.setBigUint64(4, sessionId);
  view.setBigUint64(12, counter);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, datagram.subarray(0, SIGNED_BYTES)));
  datagram.set(mac.subarray(0, HEARTBEAT_BYTES - SIGNED_BYTES), SIGNED_BYTES);
  return datagram;
}

/** The parts of a datagram that looks like a heartbeat, or undefined for anything else. Not yet verified. */
export function parseHeartbeat(
  datagram: Uint8Array,
): { flags: number; sessionId: bigint; counter: bigint; signed: Uint8Array; proof: Uint8Array } | undefined {
  if (datagram.length !== HEARTBEAT_BYTES) return undefined;
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  if (view.getUint16(0) !== MAGIC || view.getUint8(2) !== VERSION) return undefined;
  return {
    flags: view.getUint8(3),
    sessionId: view.getBigUint64(4),
    counter: view.getBigUint64(12),
    // Copies: the datagram's memory is only valid during the receive callback, and verification is async.
    signed: datagram.slice(0, SIGNED_BYTES),
    proof: datagram.slice(SIGNED_BYTES),
  };
}

/** Whether `proof` is the right HMAC of `signed` under `key` (constant-time comparison). */
export async function verifyHeartbeat(signed: Uint8Array, proof: Uint8Array, key: CryptoKey): Promise<boolean> {
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, signed as Uint8Array<ArrayBuffer>));
  let diff = 0;
  for (let i = 0; i < proof.length; i++) diff |= mac[i]! ^ proof[i]!;
  return diff === 0 && proof.length === HEARTBEAT_BYTES - SIGNED_BYTES;
}
