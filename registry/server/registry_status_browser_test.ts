// The registry's live HTML page in a real headless Chromium (Debian's `chromium`, driven over DevTools):
// a node created through the CLI appears without a reload; a kill -9'd session's ephemeral node goes.
import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { RegistryServer } from "./registry_server.ts";
import { startRegistryStatus } from "./registry_status.ts";
import { needs } from "../../reactor/testdata/permissions.ts";
import { ensureDebianPackage } from "../testdata/debian_package.ts";
import { launchChromium } from "../testdata/headless_chromium.ts";

const CHROMIUM = "/usr/bin/chromium";
const CLI = new URL("../cli.ts", import.meta.url).pathname;
const HOLDER = new URL("../testdata/ephemeral_holder.ts", import.meta.url).pathname;

Deno.test({
  name: "The registry's HTML page in headless Chromium shows CLI changes and expiries without a reload",
  // sys: installing Chromium when it is missing checks for root first.
  ...needs("read", "write", "run", "sys"),
  async fn() {
    await ensureDebianPackage("chromium", CHROMIUM);
    const loop = new EventLoop();
    const server = new RegistryServer({ port: 0, loop, heartbeatTimeoutMs: 100, heartbeatMaxCount: 3 });
    await server.start();
    const http = await startRegistryStatus(loop, server, new InetAddress("127.0.0.1", 0));
    const browser = await launchChromium(CHROMIUM);
    let holder: Deno.ChildProcess | undefined;
    try {
      const page = await browser.open(`http://${http.address}/`);
      await page.waitFor('#tree tr[data-key="/"]', { timeoutMs: 10_000 });

      const cli = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, "--server", server.address.toString(), "create", "/from-cli", "hello"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(cli.code, 0, new TextDecoder().decode(cli.stderr));
      const row = '#tree tr[data-key="/from-cli"]';
      await page.waitFor(row, { timeoutMs: 5000 });
      assert.match(await page.innerText(row), /persistent/);

      holder = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", HOLDER, server.address.toString(), "/held"],
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const held = '#tree tr[data-key="/held"]';
      await page.waitFor(held, { timeoutMs: 10_000 });
      assert.match(await page.innerText(held), /ephemeral/);
      assert.equal(await page.count("#sessions tbody tr"), 1);
      holder.kill("SIGKILL");
      await holder.status;
      // Expiry after 3 x 100 ms without heartbeats; the page drops the node and the session on its own.
      await page.waitFor(held, { detached: true, timeoutMs: 5000 });
      await page.waitFor("#sessions tbody tr", { detached: true, timeoutMs: 5000 });
      assert.equal(await page.count(row), 1);
    } finally {
      if (holder !== undefined) {
        try {
          holder.kill("SIGKILL");
        } catch {
          // already gone
        }
        await holder.status;
        await holder.stdout.cancel().catch(() => {});
      }
      await browser.close();
      await http.stop();
      await server.stop();
    }
  },
});
