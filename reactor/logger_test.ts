import assert from "node:assert/strict";
import { DailyFileLogOutput, Logger, LogLevel, type LogOutput, parseLogLevel } from "./logger.ts";
import { formatDate, formatTimestamp } from "./timestamp.ts";
import { needs } from "./testdata/permissions.ts";

function memoryOutput(): LogOutput & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    write: (line) => void lines.push(line),
    flush: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

Deno.test("Logger writes only levels at or above its level, with a muduo-style prefix", () => {
  const output = memoryOutput();
  const logger = new Logger({
    level: LogLevel.WARN,
    outputs: [output],
    name: "test",
    nowMs: () => Date.UTC(2026, 0, 2),
  });
  logger.trace("t");
  logger.debug("d");
  logger.info("i");
  logger.warn("w", { port: 1, path: "/a b" });
  logger.error("e", { error: new Error("bad", { cause: new Error("root") }) });
  logger.fatal("f");
  assert.equal(output.lines.length, 3);
  assert.match(output.lines[0]!, /^\d{8} \d\d:\d\d:\d\d\.\d{6} WARN {2}\[test\] w port=1 path="\/a b"$/);
  assert.match(output.lines[1]!, /ERROR \[test\] e error="Error: bad \(cause: \\"Error: root\\"\)"$/);
  assert.match(output.lines[2]!, /FATAL \[test\] f$/);
  logger.level = LogLevel.TRACE;
  logger.trace("now visible");
  assert.equal(output.lines.length, 4);
  assert.equal(logger.enabled(LogLevel.TRACE), true);
});

Deno.test("parseLogLevel accepts names in any case and the seed's numbers, and rejects others", () => {
  assert.equal(parseLogLevel("debug"), LogLevel.DEBUG);
  assert.equal(parseLogLevel("ERROR"), LogLevel.ERROR);
  assert.equal(parseLogLevel("warning"), LogLevel.WARN);
  assert.equal(parseLogLevel("Trace"), LogLevel.TRACE);
  // The seed's DwtLogger numbers (its -l flag): 0 debug, 1 info, 2 warn, 3 error, 4 silent (FATAL only here).
  assert.equal(parseLogLevel(0), LogLevel.DEBUG);
  assert.equal(parseLogLevel("1"), LogLevel.INFO);
  assert.equal(parseLogLevel(2), LogLevel.WARN);
  assert.equal(parseLogLevel("3"), LogLevel.ERROR);
  assert.equal(parseLogLevel(4), LogLevel.FATAL);
  assert.throws(() => parseLogLevel("loud"), { name: "RangeError", message: /current value is 'loud'/ });
  assert.throws(() => parseLogLevel("toString"), RangeError);
  assert.throws(() => parseLogLevel(5), { name: "RangeError", message: /current value is '5'/ });
  assert.throws(() => parseLogLevel(-1), RangeError);
});

Deno.test("formatTimestamp and formatDate give muduo's and the seed's shapes", () => {
  const ms = Date.UTC(2026, 10, 24, 3, 36, 40, 123);
  assert.equal(formatTimestamp(ms, true), "20261124 03:36:40.123000");
  assert.equal(formatDate(ms, true), "2026_11_24");
});

Deno.test("DailyFileLogOutput writes batched lines to dir/YYYY_MM_DD.log", needs("read", "write"), async () => {
  const dir = await Deno.makeTempDir();
  const now = new Date(2026, 10, 24, 12).getTime();
  const output = new DailyFileLogOutput({ dir: `${dir}/logs`, nowMs: () => now });
  const logger = new Logger({ outputs: [output], nowMs: () => now });
  for (let i = 0; i < 10_000; i++) logger.info(`line ${i}`);
  await output.close();
  const text = await Deno.readTextFile(`${dir}/logs/2026_11_24.log`);
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, 10_000);
  assert.match(lines[9999]!, /INFO {2}line 9999$/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("DailyFileLogOutput rolls to a new file when the date changes", needs("read", "write"), async () => {
  const dir = await Deno.makeTempDir();
  let now = new Date(2026, 10, 24, 23, 59).getTime();
  const output = new DailyFileLogOutput({ dir, nowMs: () => now });
  output.write("before midnight");
  await output.flush();
  now = new Date(2026, 10, 25, 0, 1).getTime();
  output.write("after midnight");
  await output.close();
  assert.equal(await Deno.readTextFile(`${dir}/2026_11_24.log`), "before midnight\n");
  assert.equal(await Deno.readTextFile(`${dir}/2026_11_25.log`), "after midnight\n");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("DailyFileLogOutput flushes by itself after its interval", needs("read", "write"), async () => {
  const dir = await Deno.makeTempDir();
  const output = new DailyFileLogOutput({ dir, flushIntervalMs: 10 });
  output.write("soon on disk");
  const deadline = performance.now() + 2000;
  let text = "";
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    text = await Deno.readTextFile(output.path).catch(() => "");
    if (text !== "") break;
  }
  assert.equal(text, "soon on disk\n");
  await output.close();
  await Deno.remove(dir, { recursive: true });
});
