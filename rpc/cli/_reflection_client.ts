// The caller's side of gRPC server reflection, for `deno task call`: asks one provider, over a
// ServerReflectionInfo stream on an RpcChannel, for its services or for the files that declare a symbol, and gives
// the files as a DescriptorSchema. grpc.reflection.v1 first, v1alpha when a provider answers v1 UNIMPLEMENTED.

import {
  SERVER_REFLECTION_V1,
  SERVER_REFLECTION_V1ALPHA,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
  type ServerReflectionStub,
} from "../reflection/mod.ts";
import type { RpcChannel } from "../rpc_channel.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import type { ServiceDefinition } from "../service_definition.ts";
import { WELL_KNOWN_IMPORTS } from "../_proto_imports.ts";
import { decodeFileDescriptor, DescriptorSchema, type FileDescriptor } from "./_descriptor_schema.ts";

/** Options of {@linkcode ReflectionClient}. */
export interface ReflectionClientOptions {
  /** Each conversation's deadline, in milliseconds. */
  readonly timeoutMs: number;
  /** Cancels the conversation. */
  readonly signal?: AbortSignal;
}

/** Reflection of one provider, through a channel whose reflection calls go to it. */
export class ReflectionClient {
  readonly #channel: RpcChannel;
  readonly #address: string;
  readonly #options: ReflectionClientOptions;

  /**
   * Ask the provider at `address` through `channel`, which must route both reflection services to it. Does not
   * own the channel.
   */
  constructor(channel: RpcChannel, address: string, options: ReflectionClientOptions) {
    this.#channel = channel;
    this.#address = address;
    this.#options = options;
  }

  /** The full names of the services the provider serves (its reflection services included). */
  async listServices(): Promise<string[]> {
    let names: string[] = [];
    await this.#converse({ listServices: "" }, (response) => {
      this.#check(response, "its services");
      names = (response.listServicesResponse?.service ?? []).map((service) => service.name);
      return [];
    });
    return names;
  }

  /**
   * The files declaring `symbol` (a full name: a service, a method, a message, an enum), with their imports.
   * Rejects NOT_FOUND (or the provider's code) when it does not know the symbol.
   */
  async schemaOf(symbol: string): Promise<DescriptorSchema> {
    const files = new Map<string, FileDescriptor>();
    const asked = new Set<string>();
    let first = true;
    await this.#converse({ fileContainingSymbol: symbol }, (response) => {
      const wasFirst = first;
      first = false;
      if (response.errorResponse && !wasFirst) return []; // an import it lacks: the Root build will say which
      this.#check(response, `symbol '${symbol}'`);
      const received = (response.fileDescriptorResponse?.fileDescriptorProto ?? []).map((bytes) =>
        decodeFileDescriptor(bytes, this.source)
      );
      for (const file of received) if (!files.has(file.name)) files.set(file.name, file);
      // Imports sent earlier on the stream are not sent again; any still missing are asked for by name.
      const more: ServerReflectionRequest[] = [];
      for (const file of received) {
        for (const dependency of file.dependency) {
          if (files.has(dependency) || asked.has(dependency) || WELL_KNOWN_IMPORTS.includes(dependency)) continue;
          asked.add(dependency);
          more.push({ fileByFilename: dependency });
        }
      }
      return more;
    });
    return new DescriptorSchema(files.values(), this.source);
  }

  /** Where the schema came from, for messages. */
  get source(): string {
    return `the reflection of ${this.#address}`;
  }

  #check(response: ServerReflectionResponse, what: string): void {
    const error = response.errorResponse;
    if (!error) return;
    const code = (error.errorCode >= 1 && error.errorCode <= 16 ? error.errorCode : RpcCode.UNKNOWN) as RpcCode;
    throw new RpcError(code, `${this.#address} cannot describe ${what}: ${error.errorMessage}`);
  }

  /**
   * One stream: `first`, then whatever `onResponse` asks for after each response, half-closed once every request
   * is answered. v1, or v1alpha when v1 is not served.
   */
  async #converse(
    first: ServerReflectionRequest,
    onResponse: (response: ServerReflectionResponse) => ServerReflectionRequest[],
  ): Promise<void> {
    try {
      await this.#converseOn(SERVER_REFLECTION_V1, first, onResponse);
    } catch (error) {
      if (!(error instanceof RpcError && error.code === RpcCode.UNIMPLEMENTED)) throw error;
      try {
        await this.#converseOn(SERVER_REFLECTION_V1ALPHA, first, onResponse);
      } catch (alphaError) {
        if (!(alphaError instanceof RpcError && alphaError.code === RpcCode.UNIMPLEMENTED)) throw alphaError;
        throw new RpcError(
          RpcCode.UNIMPLEMENTED,
          `${this.#address} does not serve server reflection (a provider with 'rpcserver_reflection' false?): ` +
            "give the schema with --proto or --protoset",
          { cause: alphaError },
        );
      }
    }
  }

  async #converseOn(
    service: ServiceDefinition,
    first: ServerReflectionRequest,
    onResponse: (response: ServerReflectionResponse) => ServerReflectionRequest[],
  ): Promise<void> {
    const queue: ServerReflectionRequest[] = [first];
    let unanswered = 1;
    let wake: (() => void) | undefined;
    async function* requests(): AsyncGenerator<ServerReflectionRequest> {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (unanswered === 0) return; // the half-close: the provider ends the stream
        await new Promise<void>((resolve) => wake = resolve);
      }
    }
    const stub = this.#channel.stub<ServerReflectionStub>(service);
    const { timeoutMs, signal } = this.#options;
    for await (const response of stub.ServerReflectionInfo(requests(), { timeoutMs, signal })) {
      if (unanswered === 0) {
        throw new RpcError(RpcCode.INTERNAL, `${this.#address} answered more reflection requests than were sent`);
      }
      unanswered--;
      const more = onResponse(response);
      queue.push(...more);
      unanswered += more.length;
      wake?.();
      wake = undefined;
    }
    if (unanswered > 0) {
      throw new RpcError(RpcCode.INTERNAL, `${this.#address} ended the reflection stream with requests unanswered`);
    }
  }
}
