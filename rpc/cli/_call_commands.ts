// The three commands of `deno task call` (list, describe, a call), given where calls go, the schema files of the
// command line and the command's deadline and cancel signal. Output goes to stdout as it comes: a line per service
// or method, .proto text, a line of JSON per response message.

import type { ProcessBackend } from "../../reactor/backend/net_backend.ts";
import { messageToJson } from "../http/json_mapping.ts";
import type { CallOptions, Stub } from "../rpc_channel.ts";
import { MAX_CALL_TIMEOUT_MS } from "../rpc_channel.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { MethodKind } from "../service_definition.ts";
import type { CallTarget, Lookup } from "./_call_target.ts";
import type { CallArgs, CallTargetArgs } from "./_call_args.ts";
import { type DescriptorSchema, SchemaError, type ServiceDescriptor } from "./_descriptor_schema.ts";
import { describeText } from "./_proto_text.ts";
import type { RequestInput } from "./_request_input.ts";
import { schemaFromReflection } from "./_schema_sources.ts";

/** How long discovery and a schema may take when --timeout does not say: a registry or provider that hangs. */
const LOOKUP_TIMEOUT_MS = 10_000;

/** Stdout could not be written (a reader that went away): the command stops. */
export class OutputError extends Error {
  override readonly name: string = "OutputError";
}

/** What a command needs. */
export interface CallCommandsInit {
  readonly process: ProcessBackend;
  /** Where calls go; undefined when only schema files were given. */
  readonly target: CallTarget | undefined;
  /** The schema of --proto and --protoset; undefined: reflection. */
  readonly files: DescriptorSchema | undefined;
  /** --timeout, in milliseconds. */
  readonly timeoutMs: number | undefined;
  /** Ctrl-C. */
  readonly signal: AbortSignal;
}

/** Runs one command; each method resolves once its output is written, or rejects with an RpcError. */
export class CallCommands {
  readonly #init: CallCommandsInit;
  readonly #startedMs = performance.now();
  readonly #cancelled: Promise<never>;

