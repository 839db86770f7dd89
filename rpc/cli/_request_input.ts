// The requests of a call, from `-d`: JSON text, `@FILE` or `@-` (stdin). A unary or server-streaming call takes
// the whole text as one JSON value (it may span lines); a client or bidirectional stream takes one JSON value per
// line (NDJSON, blank lines skipped), read from stdin as the stream goes, so a bidirectional call can answer one
// line before the next is typed. Each value becomes a message by the canonical proto3 JSON mapping.

import type protobuf from "protobufjs";
import type { NetBackend } from "../../reactor/backend/net_backend.ts";
import { parseJsonText } from "../../reactor/parse_json_text.ts";
import { ConfigError } from "../config_error.ts";
import { messageFromJson } from "../http/json_mapping.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";

/** Where requests come from: nothing (`-d` not given), stdin, or text given or read from a file. */
type Source = { readonly kind: "none" } | { readonly kind: "stdin" } | { readonly kind: "text"; readonly text: string };

/** The requests of one call. */
export class RequestInput {
  readonly #source: Source;
  readonly #backend: NetBackend;

  private constructor(source: Source, backend: NetBackend) {
    this.#source = source;
    this.#backend = backend;
  }

  /**
   * The input `-d` names (undefined: none given, which is `{}` for one request and stdin for a stream). A file is
   * read now; a file that cannot be read is a ConfigError.
   */
  static async open(data: string | undefined, backend: NetBackend): Promise<RequestInput> {
    if (data === undefined) return new RequestInput({ kind: "none" }, backend);
    if (data === "@-") return new RequestInput({ kind: "stdin" }, backend);
    if (!data.startsWith("@")) return new RequestInput({ kind: "text", text: data }, backend);
    const path = data.slice(1);
    try {
      const text = new TextDecoder().decode(await backend.fs.readFile(path));
      return new RequestInput({ kind: "text", text }, backend);
    } catch (error) {
      throw new ConfigError(`Cannot read the request file -d @${path}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** The one request of a unary or server-streaming call. Rejects INVALID_ARGUMENT when it is not one of `type`. */
  async single(type: protobuf.Type): Promise<protobuf.Message> {
    const source = this.#source;
    if (source.kind === "none") return toMessage(type, {});
    let text: string;
    if (source.kind === "text") {
      text = source.text;
    } else {
      const lines: string[] = [];
      for await (const line of this.#backend.process.stdinLines()) lines.push(line);
      text = lines.join("\n");
    }
    let json: unknown;
    try {
      json = parseJsonText(text);
    } catch (error) {
      throw new RpcError(RpcCode.INVALID_ARGUMENT, `Cannot read the request as JSON: ${(error as Error).message}`);
    }
    return toMessage(type, json);
  }

  /**
   * The requests of a client or bidirectional stream, one per non-blank line, each read when the stream asks for
   * it. Throws INVALID_ARGUMENT naming the line that is not a request of `type`.
   */
  async *stream(type: protobuf.Type): AsyncGenerator<protobuf.Message> {
    const source = this.#source;
    const lines = source.kind === "text" ? source.text.split(/\r?\n/) : this.#backend.process.stdinLines();
    let lineNumber = 0;
    let count = 0;
    for await (const line of lines) {
      lineNumber++;
      if (line.trim() === "") continue;
      count++;
      const what = `request ${count} (line ${lineNumber})`;
      let json: unknown;
      try {
        json = parseJsonText(line);
      } catch (error) {
        throw new RpcError(RpcCode.INVALID_ARGUMENT, `Cannot read ${what} as JSON: ${(error as Error).message}`);
      }
      yield toMessage(type, json, what);
    }
  }
}

/** `json` as a message of `type`; a stream's request says which it is (`request 2 (line 3): ...`). */
function toMessage(type: protobuf.Type, json: unknown, what?: string): protobuf.Message {
  try {
    return messageFromJson(type, json);
  } catch (error) {
    if (!(error instanceof RpcError) || what === undefined) throw error;
    throw new RpcError(error.code, `Cannot use ${what}: ${error.rawMessage}`, { cause: error });
  }
}
