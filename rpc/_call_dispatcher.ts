/**
 * A provider's dispatch: its handler table (services by name, each method's decoder, encoder and interceptor
 * chain), the calls it runs on every connection its transport offers, and the drain that ends them. It is the
 * {@linkcode ServerTransportHandler} any transport serves (TCP, in memory, later an HTTP gateway); it knows no
 * socket and no frame. Owned by one RpcProvider; loop-confined, like it.
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { copyBytes } from "./_byte_slab.ts";
import type { CallLedger } from "./_call_ledger.ts";
import { messageDecoder, messageEncoder } from "./_proto3_defaults.ts";
import { type CallsOwner, RETRY_SAFE, ServedCalls } from "./_served_calls.ts";
import { type HandlerEntry, MAX_DEADLINE_MS, ServerCall } from "./_server_call.ts";
import { ServerStream } from "./_server_stream.ts";
import { MAX_CREDIT_BYTES, StreamKind } from "./_rpc_wire.ts";
import type { ServerLimits } from "./_server_limits.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import type { CallContext, MethodHandler, ServerHandler, ServerInterceptor } from "./server_handler.ts";
import type { RequestFrame, ServerConnection, ServerTransportHandler } from "./server_transport.ts";
import { type MethodDefinition, MethodKind, type ServiceDefinition } from "./service_definition.ts";

const EMPTY_BYTES = new Uint8Array(0);

/** A registered service: its definition and a handler entry per method. */
interface RegisteredService {
  definition: ServiceDefinition;
  handlers: Map<string, HandlerEntry>;
}

/** Runs a provider's calls. */
export class CallDispatcher implements ServerTransportHandler, CallsOwner {
  /** The provider's limits. */
  readonly limits: ServerLimits;
  /** The provider's accounting. */
  readonly ledger: CallLedger;
  readonly #loop: EventLoop;
  readonly #services = new Map<string, RegisteredService>();
  readonly #connections = new Set<ServedCalls>();
  #stopping = false;

  /** Dispatch on `loop` within `limits`, counting in `ledger`. */
  constructor(loop: EventLoop, limits: ServerLimits, ledger: CallLedger) {
    this.#loop = loop;
    this.limits = limits;
    this.ledger = ledger;
  }

