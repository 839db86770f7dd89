// FileDescriptorProtos printed as .proto text: whole files, which DescriptorSchema parses into a protobufjs Root
// (type names fully qualified, so nothing depends on scope rules), and what `call describe` shows (type names
// relative to the file's package). Names come from a provider or a file the user gave and end up in text that is
// parsed again, so every name is checked to be an identifier (a name holding `;` or `}` would otherwise declare
// something of its own), and strings are escaped.

import type {
  EnumDescriptor,
  FieldDescriptor,
  FileDescriptor,
  MessageDescriptor,
  MethodDescriptor,
  RangeDescriptor,
  SchemaSymbol,
  ServiceDescriptor,
  SymbolLookup,
} from "./_descriptor_types.ts";

// descriptor.proto's numbers.
const LABEL_REQUIRED = 2;
const LABEL_REPEATED = 3;
const TYPE_GROUP = 10;
const TYPE_MESSAGE = 11;
const TYPE_ENUM = 14;
const SCALAR_NAMES: Readonly<Record<number, string>> = {
  1: "double",
  2: "float",
  3: "int64",
  4: "uint64",
  5: "int32",
  6: "fixed64",
  7: "fixed32",
  8: "bool",
  9: "string",
  12: "bytes",
  13: "uint32",
  15: "sfixed32",
  16: "sfixed64",
  17: "sint32",
  18: "sint64",
};
const EDITION_NAMES: Readonly<Record<number, string>> = { 1000: "2023", 1001: "2024" };
const IDEMPOTENCY_LEVELS: Readonly<Record<number, string>> = { 1: "NO_SIDE_EFFECTS", 2: "IDEMPOTENT" };
/** The largest field number; a range ending there is written `to max`. */
const MAX_FIELD_NUMBER = 536_870_911;
const MAX_ENUM_NUMBER = 2_147_483_647;

type Syntax = "proto2" | "proto3" | "editions";

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FULL_NAME = /^\.?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

function identifier(name: string, what: string): string {
  if (!IDENTIFIER.test(name)) throw new TypeError(`${what} ${JSON.stringify(name)} is not an identifier`);
  return name;
}

function fullName(name: string, what: string): string {
  if (!FULL_NAME.test(name)) throw new TypeError(`${what} ${JSON.stringify(name)} is not a full name`);
  return name;
}

/** protoc's json_name of a field: underscores dropped, the letter after one upper-cased. */
function defaultJsonName(name: string): string {
  return name.replace(/_+([a-zA-Z0-9]?)/g, (_match, letter: string) => letter.toUpperCase());
}

/** A .proto string literal of any text. */
function stringLiteral(text: string): string {
  // JSON's escapes are all valid in .proto strings except \u, which protobufjs reads as well.
  return JSON.stringify(text);
}

function syntaxOf(file: FileDescriptor): Syntax {
  if (file.syntax === "proto3") return "proto3";
  if (file.syntax === "editions" || file.edition !== undefined && file.edition !== 0) return "editions";
  return "proto2";
}

/** Prints the declarations of one file. */
class ProtoPrinter {
  readonly #packageName: string;
  readonly #syntax: Syntax;
  // Display: type names relative to the package, for people; else fully qualified, for the parser.
  readonly #display: boolean;

  constructor(file: FileDescriptor, display: boolean) {
    this.#packageName = file.package ?? "";
    this.#syntax = syntaxOf(file);
    this.#display = display;
  }

