/**
 * A provider's status pages (brpc's /status and /vars), served when `statusPort` is set: `/ruok` → `imok`,
 * `/status` (uptime, connections, calls by service and method, errors by code) as text or, for a browser, HTML,
 * and `/metrics` in Prometheus text format.
 *
 * @module
 */

import type { HttpRequest, HttpResponse } from "../reactor/http_server.ts";
import { type MetricLabels, PrometheusText } from "../reactor/prometheus_text.ts";

const escapeHtml = (value: string) =>
  value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/**
 * A provider's counters (per isolate: with `threads`, each Worker counts its own calls).
 *
 * @example
 * ```ts
 * import type { RpcProvider } from "./rpc_provider.ts";
 *
 * const line = (provider: ProviderStatsSource) => {
 *   const stats = provider.stats();
 *   return `${stats.connections} connections, ${stats.callsInFlight} in flight, ${stats.callsServed} served`;
 * };
 * ```
 */
export interface RpcProviderStats {
  /** Milliseconds since start. */
  uptimeMs: number;
  /** Connections open now. */
  connections: number;
  /** Connections open now that have not sent a whole frame yet (closed at `handshakeTimeoutMs`). */
  silentConnections: number;
  /** Calls whose handler has not answered yet. */
  callsInFlight: number;
  /** Calls answered since start (successfully or not). */
  callsServed: number;
  /** Streams open now (counted in `callsInFlight` too). */
  streamsOpen: number;
  /** Stream messages received from callers (`in`) and sent to them (`out`), by `service.method`. */
  streamMessages: Record<string, { in: number; out: number }>;
  /** Answers by `service.method` (unknown ones as `unknown`), split by status name (`OK`, `UNKNOWN`, ...). */
  calls: Record<string, Record<string, number>>;
  /** Failed calls by status name. */
  errorsByCode: Record<string, number>;
  /**
   * Times a limit was hit, by limit: `connections`, `connections_per_address`, `handshake_timeout` (connections
   * closed for sending no whole frame in time), `silent_evicted` (silent connections closed to make room at the
   * cap), `calls`, `streams` (streams refused past maxStreamsPerConnection), `stream_frame_ignored` (stream frames
   * for an id not open: they may cross a stream's end), `idle`, `frame` (every
   * frame rejected: too large, too slow or over the partial-frame cap), `frame_timeout`, `partial_frame_bytes`,
   * `unsent_bytes`, `metadata`, `duplicate_call_id`, `deadline_clamped`, `keepalive`, `drain_refused` (requests
   * refused while draining) and `drain_grace_expired` (calls cut off after the grace period); the HTTP gateway's as
   * `http_<reason>`, the seed port's as `seed_<limit>` (seed/rpc/seed_server_transport.ts).
   */
  limitsHit: Record<string, number>;
}

/**
 * What the status pages read: anything with the provider's counters (an RpcProvider is one).
 *
 * @example
 * ```ts
 * import type { ProviderStatsSource } from "./provider_status.ts";
 * import { RpcProvider } from "./rpc_provider.ts";
 *
 * const source: ProviderStatsSource = new RpcProvider();
 * ```
 */
export interface ProviderStatsSource {
  /** The counters now. */
  stats(): RpcProviderStats;
}

/**
 * The provider's counters in Prometheus text exposition format.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { providerMetrics } from "./provider_status.ts";
 * import { RpcProvider } from "./rpc_provider.ts";
 * import assert from "node:assert/strict";
 *
 * const provider = new RpcProvider({ loop: new EventLoop() });
 * await provider.start();
 * assert.match(providerMetrics(provider), /^# TYPE /m);
 * await provider.stop();
 * ```
 */
