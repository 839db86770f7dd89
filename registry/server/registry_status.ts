/**
 * The registry's status surface (ZooKeeper's four-letter words and admin server, brpc's builtin pages), served
 * by {@linkcode HttpServer} when the config sets `statusPort`:
 *
 * - `/ruok` → `imok`
 * - `/status` → uptime, connections, sessions, nodes, watches, requests by operation, errors by code
 * - `/metrics` → the same in Prometheus text format
 * - `/tree` → every node with its type, owner and versions (`?format=json` for JSON)
 * - `/sessions` → every session with its state and ephemeral nodes (`?format=json` for JSON)
 * - `/` → an HTML page with the live tree and sessions (it polls the JSON forms; no reload needed)
 *
 * Plain text for curl; a browser asking for HTML on `/status`, `/tree` or `/sessions` gets the page.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import { type HttpRequest, type HttpResponse, HttpServer, type HttpServerOptions } from "../../reactor/http_server.ts";
import type { InetAddress } from "../../reactor/inet_address.ts";
import { PrometheusText } from "../../reactor/prometheus_text.ts";
import { NodeType } from "./data_tree.ts";
import type { RegistryServer } from "./registry_server.ts";

const hex = (id: bigint) => `0x${id.toString(16)}`;

function treeRows(server: RegistryServer) {
  const tree = server.tree;
  return tree.paths("/").map((path) => {
    const stat = tree.exists(path)!;
    return {
      path,
      type: stat.nodeType === NodeType.EPHEMERAL ? "ephemeral" : "persistent",
      owner: stat.ephemeralOwner === 0n ? "" : hex(stat.ephemeralOwner),
      version: stat.version,
      cversion: stat.cversion,
      dataLength: stat.dataLength,
      numChildren: stat.numChildren,
      mtime: new Date(stat.mtime).toISOString(),
    };
  });
}

function sessionRows(server: RegistryServer) {
  return server.sessions().map((session) => ({
    id: hex(session.id),
    connected: session.connected,
    peer: session.peer ?? "",
    misses: session.misses,
    ephemerals: session.ephemerals,
  }));
}

function statusText(server: RegistryServer): string {
  const stats = server.stats();
  const lines = [
    `uptime_s ${(stats.uptimeMs / 1000).toFixed(1)}`,
    `connections ${stats.connections}`,
    `sessions ${stats.sessions}`,
    `nodes ${stats.nodes}`,
    `watches ${stats.watches}`,
    `zxid ${hex(stats.zxid)}`,
    `requests ${stats.requests}`,
    ...Object.entries(stats.requestsByOp).map(([op, count]) => `requests.${op} ${count}`),
    ...Object.entries(stats.errorsByCode).map(([code, count]) => `errors.${code} ${count}`),
    `heartbeats.accepted ${stats.heartbeatsAccepted}`,
    `heartbeats.rejected ${stats.heartbeatsRejected}`,
    `sessions.expired ${stats.expiredSessions}`,
    `frames.bad ${stats.badFrames}`,
    `connections.rejected ${stats.rejectedConnections}`,
    `connections.handshake_timeouts ${stats.handshakeTimeouts}`,
    `fsyncs ${stats.syncs}`,
    `read_only ${stats.readOnly ? 1 : 0}`,
    `writes.failed ${stats.writeFailures}`,
    `sessions.refused ${stats.refusedSessions}`,
    `sessions.expiry_notices ${stats.expiryNotices}`,
    `replies.oversized ${stats.oversizedReplies}`,
    `replies.send_failures ${stats.sendFailures}`,
    `frames.timed_out ${stats.framesTimedOut}`,
    `connections.closed_buffered_bytes ${stats.closedForBufferedBytes}`,
    ...Object.entries(stats.listeners).flatMap(([name, counters]) =>
      Object.entries(counters).map(([counter, count]) => `${name}.${counter} ${count}`)
    ),
  ];
  return `${lines.join("\n")}\n`;
}

/**
 * The registry's counters in Prometheus text exposition format.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { RegistryServer } from "./registry_server.ts";
 * import { registryMetrics } from "./registry_status.ts";
 * import assert from "node:assert/strict";
 *
 * const server = new RegistryServer({ port: 0, loop: new EventLoop() });
 * await server.start();
 * assert.match(registryMetrics(server), /^# TYPE /m);
 * await server.stop();
 * ```
 */