  constructor(init: CallCommandsInit) {
    this.#init = init;
    const { signal } = init;
    this.#cancelled = new Promise<never>((_, reject) => {
      const cancel = () => reject(RpcError.from(signal.reason, RpcCode.CANCELLED));
      if (signal.aborted) cancel();
      else signal.addEventListener("abort", cancel, { once: true });
    });
    this.#cancelled.catch(() => {});
  }

  /** `list`: services, one a line; `list SERVICE`: its methods, `SERVICE.Method` one a line. */
  async list(args: CallTargetArgs & { readonly service?: string }): Promise<void> {
    const service = args.service;
    if (service === undefined) {
      const target = this.#init.target;
      const names = target === undefined
        ? this.#init.files!.serviceNames
        : await this.#step(target.listServices(this.#lookup()));
      this.#write(names.map((name) => `${name}\n`).join(""));
      return;
    }
    const found = await this.#service(service);
    this.#write(found.service.method.map((method) => `${service}.${method.name}\n`).join(""));
  }

  /** `describe SYMBOL`: its .proto text. */
  async describe(args: CallTargetArgs & { readonly symbol: string }): Promise<void> {
    const schema = await this.#schemaOf(args.symbol);
    const found = schema.lookup(args.symbol);
    if (found === undefined) {
      throw new RpcError(RpcCode.NOT_FOUND, `Cannot find '${args.symbol}' in ${schema.source}`);
    }
    let text: string;
    try {
      text = describeText(schema, found);
    } catch (error) {
      throw new SchemaError(`Cannot describe '${args.symbol}' from ${schema.source}: ${(error as Error).message}`);
    }
    this.#write(text);
  }

  /** A call: the request(s) from `input`, each response printed as a line of JSON as it arrives. */
  async call(args: Extract<CallArgs, { command: "call" }>, input: RequestInput): Promise<void> {
    const { service, method } = args;
    const target = this.#init.target!;
    await this.#step(target.checkService(service, this.#lookup()));
    const found = await this.#service(service);
    if (!found.service.method.some((each) => each.name === method)) {
      const methods = found.service.method.map((each) => each.name).join(", ");
      throw new RpcError(RpcCode.NOT_FOUND, `Service ${service} has no method '${method}': it has ${methods}`);
    }
    const definition = found.schema.service(service);
    const { kind, requestType, responseType } = definition.methods.get(method)!;
    const channel = await target.channel(service);
    const stub = channel.stub<Stub>(definition)[method]!;
    const options: CallOptions = { metadata: { ...args.metadata }, signal: this.#init.signal };
    const print = (message: unknown) => this.#write(`${JSON.stringify(messageToJson(responseType, message))}\n`);
    const timeoutMs = this.#callTimeoutMs();
    switch (kind) {
      case MethodKind.SERVER_STREAMING: {
        const request = await input.single(requestType);
        const responses = stub(request, { ...options, timeoutMs }) as unknown as AsyncIterable<unknown>;
        for await (const response of responses) print(response);
        return;
      }
      case MethodKind.CLIENT_STREAMING:
        print(await stub(input.stream(requestType), { ...options, timeoutMs }));
        return;
      case MethodKind.BIDI_STREAMING: {
        const responses = stub(input.stream(requestType), { ...options, timeoutMs }) as unknown as AsyncIterable<
          unknown
        >;
        for await (const response of responses) print(response);
        return;
      }
      default: {
        const request = await input.single(requestType);
        // A unary call has the channel's default deadline unless one is set; the command has none by default.
        print(await stub(request, { ...options, timeoutMs: timeoutMs ?? MAX_CALL_TIMEOUT_MS }));
      }
    }
  }

  /** Service `name` in the schema (the files', or the reflection of a provider of it). */
  async #service(name: string): Promise<{ service: ServiceDescriptor; schema: DescriptorSchema }> {
    const schema = await this.#schemaOf(name);
    const found = schema.lookup(name);
    if (found?.kind !== "service") {
      const known = schema.serviceNames.join(", ") || "no services";
      throw new RpcError(RpcCode.NOT_FOUND, `Cannot find service '${name}' in ${schema.source}: it has ${known}`);
    }
    return { service: found.service, schema };
  }

  #schemaOf(symbol: string): Promise<DescriptorSchema> {
    const files = this.#init.files;
    if (files !== undefined) return Promise.resolve(files);
    return this.#step(schemaFromReflection(this.#init.target!, symbol, this.#lookup()));
  }

  /** A step before the call: it ends with a cancel (Ctrl-C) too. */
  #step<T>(promise: Promise<T>): Promise<T> {
    return Promise.race([promise, this.#cancelled]);
  }

  /** The bounds of a step before the call: what is left of --timeout, up to the lookups' own limit. */
  #lookup(): Lookup {
    const leftMs = this.#leftMs();
    const byTimeout = leftMs !== undefined && leftMs < LOOKUP_TIMEOUT_MS;
    const timeoutMs = Math.max(1, Math.ceil(byTimeout ? leftMs : LOOKUP_TIMEOUT_MS));
    return {
      timeoutMs,
      signal: this.#init.signal,
      expired: (what) =>
        byTimeout
          ? new RpcError(RpcCode.DEADLINE_EXCEEDED, `${what} before the --timeout of ${this.#init.timeoutMs} ms passed`)
          : new RpcError(RpcCode.UNAVAILABLE, `${what} within ${timeoutMs} ms`),
    };
  }

  /** The call's deadline: what is left of --timeout (none without one). */
  #callTimeoutMs(): number | undefined {
    const leftMs = this.#leftMs();
    if (leftMs !== undefined && leftMs <= 0) {
      throw new RpcError(
        RpcCode.DEADLINE_EXCEEDED,
        `The --timeout of ${this.#init.timeoutMs} ms passed before the call`,
      );
    }
    return leftMs === undefined ? undefined : Math.ceil(leftMs);
  }

  #leftMs(): number | undefined {
    const timeoutMs = this.#init.timeoutMs;
    return timeoutMs === undefined ? undefined : this.#startedMs + timeoutMs - performance.now();
  }

  #write(text: string): void {
    if (text === "") return;
    try {
      this.#init.process.writeStdout(text);
    } catch (error) {
      throw new OutputError(`Cannot write to stdout: ${(error as Error).message}`, { cause: error });
    }
  }
}
