import assert from "node:assert/strict";
import { HttpHeaders } from "./http_headers.ts";

Deno.test("HttpHeaders keeps every field in order; set replaces all of a name where the first stood", () => {
  const headers = new HttpHeaders({ "X-A": "1", "Content-Type": "text/plain" });
  headers.append("x-a", "2");
  headers.append("set-cookie", "a=1");
  headers.append("Set-Cookie", "b=2");
  assert.equal(headers.size, 5);
  assert.equal(headers.get("x-a"), "1, 2");
  assert.deepEqual(headers.getAll("SET-COOKIE"), ["a=1", "b=2"]);
  headers.set("x-a", "3");
  assert.deepEqual([...headers], [["x-a", "3"], ["content-type", "text/plain"], ["set-cookie", "a=1"], [
    "set-cookie",
    "b=2",
  ]]);
  headers.delete("Set-Cookie");
  assert.equal(headers.has("set-cookie"), false);
  assert.equal(headers.get("missing"), undefined);
  headers.set("new", "n");
  assert.deepEqual(new HttpHeaders(headers).getAll("new"), ["n"]);
});