export function registryMetrics(server: RegistryServer): string {
  const stats = server.stats();
  return new PrometheusText()
    .family("dwt_registry_uptime_seconds", "gauge", "Seconds since the server started.", stats.uptimeMs / 1000)
    .family("dwt_registry_connections", "gauge", "Open client connections.", stats.connections)
    .family("dwt_registry_sessions", "gauge", "Open sessions.", stats.sessions)
    .family("dwt_registry_nodes", "gauge", "Nodes in the tree.", stats.nodes)
    .family("dwt_registry_watches", "gauge", "Registered watches.", stats.watches)
    .family("dwt_registry_zxid", "gauge", "The last transaction id.", Number(stats.zxid))
    .family(
      "dwt_registry_requests_total",
      "counter",
      "Requests by operation.",
      Object.entries(stats.requestsByOp).map(([op, count]) => [{ op }, count]),
    )
    .family(
      "dwt_registry_errors_total",
      "counter",
      "Error answers by code.",
      Object.entries(stats.errorsByCode).map(([code, count]) => [{ code }, count]),
    )
    .family("dwt_registry_heartbeats_total", "counter", "Heartbeat datagrams by result.", [
      [{ result: "accepted" }, stats.heartbeatsAccepted],
      [{ result: "rejected" }, stats.heartbeatsRejected],
    ])
    .family(
      "dwt_registry_expired_sessions_total",
      "counter",
      "Sessions expired for missed heartbeats.",
      stats.expiredSessions,
    )
    .family(
      "dwt_registry_bad_frames_total",
      "counter",
      "Frames that did not parse or were over the limit.",
      stats.badFrames,
    )
    .family(
      "dwt_registry_rejected_connections_total",
      "counter",
      "Connections refused by the per-IP limit.",
      stats.rejectedConnections,
    )
    .family(
      "dwt_registry_handshake_timeouts_total",
      "counter",
      "Connections closed for opening no session in time.",
      stats.handshakeTimeouts,
    )
    .family("dwt_registry_fsyncs_total", "counter", "Log syncs (group commits).", stats.syncs)
    .family("dwt_registry_read_only", "gauge", "1 when the log cannot be written and changes are refused.", [
      [{}, stats.readOnly ? 1 : 0],
    ])
    .family(
      "dwt_registry_write_failures_total",
      "counter",
      "Writes that could not be made durable (STORAGE_FAILED).",
      stats.writeFailures,
    )
    .family("dwt_registry_refused_sessions_total", "counter", "Sessions refused by a limit.", stats.refusedSessions)
    .family(
      "dwt_registry_expiry_notices_total",
      "counter",
      "Signed expiry notices sent for heartbeats of expired sessions.",
      stats.expiryNotices,
    )
    .family("dwt_registry_limited_total", "counter", "Inputs refused or connections closed by a limit.", [
      [{ limit: "reply_bytes" }, stats.oversizedReplies],
      [{ limit: "frame_timeout" }, stats.framesTimedOut],
      [{ limit: "buffered_bytes" }, stats.closedForBufferedBytes],
    ])
    .family("dwt_registry_send_failures_total", "counter", "Sends that failed (connection closed).", stats.sendFailures)
    .family(
      "dwt_registry_listener_events_total",
      "counter",
      "Events of the listeners for other protocols' clients (the seed's): requests, refusals by reason, sessions.",
      Object.entries(stats.listeners).flatMap(([listener, counters]) =>
        Object.entries(counters).map(([event, count]) =>
          [{ listener, event }, count] as [Record<string, string>, number]
        )
      ),
    )
    .render();
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dwt registry</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; } .ephemeral { color: #a05a00; } #status { white-space: pre; font-family: monospace; }
</style></head>
<body>
<h1>dwt registry</h1>
<p>Live: refreshed every half second. <span id="updated"></span></p>
<h2>Tree</h2>
<table id="tree"><thead><tr><th>path</th><th>type</th><th>owner</th><th>version</th><th>cversion</th>
<th>bytes</th><th>children</th><th>mtime</th></tr></thead><tbody></tbody></table>
<h2>Sessions</h2>
<table id="sessions"><thead><tr><th>session</th><th>connected</th><th>peer</th><th>missed</th><th>ephemeral nodes</th>
</tr></thead><tbody></tbody></table>
<h2>Status</h2>
<div id="status"></div>
<script>
function fill(id, rows, cells) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    tr.dataset.key = cells[0](row);
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = cell(row);
      tr.append(td);
    }
    if (row.type === "ephemeral") tr.className = "ephemeral";
    return tr;
  }));
}
async function refresh() {
  try {
    const [tree, sessions, status] = await Promise.all([
      fetch("/tree?format=json").then((r) => r.json()),
      fetch("/sessions?format=json").then((r) => r.json()),
      fetch("/status", { headers: { accept: "text/plain" } }).then((r) => r.text()),
    ]);
    fill("tree", tree, [(n) => n.path, (n) => n.type, (n) => n.owner, (n) => n.version, (n) => n.cversion,
      (n) => n.dataLength, (n) => n.numChildren, (n) => n.mtime]);
    fill("sessions", sessions, [(s) => s.id, (s) => s.connected ? "yes" : "no", (s) => s.peer, (s) => s.misses,
      (s) => s.ephemerals.join(", ")]);
    document.getElementById("status").textContent = status;
    document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString();
  } catch (error) {
    document.getElementById("updated").textContent = "Cannot reach the registry: " + error;
  }
}
refresh();
setInterval(refresh, 500);
</script>
</body></html>
`;

const json = (value: unknown): HttpResponse => ({
  contentType: "application/json",
  body: JSON.stringify(value, null, 1),
});

/**
 * Answers the status routes for `server`: `/` (an HTML page), `/status`, `/metrics`, `/tree`, `/sessions`
 * (text, JSON with `?format=json`) and `/ruok`. Serve it on an {@linkcode HttpServer}, or see
 * {@linkcode startRegistryStatus}.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { RegistryServer } from "./registry_server.ts";
 * import { registryStatusHandler } from "./registry_status.ts";
 * import assert from "node:assert/strict";
 *
 * const server = new RegistryServer({ port: 0, loop: new EventLoop() });
 * await server.start();
 * const handler = registryStatusHandler(server);
 * const request = { method: "GET", path: "/ruok", query: new URLSearchParams(), headers: new Map() };
 * assert.equal(handler(request).body, "imok");
 * await server.stop();
 * ```
 */
