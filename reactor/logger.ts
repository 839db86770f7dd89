/**
 * The Logger (muduo's Logger and the seed's DwtLogger): levels TRACE..FATAL, a muduo-style line prefix, output to
 * stderr and/or a daily file `dir/YYYY_MM_DD.log` written asynchronously in batches so logging never blocks the
 * loop. Library code logs through {@linkcode getLogger}, which callers can replace with {@linkcode setLogger}.
 *
 * @module
 */

import type { AppendFile, NetBackend } from "./backend/net_backend.ts";
import { defaultBackend } from "./backend/default.ts";
import { formatDate, formatTimestamp } from "./timestamp.ts";

/**
 * Log levels, numbered as the seed numbers them (DwtLogger and its `-l/--loglevel` flag): 0 DEBUG, 1 INFO, 2 WARN,
 * 3 ERROR, 4 FATAL (the seed's 4 writes nothing; here it still lets the rare FATAL line through). TRACE, which the
 * seed's RPC logger lacks and muduo has, sits below them at -1. Note that muduo's own enum counts from TRACE = 0,
 * so a muduo INFO (2) is a WARN here: compare by name, not by number.
 *
 * @example
 * ```ts
 * import { LogLevel } from "./logger.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(LogLevel.INFO, 1); // the seed's -l 1
 * assert.ok(LogLevel.DEBUG < LogLevel.WARN); // a logger at WARN drops DEBUG lines
 * ```
 */
export const LogLevel = {
  TRACE: -1,
  DEBUG: 0,
  INFO: 1,
  WARN: 2,
  ERROR: 3,
  FATAL: 4,
} as const;

/** A level number, -1 (TRACE) to 4 (FATAL). */
export type LogLevel = typeof LogLevel[keyof typeof LogLevel];

/**
 * A level name.
 *
 * @example
 * ```ts
 * import { LogLevel, type LogLevelName } from "./logger.ts";
 *
 * const level = (name: LogLevelName): LogLevel => LogLevel[name];
 * ```
 */
export type LogLevelName = keyof typeof LogLevel;

const LEVEL_NAMES: Readonly<Record<LogLevel, LogLevelName>> = {
  [-1]: "TRACE",
  0: "DEBUG",
  1: "INFO",
  2: "WARN",
  3: "ERROR",
  4: "FATAL",
};

/**
 * Parse a level from its name (any case; `WARNING` too) or the seed's number 0-4 (0 DEBUG, 1 INFO, 2 WARN,
 * 3 ERROR, 4 FATAL), as config files and `-l` give it. Throws a RangeError naming the value otherwise.
 *
 * @example
 * ```ts
 * import { LogLevel, parseLogLevel } from "./logger.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(parseLogLevel("1"), LogLevel.INFO); // the seed's -l 1
 * assert.equal(parseLogLevel("trace"), LogLevel.TRACE);
 * ```
 */
export function parseLogLevel(value: string | number): LogLevel {
  if (typeof value === "number" || /^\s*\d+\s*$/.test(value)) {
    const n = Number(value);
    if (Number.isInteger(n) && n >= 0 && n <= 4) return n as LogLevel;
  } else {
    const name = value.trim().toUpperCase();
    if (name === "WARNING") return LogLevel.WARN;
    if (Object.hasOwn(LogLevel, name)) return LogLevel[name as LogLevelName];
  }
  throw new RangeError(
    `Cannot parse log level as it must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL or the seed's numbers 0 (DEBUG) to 4 (FATAL): current value is '${value}'`,
  );
}

/**
 * Where log lines go. Lines come without a trailing newline.
 *
 * @example
 * ```ts
 * import { Logger, type LogOutput } from "./logger.ts";
 *
 * // Keep lines in memory, as a test would.
 * const lines: string[] = [];
 * const memory: LogOutput = { write: (line) => lines.push(line), flush: async () => {}, close: async () => {} };
 * const logger = new Logger({ outputs: [memory] });
 * ```
 */
