/**
 * The Deno-side tests', benchmarks' and fault harnesses' one way to start a server process and wait for the line
 * `READY [word]` it prints once serving. (The end-to-end scenarios on Node and Bun have their own in
 * `e2e/_e2e_suite.ts`: this one names `Deno.`.)
 */

/** Options of {@linkcode spawnReady}. */
export interface SpawnReadyOptions {
  /** Variables added to the inherited environment. @default {} */
  env?: Record<string, string>;
  /**
   * Where the child's stderr goes: to ours, kept for {@linkcode ReadyProcess.stderr} (and the error when it exits
   * before READY), or nowhere.
   * @default "inherit"
   */
  stderr?: "inherit" | "capture" | "null";
  /** The child's working directory. @default this process's */
  cwd?: string;
  /** How long to wait for READY before the child is killed and the call fails. @default 30000 */
  timeoutMs?: number;
  /** Written to the child's stdin, which then stays open until it exits; without it, stdin is null. */
  input?: string;
  /**
   * The output that counts as ready (a RegExp without the `g` flag), matched against all stdout so far; its first
   * group, if any, becomes {@linkcode ReadyProcess.ready}. For children that say something else once ready (an
   * interactive CLI).
   * @default a line `READY [word]`
   */
  readyPattern?: RegExp;
}

/** A started child process that printed `READY [word]`; its stdout is read (and kept) until it exits. */
export interface ReadyProcess {
  /** The word after READY (an address, a port, or "" for a bare `READY`). */
  readonly ready: string;
  /** Its process id (for `Deno.kill(pid, "SIGSTOP")`, `/proc/<pid>/...`, CPU pinning). */
  readonly pid: number;
  /** Whether it is still running. */
  readonly running: boolean;
  /** Resolves with its exit status once it has exited. */
  readonly status: Promise<Deno.CommandStatus>;
  /** All it wrote to stdout so far. */
  stdout(): string;
  /** All it wrote to stderr so far (only with `stderr: "capture"`, else ""). */
  stderr(): string;
  /** Send `signal` unless it has exited, and wait until it has exited and its output is read. */
  stop(signal?: Deno.Signal): Promise<void>;
}

/** The error of a child that exited (or timed out) before READY: its exit code and captured stderr. */
export interface NotReadyError extends Error {
  /** Its exit code (null when it was killed for taking longer than `timeoutMs`). */
  code: number | null;
  /** What it wrote to stderr (only with `stderr: "capture"`). */
  stderr: string;
}

/** `[deno, "run", "-A", ...args]`: the argv of a Deno script run with all permissions. */
export function denoRun(...args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", ...args];
}

const READY_LINE = /^READY(?: (\S*))?\r?\n/m;

/**
 * Spawn `argv` and resolve once it prints a line `READY [word]` (or what `readyPattern` matches); reject (with a {@linkcode NotReadyError}) if it
 * exits first or takes longer than `timeoutMs`, when it is killed.
 */
export async function spawnReady(argv: string[], options: SpawnReadyOptions = {}): Promise<ReadyProcess> {
  const { env = {}, stderr = "inherit", cwd, timeoutMs = 30_000, input, readyPattern = READY_LINE } = options;
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    env,
    cwd,
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: stderr === "capture" ? "piped" : stderr,
  }).spawn();
  let running = true;
  const status = child.status.then((status) => {
    running = false;
    return status;
  });
  let stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  if (input !== undefined) {
    stdin = child.stdin.getWriter();
    stdin.write(new TextEncoder().encode(input)).catch(() => {}); // it may exit without reading
  }
  const closeStdin = () => stdin?.close().catch(() => {});
  let stdoutText = "";
  let stderrText = "";
  const stderrDone = stderr === "capture"
    ? (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderrText += chunk;
    })()
    : Promise.resolve();
  // Read stdout until it closes, so the child never blocks on a full pipe; `wake` tells the wait below of news.
  let wake = () => {};
  let stdoutClosed = false;
  const stdoutDone = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      stdoutText += chunk;
      wake();
    }
  })().catch(() => {}).finally(() => {
    stdoutClosed = true;
    wake();
  });

  const deadline = performance.now() + timeoutMs;
  let match: RegExpExecArray | null;
  let timedOut = false;
  while ((match = readyPattern.exec(stdoutText)) === null && !stdoutClosed) {
    const left = deadline - performance.now();
    if (left <= 0) {
      timedOut = true;
      break;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, left);
    });
    clearTimeout(timer);
  }
  if (match === null) {
    if (timedOut) child.kill("SIGKILL");
    const { code } = await status;
    await Promise.all([stdoutDone, stderrDone, closeStdin()]);
    const what = timedOut ? `did not print READY within ${timeoutMs} ms` : `exited with code ${code} before READY`;
    const error = new Error(`${argv.join(" ")} ${what}\nstdout: ${stdoutText}\n${stderrText}`) as NotReadyError;
    error.code = timedOut ? null : code;
    error.stderr = stderrText;
    throw error;
  }
  const ready = match[1] ?? "";
  return {
    ready,
    pid: child.pid,
    get running() {
      return running;
    },
    status,
    stdout: () => stdoutText,
    stderr: () => stderrText,
    async stop(signal: Deno.Signal = "SIGTERM") {
      try {
        if (running) child.kill(signal);
      } catch {
        // It exited between the check and the signal.
      }
      await status;
      await Promise.all([stdoutDone, stderrDone, closeStdin()]);
    },
  };
}