export function registryStatusHandler(server: RegistryServer): (request: HttpRequest) => HttpResponse {
  return (request) => {
    const wantsHtml = (request.headers.get("accept") ?? "").includes("text/html");
    const wantsJson = request.query.get("format") === "json";
    switch (request.path) {
      case "/":
        return { contentType: "text/html; charset=utf-8", body: PAGE };
      case "/ruok":
        return { body: "imok" };
      case "/metrics":
        return { contentType: "text/plain; version=0.0.4; charset=utf-8", body: registryMetrics(server) };
      case "/status":
        return wantsHtml ? { contentType: "text/html; charset=utf-8", body: PAGE } : { body: statusText(server) };
      case "/tree": {
        if (wantsJson) return json(treeRows(server));
        if (wantsHtml) return { contentType: "text/html; charset=utf-8", body: PAGE };
        const lines = treeRows(server).map((n) =>
          `${n.path}\t${n.type}${n.owner ? ` owner=${n.owner}` : ""} version=${n.version} cversion=${n.cversion} ` +
          `bytes=${n.dataLength} children=${n.numChildren}`
        );
        return { body: `${lines.join("\n")}\n` };
      }
      case "/sessions": {
        if (wantsJson) return json(sessionRows(server));
        if (wantsHtml) return { contentType: "text/html; charset=utf-8", body: PAGE };
        const lines = sessionRows(server).map((s) =>
          `${s.id}\t${s.connected ? `connected ${s.peer}` : "disconnected"} missed=${s.misses} ` +
          `ephemerals=[${s.ephemerals.join(", ")}]`
        );
        return { body: `${lines.join("\n")}\n` };
      }
      default:
        return {
          status: 404,
          body: `no such page: ${request.path} (try /status, /metrics, /tree, /sessions, /ruok)\n`,
        };
    }
  };
}

/**
 * Start the status server for `server` on `address` (loopback unless told otherwise), with `options` limits
 * (HttpServer's safe defaults when omitted; see `registryStatusOptions` in registry_config.ts for those a config asks for).
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { InetAddress } from "../../reactor/inet_address.ts";
 * import { RegistryServer } from "./registry_server.ts";
 * import { startRegistryStatus } from "./registry_status.ts";
 *
 * const loop = new EventLoop();
 * const server = new RegistryServer({ port: 0, loop });
 * await server.start();
 * const status = await startRegistryStatus(loop, server, new InetAddress("127.0.0.1", 0));
 * console.log(`status pages on http://${status.address}/`);
 * await status.stop();
 * await server.stop();
 * ```
 */
export async function startRegistryStatus(
  loop: EventLoop,
  server: RegistryServer,
  address: InetAddress,
  options: HttpServerOptions = {},
): Promise<HttpServer> {
  const http = new HttpServer(loop, {
    ...options,
    address,
    name: "RegistryStatus",
    handler: registryStatusHandler(server),
  });
  await http.start();
  return http;
}
