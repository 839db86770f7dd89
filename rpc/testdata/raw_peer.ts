/**
 * A peer speaking proto/rpc.proto's envelope by hand over a raw socket (TCP or TLS), as a hostile or foreign one
 * would: for the stream trust tests (streaming_trust_test.ts, streaming_trust_load_test.ts). As a caller it opens
 * test.Feed's streams (feed_service.ts) frame by frame; on an accepted socket it plays a provider.
 */

import assert from "node:assert/strict";
import { decodeRpcFrame } from "../_rpc_decoder.ts";
import { encodeRpcFrame } from "../_rpc_encoder.ts";
import { DecodedFrame, FrameKind, type WireFrame } from "../_rpc_wire.ts";
import { FEED, type Msg } from "./feed_service.ts";

/** test.Feed's message type. */
export const MSG = FEED.methods.get("Say")!.requestType;

/** A Msg's bytes. */
export function msg(value: Partial<Msg>): Uint8Array {
  return MSG.encode(MSG.fromObject(value)).finish();
}

/** One write of the frames, each with its 4-byte length prefix. */
export function framed(frames: WireFrame[]): Uint8Array {
  const bodies = frames.map(encodeRpcFrame);
  const out = new Uint8Array(bodies.reduce((sum, body) => sum + 4 + body.length, 0));
  let at = 0;
  for (const body of bodies) {
    new DataView(out.buffer).setUint32(at, body.length);
    out.set(body, at + 4);
    at += 4 + body.length;
  }
  return out;
}

/** The request frame that opens a stream (or, with `stream` 0, a unary call) of test.Feed. */
export function open(
  callId: number,
  method: string,
  stream: number,
  extra: Partial<NonNullable<WireFrame["request"]>> = {},
): WireFrame {
  return { request: { callId, service: "test.Feed", method, stream, ...extra } };
}

/**
 * One end of a connection speaking the envelope by hand. It reads everything the other side sends into `frames`
 * (unless made with `read: false`, to play a peer that never reads).
 */
export class RawPeer {
  readonly conn: Deno.Conn;
  /** Every frame received, in order. */
  readonly frames: DecodedFrame[] = [];
  #eof = false;
  #wake: () => void = () => {};
  readonly #reading: Promise<void>;

  /** Speak on `conn` (connected or accepted). */
  constructor(conn: Deno.Conn, read = true) {
    this.conn = conn;
    this.#reading = read ? this.#read() : Promise.resolve();
  }

  /** A raw caller on a new connection to 127.0.0.1:`port`. */
  static async connect(port: number, read = true): Promise<RawPeer> {
    return new RawPeer(await Deno.connect({ hostname: "127.0.0.1", port }), read);
  }

  /** Whether the provider closed the connection (EOF or reset). */
  get closed(): boolean {
    return this.#eof;
  }

  async send(...frames: WireFrame[]): Promise<void> {
    const bytes = framed(frames);
    for (let at = 0; at < bytes.length;) at += await this.conn.write(bytes.subarray(at));
  }

  /** The first frame received (from index `from` on) that `match` accepts; null at EOF; throws after `timeoutMs`. */
  async waitFor(match: (frame: DecodedFrame) => boolean, timeoutMs = 3000, from = 0): Promise<DecodedFrame | null> {
    const deadline = performance.now() + timeoutMs;
    for (let seen = from;;) {
      for (; seen < this.frames.length; seen++) if (match(this.frames[seen]!)) return this.frames[seen]!;
      if (this.#eof) return null;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`No matching frame within ${timeoutMs} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** The response that ends `callId` (fails at EOF or after `timeoutMs`). */
  async endOf(callId: number, timeoutMs = 3000): Promise<DecodedFrame> {
    const frame = await this.waitFor((f) => f.kind === FrameKind.RESPONSE && f.callId === callId, timeoutMs);
    assert.ok(frame !== null, `the connection closed before call ${callId} ended`);
    return frame;
  }

  /** The frames received so far for `callId` of one kind. */
  framesOf(callId: number, kind: FrameKind): DecodedFrame[] {
    return this.frames.filter((frame) => frame.callId === callId && frame.kind === kind);
  }

  /** A unary Say as call `callId` is answered OK: the connection still serves. */
  async alive(callId: number): Promise<void> {
    await this.send(open(callId, "Say", 0, { payload: msg({ text: "still here" }) }));
    const end = await this.endOf(callId);
    assert.equal(end.status, 0, end.errorMessage);
    assert.equal(MSG.decode(end.payload).toJSON().text, "still here");
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch { /* closed */ }
    await this.#reading;
  }

  async #read(): Promise<void> {
    const chunk = new Uint8Array(256 * 1024);
    let pending = new Uint8Array(0);
    try {
      for (;;) {
        const n = await this.conn.read(chunk);
        if (n === null) break;
        const merged = new Uint8Array(pending.length + n);
        merged.set(pending);
        merged.set(chunk.subarray(0, n), pending.length);
        pending = merged;
        let at = 0;
        while (pending.length - at >= 4) {
          const length = new DataView(pending.buffer, pending.byteOffset + at).getUint32(0);
          if (pending.length - at - 4 < length) break;
          const frame = decodeRpcFrame(pending.subarray(at + 4, at + 4 + length));
          this.frames.push(Object.assign(new DecodedFrame(), frame, { payload: frame.payload.slice() }));
          at += 4 + length;
        }
        pending = pending.slice(at);
        this.#wake();
      }
    } catch { /* reset, or closed by us */ }
    this.#eof = true;
    this.#wake();
  }
}
