/**
 * A provider's status pages (brpc's /status and /vars), served when `statusPort` is set: `/ruok` → `imok`,
 * `/status` (uptime, connections, calls by service and method, errors by code) as text or, for a browser, HTML,
 * and `/metrics` in Prometheus text format.
 *
 * @module
 */

import type { HttpRequest, HttpResponse } from "../reactor/http_server.ts";
import type { RpcProvider } from "./rpc_provider.ts";

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
const escapeHtml = (value: string) =>
  value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** The provider's counters in Prometheus text exposition format. */
export function providerMetrics(provider: RpcProvider): string {
  const stats = provider.stats();
  const out = [
    "# HELP dwt_rpc_uptime_seconds Seconds since the provider started.",
    "# TYPE dwt_rpc_uptime_seconds gauge",
    `dwt_rpc_uptime_seconds ${stats.uptimeMs / 1000}`,
    "# HELP dwt_rpc_connections Open caller connections.",
    "# TYPE dwt_rpc_connections gauge",
    `dwt_rpc_connections ${stats.connections}`,
    "# HELP dwt_rpc_calls_in_flight Calls being handled.",
    "# TYPE dwt_rpc_calls_in_flight gauge",
    `dwt_rpc_calls_in_flight ${stats.callsInFlight}`,
    "# HELP dwt_rpc_calls_total Calls answered, by method and status.",
    "# TYPE dwt_rpc_calls_total counter",
  ];
  for (const [method, byCode] of Object.entries(stats.calls)) {
    for (const [code, count] of Object.entries(byCode)) {
      out.push(`dwt_rpc_calls_total{method="${escapeLabel(method)}",code="${code}"} ${count}`);
    }
  }
  out.push("# HELP dwt_rpc_limit_hits_total Times a configured limit was hit, by limit.");
  out.push("# TYPE dwt_rpc_limit_hits_total counter");
  for (const [limit, count] of Object.entries(stats.limitsHit)) {
    out.push(`dwt_rpc_limit_hits_total{limit="${limit}"} ${count}`);
  }
  return `${out.join("\n")}\n`;
}

function statusText(provider: RpcProvider): string {
  const stats = provider.stats();
  const lines = [
    `uptime_s ${(stats.uptimeMs / 1000).toFixed(1)}`,
    `connections ${stats.connections}`,
    `calls_in_flight ${stats.callsInFlight}`,
    `calls_served ${stats.callsServed}`,
  ];
  for (const [method, byCode] of Object.entries(stats.calls)) {
    lines.push(`calls.${method} ${Object.entries(byCode).map(([code, count]) => `${code}=${count}`).join(" ")}`);
  }
  for (const [code, count] of Object.entries(stats.errorsByCode)) lines.push(`errors.${code} ${count}`);
  for (const [limit, count] of Object.entries(stats.limitsHit)) lines.push(`limits.${limit} ${count}`);
  return `${lines.join("\n")}\n`;
}

function statusHtml(provider: RpcProvider): string {
  const stats = provider.stats();
  const rows = Object.entries(stats.calls).map(([method, byCode]) =>
    `<tr><td>${escapeHtml(method)}</td><td>${
      escapeHtml(Object.entries(byCode).map(([code, count]) => `${code} ${count}`).join(", "))
    }</td></tr>`
  ).join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>dwt provider</title></head><body><h1>dwt provider</h1>
<p>uptime ${(stats.uptimeMs / 1000).toFixed(0)} s, ${stats.connections} connections, ${stats.callsInFlight} calls in
flight, ${stats.callsServed} served</p>
<table border="1"><tr><th>method</th><th>answers by status</th></tr>${rows}</table></body></html>`;
}

/** Answers the status routes for `provider`. */
export function providerStatusHandler(provider: RpcProvider): (request: HttpRequest) => HttpResponse {
  return (request) => {
    switch (request.path) {
      case "/ruok":
        return { body: "imok" };
      case "/metrics":
        return { contentType: "text/plain; version=0.0.4; charset=utf-8", body: providerMetrics(provider) };
      case "/":
      case "/status":
        return (request.headers.get("accept") ?? "").includes("text/html")
          ? { contentType: "text/html; charset=utf-8", body: statusHtml(provider) }
          : { body: statusText(provider) };
      default:
        return { status: 404, body: `no such page: ${request.path} (try /status, /metrics, /ruok)\n` };
    }
  };
}
