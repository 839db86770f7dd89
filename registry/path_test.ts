import assert from "node:assert/strict";
import { basename, joinPath, parentOf, validatePath } from "./path.ts";
import type { RegistryError } from "./registry_error.ts";

Deno.test("validatePath accepts absolute paths and says what is wrong with bad ones", () => {
  for (const good of ["/", "/a", "/userService/userinfo", "/a-b_c.d/0001"]) assert.equal(validatePath(good), good);
  const cases: Array<[string, RegExp]> = [
    ["", /empty/],
    ["a/b", /start with '\/'/],
    ["/a/", /end with '\/'/],
    ["/a//b", /empty segment/],
    ["/a/../b", /'\.\.' segment/],
    ["/a\u0000b", /control character/],
    ["/" + "x".repeat(1024), /longer than 1024/],
  ];
  for (const [bad, why] of cases) {
    assert.throws(
      () => validatePath(bad),
      (error: RegistryError) => error.codeName === "BAD_ARGUMENTS" && why.test(error.message),
    );
  }
});

Deno.test("parentOf, basename and joinPath split and join paths", () => {
  assert.equal(parentOf("/a/b"), "/a");
  assert.equal(parentOf("/a"), "/");
  assert.equal(basename("/a/b"), "b");
  assert.equal(joinPath("/", "a"), "/a");
  assert.equal(joinPath("/a", "b"), "/a/b");
});
