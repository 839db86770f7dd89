/**
 * The message codecs an HTTP client may speak to the gateway, `proto` and `json`, as one method's translation to
 * and from the binary messages the provider reads and writes: binary passes through; JSON is the canonical proto3
 * mapping (json_mapping.ts), transcoded on the way in and out so the provider's handlers see the same messages
 * whichever codec the client chose.
 *
 * @module
 */

import { decodeMessage, encodableMessage } from "../_proto3_defaults.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import type { MethodDefinition } from "../service_definition.ts";
import { messageFromJson, messageToJson } from "./json_mapping.ts";

/** The codec names the gateway speaks (`application/proto`, `application/connect+json`, `grpc-web+proto`, ...). */
export const GatewayCodecName = {
  PROTO: "proto",
  JSON: "json",
} as const;

/** One of the {@linkcode GatewayCodecName} values. */
export type GatewayCodecName = typeof GatewayCodecName[keyof typeof GatewayCodecName];

/**
 * Whether `name` is a codec the gateway speaks.
 *
 * @example
 * ```ts
 * import { isGatewayCodec } from "./gateway_codec.ts";
 *
 * if (!isGatewayCodec("json") || isGatewayCodec("foo")) throw new Error("proto and json only");
 * ```
 */
export function isGatewayCodec(name: string): name is GatewayCodecName {
  return name === GatewayCodecName.PROTO || name === GatewayCodecName.JSON;
}

const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/**
 * One method's messages in one codec. Stateless; make one per request.
 *
 * @example Binary in, JSON out
 * ```ts
 * import { parseProto, serviceDefinition } from "../service_definition.ts";
 * import { GatewayCodec } from "./gateway_codec.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Msg { int64 id = 1; string text = 2; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * const say = serviceDefinition(root, "demo.Echo").methods.get("Say")!;
 * const json = new GatewayCodec("json", say);
 * const binary = json.requestToBinary(new TextEncoder().encode('{"id":"9007199254740993","text":"hi"}'));
 * assert.equal(new TextDecoder().decode(json.responseFromBinary(binary)), '{"id":"9007199254740993","text":"hi"}');
 * ```
 */
export class GatewayCodec {
  /** The codec's name. */
  readonly name: GatewayCodecName;
  readonly #method: MethodDefinition;

  /** `name`'s messages of `method`. */
  constructor(name: GatewayCodecName, method: MethodDefinition) {
    this.name = name;
    this.#method = method;
  }

  /**
   * A request message as the client sent it (decompressed) as the binary message the provider reads. Throws an
   * {@linkcode RpcError} `INVALID_ARGUMENT` for JSON that is not UTF-8, not JSON, or not the message (naming the
   * field). An empty JSON body is the empty message, as an empty binary one is.
   */
  requestToBinary(bytes: Uint8Array): Uint8Array {
    if (this.name === GatewayCodecName.PROTO) return bytes;
    const type = this.#method.requestType;
    let value: unknown = {};
    if (bytes.length > 0) {
      try {
        value = JSON.parse(decoder.decode(bytes));
      } catch (error) {
        throw new RpcError(
          RpcCode.INVALID_ARGUMENT,
          `The request of ${this.#method.name} is not JSON (UTF-8): ${(error as Error).message}`,
          { cause: error },
        );
      }
    }
    const message = messageFromJson(type, value as Parameters<typeof messageFromJson>[1]);
    return type.encode(encodableMessage(type, message)).finish();
  }

  /**
   * The provider's binary response message in this codec. Throws an {@linkcode RpcError} `INTERNAL` when it has no
   * JSON form (json_mapping.ts says which values have none) or does not decode.
   */
  responseFromBinary(bytes: Uint8Array): Uint8Array {
    if (this.name === GatewayCodecName.PROTO) return bytes;
    const type = this.#method.responseType;
    let message: unknown;
    try {
      message = decodeMessage(type, bytes);
    } catch (error) {
      throw new RpcError(RpcCode.INTERNAL, `A response of ${this.#method.name} does not decode`, { cause: error });
    }
    return encoder.encode(JSON.stringify(messageToJson(type, message)));
  }
}
