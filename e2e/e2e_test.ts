// The runtime-neutral end-to-end scenarios, run by `deno test` on Deno; CI also runs them on Node and Bun.
import { needs } from "../reactor/testdata/permissions.ts";
import { scenarios } from "./_e2e_suite.ts";

for (const scenario of scenarios) {
  Deno.test({ name: `e2e: ${scenario.name}`, ...needs(...scenario.permissions ?? []), fn: scenario.run });
}
