import assert from "node:assert/strict";
import { encodeSeedNodeRequest, encodeSeedServiceRequest, encodeSeedWrapped } from "./seed_messages.ts";
import { seedRequestBoundary } from "./seed_request_boundary.ts";

const MAX = 1024 * 1024;

function createRequest(path: string, data: string): Uint8Array {
  const parameters = encodeSeedNodeRequest({ path, nodeData: new TextEncoder().encode(data), nodeType: 2 });
  return encodeSeedWrapped({
    type: 2,
    data: encodeSeedServiceRequest({ serviceType: 1, parameters, sessionId: 0xfedc_ba98_7654_3210n }),
  });
}

Deno.test("seedRequestBoundary waits at every split of a create request and finds its end when whole", () => {
  const request = createRequest("/UserServiceRpc/Login", "127.0.0.1:8800");
  for (let cut = 0; cut < request.length; cut++) {
    assert.equal(seedRequestBoundary(request.subarray(0, cut), MAX).kind, "partial", `cut at ${cut}`);
  }
  assert.deepEqual(seedRequestBoundary(request, MAX), { kind: "whole", length: request.length, requestType: 2 });
});

Deno.test("seedRequestBoundary cuts joined requests apart: connect, then a service request, then a partial one", () => {
  const service = createRequest("/a", "x");
  const joined = new Uint8Array([0x08, 0x01, ...service, ...service.subarray(0, 5)]);
  assert.deepEqual(seedRequestBoundary(joined, MAX), { kind: "whole", length: 2, requestType: 1 });
  const rest = joined.subarray(2);
  assert.deepEqual(seedRequestBoundary(rest, MAX), { kind: "whole", length: service.length, requestType: 2 });
  assert.equal(seedRequestBoundary(rest.subarray(service.length), MAX).kind, "partial");
});

Deno.test("seedRequestBoundary refuses garbage, other request types and lengths past the limit before holding them", () => {
  const refused = (bytes: number[], max = MAX) => {
    const boundary = seedRequestBoundary(Uint8Array.from(bytes), max);
    assert.equal(boundary.kind, "refused", JSON.stringify(bytes));
    return boundary.kind === "refused" ? boundary.reason : undefined;
  };
  assert.equal(refused([0x00]), "garbage");
  assert.equal(refused([0xff, 0xff, 0xff]), "garbage");
  assert.equal(refused([0x12, 0x00]), "garbage"); // parameters without a type
  assert.equal(refused([0x08, 0x03]), "illegal_type"); // Error
  assert.equal(refused([0x08, 0x00]), "illegal_type"); // Nothing
  assert.equal(refused([0x08, 0x02, 0x08]), "garbage"); // a second type where the parameters belong
  assert.equal(refused([0x08, ...Array(11).fill(0xff)]), "garbage"); // a varint of 11 bytes
  // A length of 0xFFFFFFFF, and of 2^63: refused from the varint alone.
  assert.equal(refused([0x08, 0x02, 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]), "too_large");
  assert.equal(refused([0x08, 0x02, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), "too_large");
  assert.equal(refused([0x08, 0x02, 0x12, 0x80, 0x08], 1000), "too_large"); // 1,024 bytes claimed, 1,000 allowed
  // 1 to 3 bytes that may still become a request wait for the rest (the read deadline ends them).
  for (const prefix of [[0x08], [0x08, 0x02], [0x08, 0x02, 0x12], [0x08, 0x82]]) {
    assert.equal(seedRequestBoundary(Uint8Array.from(prefix), MAX).kind, "partial", JSON.stringify(prefix));
  }
});