  /** A message or enum named in a field, a method or an extend block. */
  typeRef(typeName: string): string {
    fullName(typeName, "Type name");
    if (!this.#display) return typeName.startsWith(".") ? typeName : `.${typeName}`;
    const name = typeName.replace(/^\./, "");
    const prefix = this.#packageName === "" ? "" : `${this.#packageName}.`;
    return prefix !== "" && name.startsWith(prefix) ? name.slice(prefix.length) : name;
  }

  message(message: MessageDescriptor, indent: string): string[] {
    const name = identifier(message.name, "Message name");
    const inner = `${indent}  `;
    const lines = [`${indent}message ${name} {`];
    if (message.options?.deprecated) lines.push(`${inner}option deprecated = true;`);
    lines.push(...this.#messageBody(message, inner));
    lines.push(`${indent}}`);
    return lines;
  }

  #messageBody(message: MessageDescriptor, indent: string): string[] {
    const lines: string[] = [];
    // Map entries are written as `map<K, V>` fields and groups with their field: both are nested types only in
    // the descriptor.
    const inlined = new Set<string>();
    for (const field of message.field) {
      const entry = this.#nestedOf(message, field);
      if (entry !== undefined && (field.type === TYPE_GROUP || entry.options?.mapEntry)) inlined.add(entry.name);
    }
    for (const enumeration of message.enumType) lines.push(...this.enum(enumeration, indent));
    for (const nested of message.nestedType) {
      if (!inlined.has(nested.name)) lines.push(...this.message(nested, indent));
    }
    // A oneof is written where its first member is; the synthetic oneof of a proto3 `optional` is not written.
    const synthetic = message.oneofDecl.map((_, index) =>
      message.field.some((field) => field.oneofIndex === index) &&
      message.field.every((field) => field.oneofIndex !== index || field.proto3Optional === true)
    );
    const oneofsWritten = new Set<number>();
    for (const field of message.field) {
      const oneofIndex = field.oneofIndex;
      if (oneofIndex === undefined || synthetic[oneofIndex]) {
        lines.push(...this.#field(field, message, indent, false));
        continue;
      }
      if (oneofsWritten.has(oneofIndex)) continue;
      oneofsWritten.add(oneofIndex);
      const oneof = message.oneofDecl[oneofIndex];
      if (oneof === undefined) throw new TypeError(`Field '${field.name}' names oneof ${oneofIndex}, which is missing`);
      lines.push(`${indent}oneof ${identifier(oneof.name, "Oneof name")} {`);
      for (const member of message.field) {
        if (member.oneofIndex === oneofIndex) lines.push(...this.#field(member, message, `${indent}  `, true));
      }
      lines.push(`${indent}}`);
    }
    lines.push(...this.extendBlocks(message.extension, indent));
    if (message.extensionRange.length > 0) {
      lines.push(`${indent}extensions ${message.extensionRange.map((range) => rangeText(range, true)).join(", ")};`);
    }
    lines.push(...reservedLines(message.reservedRange, message.reservedName, indent, true));
    return lines;
  }

  /** The nested type a map or group field names, if it is one of `message`'s. */
  #nestedOf(message: MessageDescriptor, field: FieldDescriptor): MessageDescriptor | undefined {
    if (field.type !== TYPE_MESSAGE && field.type !== TYPE_GROUP) return undefined;
    const typeName = field.typeName ?? "";
    const simple = typeName.slice(typeName.lastIndexOf(".") + 1);
    return message.nestedType.find((nested) => nested.name === simple);
  }

  #field(field: FieldDescriptor, message: MessageDescriptor | undefined, indent: string, inOneof: boolean): string[] {
    const name = identifier(field.name, "Field name");
    const number = field.number;
    const options = this.#fieldOptions(field);
    const nested = message === undefined ? undefined : this.#nestedOf(message, field);
    if (nested?.options?.mapEntry && field.label === LABEL_REPEATED) {
      const key = nested.field.find((entryField) => entryField.number === 1);
      const value = nested.field.find((entryField) => entryField.number === 2);
      if (key === undefined || value === undefined) {
        throw new TypeError(`Map entry '${nested.name}' lacks key or value`);
      }
      return [`${indent}map<${this.#typeOf(key)}, ${this.#typeOf(value)}> ${name} = ${number}${options};`];
    }
    const label = inOneof ? "" : this.#label(field);
    if (field.type === TYPE_GROUP && nested !== undefined) {
      return [
        `${indent}${label}group ${identifier(nested.name, "Group name")} = ${number}${options} {`,
        ...this.#messageBody(nested, `${indent}  `),
        `${indent}}`,
      ];
    }
    return [`${indent}${label}${this.#typeOf(field)} ${name} = ${number}${options};`];
  }

  #label(field: FieldDescriptor): string {
    if (field.label === LABEL_REPEATED) return "repeated ";
    switch (this.#syntax) {
      case "proto3":
        return field.proto3Optional ? "optional " : "";
      case "proto2":
        return field.label === LABEL_REQUIRED ? "required " : "optional ";
      case "editions":
        // FIXME: editions' field presence comes from `features`, which the descriptors here do not carry.
        return "";
    }
  }

