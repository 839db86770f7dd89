// The files a provider's services came from, serialized once, and looked up as reflection asks: by file name, by
// the full name of anything a file declares, by extension. Built once per provider, on the first reflection
// request; read-only after.

import protobuf from "protobufjs";
import descriptor from "protobufjs/ext/descriptor/index.js";
import type { ServiceDefinition } from "../service_definition.ts";
import {
  describeFiles,
  type EnumProto,
  type FieldProto,
  type FileProto,
  type MessageProto,
} from "./_file_descriptors.ts";

/** One file: its serialized FileDescriptorProto and its imports. */
export interface PoolFile {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly dependencies: readonly string[];
}

/** The files of some services, by name, symbol and extension. */
export class DescriptorPool {
  readonly #files = new Map<string, PoolFile>();
  /** Full name (no leading dot) → the file declaring it. */
  readonly #symbols = new Map<string, string>();
  /** Extended message's full name → extension number → the file declaring the extension. */
  readonly #extensions = new Map<string, Map<number, string>>();
  readonly #messages = new Set<string>();

  /** Describe every file the services' .proto files and their imports make up. */
  constructor(services: Iterable<ServiceDefinition>) {
    const type = descriptor.FileDescriptorProto;
    for (const file of describeFiles(services)) {
      const bytes = type.encode(type.fromObject(file)).finish();
      this.#files.set(file.name, { name: file.name, bytes, dependencies: file.dependency });
      this.#index(file);
    }
  }

  /** The file names, in the order the services brought them. */
  get fileNames(): string[] {
    return [...this.#files.keys()];
  }

  /** A file by name. */
  file(name: string): PoolFile | undefined {
    return this.#files.get(name);
  }

  /** The name of the file declaring `symbol` (a full name, with or without its leading dot). */
  fileContainingSymbol(symbol: string): string | undefined {
    return this.#symbols.get(symbol.replace(/^\./, ""));
  }

  /** The name of the file declaring extension `number` of message `typeName`. */
  fileContainingExtension(typeName: string, number: number): string | undefined {
    return this.#extensions.get(typeName.replace(/^\./, ""))?.get(number);
  }

  /** The extension numbers of message `typeName` (none: []), or undefined when no such message is here. */
  extensionNumbers(typeName: string): number[] | undefined {
    const name = typeName.replace(/^\./, "");
    if (!this.#messages.has(name)) return undefined;
    return [...this.#extensions.get(name)?.keys() ?? []];
  }

  /**
   * File `name` and its imports, transitively, as gRPC's reflection sends them on one stream: the file asked for
   * always, first; each import only if not in `sent`, which collects what was sent.
   */
  withDependencies(name: string, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const seen = new Set<string>();
    const queue = [name];
    while (queue.length > 0) {
      const next = queue.shift()!;
      if (seen.has(next)) continue;
      seen.add(next);
      const file = this.#files.get(next);
      if (file === undefined) continue;
      if (out.length === 0 || !sent.has(next)) {
        out.push(file.bytes);
        sent.add(next);
      }
      queue.push(...file.dependencies);
    }
    return out;
  }

  /** A serialized `google.protobuf.FileDescriptorSet` of every file, each after its imports (as protoc writes it). */
  fileDescriptorSet(): Uint8Array {
    const ordered: PoolFile[] = [];
    const visited = new Set<string>();
    const visit = (name: string) => {
      const file = this.#files.get(name);
      if (file === undefined || visited.has(name)) return;
      visited.add(name);
      for (const dependency of file.dependencies) visit(dependency);
      ordered.push(file);
    };
    for (const name of this.#files.keys()) visit(name);
    // FileDescriptorSet is `repeated FileDescriptorProto file = 1`: each file a length-delimited field 1 (tag 0x0a).
    const writer = protobuf.Writer.create();
    for (const file of ordered) writer.uint32(0x0a).bytes(file.bytes);
    return writer.finish();
  }

  #index(file: FileProto): void {
    const add = (symbol: string) => {
      if (!this.#symbols.has(symbol)) this.#symbols.set(symbol, file.name);
    };
    const addExtension = (extension: FieldProto, scope: string) => {
      add(`${scope}${extension.name}`);
      const extendee = (extension.extendee ?? "").replace(/^\./, "");
      let numbers = this.#extensions.get(extendee);
      if (numbers === undefined) this.#extensions.set(extendee, numbers = new Map());
      if (!numbers.has(extension.number)) numbers.set(extension.number, file.name);
    };
    // Enum values are scoped beside their enum, as in C++ (`shop.Status.OPEN` is `shop.OPEN`).
    const addEnum = (enumeration: EnumProto, scope: string) => {
      add(`${scope}${enumeration.name}`);
      for (const value of enumeration.value) add(`${scope}${value.name}`);
    };
    const addMessage = (message: MessageProto, scope: string) => {
      const name = `${scope}${message.name}`;
      add(name);
      this.#messages.add(name);
      for (const field of message.field) add(`${name}.${field.name}`);
      for (const oneof of message.oneofDecl) add(`${name}.${oneof.name}`);
      for (const extension of message.extension) addExtension(extension, `${name}.`);
      for (const nested of message.nestedType) addMessage(nested, `${name}.`);
      for (const enumeration of message.enumType) addEnum(enumeration, `${name}.`);
    };
    const scope = file.package === undefined ? "" : `${file.package}.`;
    for (const message of file.messageType) addMessage(message, scope);
    for (const enumeration of file.enumType) addEnum(enumeration, scope);
    for (const extension of file.extension) addExtension(extension, scope);
    for (const service of file.service) {
      add(`${scope}${service.name}`);
      for (const method of service.method) add(`${scope}${service.name}.${method.name}`);
    }
  }
}
