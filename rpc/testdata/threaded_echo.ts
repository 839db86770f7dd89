/**
 * A service module for multi-threaded provider tests: `registerServices` registers test.Echo, whose answers
 * name the isolate (Worker) that served them.
 */

import type { CallContext, RpcProvider } from "../rpc_provider.ts";
import { parseProto, serviceDefinition } from "../service_definition.ts";

export const ECHO_PROTO = `
  syntax = "proto3";
  package test;
  message EchoRequest { string text = 1; uint32 delay_ms = 2; }
  message EchoResponse { string text = 1; string served_by = 2; }
  service Echo {
    rpc Say (EchoRequest) returns (EchoResponse);
    rpc Slow (EchoRequest) returns (EchoResponse);
  }
`;

// One value per isolate: each Worker loads this module afresh.
const isolateId = crypto.randomUUID();

export function registerServices(provider: RpcProvider): void {
  provider.registerService(serviceDefinition(parseProto(ECHO_PROTO), "test.Echo"), {
    Say: (request: { text: string }, _context: CallContext) => ({ text: request.text, servedBy: isolateId }),
    // Answers after `delayMs` (for drain tests: a call in flight while the provider stops).
    Slow: async (request: { text: string; delayMs: number }, _context: CallContext) => {
      await new Promise((resolve) => setTimeout(resolve, request.delayMs));
      return { text: request.text, servedBy: isolateId };
    },
  });
}
