/**
 * A tiny web server for browser tests: fixed pages and scripts on 127.0.0.1 on a port of its own, so its pages
 * have an origin of their own (an origin differs by port), and calls from them to the gateway are cross-origin.
 */

/** A running page server. */
export interface PageServer extends AsyncDisposable {
  /** `http://127.0.0.1:port`, as the browser sends it in `Origin`. */
  readonly origin: string;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
};

/** Serve `files` (path to text; the type from the extension), 404 for anything else. */
export function startPageServer(files: Record<string, string>): PageServer {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    const body = files[path];
    if (body === undefined) return new Response("Not found\n", { status: 404 });
    const type = TYPES[path.slice(path.lastIndexOf(".") + 1)] ?? "text/plain; charset=utf-8";
    return new Response(body, { headers: { "content-type": type, "cache-control": "no-store" } });
  });
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}
