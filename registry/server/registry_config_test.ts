import assert from "node:assert/strict";
import { parseRegistryConfig, registryServerOptions, registryStatusOptions } from "./registry_config.ts";

const SECRET = "s3cret-provider-token";

function errorOf(raw: unknown): Error {
  try {
    parseRegistryConfig(raw, "conf.json");
  } catch (error) {
    return error as Error;
  }
  throw new Error(`Expected ${JSON.stringify(raw)} to be refused`);
}

Deno.test("parseRegistryConfig accepts a valid acl and passes it to the server options", () => {
  const config = parseRegistryConfig({ acl: { "/svc": [SECRET], "/": ["admin"], "/ro": [] } }, "conf.json");
  assert.deepEqual(registryServerOptions(config).acl, { "/svc": [SECRET], "/": ["admin"], "/ro": [] });
});

Deno.test("parseRegistryConfig refuses an acl prefix with a trailing slash, which would protect nothing", () => {
  const error = errorOf({ acl: { "/svc/": [SECRET] } });
  assert.match(error.message, /conf\.json/);
  assert.match(error.message, /prefix #1 is not a valid path/);
  assert.match(error.message, /must not end with '\/'/);
  assert.ok(!error.message.includes(SECRET), error.message);
});

Deno.test("parseRegistryConfig validates acl prefixes as node paths", () => {
  for (const [prefix, why] of [["svc", /start with '\/'/], ["/a//b", /empty segment/], ["/a/..", /'\.\.'/]] as const) {
    const error = errorOf({ acl: { "/ok": ["t"], [prefix]: [SECRET] } });
    assert.match(error.message, /prefix #2 is not a valid path/);
    assert.match(error.message, why);
  }
});

Deno.test("parseRegistryConfig refuses an empty token in an acl or as authToken, naming the key and position", () => {
  const acl = errorOf({ acl: { "/a": ["x"], "/svc": [SECRET, ""] } });
  assert.match(acl.message, /'acl'/);
  assert.match(acl.message, /token #2 of prefix #2 '\/svc' must be a non-empty string/);
  assert.ok(!acl.message.includes(SECRET), acl.message);
  const auth = errorOf({ authToken: "" });
  assert.match(auth.message, /'authToken' must be a non-empty token/);
});

Deno.test("parseRegistryConfig never prints tokens when an acl or authToken is malformed", () => {
  const cases: unknown[] = [
    { acl: { "/svc": [SECRET, 42] } },
    { acl: { "/svc": SECRET } },
    { acl: [SECRET] },
    { acl: SECRET },
    { acl: { "/svc": [SECRET], "/bad/": [SECRET] } },
    { authToken: [SECRET] },
    { authToken: { token: SECRET } },
  ];
  for (const raw of cases) {
    const error = errorOf(raw);
    assert.ok(error instanceof TypeError);
    assert.ok(!error.message.includes(SECRET), error.message);
    assert.match(error.message, /^Cannot load registry config conf\.json as '(acl|authToken)'/);
  }
  assert.match(errorOf({ acl: { "/svc": [SECRET, 42] } }).message, /token #2 of prefix #1 '\/svc'.*of type number/);
});

Deno.test("parseRegistryConfig takes statusAllowedHosts for the status server and refuses a malformed one", () => {
  const config = parseRegistryConfig({ statusAllowedHosts: ["status.example.internal"] }, "conf.json");
  assert.deepEqual(registryStatusOptions(config), { allowedHosts: ["status.example.internal"] });
  assert.deepEqual(registryStatusOptions(parseRegistryConfig({}, "conf.json")), { allowedHosts: [] });
  assert.match(errorOf({ statusAllowedHosts: "x" }).message, /'statusAllowedHosts' must be a list of host names/);
  assert.match(errorOf({ statusAllowedHosts: ["a.example:80"] }).message, /without ports/);
});
