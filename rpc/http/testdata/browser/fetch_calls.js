// The page script of gateway_browser_test.ts's plain-fetch page: Connect calls as a page with no library makes
// them (`fetch`, envelopes read off `response.body` as they come), each answering what the page could see.
// A blocked call answers the error's name and message instead.

const gateway = new URL(location.href).searchParams.get("gateway");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The error `fn` threw as `{ error, message }`, or what it returned. */
async function caught(fn) {
  try {
    return await fn();
  } catch (error) {
    return { error: error.name, message: error.message };
  }
}

/** Connect unary in JSON (a preflighted request: its Content-Type is not one a form can send). */
function loginJson(name, password) {
  return caught(async () => {
    const response = await fetch(`${gateway}/dwt.UserServiceRpc/Login`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1" },
      body: JSON.stringify({ name: btoa(name), password: btoa(password) }),
    });
    return {
      status: response.status,
      body: await response.json(),
      requestId: response.headers.get("x-request-id"),
      internal: response.headers.get("x-internal"),
    };
  });
}

/** The FileDescriptorSet download (a simple GET: no preflight, the response itself carries the verdict). */
function descriptorSetSize() {
  return caught(async () => {
    const response = await fetch(`${gateway}/dwt.rpc.Reflection/FileDescriptorSet`);
    return { status: response.status, bytes: (await response.arrayBuffer()).byteLength };
  });
}

/**
 * A Connect server stream in JSON: the request as one envelope, the response's envelopes parsed as the body's
 * chunks arrive, each message stamped with when the page had it.
 */
function follow(symbol, count, intervalMs) {
  return caught(async () => {
    const message = encoder.encode(JSON.stringify({ symbol, count, intervalMs }));
    const body = new Uint8Array(5 + message.length);
    new DataView(body.buffer).setUint32(1, message.length);
    body.set(message, 5);
    const started = performance.now();
    const response = await fetch(`${gateway}/dwt.streaming.FeedService/Follow`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", "connect-protocol-version": "1" },
      body,
    });
    const reader = response.body.getReader();
    const messages = [];
    let end;
    let buffered = new Uint8Array(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const joined = new Uint8Array(buffered.length + value.length);
      joined.set(buffered);
      joined.set(value, buffered.length);
      buffered = joined;
      while (buffered.length >= 5) {
        const length = new DataView(buffered.buffer, buffered.byteOffset).getUint32(1);
        if (buffered.length < 5 + length) break;
        const json = JSON.parse(decoder.decode(buffered.subarray(5, 5 + length)));
        if (buffered[0] & 2) end = json;
        else messages.push({ ...json, atMs: Math.round(performance.now() - started) });
        buffered = buffered.slice(5 + length);
      }
    }
    return {
      status: response.status,
      contentType: response.headers.get("content-type"),
      messages,
      end,
      leftoverBytes: buffered.length,
    };
  });
}

globalThis.page = { loginJson, descriptorSetSize, follow };
document.body.dataset.ready = "yes";
