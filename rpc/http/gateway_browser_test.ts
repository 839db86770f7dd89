// The gateway called from a real browser (Debian's headless Chromium, driven over DevTools): pages served from
// another origin call it through CORS with plain `fetch` and with connect-web's Connect and gRPC-Web transports;
// a page from an origin the gateway does not allow is refused by the browser itself.
import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { needs } from "../../reactor/testdata/permissions.ts";
import { ensureDebianPackage } from "../../registry/testdata/debian_package.ts";
import { type HeadlessPage, launchChromium } from "../../registry/testdata/headless_chromium.ts";
import { RpcProvider } from "../rpc_provider.ts";
import type { ServerInterceptor } from "../server_handler.ts";
import { registerServices as registerUserService } from "../../examples/rpc/user_service.ts";
import { registerServices as registerFeedService } from "../../examples/streaming/feed_service.ts";
import { bundleConnectWeb } from "./testdata/browser/connect_web_bundle.ts";
import { type PageServer, startPageServer } from "./testdata/browser/page_server.ts";

const CHROMIUM = "/usr/bin/chromium";
const BROWSER = new URL("./testdata/browser/", import.meta.url);
// sys: installing Chromium when it is missing checks for root first; run: Chromium, npm and esbuild.
const PERMISSIONS = needs("read", "write", "run", "sys");

/** The seed's UserServiceRpc and the streaming example's FeedService behind a gateway that allows one origin. */
interface Services extends AsyncDisposable {
  readonly gateway: string;
  /** Handler calls so far (every method), as the interceptor saw them. */
  readonly calls: () => number;
}

async function startServices(allowedOrigin: string): Promise<Services> {
  let calls = 0;
  // Response metadata the gateway sends as headers: one this origin may read (exposed), one it may not.
  const tag: ServerInterceptor = (next) => (request, context) => {
    calls++;
    context.responseMetadata["x-request-id"] = `${context.method}-${calls}`;
    context.responseMetadata["x-internal"] = "not for pages";
    return next(request, context);
  };
  const provider = new RpcProvider({
    loop: new EventLoop(),
    httpPort: 0,
    httpCors: { allowedOrigins: [allowedOrigin], exposedHeaders: ["x-request-id"] },
    interceptors: [tag],
  });
  registerUserService(provider);
  registerFeedService(provider);
  await provider.start();
  return {
    gateway: `http://${provider.httpAddress}`,
    calls: () => calls,
    [Symbol.asyncDispose]: () => provider.stop({ graceMs: 0 }),
  };
}

async function readyPage(browser: { open(url: string): Promise<HeadlessPage> }, url: string): Promise<HeadlessPage> {
  const page = await browser.open(url);
  await page.waitFor("body[data-ready]", { timeoutMs: 10_000 });
  return page;
}

// What a page script resolves to is JSON the tests read field by field; typing each shape would repeat the scripts.
// deno-lint-ignore no-explicit-any
type Json = any;

