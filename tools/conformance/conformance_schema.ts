/**
 * The conformance suite's schema as one protobufjs Root: the service (conformance_service.proto), the test-case
 * files' messages (conformance_suite.proto) and google.rpc.Status, named as the suite names them. The provider
 * serves the service from it; its FileDescriptorSet is what the Node runner builds its messages from.
 *
 * @module
 */

import type protobuf from "protobufjs";
import { fileDescriptorSet, parseProto, type ServiceDefinition, serviceDefinition } from "../../rpc/mod.ts";

/** The service's full name. */
export const CONFORMANCE_SERVICE = "connectrpc.conformance.v1.ConformanceService";

/** The suite's message names are relative to this package. */
export const CONFORMANCE_PACKAGE = "connectrpc.conformance.v1";

/** The schema: its Root, the service in it, and the Root's serialized FileDescriptorSet. */
export interface ConformanceSchema {
  readonly root: protobuf.Root;
  readonly service: ServiceDefinition;
  /** Every file of the Root (the well-known imports included), as a `google.protobuf.FileDescriptorSet`. */
  readonly descriptorSet: Uint8Array;
}

const FILES = {
  service: "connectrpc/conformance/v1/conformance_service.proto",
  suite: "connectrpc/conformance/v1/conformance_suite.proto",
  status: "google/rpc/status.proto",
} as const;

/**
 * Read the three .proto files beside this module into one Root.
 *
 * @example
 * ```ts
 * import { loadConformanceSchema } from "./conformance_schema.ts";
 * import assert from "node:assert/strict";
 *
 * const schema = await loadConformanceSchema();
 * assert.ok(schema.service.methods.has("IdempotentUnary"));
 * assert.ok(schema.root.lookupType("connectrpc.conformance.v1.TestSuite"));
 * ```
 */
export async function loadConformanceSchema(): Promise<ConformanceSchema> {
  const read = (name: string) => Deno.readTextFile(new URL(name, import.meta.url));
  const [service, suite, status] = await Promise.all([
    read("./conformance_service.proto"),
    read("./conformance_suite.proto"),
    read("./google_rpc_status.proto"),
  ]);
  const root = parseProto(suite, {
    fileName: FILES.suite,
    imports: { [FILES.service]: service, [FILES.status]: status },
  });
  const definition = serviceDefinition(root, CONFORMANCE_SERVICE);
  return {
    root,
    service: definition,
    descriptorSet: fileDescriptorSet([definition]),
  };
}
