/**
 * A real headless Chromium for page tests, driven over the Chrome DevTools Protocol on its WebSocket: just what the
 * page tests need (open a page, wait for a CSS selector, read text, count matches, evaluate a script and await its
 * promise), so no browser-automation package has to be downloaded with the project.
 *
 * @module
 */

/** One page of the browser. */
export interface HeadlessPage {
  /** Resolve once `selector` matches (or, with `detached`, matches nothing); reject after `timeoutMs`. */
  waitFor(selector: string, options?: { timeoutMs?: number; detached?: boolean }): Promise<void>;
  /** The `innerText` of the first match ("" for none). */
  innerText(selector: string): Promise<string>;
  /** How many elements match. */
  count(selector: string): Promise<number>;
  /**
   * The value of `expression` run in the page, its promise awaited, as JSON: a thrown error or rejection rejects
   * with the page's description of it; so does a promise still pending after `timeoutMs` (default 10 s).
   */
  evaluate(expression: string, options?: { timeoutMs?: number }): Promise<unknown>;
}

/** A running browser. */
export interface HeadlessChromium {
  /** Open `url` in a new page. */
  open(url: string): Promise<HeadlessPage>;
  /** Close the browser and wait for its process. */
  close(): Promise<void>;
}

/** Start `executable` headless on a free debugging port, with a throw-away profile. */
export async function launchChromium(executable: string): Promise<HeadlessChromium> {
  const profile = await Deno.makeTempDir({ prefix: "chromium-" });
  const child = new Deno.Command(executable, {
    args: [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--remote-debugging-port=0",
      `--user-data-dir=${profile}`,
      "about:blank",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Chromium says where its DevTools endpoint is on stderr; keep draining stderr after that.
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let endpoint: string | undefined;
  const deadline = Date.now() + 20_000;
  while (endpoint === undefined) {
    const { value, done } = await reader.read();
    if (done || Date.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`Chromium did not announce its DevTools endpoint:\n${text.slice(-2000)}`);
    }
    text += value;
    endpoint = /DevTools listening on (ws:\/\/\S+)/.exec(text)?.[1];
  }
  const draining = (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  const cdp = await Cdp.connect(endpoint);
  return {
    async open(url: string): Promise<HeadlessPage> {
      const { targetId } = await cdp.send("Target.createTarget", { url }) as { targetId: string };
      const { sessionId } = await cdp.send("Target.attachToTarget", { targetId, flatten: true }) as {
        sessionId: string;
      };
      const evaluate = async (expression: string, awaitPromise = false): Promise<unknown> => {
        const reply = await cdp.send(
          "Runtime.evaluate",
          { expression, returnByValue: true, awaitPromise },
          sessionId,
        ) as {
          result: { value?: unknown };
          exceptionDetails?: unknown;
        };
        if (reply.exceptionDetails !== undefined) {
          throw new Error(`The page could not evaluate ${expression}: ${JSON.stringify(reply.exceptionDetails)}`);
        }
        return reply.result.value;
      };
      const query = (selector: string) => JSON.stringify(selector);
      return {
        async waitFor(selector, options = {}) {
          const until = Date.now() + (options.timeoutMs ?? 5000);
          for (;;) {
            const present = await evaluate(`document.querySelector(${query(selector)}) !== null`) === true;
            if (present !== (options.detached ?? false)) return;
            if (Date.now() > until) {
              throw new Error(`Timed out waiting for ${selector} to be ${options.detached ? "gone" : "there"}`);
            }
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        },
        async innerText(selector) {
          return String(await evaluate(`document.querySelector(${query(selector)})?.innerText ?? ""`));
        },
        async count(selector) {
          return Number(await evaluate(`document.querySelectorAll(${query(selector)}).length`));
        },
        async evaluate(expression, options = {}) {
          const timeoutMs = options.timeoutMs ?? 10_000;
          let timer: ReturnType<typeof setTimeout> | undefined;
          const late = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${expression} did not settle in ${timeoutMs} ms`)), timeoutMs);
          });
          try {
            return await Promise.race([evaluate(expression, true), late]);
          } finally {
            clearTimeout(timer);
          }
        },
      };
    },
    async close(): Promise<void> {
      await cdp.send("Browser.close", {}).catch(() => {});
      cdp.close();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await child.status;
      clearTimeout(timer);
      await draining.catch(() => {});
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}

/** The protocol's request/response messages over one WebSocket, matched by id. */
class Cdp {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  #nextId = 1;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
      const pending = message.id === undefined ? undefined : this.#pending.get(message.id);
      if (pending === undefined) return; // an event: not needed here
      this.#pending.delete(message.id!);
      if (message.error !== undefined) pending.reject(new Error(`DevTools: ${message.error.message}`));
      else pending.resolve(message.result);
    };
    socket.onclose = () => {
      for (const pending of this.#pending.values()) pending.reject(new Error("DevTools connection closed"));
      this.#pending.clear();
    };
  }

  static connect(url: string): Promise<Cdp> {
    const socket = new WebSocket(url);
    return new Promise((resolve, reject) => {
      socket.onopen = () => resolve(new Cdp(socket));
      socket.onerror = () => reject(new Error(`Cannot reach Chromium's DevTools at ${url}`));
    });
  }

  send(method: string, params: Record<string, unknown>, sessionId?: string): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  close(): void {
    this.#socket.close();
  }
}