  #typeOf(field: FieldDescriptor): string {
    if (field.type === TYPE_MESSAGE || field.type === TYPE_ENUM || field.type === TYPE_GROUP || field.typeName) {
      return this.typeRef(field.typeName ?? "");
    }
    const scalar = SCALAR_NAMES[field.type];
    if (scalar === undefined) throw new TypeError(`Field '${field.name}' has unknown type number ${field.type}`);
    return scalar;
  }

  #fieldOptions(field: FieldDescriptor): string {
    const options: string[] = [];
    if (field.defaultValue !== undefined && field.defaultValue !== "") {
      options.push(`default = ${this.#defaultText(field)}`);
    }
    if (field.jsonName !== undefined && field.jsonName !== "" && field.jsonName !== defaultJsonName(field.name)) {
      options.push(`json_name = ${stringLiteral(field.jsonName)}`);
    }
    if (field.options?.packed !== undefined) options.push(`packed = ${field.options.packed === true}`);
    if (field.options?.deprecated) options.push("deprecated = true");
    return options.length === 0 ? "" : ` [${options.join(", ")}]`;
  }

  /** A proto2 default as descriptor.proto writes it (bytes C-escaped, enums by value name), as .proto text. */
  #defaultText(field: FieldDescriptor): string {
    const value = field.defaultValue!;
    switch (field.type) {
      case 9: // string: the text itself
        return stringLiteral(value);
      case 12: // bytes: already C-escaped
        if (!/^(?:[^"\\\n]|\\.)*$/.test(value)) throw new TypeError(`Default of '${field.name}' is not C-escaped`);
        return `"${value}"`;
      case TYPE_ENUM:
        return identifier(value, `Default of '${field.name}'`);
      case 8:
        if (value !== "true" && value !== "false") throw new TypeError(`Default of '${field.name}' is not a bool`);
        return value;
      default:
        if (!/^[-+]?(?:inf|nan|[0-9][0-9a-fA-FxX.eE+-]*|\.[0-9][0-9eE+-]*)$/i.test(value)) {
          throw new TypeError(`Default of '${field.name}' is not a number: ${JSON.stringify(value)}`);
        }
        return value;
    }
  }

  /** Extension fields as `extend` blocks, one per extended message in the order first named. */
  extendBlocks(extensions: readonly FieldDescriptor[], indent: string): string[] {
    const byExtendee = new Map<string, FieldDescriptor[]>();
    for (const extension of extensions) {
      const extendee = extension.extendee ?? "";
      byExtendee.set(extendee, [...byExtendee.get(extendee) ?? [], extension]);
    }
    const lines: string[] = [];
    for (const [extendee, fields] of byExtendee) {
      lines.push(`${indent}extend ${this.typeRef(extendee)} {`);
      for (const field of fields) lines.push(...this.#field(field, undefined, `${indent}  `, false));
      lines.push(`${indent}}`);
    }
    return lines;
  }

  enum(enumeration: EnumDescriptor, indent: string): string[] {
    const inner = `${indent}  `;
    const lines = [`${indent}enum ${identifier(enumeration.name, "Enum name")} {`];
    if (enumeration.options?.allowAlias) lines.push(`${inner}option allow_alias = true;`);
    if (enumeration.options?.deprecated) lines.push(`${inner}option deprecated = true;`);
    for (const value of enumeration.value) {
      const deprecated = value.options?.deprecated ? " [deprecated = true]" : "";
      lines.push(`${inner}${identifier(value.name, "Enum value name")} = ${value.number}${deprecated};`);
    }
    lines.push(...reservedLines(enumeration.reservedRange, enumeration.reservedName, inner, false));
    lines.push(`${indent}}`);
    return lines;
  }

  service(service: ServiceDescriptor, indent: string): string[] {
    const lines = [`${indent}service ${identifier(service.name, "Service name")} {`];
    if (service.options?.deprecated) lines.push(`${indent}  option deprecated = true;`);
    for (const method of service.method) lines.push(...this.method(method, `${indent}  `));
    lines.push(`${indent}}`);
    return lines;
  }

  /** `rpc Name(stream In) returns (stream Out);`, with an options block when it has options. */
  method(method: MethodDescriptor, indent: string): string[] {
    const input = `${method.clientStreaming ? "stream " : ""}${this.typeRef(method.inputType)}`;
    const output = `${method.serverStreaming ? "stream " : ""}${this.typeRef(method.outputType)}`;
    const head = `${indent}rpc ${identifier(method.name, "Method name")}(${input}) returns (${output})`;
    const options: string[] = [];
    const level = IDEMPOTENCY_LEVELS[method.options?.idempotencyLevel ?? 0];
    if (level !== undefined) options.push(`${indent}  option idempotency_level = ${level};`);
    if (method.options?.deprecated) options.push(`${indent}  option deprecated = true;`);
    return options.length === 0 ? [`${head};`] : [`${head} {`, ...options, `${indent}}`];
  }
}

function rangeText(range: RangeDescriptor, endExclusive: boolean): string {
  const last = endExclusive ? range.end - 1 : range.end;
  const max = endExclusive ? MAX_FIELD_NUMBER : MAX_ENUM_NUMBER;
  if (last === range.start) return String(range.start);
  return `${range.start} to ${last >= max ? "max" : last}`;
}

function reservedLines(
  ranges: readonly RangeDescriptor[],
  names: readonly string[],
  indent: string,
  endExclusive: boolean,
): string[] {
  const lines: string[] = [];
  if (ranges.length > 0) {
    lines.push(`${indent}reserved ${ranges.map((range) => rangeText(range, endExclusive)).join(", ")};`);
  }
  if (names.length > 0) {
    lines.push(`${indent}reserved ${names.map((name) => `"${identifier(name, "Reserved name")}"`).join(", ")};`);
  }
  return lines;
}

/**
 * A whole file as .proto text, type names fully qualified. Throws a TypeError naming what cannot be written (a
 * name that is not an identifier, an unknown type number).
 */
export function fileText(file: FileDescriptor): string {
  const printer = new ProtoPrinter(file, false);
  const syntax = syntaxOf(file);
  const lines: string[] = [];
  if (syntax === "editions") {
    const edition = EDITION_NAMES[file.edition ?? 0];
    if (edition === undefined) throw new TypeError(`File '${file.name}' has unknown edition ${file.edition}`);
    lines.push(`edition = "${edition}";`);
  } else {
    lines.push(`syntax = "${syntax}";`);
  }
  if (file.package) lines.push(`package ${fullName(file.package, "Package name")};`);
  for (const dependency of file.dependency) lines.push(`import ${stringLiteral(dependency)};`);
  for (const enumeration of file.enumType) lines.push(...printer.enum(enumeration, ""));
  for (const message of file.messageType) lines.push(...printer.message(message, ""));
  lines.push(...printer.extendBlocks(file.extension, ""));
  for (const service of file.service) lines.push(...printer.service(service, ""));
  return `${lines.join("\n")}\n`;
}

/**
 * What `call describe` prints for a symbol, as .proto text with type names relative to each file's package and a
 * comment line naming each declaration and its file above it: a service with its rpc lines; a method's rpc line,
 * then every message and enum its request and response use, transitively; a message likewise; an enum. Google's
 * well-known types are named, not printed.
 */
export function describeText(schema: SymbolLookup, symbol: SchemaSymbol): string {
  const sections: string[] = [];
  const header = (name: string, file: FileDescriptor) => `// ${name} (${file.name})`;
  const printed = new Set<string>();
  const pending: string[] = [];
  switch (symbol.kind) {
    case "service":
      sections.push(
        [header(symbol.fullName, symbol.file), ...new ProtoPrinter(symbol.file, true).service(symbol.service, "")]
          .join("\n"),
      );
      break;
    case "method":
      sections.push(
        [header(symbol.fullName, symbol.file), ...new ProtoPrinter(symbol.file, true).method(symbol.method, "")]
          .join("\n"),
      );
      pending.push(symbol.method.inputType, symbol.method.outputType);
      break;
    default:
      pending.push(symbol.fullName);
  }
  while (pending.length > 0) {
    const name = pending.shift()!.replace(/^\./, "");
    if (printed.has(name) || name.startsWith("google.protobuf.")) continue;
    const found = schema.lookup(name);
    if (found === undefined) continue;
    const printer = new ProtoPrinter(found.file, true);
    if (found.kind === "enum") {
      printed.add(name);
      sections.push([header(name, found.file), ...printer.enum(found.enumeration, "")].join("\n"));
    } else if (found.kind === "message") {
      markPrinted(found.message, name, printed);
      sections.push([header(name, found.file), ...printer.message(found.message, "")].join("\n"));
      pending.push(...referencesOf(found.message));
    }
  }
  return `${sections.join("\n\n")}\n`;
}

/** A message and its nested types, as printed once the message is. */
function markPrinted(message: MessageDescriptor, name: string, printed: Set<string>): void {
  printed.add(name);
  for (const nested of message.nestedType) markPrinted(nested, `${name}.${nested.name}`, printed);
  for (const enumeration of message.enumType) printed.add(`${name}.${enumeration.name}`);
}

/** The messages and enums a message's fields (and its nested types' fields) name. */
function referencesOf(message: MessageDescriptor): string[] {
  const names: string[] = [];
  for (const field of [...message.field, ...message.extension]) if (field.typeName) names.push(field.typeName);
  for (const nested of message.nestedType) names.push(...referencesOf(nested));
  return names;
}
