/**
 * Prometheus' text exposition format, for the status pages' `/metrics`: a family is `# HELP`, `# TYPE` and its
 * samples; label values are escaped as the format asks.
 *
 * @module
 */

/**
 * Labels of one sample.
 *
 * @example
 * ```ts
 * import type { MetricLabels } from "./prometheus_text.ts";
 *
 * const labels: MetricLabels = { method: "dwt.UserServiceRpc.Login", code: "OK" };
 * ```
 */
export type MetricLabels = Record<string, string>;

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

/**
 * Collects metric families and renders them.
 *
 * @example
 * ```ts
 * import { PrometheusText } from "./prometheus_text.ts";
 * import assert from "node:assert/strict";
 *
 * const text = new PrometheusText()
 *   .family("app_calls_total", "counter", "Calls.", [[{ method: "a.B" }, 3]])
 *   .render();
 * assert.equal(text, '# HELP app_calls_total Calls.\n# TYPE app_calls_total counter\napp_calls_total{method="a.B"} 3\n');
 * ```
 */
export class PrometheusText {
  readonly #lines: string[] = [];

  /** Add a family; a bare number is one sample without labels. */
  family(
    name: string,
    type: "gauge" | "counter",
    help: string,
    samples: number | Array<[MetricLabels, number]>,
  ): this {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of typeof samples === "number" ? [[{}, samples] as [MetricLabels, number]] : samples) {
      const pairs = Object.entries(labels).map(([key, label]) => `${key}="${escapeLabel(label)}"`);
      this.#lines.push(`${name}${pairs.length > 0 ? `{${pairs.join(",")}}` : ""} ${value}`);
    }
    return this;
  }

  /** The text, one line per entry, ending in a newline. */
  render(): string {
    return `${this.#lines.join("\n")}\n`;
  }
}
