// The Node side of `deno task conformance` (started by tools/conformance/main.ts, which serves the gateway):
// reads the suites, runs every applicable case against --base-url with the connect-node client, prints each by
// the suite's naming with PASS or FAIL (and the differences), then the counts per suite, then
// `N passed, M failed`. Exits 1 when a case failed, 2 when the run could not start.
//
//   node run_cases.mjs --base-url URL --descriptors FILE --suites DIR --receive-limit BYTES
//                      [--run TEXT] [--concurrency N]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { assertResult } from "./_assert_result.mjs";
import { http1Client, runCase } from "./_case_runner.mjs";
import { protobuf, wkt } from "./_packages.mjs";
import { expandSuite, loadSuites, SuiteSchema } from "./_suite_cases.mjs";

const { createFileRegistry, fromBinary } = protobuf;
const { FileDescriptorSetSchema } = wkt;

let options;
try {
  options = parseArgs({
    options: {
      "base-url": { type: "string" },
      descriptors: { type: "string" },
      suites: { type: "string" },
      "receive-limit": { type: "string" },
      run: { type: "string" },
      concurrency: { type: "string", default: "8" },
    },
  }).values;
  for (
    const required of ["base-url", "descriptors", "suites", "receive-limit"]
  ) {
    if (options[required] === undefined) {
      throw new Error(`--${required} is required`);
    }
  }
} catch (error) {
  console.error(`Cannot read the command line: ${error.message}`);
  process.exit(2);
}

const concurrency = Number(options.concurrency);
const receiveLimit = Number(options["receive-limit"]);
if (
  !Number.isInteger(concurrency) || concurrency < 1 ||
  !Number.isInteger(receiveLimit) || receiveLimit < 1
) {
  console.error(
    `--concurrency and --receive-limit must be positive integers: current values are ${options.concurrency} and ` +
      `${options["receive-limit"]}`,
  );
  process.exit(2);
}

const schema = new SuiteSchema(
  createFileRegistry(
    fromBinary(FileDescriptorSetSchema, readFileSync(options.descriptors)),
  ),
);
let cases;
try {
  cases = loadSuites(options.suites, schema).flatMap(({ suite }) => expandSuite(suite, schema, { receiveLimit }));
} catch (error) {
  console.error(`Cannot read the suites: ${error.message}`);
  process.exit(2);
}
if (options.run !== undefined) {
  cases = cases.filter((c) => c.name.includes(options.run));
}
if (cases.length === 0) {
  console.error("No case applies (or matches --run)");
  process.exit(2);
}

const env = { baseUrl: options["base-url"], schema, httpClient: http1Client() };
const outcomes = new Array(cases.length);
let next = 0;
let printed = 0;
// Print in the suites' order as results come in, so a run's output reads the same every time.
const flush = () => {
  while (printed < cases.length && outcomes[printed] !== undefined) {
    const { name } = cases[printed];
    const problems = outcomes[printed];
    console.log(`${problems.length === 0 ? "PASS" : "FAIL"} ${name}`);
    for (const line of problems) {
      console.log(`    ${line.replaceAll("\n", "\n    ")}`);
    }
    printed++;
  }
};
await Promise.all(
  Array.from({ length: Math.min(concurrency, cases.length) }, async () => {
    while (next < cases.length) {
      const index = next++;
      const { testCase } = cases[index];
      try {
        outcomes[index] = assertResult(
          testCase,
          await runCase(testCase, env),
          schema,
        );
      } catch (error) {
        outcomes[index] = [`could not run: ${error.stack ?? error}`];
      }
      flush();
    }
  }),
);

const bySuite = new Map();
let passed = 0;
let failed = 0;
cases.forEach(({ suite }, index) => {
  const counts = bySuite.get(suite) ?? { passed: 0, failed: 0 };
  if (outcomes[index].length === 0) {
    counts.passed++;
    passed++;
  } else {
    counts.failed++;
    failed++;
  }
  bySuite.set(suite, counts);
});
console.log("");
for (const [suite, counts] of bySuite) {
  console.log(`  ${suite}: ${counts.passed} passed, ${counts.failed} failed`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
