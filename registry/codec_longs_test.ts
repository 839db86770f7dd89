import assert from "node:assert/strict";
import { decodeServerFrame, encodeServerFrame, statFromWire, statToWire, toBigInt, wireLong } from "./_codec.ts";
import { NodeType, type Stat } from "./registry.ts";

Deno.test("Stats cross the wire exactly: 64-bit values at and past 2^53, through protobufjs Longs", () => {
  const stat: Stat = {
    czxid: 1n,
    mzxid: 2n ** 53n + 1n,
    pzxid: 2n ** 64n - 1n,
    ctime: 0,
    mtime: 1_700_000_000_123,
    version: 3,
    cversion: -1,
    ephemeralOwner: 0x7fff_ffff_ffff_ffffn,
    dataLength: 5,
    numChildren: 0,
    nodeType: NodeType.EPHEMERAL,
  };
  const frame = decodeServerFrame(
    encodeServerFrame({ xid: 1, zxid: wireLong(2n ** 63n), get: { stat: statToWire(stat) } }),
  );
  assert.deepEqual(statFromWire(frame.get?.stat), stat);
  assert.equal(toBigInt(frame.zxid), 2n ** 63n);
  assert.equal(wireLong(5n), 5);
  assert.equal(wireLong(2n ** 60n), "1152921504606846976");
});
