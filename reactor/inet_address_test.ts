import assert from "node:assert/strict";
import { InetAddress } from "./inet_address.ts";

Deno.test("InetAddress formats IPv4 and IPv6 as muduo's toIpPort", () => {
  assert.equal(new InetAddress("127.0.0.1", 8080).toString(), "127.0.0.1:8080");
  assert.equal(new InetAddress("::1", 8080).toString(), "[::1]:8080");
  assert.equal(new InetAddress("::1", 8080).toIp(), "::1");
  assert.equal(new InetAddress("127.0.0.1", 1).family, 4);
  assert.equal(new InetAddress("fe80::1:2", 1).family, 6);
  assert.equal(new InetAddress("::ffff:127.0.0.1", 1).family, 6);
  assert.equal(new InetAddress("registry.local", 1).family, 0);
});

Deno.test("InetAddress.parse reads host:port, [v6]:port and bare hosts with a default port", () => {
  assert.deepEqual(
    { ...InetAddress.parse("10.0.0.1:10606") },
    { hostname: "10.0.0.1", port: 10606, family: 4 },
  );
  assert.equal(InetAddress.parse("[::1]:9").hostname, "::1");
  assert.equal(InetAddress.parse("[::1]", 7).port, 7);
  assert.equal(InetAddress.parse("::1", 7).toString(), "[::1]:7");
  assert.equal(InetAddress.parse("localhost", 2181).toString(), "localhost:2181");
  assert.equal(InetAddress.parse(":8080").toString(), "0.0.0.0:8080");
  assert.equal(InetAddress.parse("localhost:1").isLoopback, true);
  assert.equal(InetAddress.parse("0.0.0.0:1").isAny, true);
  assert.ok(InetAddress.parse("127.0.0.1:1").equals(new InetAddress("127.0.0.1", 1)));
});

Deno.test("InetAddress rejects a port out of range with a RangeError naming 'port' and the value", () => {
  assert.throws(() => new InetAddress("127.0.0.1", 70000), {
    name: "RangeError",
    message: "Cannot create address as 'port' must be an integer in [0, 65535]: current value is 70000",
  });
  assert.throws(() => new InetAddress("127.0.0.1", -1), RangeError);
  assert.throws(() => new InetAddress("127.0.0.1", 1.5), RangeError);
  assert.throws(() => InetAddress.parse("127.0.0.1:99999"), { name: "RangeError", message: /'port'.*99999/ });
});

Deno.test("InetAddress rejects a bad host with a TypeError naming 'hostname' and the value", () => {
  for (
    const bad of ["", "256.1.1.1", "a b", "[::1]", "host_with space", "-bad-.com", "1:2:3:4:5:6:7:8:9", "x".repeat(254)]
  ) {
    assert.throws(() => new InetAddress(bad, 1), { name: "TypeError", message: /'hostname'/ }, bad);
  }
  assert.throws(() => InetAddress.parse("127.0.0.1"), { name: "TypeError", message: /no port/ });
  assert.throws(() => InetAddress.parse("[::1:80"), { name: "TypeError", message: /'\[::1\]:8080'/ });
});