  /** The services registered. */
  get definitions(): ServiceDefinition[] {
    return [...this.#services.values()].map((service) => service.definition);
  }

  /** Whether a drain began: new calls and connections are refused from then on. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /**
   * Add a service's handlers: `implementation`'s method for each of the definition's (named as in the .proto or
   * in lower camel case), wrapped by `interceptors` (outermost first).
   */
  register(definition: ServiceDefinition, implementation: object, interceptors: readonly ServerInterceptor[]): void {
    const handlers = new Map<string, HandlerEntry>();
    const impl = implementation as Record<string, unknown>;
    for (const method of definition.methods.values()) {
      const lower = method.name[0]!.toLowerCase() + method.name.slice(1);
      const fn = impl[method.name] ?? impl[lower];
      if (typeof fn !== "function") {
        throw new TypeError(
          `Cannot register service '${definition.fullName}' as it has no handler for method '${method.name}'`,
        );
      }
      handlers.set(method.name, {
        method,
        handler: handlerChain(fn as MethodHandler, implementation, interceptors),
        counts: undefined,
        messagesIn: 0,
        messagesOut: 0,
        decodeRequest: messageDecoder(method.requestType),
        encodableResponse: messageEncoder(method.responseType),
      });
    }
    this.#services.set(definition.fullName, { definition, handlers });
  }

  /** From a transport: a connection came up. While draining, its caller learns so at once. */
  accept(connection: ServerConnection): ServedCalls {
    const served = new ServedCalls(connection, this);
    this.#connections.add(served);
    if (this.#stopping) served.drain(0);
    return served;
  }

  /** The definition of a method served here (for a transport that frames requests by it: the HTTP gateway). */
  method(service: string, method: string): MethodDefinition | undefined {
    return this.#services.get(service)?.handlers.get(method)?.method;
  }

  /** Count a limit that was hit. */
  limitHit(limit: string): void {
    this.ledger.limitHit(limit);
  }

  /** Count a call a transport refused by itself (under its method when served here, else under `unknown`). */
  refused(service: string, method: string, code: number): void {
    this.ledger.count(service, method, this.#services.get(service)?.handlers.get(method), code);
  }

  /** From a connection's record: it closed. */
  forget(served: ServedCalls): void {
    this.#connections.delete(served);
  }

  /** Run a request the connection accepted: find its handler, decode it, start the call. */
  serve(served: ServedCalls, request: RequestFrame, receiveTimeMs: number): void {
    if (this.#stopping) {
      const error = new RpcError(RpcCode.UNAVAILABLE, "The provider is shutting down");
      this.refuse(served, request, error, RETRY_SAFE);
      return;
    }
    if (request.timeoutMs > MAX_DEADLINE_MS) this.limitHit("deadline_clamped");
    const service = this.#services.get(request.service);
    const entry = service?.handlers.get(request.method);
    if (entry === undefined) {
      const why = service === undefined
        ? `Service '${request.service}' is not served here`
        : `Method '${request.method}' is not in service '${request.service}'`;
      // Not run: another provider (a newer version during a rolling upgrade) may serve it.
      this.refuse(served, request, new RpcError(RpcCode.UNIMPLEMENTED, why), RETRY_SAFE);
      return;
    }
    const kind = STREAM_KINDS[entry.method.kind ?? MethodKind.UNARY];
    const opened = request.stream ?? 0;
    if (opened !== kind) {
      // Not run, and not safe to retry: every provider of this .proto would say the same.
      const why = `Method '${request.service}.${request.method}' is ${kindName(kind)}; the call opened it as ` +
        kindName(opened);
      this.refuse(served, request, new RpcError(RpcCode.UNIMPLEMENTED, why));
      return;
    }
    if ((request.window ?? 0) > MAX_CREDIT_BYTES) {
      const why = `The stream's window of ${request.window} bytes is above 2^31 - 1`;
      this.refuse(served, request, new RpcError(RpcCode.INVALID_ARGUMENT, why));
      return;
    }
    if (kind !== StreamKind.UNARY && served.connection.sendMessage === undefined) {
      const why = `Method '${request.service}.${request.method}' streams, and this transport carries no streams`;
      this.refuse(served, request, new RpcError(RpcCode.UNIMPLEMENTED, why));
      return;
    }
    let decoded: unknown;
    if (kind === StreamKind.UNARY || kind === StreamKind.SERVER) {
      try {
        // A copy first: the payload may be a view into the connection's buffer, and the handler may keep bytes.
        decoded = entry.decodeRequest(copyBytes(request.payload));
      } catch (error) {
        const why = `The request for ${request.service}.${request.method} does not parse`;
        this.refuse(served, request, new RpcError(RpcCode.INVALID_ARGUMENT, why, { cause: error }));
        return;
      }
    }
    if (kind !== StreamKind.UNARY) {
      const stream = new ServerStream(served, request, entry, receiveTimeMs, kind, this.limits.streamWindowBytes);
      served.addStream(stream);
      this.ledger.streamStarted(request.service, entry);
      stream.start(decoded);
      return;
    }
    const call = new ServerCall(served, request, entry, receiveTimeMs);
    served.add(call);
    this.ledger.started();
    call.run(decoded);
  }

  /** Answer a call that was not run (counted under its method when served here, else under `unknown`). */
  refuse(served: ServedCalls, request: RequestFrame, error: RpcError, metadata?: Record<string, string>): void {
    const entry = this.#services.get(request.service)?.handlers.get(request.method);
    this.ledger.count(request.service, request.method, entry, error.code);
    served.connection.answer({
      callId: request.callId,
      service: request.service,
      method: request.method,
      status: error.code,
      errorMessage: error.rawMessage,
      answerMetadata: metadata,
      answerPayload: EMPTY_BYTES,
    });
  }

  /**
   * Drain every connection: tell each caller (so it sends new calls elsewhere), let calls in flight finish for up
   * to `graceMs`, cancel what is left (answered UNAVAILABLE), then close each connection after its last answer and
   * wait (a second at most) for them to close.
   */
  async drain(graceMs: number): Promise<void> {
    this.#stopping = true;
    for (const served of this.#connections) served.drain(graceMs);
    if (this.ledger.inFlight > 0) {
      const idle = this.ledger.idle = Promise.withResolvers<void>();
      await this.#within(graceMs, idle.promise);
      this.ledger.idle = undefined;
    }
    const cutOff = new RpcError(
      RpcCode.UNAVAILABLE,
      `The provider stopped: the call was still running when the drain grace period of ${graceMs} ms ended`,
    );
    for (const served of this.#connections) {
      for (let left = served.abortAll(cutOff); left > 0; left--) this.limitHit("drain_grace_expired");
    }
    // Half-close after the last answer; callers close their side once their calls are answered.
    const closed: Promise<void>[] = [];
    for (const served of this.#connections) {
      const done = Promise.withResolvers<void>();
      served.onClosed = done.resolve;
      closed.push(done.promise);
      served.connection.close();
    }
    if (closed.length > 0) await this.#within(1000, Promise.all(closed));
  }

  // Wait for `promise`, or `ms` at most.
  async #within(ms: number, promise: Promise<unknown>): Promise<void> {
    let timer: TimerId | undefined;
    await Promise.race([promise, new Promise<void>((resolve) => timer = this.#loop.runAfter(ms, resolve))]);
    if (timer !== undefined) this.#loop.cancel(timer);
  }
}

// The wire's stream kind of each method kind.
const STREAM_KINDS: Record<MethodKind, StreamKind> = {
  [MethodKind.UNARY]: StreamKind.UNARY,
  [MethodKind.CLIENT_STREAMING]: StreamKind.CLIENT,
  [MethodKind.SERVER_STREAMING]: StreamKind.SERVER,
  [MethodKind.BIDI_STREAMING]: StreamKind.BIDI,
};

function kindName(kind: number): string {
  return ["unary", "client streaming", "server streaming", "bidirectional streaming"][kind] ?? `stream kind ${kind}`;
}

// Without interceptors the handler is called as it is: a synchronous answer settles the call at once, with no
// promise. Interceptors are promised a handler that returns a promise.
function handlerChain(
  fn: MethodHandler,
  implementation: object,
  interceptors: readonly ServerInterceptor[],
): HandlerEntry["handler"] {
  const direct = (request: unknown, context: CallContext) => fn.call(implementation, request, context);
  if (interceptors.length === 0) return direct;
  const base: ServerHandler = (request, context) => {
    try {
      return Promise.resolve(direct(request, context));
    } catch (error) {
      return Promise.reject(error);
    }
  };
  return interceptors.reduceRight((next, interceptor) => interceptor(next), base);
}
