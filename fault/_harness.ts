/** What the fault suite and the fuzz run share: server processes awaited on their READY line, and framing. */

/** A `deno run -A` child process that printed `READY [word]`. */
export interface Proc {
  /** What it wrote to stderr so far (only with `captureStderr`). */
  stderr(): string;
  child: Deno.ChildProcess;
  /** The word after READY (an address, a port, or ""). */
  ready: string;
  pid: number;
  /** Whether it is still running. */
  alive(): boolean;
  /** Send `signal` (unless it has exited) and wait for it to exit. */
  stop(signal?: Deno.Signal): Promise<void>;
}

/** Options of {@linkcode spawnReady}. */
export interface SpawnOptions {
  /** Keep what the child writes to stderr (see {@linkcode Proc.stderr}); else it is discarded. */
  captureStderr?: boolean;
}

/**
 * Start `deno run -A ...args` (logs at ERROR) and wait for its READY line; its output is drained after. When it
 * exits first, the error says so (with its stderr when captured) and carries its exit code as `code`.
 */
export async function spawnReady(args: string[], options: SpawnOptions = {}): Promise<Proc> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    stdout: "piped",
    stderr: options.captureStderr ? "piped" : "null",
    env: { DWT_LOG_LEVEL: "ERROR" },
  }).spawn();
  let ended = false;
  let stderrText = "";
  const stderrDone = options.captureStderr
    ? (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderrText += chunk;
    })()
    : Promise.resolve();
  const status = child.status.then((status) => {
    ended = true;
    return status;
  });
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/READY ?(\S*)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) {
      const { code } = await status;
      await stderrDone;
      throw Object.assign(new Error(`${args[0]} exited with code ${code} before READY\n${stderrText}`), {
        code,
        stderr: stderrText,
      });
    }
    text += value;
  }
  (async () => {
    while (!(await reader.read()).done) {
      // drain
    }
  })();
  return {
    child,
    ready: /READY ?(\S*)/.exec(text)![1]!,
    stderr: () => stderrText,
    pid: child.pid,
    alive: () => !ended,
    async stop(signal: Deno.Signal = "SIGTERM") {
      if (!ended) child.kill(signal);
      await status;
    },
  };
}

/** `body` behind a 4-byte big-endian length: one frame of LengthHeaderCodec. */
export function framed(body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}
