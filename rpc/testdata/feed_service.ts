/**
 * test.Feed, the streaming tests' service: one method of each kind. Only its definition and types, so that a test
 * with handlers of its own (streaming_test.ts, memory_streams_test.ts) and the shared provider (stream_feed.ts)
 * speak the same service. Plain TypeScript with no runtime's API.
 */

import type {
  BidiStreamingStubMethod,
  ClientStreamingStubMethod,
  ServerStreamingStubMethod,
  StubMethod,
} from "../rpc_channel.ts";
import { parseProto, serviceDefinition } from "../service_definition.ts";

/** test.Feed: Say (unary), Watch (server streaming), Upload (client streaming), Chat (bidirectional). */
export const FEED = serviceDefinition(
  parseProto(`
    syntax = "proto3";
    package test;
    message Msg { string text = 1; int32 n = 2; bytes blob = 3; int32 produced = 4; int32 taken = 5; }
    service Feed {
      rpc Say (Msg) returns (Msg);
      rpc Watch (Msg) returns (stream Msg);
      rpc Upload (stream Msg) returns (Msg);
      rpc Chat (stream Msg) returns (stream Msg);
    }
  `),
  "test.Feed",
);

/** test.Feed's message. `produced` and `taken` are the counters stream_feed.ts's Say reports. */
export interface Msg {
  text: string;
  n: number;
  blob: Uint8Array;
  produced: number;
  taken: number;
}

/** A caller's stub of test.Feed (`channel.stub<FeedStub>(FEED)`). */
export interface FeedStub {
  Say: StubMethod<Partial<Msg>, Msg>;
  Watch: ServerStreamingStubMethod<Partial<Msg>, Msg>;
  Upload: ClientStreamingStubMethod<Partial<Msg>, Msg>;
  Chat: BidiStreamingStubMethod<Partial<Msg>, Msg>;
}

/**
 * Handlers that do the least each kind can: Say echoes the text, Watch and Chat end at once with nothing sent, Upload
 * answers an empty message. A test lays its own handlers over these: `{ ...feedDefaults(), ...handlers }`.
 */
export function feedDefaults(): Record<keyof FeedStub, unknown> {
  return {
    Say: (request: Msg) => ({ text: request.text }),
    Watch: async function* () {},
    Upload: () => ({}),
    Chat: async function* () {},
  };
}