export interface LogOutput {
  /** Take one line; must not block. */
  write(line: string): void;
  /** Resolve once every line written so far is out. */
  flush(): Promise<void>;
  /** Flush and release resources. */
  close(): Promise<void>;
}

/**
 * Writes each line to stderr at once (small, synchronous writes, as muduo's default output).
 *
 * @example
 * ```ts
 * import { Logger, StderrLogOutput } from "./logger.ts";
 *
 * const logger = new Logger({ outputs: [new StderrLogOutput()], name: "demo" }); // what a Logger uses by default
 * logger.info("to stderr");
 * ```
 */
export class StderrLogOutput implements LogOutput {
  readonly #backend: NetBackend | undefined;

  /** Write to the given backend's stderr (default: the runtime's). */
  constructor(backend?: NetBackend) {
    this.#backend = backend;
  }

  /** Write one line to stderr. */
  write(line: string): void {
    (this.#backend ?? defaultBackend()).process.writeStderr(`${line}\n`);
  }

  /** Nothing is buffered. */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Options of {@linkcode DailyFileLogOutput}.
 *
 * @example
 * ```ts
 * import { DailyFileLogOutput, type DailyFileLogOutputOptions } from "./logger.ts";
 *
 * const options: DailyFileLogOutputOptions = { dir: "logs/provider", flushIntervalMs: 50 };
 * const output = new DailyFileLogOutput(options); // creates the directory on the first write
 * ```
 */
export interface DailyFileLogOutputOptions {
  /** The directory of the log files (created when missing). */
  dir: string;
  /**
   * The runtime backend that writes files.
   * @default {defaultBackend()}
   */
  backend?: NetBackend;
  /**
   * How long lines may wait in memory before a batch is written, in milliseconds.
   * @default {100}
   */
  flushIntervalMs?: number;
  /**
   * Buffered bytes that trigger a write at once.
   * @default {65536}
   */
  flushBytes?: number;
  /**
   * The wall clock, for the file name (tests inject one to cross midnight).
   * @default {Date.now}
   */
  nowMs?: () => number;
}

const encoder = new TextEncoder();

/**
 * Appends lines to `dir/YYYY_MM_DD.log` (the seed's naming), rolling to a new file when the date changes. Lines
 * are collected in memory and written in batches by one background write at a time, so `write` never blocks.
 *
 * @example
 * ```ts
 * import { DailyFileLogOutput, Logger, StderrLogOutput } from "./logger.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const logger = new Logger({ outputs: [new StderrLogOutput(), new DailyFileLogOutput({ dir })], name: "demo" });
 * logger.warn("to stderr and to a file");
 * for (const output of logger.outputs) await output.close(); // flushes the batch
 * const [file] = await Array.fromAsync(Deno.readDir(dir));
 * assert.match(file!.name, /^\d{4}_\d{2}_\d{2}\.log$/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class DailyFileLogOutput implements LogOutput {
  readonly #dir: string;
  readonly #backend: NetBackend;
  readonly #flushIntervalMs: number;
  readonly #flushBytes: number;
  readonly #nowMs: () => number;
  #pending: string[] = [];
  #pendingBytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> = Promise.resolve();
  #file: AppendFile | undefined;
  #fileDate = "";
  #reportedError = false;
  #closed = false;

  /** Log to daily files in `options.dir`. */
  constructor(options: DailyFileLogOutputOptions) {
    this.#dir = options.dir.replace(/\/+$/, "") || "/";
    this.#backend = options.backend ?? defaultBackend();
    this.#flushIntervalMs = options.flushIntervalMs ?? 100;
    this.#flushBytes = options.flushBytes ?? 65536;
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** The path of today's file. */
  get path(): string {
    return `${this.#dir}/${formatDate(this.#nowMs())}.log`;
  }

  /** Buffer one line; a batch is written soon. */
  write(line: string): void {
    if (this.#closed) return;
    this.#pending.push(line);
    this.#pendingBytes += line.length + 1;
    if (this.#pendingBytes >= this.#flushBytes) {
      this.#startWrite();
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#startWrite();
      }, this.#flushIntervalMs);
    }
  }

  /** Write everything buffered and wait for it. */
  flush(): Promise<void> {
    this.#startWrite();
    return this.#writing;
  }

  /** Flush, then close the file. Later lines are dropped. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
    this.#file?.close();
    this.#file = undefined;
  }

  #startWrite(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending.length === 0) return;
    const lines = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#writing = this.#writing.then(() => this.#writeBatch(lines));
  }

  async #writeBatch(lines: string[]): Promise<void> {
    try {
      const date = formatDate(this.#nowMs());
      if (this.#file === undefined || date !== this.#fileDate) {
        this.#file?.close();
        await this.#backend.fs.mkdir(this.#dir);
        this.#file = await this.#backend.fs.openAppend(`${this.#dir}/${date}.log`);
        this.#fileDate = date;
      }
      await this.#file.write(encoder.encode(`${lines.join("\n")}\n`));
    } catch (error) {
      // Logging must not take the program down; say so once on stderr and keep going.
      if (!this.#reportedError) {
        this.#reportedError = true;
        this.#backend.process.writeStderr(`Logger cannot write to ${this.#dir}: ${error}\n`);
      }
    }
  }
}

/**
 * Options of {@linkcode Logger}.
 *
 * @example
 * ```ts
 * import { Logger, LogLevel, type LoggerOptions } from "./logger.ts";
 *
 * const options: LoggerOptions = { level: LogLevel.DEBUG, name: "callee" };
 * const logger = new Logger(options);
 * ```
 */
export interface LoggerOptions {
  /**
   * The lowest level written.
   * @default {LogLevel.INFO}
   */
  level?: LogLevel;
  /**
   * Where lines go.
   * @default {[new StderrLogOutput()]}
   */
  outputs?: LogOutput[];
  /**
   * A source tag shown in every line, such as the program's name.
   * @default {""}
   */
  name?: string;
  /**
   * The wall clock for line prefixes.
   * @default {Date.now}
   */
  nowMs?: () => number;
}

/**
 * Key-value details appended to a line as `key=value`.
 *
 * @example
 * ```ts
 * import { getLogger, type LogFields } from "./logger.ts";
 *
 * const fields: LogFields = { service: "dwt.UserServiceRpc", method: "Login", ms: 1.5 };
 * getLogger().debug("call served", fields); // ... call served service=dwt.UserServiceRpc method=Login ms=1.5
 * ```
 */
export type LogFields = Record<string, unknown>;

function formatValue(value: unknown): string {
  if (value instanceof Error) {
    const cause = value.cause === undefined ? "" : ` (cause: ${formatValue(value.cause)})`;
    return JSON.stringify(`${value.name}: ${value.message}${cause}`);
  }
  if (typeof value === "string") return /^[\w.:/@#-]*$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === "bigint") return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * A leveled logger. Disabled levels cost one comparison.
 *
 * `fatal` logs the line; it does not exit (muduo aborts): the caller decides, usually by throwing.
 *
 * @example
 * ```ts
 * import { Logger, LogLevel, type LogOutput } from "./logger.ts";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const memory: LogOutput = { write: (line) => lines.push(line), flush: async () => {}, close: async () => {} };
 * const logger = new Logger({ level: LogLevel.INFO, outputs: [memory], name: "demo" });
 * logger.debug("hidden");
 * logger.info("listening", { port: 8080 });
 * assert.equal(lines.length, 1);
 * assert.match(lines[0]!, /INFO  \[demo\] listening port=8080$/);
 * ```
 */
export class Logger {
  /** The lowest level written; change it at any time. */
  level: LogLevel;
  readonly #outputs: LogOutput[];
  readonly #name: string;
  readonly #nowMs: () => number;

  /** Create a logger. */
  constructor(options: LoggerOptions = {}) {
    this.level = options.level ?? LogLevel.INFO;
    this.#outputs = options.outputs ?? [new StderrLogOutput()];
    this.#name = options.name ?? "";
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** The outputs lines go to. */
  get outputs(): readonly LogOutput[] {
    return this.#outputs;
  }

  /** Whether `level` would be written. */
  enabled(level: LogLevel): boolean {
    return level >= this.level;
  }

  /** Log at TRACE. */
  trace(message: string, fields?: LogFields): void {
    if (LogLevel.TRACE >= this.level) this.#log(LogLevel.TRACE, message, fields);
  }

  /** Log at DEBUG. */
  debug(message: string, fields?: LogFields): void {
    if (LogLevel.DEBUG >= this.level) this.#log(LogLevel.DEBUG, message, fields);
  }

  /** Log at INFO. */
  info(message: string, fields?: LogFields): void {
    if (LogLevel.INFO >= this.level) this.#log(LogLevel.INFO, message, fields);
  }

  /** Log at WARN. */
  warn(message: string, fields?: LogFields): void {
    if (LogLevel.WARN >= this.level) this.#log(LogLevel.WARN, message, fields);
  }

  /** Log at ERROR. */
  error(message: string, fields?: LogFields): void {
    if (LogLevel.ERROR >= this.level) this.#log(LogLevel.ERROR, message, fields);
  }

  /** Log at FATAL (does not exit). */
  fatal(message: string, fields?: LogFields): void {
    this.#log(LogLevel.FATAL, message, fields);
  }

  /** Flush every output. */
  async flush(): Promise<void> {
    await Promise.all(this.#outputs.map((output) => output.flush()));
  }

  /** Flush and close every output. */
  async close(): Promise<void> {
    await Promise.all(this.#outputs.map((output) => output.close()));
  }

  #log(level: LogLevel, message: string, fields: LogFields | undefined): void {
    let line = `${formatTimestamp(this.#nowMs())} ${LEVEL_NAMES[level].padEnd(5)} ${
      this.#name === "" ? "" : `[${this.#name}] `
    }${message}`;
    if (fields !== undefined) {
      for (const key in fields) line += ` ${key}=${formatValue(fields[key])}`;
    }
    for (const output of this.#outputs) output.write(line);
  }
}

let processLogger: Logger | undefined;

/**
 * The process-wide logger library code writes to. Created on first use: stderr, at the level named by the
 * `DWT_LOG_LEVEL` environment variable (a name or the seed's 0-4) when set, else INFO.
 *
 * @example
 * ```ts
 * import { getLogger } from "./logger.ts";
 *
 * getLogger().debug("written when DWT_LOG_LEVEL is DEBUG or TRACE", { port: 8080 });
 * ```
 */
export function getLogger(): Logger {
  if (processLogger === undefined) {
    const fromEnv = defaultBackend().process.env("DWT_LOG_LEVEL");
    let level: LogLevel = LogLevel.INFO;
    try {
      if (fromEnv !== undefined && fromEnv !== "") level = parseLogLevel(fromEnv);
    } catch {
      // A bad value must not stop the program; INFO it is.
    }
    processLogger = new Logger({ level });
  }
  return processLogger;
}

/**
 * Replace the process-wide logger (to change outputs, level or name). Returns the previous one.
 *
 * @example
 * ```ts
 * import { getLogger, Logger, LogLevel, type LogOutput, setLogger } from "./logger.ts";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const memory: LogOutput = { write: (line) => lines.push(line), flush: async () => {}, close: async () => {} };
 * const previous = setLogger(new Logger({ level: LogLevel.WARN, outputs: [memory] }));
 * getLogger().info("dropped");
 * getLogger().warn("kept");
 * setLogger(previous);
 * assert.equal(lines.length, 1);
 * ```
 */
export function setLogger(logger: Logger): Logger {
  const previous = getLogger();
  processLogger = logger;
  return previous;
}
