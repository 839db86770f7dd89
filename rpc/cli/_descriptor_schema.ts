// The schema `deno task call` works from, whatever its source (server reflection, --proto, --protoset): a set of
// google.protobuf.FileDescriptorProtos, indexed by the full name of what they declare. Calls need a protobufjs
// Root; it is made by printing each file back as .proto text (_proto_text.ts) and parsing that with parseProto, so
// a Root from reflection has the same field names, maps, oneofs and `optional`s as the provider's own Root
// (protobufjs's `Root.fromDescriptor` turns maps into repeated entries and drops json_name and proto3 optional).

import type protobuf from "protobufjs";
import descriptor from "protobufjs/ext/descriptor/index.js";
import { WELL_KNOWN_IMPORTS } from "../_proto_imports.ts";
import { definitionOf, parseProto, type ServiceDefinition } from "../service_definition.ts";
import { fileText } from "./_proto_text.ts";

export type {
  EnumDescriptor,
  FieldDescriptor,
  FileDescriptor,
  MessageDescriptor,
  MethodDescriptor,
  RangeDescriptor,
  SchemaSymbol,
  ServiceDescriptor,
} from "./_descriptor_types.ts";
import type { FileDescriptor, MessageDescriptor, SchemaSymbol } from "./_descriptor_types.ts";

/** A schema that cannot be used: a file that does not decode, or that does not parse once printed. */
export class SchemaError extends TypeError {
  override readonly name: string = "SchemaError";
}

const TO_OBJECT: protobuf.IConversionOptions = { arrays: true };

/** A serialized FileDescriptorProto as a plain object. Throws a SchemaError naming `source` if it is not one. */
export function decodeFileDescriptor(bytes: Uint8Array, source: string): FileDescriptor {
  try {
    const type = descriptor.FileDescriptorProto;
    return type.toObject(type.decode(bytes), TO_OBJECT) as unknown as FileDescriptor;
  } catch (error) {
    throw new SchemaError(
      `Cannot use the schema from ${source}: a FileDescriptorProto does not decode: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** The files of a set of FileDescriptorProtos, with their lookups and the protobufjs Root they make. */
export class DescriptorSchema {
  /** Where the files came from, for errors (`--protoset api.pb`, `the reflection of 127.0.0.1:8800`). */
  readonly source: string;
  readonly #files = new Map<string, FileDescriptor>();
  readonly #symbols = new Map<string, SchemaSymbol>();
  #root: protobuf.Root | undefined;

  /** A schema of `files`; a file named twice is kept once (the first). */
  constructor(files: Iterable<FileDescriptor>, source: string) {
    this.source = source;
    for (const file of files) {
      if (this.#files.has(file.name)) continue;
      this.#files.set(file.name, file);
      this.#index(file);
    }
  }

  /** A schema of a serialized FileDescriptorSet (`protoc -o`, `buf build -o`). Throws a SchemaError if it is not. */
  static fromFileDescriptorSet(bytes: Uint8Array, source: string): DescriptorSchema {
    let files: FileDescriptor[];
    try {
      const type = descriptor.FileDescriptorSet;
      files = (type.toObject(type.decode(bytes), TO_OBJECT) as unknown as { file: FileDescriptor[] }).file;
    } catch (error) {
      throw new SchemaError(
        `Cannot use the schema from ${source} as it is not a FileDescriptorSet: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (files.length === 0) throw new SchemaError(`Cannot use the schema from ${source}: it holds no files`);
    return new DescriptorSchema(files, source);
  }

  /** The files, in the order they came. */
  get files(): FileDescriptor[] {
    return [...this.#files.values()];
  }

  /** The full names of every service, sorted. */
  get serviceNames(): string[] {
    return [...this.#symbols.values()].filter((symbol) => symbol.kind === "service").map((symbol) => symbol.fullName)
      .sort();
  }

  /** The file named `name`. */
  file(name: string): FileDescriptor | undefined {
    return this.#files.get(name);
  }

  /**
   * What a full name (with or without its leading dot) declares. A method may also be named `Service/Method`, as
   * in a call.
   */
  lookup(name: string): SchemaSymbol | undefined {
    const dotted = name.replace(/^\./, "");
    return this.#symbols.get(dotted) ?? this.#symbols.get(dotted.replace(/\/(?=[^/]*$)/, "."));
  }

  /** The definition of service `name` (a full name) for a stub. Throws a SchemaError if the Root does not build. */
  service(name: string): ServiceDefinition {
    return definitionOf(this.root().lookupService(name));
  }

  /** The protobufjs Root of every file, built on first use. Throws a SchemaError naming the file that fails. */
  root(): protobuf.Root {
    if (this.#root !== undefined) return this.#root;
    const imports: Record<string, string> = {};
    let main = 'syntax = "proto3";\n';
    for (const file of this.#files.values()) {
      main += `import ${quoted(file.name, this.source)};\n`;
      // protobufjs carries the well-known types itself (and json_mapping knows them by those definitions).
      if (WELL_KNOWN_IMPORTS.includes(file.name)) continue;
      try {
        imports[file.name] = fileText(file);
      } catch (error) {
        throw new SchemaError(`Cannot use the schema from ${this.source}: ${(error as Error).message}`, {
          cause: error,
        });
      }
    }
    try {
      this.#root = parseProto(main, { imports, fileName: "<deno task call>" });
    } catch (error) {
      throw new SchemaError(
        `Cannot use the schema from ${this.source}: ${(error as Error).message.replace(/\s+/g, " ")}`,
        { cause: error },
      );
    }
    return this.#root;
  }

  #index(file: FileDescriptor): void {
    const add = (symbol: SchemaSymbol) => {
      if (!this.#symbols.has(symbol.fullName)) this.#symbols.set(symbol.fullName, symbol);
    };
    const addMessage = (message: MessageDescriptor, scope: string) => {
      const fullName = `${scope}${message.name}`;
      add({ kind: "message", fullName, file, message });
      for (const nested of message.nestedType) addMessage(nested, `${fullName}.`);
      for (const enumeration of message.enumType) {
        add({ kind: "enum", fullName: `${fullName}.${enumeration.name}`, file, enumeration });
      }
    };
    const scope = file.package ? `${file.package}.` : "";
    for (const message of file.messageType) addMessage(message, scope);
    for (const enumeration of file.enumType) {
      add({ kind: "enum", fullName: `${scope}${enumeration.name}`, file, enumeration });
    }
    for (const service of file.service) {
      const fullName = `${scope}${service.name}`;
      add({ kind: "service", fullName, file, service });
      for (const method of service.method) {
        add({ kind: "method", fullName: `${fullName}.${method.name}`, file, service, method });
      }
    }
  }
}

/** A file name as a .proto string literal; names that would need escapes are refused. */
function quoted(name: string, source: string): string {
  if (!/^[\w./+-]+$/.test(name)) {
    throw new SchemaError(`Cannot use the schema from ${source}: file name ${JSON.stringify(name)} is not a path`);
  }
  return `"${name}"`;
}
