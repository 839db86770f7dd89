/**
 * The gateway's one compression, gzip, through the standard `CompressionStream` and `DecompressionStream` (on Deno,
 * Node and Bun alike), and the negotiation headers of Connect and gRPC-Web. Decompression is bounded: it stops as
 * soon as the output passes the receive limit, so a small body that inflates to gigabytes (a gzip bomb) costs the
 * limit and no more.
 *
 * @module
 */

import { RpcCode, RpcError } from "../rpc_error.ts";

/** The encodings the gateway speaks, by their names in `Content-Encoding` and its relatives. */
export const GatewayEncoding = {
  IDENTITY: "identity",
  GZIP: "gzip",
} as const;

/** One of the {@linkcode GatewayEncoding} names. */
export type GatewayEncoding = typeof GatewayEncoding[keyof typeof GatewayEncoding];

/** What the gateway lists in `Accept-Encoding`-style response headers. */
export const ACCEPTED_ENCODINGS = "gzip";

/**
 * Responses (and stream messages) smaller than this go out uncompressed even to a client that accepts gzip: the
 * gzip header and trailer alone are 18 bytes (connect-es's default threshold is the same).
 */
export const COMPRESS_MIN_BYTES = 1024;

/**
 * The encoding a request header names: `identity` when absent or empty, `gzip`, or undefined for one the gateway
 * does not speak (answered `unimplemented`).
 *
 * @example
 * ```ts
 * import { requestEncoding } from "./gateway_compression.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(requestEncoding(undefined), "identity");
 * assert.equal(requestEncoding("GZIP"), "gzip");
 * assert.equal(requestEncoding("br"), undefined);
 * ```
 */
export function requestEncoding(value: string | undefined): GatewayEncoding | undefined {
  const name = value?.trim().toLowerCase() ?? "";
  if (name === "" || name === GatewayEncoding.IDENTITY) return GatewayEncoding.IDENTITY;
  if (name === GatewayEncoding.GZIP) return GatewayEncoding.GZIP;
  return undefined;
}

/**
 * Whether an `Accept-Encoding`-style list (`gzip, br;q=0.5`) accepts gzip (a `q=0` weight refuses it).
 *
 * @example
 * ```ts
 * import { acceptsGzip } from "./gateway_compression.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(acceptsGzip("br, gzip;q=0.8"));
 * assert.ok(!acceptsGzip("gzip;q=0"));
 * assert.ok(!acceptsGzip(undefined));
 * ```
 */
export function acceptsGzip(value: string | undefined): boolean {
  if (value === undefined) return false;
  for (const item of value.split(",")) {
    const [name, ...params] = item.split(";").map((part) => part.trim().toLowerCase());
    if (name !== GatewayEncoding.GZIP && name !== "*") continue;
    const weight = params.find((param) => param.startsWith("q="));
    if (weight === undefined || Number(weight.slice(2)) > 0) return true;
  }
  return false;
}

/**
 * `bytes` gzip-compressed.
 *
 * @example
 * ```ts
 * import { gunzip, gzip } from "./gateway_compression.ts";
 * import assert from "node:assert/strict";
 *
 * const text = new TextEncoder().encode("dwt ".repeat(1000));
 * const packed = await gzip(text);
 * assert.ok(packed.length < text.length);
 * assert.deepEqual(await gunzip(packed, 1 << 20), text);
 * ```
 */
export function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  return collect(bytes, new CompressionStream("gzip"), Number.MAX_SAFE_INTEGER);
}

/**
 * `bytes` gunzipped, at most `maxBytes` of output: past it, an {@linkcode RpcError} `RESOURCE_EXHAUSTED` (the rest is
 * never inflated); data that is not gzip is `INVALID_ARGUMENT`.
 */
export async function gunzip(bytes: Uint8Array, maxBytes: number): Promise<Uint8Array> {
  try {
    return await collect(bytes, new DecompressionStream("gzip"), maxBytes);
  } catch (error) {
    if (error instanceof RpcError) throw error;
    throw new RpcError(RpcCode.INVALID_ARGUMENT, "A gzip-compressed message does not decompress", { cause: error });
  }
}

// Run `bytes` through `transform`, gathering the output; past `maxBytes` the transform is cancelled.
async function collect(
  bytes: Uint8Array,
  transform: { writable: WritableStream<BufferSource>; readable: ReadableStream<Uint8Array> },
  maxBytes: number,
): Promise<Uint8Array> {
  const writer = transform.writable.getWriter();
  // Not awaited: the writes finish only as the output is read (the streams' back-pressure).
  writer.write(bytes as Uint8Array<ArrayBuffer>).catch(() => {});
  writer.close().catch(() => {});
  const reader = transform.readable.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new RpcError(
        RpcCode.RESOURCE_EXHAUSTED,
        `A compressed message inflates past the limit of ${maxBytes} bytes`,
      );
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const whole = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    whole.set(chunk, offset);
    offset += chunk.length;
  }
  return whole;
}
