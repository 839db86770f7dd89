import assert from "node:assert/strict";
import { AccessControl } from "./access_control.ts";
import { RegistryErrorCode } from "../registry_error.ts";

const refuses = (code: number) => (error: { code: number }) => error.code === code;

Deno.test("AccessControl refuses tokens nobody configured, and keeps none when none are configured", () => {
  const open = new AccessControl();
  assert.deepEqual(open.credentials("anything"), { authorized: true, token: "" });
  const guarded = new AccessControl({ authToken: "t", acl: { "/svc": ["p"] }, maxAuthTokenBytes: 8 });
  assert.deepEqual(guarded.credentials(""), { authorized: false, token: "" });
  assert.deepEqual(guarded.credentials("t"), { authorized: true, token: "t" });
  assert.deepEqual(guarded.credentials("p"), { authorized: false, token: "p" });
  assert.throws(() => guarded.credentials("wrong"), refuses(RegistryErrorCode.AUTH_FAILED));
  assert.throws(() => guarded.credentials("x".repeat(9)), /longer than 8 bytes/);
  // Under its prefix the ACL decides; elsewhere the server-wide token does.
  guarded.checkChange(guarded.credentials("p"), "create", "/svc/a", false);
  assert.throws(() => guarded.checkChange(guarded.credentials("p"), "create", "/b", false), /not authorized/);
  assert.throws(() => guarded.checkChange(guarded.credentials("t"), "create", "/svc/a", false), /ACL of '\/svc'/);
  guarded.checkChange(guarded.credentials("t"), "create", "/b", false);
});

Deno.test("AccessControl protects a prefix written with a trailing slash, and no empty token admits anyone", () => {
  const access = new AccessControl({ acl: { "/svc/": ["", "p"] } });
  const anonymous = access.credentials("");
  assert.throws(() => access.checkChange(anonymous, "create", "/svc", false), refuses(RegistryErrorCode.NO_AUTH));
  assert.throws(() => access.checkChange(anonymous, "set", "/svc/a", false), /ACL of '\/svc'/);
  access.checkChange(access.credentials("p"), "create", "/svc/a", false);
  access.checkChange(anonymous, "create", "/svcx", false); // a sibling, not under the prefix
});

Deno.test("AccessControl stops a token-less session from squatting the parent of a protected prefix", () => {
  const access = new AccessControl({ acl: { "/apps/svc": ["p"] } });
  const anonymous = access.credentials("");
  assert.throws(() => access.checkChange(anonymous, "create", "/apps", true), /would block '\/apps\/svc'/);
  access.checkChange(anonymous, "create", "/apps", false); // a persistent parent blocks nothing
  access.checkChange(access.credentials("p"), "create", "/apps", true);
});