export function providerMetrics(provider: ProviderStatsSource): string {
  const stats = provider.stats();
  const calls = Object.entries(stats.calls).flatMap(([method, byCode]) =>
    Object.entries(byCode).map(([code, count]): [MetricLabels, number] => [{ method, code }, count])
  );
  return new PrometheusText()
    .family("dwt_rpc_uptime_seconds", "gauge", "Seconds since the provider started.", stats.uptimeMs / 1000)
    .family("dwt_rpc_connections", "gauge", "Open caller connections.", stats.connections)
    .family(
      "dwt_rpc_silent_connections",
      "gauge",
      "Open connections that have not sent a whole frame yet.",
      stats.silentConnections,
    )
    .family("dwt_rpc_calls_in_flight", "gauge", "Calls being handled.", stats.callsInFlight)
    .family("dwt_rpc_calls_total", "counter", "Calls answered, by method and status.", calls)
    .family("dwt_rpc_streams_open", "gauge", "Streams open now.", stats.streamsOpen)
    .family(
      "dwt_rpc_stream_messages_total",
      "counter",
      "Stream messages received from callers (in) and sent to them (out), by method.",
      Object.entries(stats.streamMessages).flatMap(([method, counts]): [MetricLabels, number][] => [
        [{ method, direction: "in" }, counts.in],
        [{ method, direction: "out" }, counts.out],
      ]),
    )
    .family(
      "dwt_rpc_limit_hits_total",
      "counter",
      "Times a configured limit was hit, by limit.",
      Object.entries(stats.limitsHit).map(([limit, count]) => [{ limit }, count]),
    )
    .render();
}

function statusText(provider: ProviderStatsSource): string {
  const stats = provider.stats();
  const lines = [
    `uptime_s ${(stats.uptimeMs / 1000).toFixed(1)}`,
    `connections ${stats.connections}`,
    `connections_silent ${stats.silentConnections}`,
    `calls_in_flight ${stats.callsInFlight}`,
    `calls_served ${stats.callsServed}`,
    `streams_open ${stats.streamsOpen}`,
  ];
  for (const [method, byCode] of Object.entries(stats.calls)) {
    lines.push(`calls.${method} ${Object.entries(byCode).map(([code, count]) => `${code}=${count}`).join(" ")}`);
  }
  for (const [method, counts] of Object.entries(stats.streamMessages)) {
    lines.push(`stream_messages.${method} in=${counts.in} out=${counts.out}`);
  }
  for (const [code, count] of Object.entries(stats.errorsByCode)) lines.push(`errors.${code} ${count}`);
  for (const [limit, count] of Object.entries(stats.limitsHit)) lines.push(`limits.${limit} ${count}`);
  return `${lines.join("\n")}\n`;
}

function statusHtml(provider: ProviderStatsSource): string {
  const stats = provider.stats();
  const rows = Object.entries(stats.calls).map(([method, byCode]) =>
    `<tr><td>${escapeHtml(method)}</td><td>${
      escapeHtml(Object.entries(byCode).map(([code, count]) => `${code} ${count}`).join(", "))
    }</td></tr>`
  ).join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>dwt provider</title></head><body><h1>dwt provider</h1>
<p>uptime ${(stats.uptimeMs / 1000).toFixed(0)} s, ${stats.connections} connections, ${stats.callsInFlight} calls in
flight, ${stats.callsServed} served, ${stats.streamsOpen} streams open</p>
<table border="1"><tr><th>method</th><th>answers by status</th></tr>${rows}</table></body></html>`;
}

/**
 * Answers the status routes for `provider`.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { providerStatusHandler } from "./provider_status.ts";
 * import { RpcProvider } from "./rpc_provider.ts";
 * import assert from "node:assert/strict";
 *
 * const provider = new RpcProvider({ loop: new EventLoop() });
 * await provider.start();
 * const request = { method: "GET", path: "/ruok", query: new URLSearchParams(), headers: new Map() };
 * assert.equal(providerStatusHandler(provider)(request).body, "imok");
 * await provider.stop();
 * ```
 */
export function providerStatusHandler(provider: ProviderStatsSource): (request: HttpRequest) => HttpResponse {
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