Deno.test({
  name: "Gateway called with fetch from a page on an allowed origin in headless Chromium; another origin is refused",
  ...PERMISSIONS,
  async fn() {
    await ensureDebianPackage("chromium", CHROMIUM);
    const script = await Deno.readTextFile(new URL("fetch_calls.js", BROWSER));
    const files = {
      "/fetch.html": '<!doctype html><body><script type="module" src="/fetch_calls.js"></script></body>',
      "/fetch_calls.js": script,
    };
    await using allowed = startPageServer(files);
    await using stranger: PageServer = startPageServer(files);
    await using services = await startServices(allowed.origin);
    const browser = await launchChromium(CHROMIUM);
    try {
      // Without a browser in between, both headers arrive: the page missing one below is CORS at work.
      const direct = await fetch(`${services.gateway}/dwt.UserServiceRpc/Login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: btoa("dwt"), password: btoa("pw") }),
      });
      assert.equal(direct.headers.get("x-internal"), "not for pages");
      await direct.body?.cancel();

      const page = await readyPage(browser, `${allowed.origin}/fetch.html?gateway=${services.gateway}`);
      const login: Json = await page.evaluate(`page.loginJson("dwt", "pw")`);
      assert.equal(login.error, undefined, JSON.stringify(login));
      assert.equal(login.status, 200);
      assert.equal(login.body.success, true);
      assert.equal(login.requestId, `Login-${services.calls()}`, "an exposed response header is readable");
      assert.equal(login.internal, null, "a header not exposed is hidden from the page");
      const refused: Json = await page.evaluate(`page.loginJson("dwt", "")`);
      assert.equal(refused.body.success, undefined); // false: proto3 JSON leaves it out
      assert.equal(atob(refused.body.result.errmsg), "login error: name and password are required");

      const stream: Json = await page.evaluate(`page.follow("DWT", 4, 250)`);
      assert.equal(stream.error, undefined, JSON.stringify(stream));
      assert.equal(stream.status, 200);
      assert.equal(stream.contentType, "application/connect+json");
      assert.deepEqual(stream.messages.map((tick: Json) => [tick.symbol, tick.sequence, tick.price]), [
        ["DWT", "1", 100.25],
        ["DWT", "2", 100.5],
        ["DWT", "3", 100.75],
        ["DWT", "4", 101],
      ]);
      assert.deepEqual(stream.end, { metadata: { "ticks-sent": ["4"] } });
      assert.equal(stream.leftoverBytes, 0);
      // Read as they came: the first tick reached the page 3 intervals (750 ms) before the last, not with it.
      const spreadMs = stream.messages[3].atMs - stream.messages[0].atMs;
      assert.ok(spreadMs >= 400, `ticks arrived within ${spreadMs} ms of each other: buffered, not streamed`);
      const set: Json = await page.evaluate(`page.descriptorSetSize()`);
      assert.equal(set.status, 200);
      assert.ok(set.bytes > 100, `a FileDescriptorSet of ${set.bytes} bytes`);

      // The same script from an origin not allowed: the preflight is refused, so the calls never leave the
      // browser (no handler runs), and the simple GET's answer is withheld from the page.
      const before = services.calls();
      const other = await readyPage(browser, `${stranger.origin}/fetch.html?gateway=${services.gateway}`);
      for (const call of [`page.loginJson("dwt", "pw")`, `page.follow("DWT", 2, 10)`, `page.descriptorSetSize()`]) {
        const blocked: Json = await other.evaluate(call);
        assert.equal(blocked.error, "TypeError", `${call} from ${stranger.origin}: ${JSON.stringify(blocked)}`);
        assert.match(blocked.message, /Failed to fetch/);
      }
      assert.equal(services.calls(), before, "no handler ran for the refused origin");
      // The allowed page still works after that.
      assert.equal(((await page.evaluate(`page.loginJson("dwt", "pw")`)) as Json).body.success, true);
    } finally {
      await browser.close();
    }
  },
});

Deno.test({
  name: "Gateway called by connect-web's Connect and gRPC-Web transports from another origin in headless Chromium",
  ...PERMISSIONS,
  async fn() {
    await ensureDebianPackage("chromium", CHROMIUM);
    const files = {
      "/connect_web.html": '<!doctype html><body><script src="/connect_web.js"></script>' +
        '<script type="module" src="/connect_web_calls.js"></script></body>',
      "/connect_web.js": await bundleConnectWeb(),
      "/connect_web_calls.js": await Deno.readTextFile(new URL("connect_web_calls.js", BROWSER)),
    };
    await using pages = startPageServer(files);
    await using services = await startServices(pages.origin);
    const browser = await launchChromium(CHROMIUM);
    try {
      const page = await readyPage(browser, `${pages.origin}/connect_web.html?gateway=${services.gateway}`);
      for (const protocol of ["connect-json", "connect-proto", "grpc-web"]) {
        const login: Json = await page.evaluate(`page.login(${JSON.stringify(protocol)}, "dwt", "pw")`);
        assert.deepEqual(login, { success: true, errmsg: "", requestId: `Login-${services.calls()}` }, protocol);

        const stream: Json = await page.evaluate(`page.follow(${JSON.stringify(protocol)}, "DWT", 3, 250)`);
        assert.equal(stream.code, undefined, `${protocol}: ${JSON.stringify(stream)}`);
        assert.deepEqual(stream.ticks.map((tick: Json) => [tick.symbol, tick.sequence, tick.price]), [
          ["DWT", "1", 100.25],
          ["DWT", "2", 100.5],
          ["DWT", "3", 100.75],
        ], protocol);
        assert.equal(stream.ticksSent, "3", `${protocol}: the stream's trailer`);
        const spreadMs = stream.ticks[2].atMs - stream.ticks[0].atMs;
        assert.ok(spreadMs >= 250, `${protocol}: ticks arrived within ${spreadMs} ms of each other`);

        // An error before any message: for gRPC-Web a trailers-only answer, its status in exposed headers.
        const failed: Json = await page.evaluate(`page.follow(${JSON.stringify(protocol)}, "", 1, 0)`);
        assert.deepEqual(failed, { ticks: [], code: "InvalidArgument", message: "Follow needs a symbol" }, protocol);
      }
    } finally {
      await browser.close();
    }
  },
});
