/**
 * test.gateway.Demo, the gateway tests' service: one method of each kind, and one GET-able unary method, with
 * handlers told by the request what to do (wait, fail, send how much) and a record of what they did that tests
 * assert on (messages produced, when a handler's signal fired).
 */

import { type RpcCode, RpcError } from "../../rpc_error.ts";
import type { CallContext } from "../../server_handler.ts";
import { parseProto, type ServiceDefinition, serviceDefinition } from "../../service_definition.ts";

/** The .proto of test.gateway.Demo. */
export const DEMO_PROTO = `
syntax = "proto3";
package test.gateway;

message EchoRequest {
  string text = 1;
  int64 big = 2;
  bytes blob = 3;
  int32 delay_ms = 4;
  int32 fail_code = 5;
  int32 size = 6;
}

message EchoReply {
  string text = 1;
  int64 big = 2;
  bytes blob = 3;
  map<string, string> metadata = 4;
  int64 time_remaining_ms = 5;
}

message CountRequest {
  int32 n = 1;
  int32 size = 2;
  int32 interval_ms = 3;
  int32 fail_code = 4;
}

message Item {
  int32 index = 1;
  bytes blob = 2;
}

message Total {
  int32 count = 1;
  int64 bytes = 2;
}

service Demo {
  rpc Echo (EchoRequest) returns (EchoReply);
  rpc Lookup (EchoRequest) returns (EchoReply) {
    option idempotency_level = NO_SIDE_EFFECTS;
  }
  rpc Count (CountRequest) returns (stream Item);
  rpc Sum (stream Item) returns (Total);
  rpc Chat (stream Item) returns (stream Item);
}
`;

/** test.gateway.Demo. */
export const DEMO: ServiceDefinition = serviceDefinition(
  parseProto(DEMO_PROTO, { fileName: "test/gateway/demo.proto" }),
  "test.gateway.Demo",
);

/** What the handlers did. */
export interface DemoRecord {
  /** Items Count yielded (counted before each yield). */
  produced: number;
  /** Items Sum took. */
  taken: number;
  /** When (performance.now()) a handler's signal last fired, and why. */
  abortedAt: number | undefined;
  abortReason: unknown;
  /** Handlers running now. */
  running: number;
}

interface EchoRequest {
  text: string;
  big: bigint;
  blob: Uint8Array;
  delayMs: number;
  failCode: number;
  size: number;
}

interface CountRequest {
  n: number;
  size: number;
  intervalMs: number;
  failCode: number;
}

interface Item {
  index: number;
  blob: Uint8Array;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });

/**
 * Handlers of test.gateway.Demo recording into `record`:
 *
 * - Echo, Lookup: wait `delayMs` (until aborted), fail with `failCode` (metadata `x-fail`), else answer the text,
 *   the 64-bit value, the blob (or `size` bytes of "a"), the metadata seen and the time left; response metadata
 *   `x-echo` (the text) and the trailer `x-count`.
 * - Count: yields `n` items (0: until aborted) of `size` bytes, `intervalMs` apart, then fails with `failCode`
 *   if set; response metadata `x-count`.
 * - Sum: counts the items and their bytes; with metadata `x-mode: hold`, reads none and waits until aborted.
 * - Chat: echoes each item.
 */
export function demoHandlers(record: DemoRecord): Record<string, unknown> {
  const watch = (context: CallContext) => {
    record.running++;
    context.signal.addEventListener("abort", () => {
      record.abortedAt = performance.now();
      record.abortReason = context.signal.reason;
    }, { once: true });
  };
  const echo = async (request: EchoRequest, context: CallContext) => {
    watch(context);
    try {
      if (request.delayMs > 0) await sleep(request.delayMs, context.signal);
      if (request.failCode !== 0) {
        throw new RpcError(request.failCode as RpcCode, `failed as asked: ${request.text}`, {
          metadata: { "x-fail": "1" },
        });
      }
      context.responseMetadata["x-echo"] = request.text;
      context.responseMetadata["trailer-x-count"] = "1";
      return {
        text: request.text,
        big: request.big,
        blob: request.size > 0 ? new Uint8Array(request.size).fill(0x61) : request.blob,
        metadata: { ...context.metadata },
        timeRemainingMs: BigInt(Math.round(Math.min(context.timeRemainingMs(), 1e12))),
      };
    } finally {
      record.running--;
    }
  };
  return {
    Echo: echo,
    Lookup: echo,
    Count: async function* (request: CountRequest, context: CallContext) {
      watch(context);
      try {
        for (let index = 0; request.n === 0 || index < request.n; index++) {
          if (request.intervalMs > 0) await sleep(request.intervalMs, context.signal);
          if (context.signal.aborted) return;
          record.produced++;
          yield { index, blob: new Uint8Array(request.size).fill(0x62) };
        }
        context.responseMetadata["x-count"] = String(request.n);
        if (request.failCode !== 0) throw new RpcError(request.failCode as RpcCode, "failed after the items");
      } finally {
        record.running--;
      }
    },
    Sum: async (items: AsyncIterable<Item>, context: CallContext) => {
      watch(context);
      try {
        if (context.metadata["x-mode"] === "hold") {
          await sleep(2 ** 31 - 1, context.signal);
          return {};
        }
        let count = 0;
        let bytes = 0;
        for await (const item of items) {
          count++;
          record.taken++;
          bytes += item.blob.length;
        }
        return { count, bytes: BigInt(bytes) };
      } finally {
        record.running--;
      }
    },
    Chat: async function* (items: AsyncIterable<Item>) {
      for await (const item of items) yield item;
    },
  };
}

/** A fresh record. */
export function demoRecord(): DemoRecord {
  return { produced: 0, taken: 0, abortedAt: undefined, abortReason: undefined, running: 0 };
}
