// FileDescriptorProtos (google/protobuf/descriptor.proto, as the plain objects protobufjs's descriptor types encode)
// of the .proto files services came from, made from protobufjs's reflection objects: protobufjs keeps no
// descriptors, and its own `ext/descriptor` makes one file per package, without imports or json_name.
//
// Which file declares what: parseProto and loadProtoFile stamp each declaration with its file (`filename`);
// Google's well-known types, which protobufjs adds from JSON, are named from the files they ship in; anything
// else unnamed (a parseProto without `fileName`, a Root built from JSON) gets one file per Root and package, named
// `<package as folders>/<first service or type>.proto`. A file's imports are the files its references point into,
// so every type a file names is declared in the file or one of its direct imports, as protoc requires.

import protobuf from "protobufjs";
import { getLogger } from "../../reactor/logger.ts";
import { WELL_KNOWN_IMPORTS } from "../_proto_imports.ts";
import type { ServiceDefinition } from "../service_definition.ts";

/** `FieldDescriptorProto`. */
export interface FieldProto {
  name: string;
  number: number;
  label: number;
  type: number;
  typeName?: string;
  extendee?: string;
  defaultValue?: string;
  oneofIndex?: number;
  jsonName?: string;
  options?: { packed?: boolean; deprecated?: boolean };
  proto3Optional?: boolean;
}

/** `DescriptorProto.ReservedRange`, `ExtensionRange`, `EnumDescriptorProto.EnumReservedRange`. */
export interface RangeProto {
  start: number;
  end: number;
}

/** `DescriptorProto`. */
export interface MessageProto {
  name: string;
  field: FieldProto[];
  extension: FieldProto[];
  nestedType: MessageProto[];
  enumType: EnumProto[];
  extensionRange: RangeProto[];
  oneofDecl: { name: string }[];
  options?: { mapEntry?: boolean; deprecated?: boolean };
  reservedRange: RangeProto[];
  reservedName: string[];
}

/** `EnumDescriptorProto`. */
export interface EnumProto {
  name: string;
  value: { name: string; number: number; options?: { deprecated: boolean } }[];
  options?: { allowAlias?: boolean; deprecated?: boolean };
  reservedRange: RangeProto[];
  reservedName: string[];
}

/** `MethodDescriptorProto`. */
export interface MethodProto {
  name: string;
  inputType: string;
  outputType: string;
  clientStreaming?: boolean;
  serverStreaming?: boolean;
  options?: { idempotencyLevel?: number; deprecated?: boolean };
}

/** `ServiceDescriptorProto`. */
export interface ServiceProto {
  name: string;
  method: MethodProto[];
  options?: { deprecated: boolean };
}

/** `FileDescriptorProto`. */
export interface FileProto {
  name: string;
  package?: string;
  dependency: string[];
  messageType: MessageProto[];
  enumType: EnumProto[];
  service: ServiceProto[];
  extension: FieldProto[];
  syntax?: string;
  edition?: number;
}

// descriptor.proto's numbers.
const LABEL_OPTIONAL = 1;
const LABEL_REQUIRED = 2;
const LABEL_REPEATED = 3;
const TYPE_GROUP = 10;
const TYPE_MESSAGE = 11;
const TYPE_ENUM = 14;
const SCALAR_TYPES: Readonly<Record<string, number>> = {
  double: 1,
  float: 2,
  int64: 3,
  uint64: 4,
  int32: 5,
  fixed64: 6,
  fixed32: 7,
  bool: 8,
  string: 9,
  bytes: 12,
  uint32: 13,
  sfixed32: 15,
  sfixed64: 16,
  sint32: 17,
  sint64: 18,
};
const EDITIONS: Readonly<Record<string, number>> = { "2023": 1000, "2024": 1001 };
const IDEMPOTENCY_LEVELS: Readonly<Record<string, number>> = {
  IDEMPOTENCY_UNKNOWN: 0,
  NO_SIDE_EFFECTS: 1,
  IDEMPOTENT: 2,
};

type Declaration = protobuf.Type | protobuf.Enum | protobuf.Service | protobuf.Field;

/** The file of each well-known type, by full name (`.google.protobuf.Timestamp`). */
const WELL_KNOWN_FILES: ReadonlyMap<string, string> = (() => {
  const files = new Map<string, string>();
  for (const file of WELL_KNOWN_IMPORTS) {
    const visit = (nested: Record<string, protobuf.AnyNestedObject> | undefined, prefix: string) => {
      for (const [name, object] of Object.entries(nested ?? {})) {
        const isNamespace = !("fields" in object) && !("values" in object) && !("methods" in object);
        if (isNamespace) visit((object as protobuf.INamespace).nested, `${prefix}.${name}`);
        else files.set(`${prefix}.${name}`, file);
      }
    };
    visit(protobuf.common.get(file)?.nested, "");
  }
  return files;
})();

/**
 * The name protobufjs parsed a field or oneof from. It camel-cases them (parseProto's `keepCase: false`) and keeps
 * no original, so the lower_snake_case the style guide asks for is rebuilt: exact for every such name.
 * FIXME: a name written in camelCase in the .proto comes back snake_cased (its json_name stays right).
 */
function protoName(name: string): string {
  return name.slice(0, 1) + name.slice(1).replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/** protoc's json_name: underscores dropped, the letter after each capitalised. */
function jsonName(name: string): string {
  return name.replace(/_+([a-z]?)/g, (_match, letter: string) => letter.toUpperCase());
}

/** protoc's name of a map field's entry message: `my_map` → `MyMapEntry`. */
function mapEntryName(name: string): string {
  return name.split("_").map((part) => part.slice(0, 1).toUpperCase() + part.slice(1)).join("") + "Entry";
}

/** A proto2 `[default = ...]` as descriptor.proto writes it. */
function defaultText(value: unknown): string {
  if (typeof value !== "number") return String(value);
  if (Number.isNaN(value)) return "nan";
  if (value === Infinity) return "inf";
  if (value === -Infinity) return "-inf";
  return String(value);
}

/** The outermost declaration enclosing `object` (itself when it is top-level). */
function topLevel(object: protobuf.ReflectionObject): protobuf.ReflectionObject {
  let current = object;
  while (current.parent instanceof protobuf.Type) current = current.parent;
  return current;
}

function isSyntheticOneof(oneof: protobuf.OneOf): boolean {
  return oneof.fieldsArray.length === 1 && oneof.fieldsArray[0]!.options?.["proto3_optional"] === true;
}

/** Describes declarations, collecting the top-level declarations they refer to. */
class Describer {
  /** Referred-to declarations, in order of first reference. */
  readonly references = new Set<protobuf.ReflectionObject>();

  #refer(type: protobuf.Type | protobuf.Enum): string {
    this.references.add(topLevel(type));
    return type.fullName;
  }

  /** A field, or an extension (with its extendee); undefined for an extension of a type not in the Root. */
  field(field: protobuf.Field, oneofIndex?: number): FieldProto | undefined {
    if (!field.resolved) field.resolve();
    const name = protoName(field.name);
    const out: FieldProto = {
      name,
      number: field.id,
      label: field.repeated ? LABEL_REPEATED : field.required ? LABEL_REQUIRED : LABEL_OPTIONAL,
      type: 0,
    };
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Type) {
      // A proto2 group is a Type protobufjs marks `group` (not in its typings).
      out.type = (resolved as protobuf.Type & { group?: boolean }).group === true ? TYPE_GROUP : TYPE_MESSAGE;
      out.typeName = this.#refer(resolved);
    } else if (resolved instanceof protobuf.Enum) {
      out.type = TYPE_ENUM;
      out.typeName = this.#refer(resolved);
    } else {
      const scalar = SCALAR_TYPES[field.type];
      if (scalar === undefined) {
        throw new TypeError(`Cannot describe field '${field.fullName}' as its type '${field.type}' is not resolved`);
      }
      out.type = scalar;
    }
    if (field.extend !== undefined) {
      const extended = field.extensionField?.parent;
      if (!(extended instanceof protobuf.Type)) return undefined;
      out.extendee = this.#refer(extended);
    }
    const options = field.options ?? {};
    if (options["default"] !== undefined) out.defaultValue = defaultText(options["default"]);
    if (oneofIndex !== undefined) out.oneofIndex = oneofIndex;
    out.jsonName = typeof options["json_name"] === "string" ? options["json_name"] : jsonName(name);
    if (options["packed"] !== undefined || options["deprecated"] !== undefined) {
      out.options = {};
      if (options["packed"] !== undefined) out.options.packed = options["packed"] === true;
      if (options["deprecated"] !== undefined) out.options.deprecated = options["deprecated"] === true;
    }
    if (options["proto3_optional"] === true) out.proto3Optional = true;
    return out;
  }

  /** A map field's entry message (protoc's shape: `key` = 1, `value` = 2, option map_entry). */
  #mapEntry(field: protobuf.MapField, entryName: string): MessageProto {
    const value: FieldProto = { name: "value", number: 2, label: LABEL_OPTIONAL, type: 0, jsonName: "value" };
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Type || resolved instanceof protobuf.Enum) {
      value.type = resolved instanceof protobuf.Type ? TYPE_MESSAGE : TYPE_ENUM;
      value.typeName = this.#refer(resolved);
    } else {
      value.type = SCALAR_TYPES[field.type] ?? 0;
    }
    return {
      ...emptyMessage(entryName),
      field: [{
        name: "key",
        number: 1,
        label: LABEL_OPTIONAL,
        type: SCALAR_TYPES[field.keyType] ?? 0,
        jsonName: "key",
      }, value],
      options: { mapEntry: true },
    };
  }

  message(type: protobuf.Type): MessageProto {
    const out = emptyMessage(type.name);
    // protoc wants the synthetic oneofs of proto3 `optional` fields after every real one.
    const oneofs = [
      ...type.oneofsArray.filter((oneof) => !isSyntheticOneof(oneof)),
      ...type.oneofsArray.filter(isSyntheticOneof),
    ];
    out.oneofDecl = oneofs.map((oneof) => ({ name: protoName(oneof.name) }));
    const mapEntries: MessageProto[] = [];
    for (const field of type.fieldsArray) {
      if (field.declaringField !== null) continue; // an extension of this type, declared with its extend block
      if (field instanceof protobuf.MapField) {
        const name = protoName(field.name);
        const entry = this.#mapEntry(field, mapEntryName(name));
        mapEntries.push(entry);
        out.field.push({
          name,
          number: field.id,
          label: LABEL_REPEATED,
          type: TYPE_MESSAGE,
          typeName: `${type.fullName}.${entry.name}`,
          jsonName: jsonName(name),
        });
        continue;
      }
      const described = this.field(field, field.partOf === null ? undefined : oneofs.indexOf(field.partOf));
      if (described !== undefined) out.field.push(described);
    }
    for (const nested of type.nestedArray) {
      if (nested instanceof protobuf.Type) out.nestedType.push(this.message(nested));
      else if (nested instanceof protobuf.Enum) out.enumType.push(this.enum(nested));
      else if (nested instanceof protobuf.Field) {
        const extension = this.field(nested);
        if (extension !== undefined) out.extension.push(extension);
      }
    }
    // protobufjs keeps no order between nested messages and fields: map entries go after the declared messages.
    out.nestedType.push(...mapEntries);
    // protobufjs's ranges include their end; a message's descriptor ranges do not.
    for (const range of type.extensions ?? []) out.extensionRange.push({ start: range[0]!, end: range[1]! + 1 });
    for (const reserved of type.reserved ?? []) {
      if (typeof reserved === "string") out.reservedName.push(reserved);
      else out.reservedRange.push({ start: reserved[0]!, end: reserved[1]! + 1 });
    }
    if (type.options?.["deprecated"] === true) out.options = { deprecated: true };
    return out;
  }

  enum(enumeration: protobuf.Enum): EnumProto {
    const out: EnumProto = {
      name: enumeration.name,
      value: Object.entries(enumeration.values).map(([name, number]) =>
        enumeration.valuesOptions?.[name]?.["deprecated"] === true
          ? { name, number, options: { deprecated: true } }
          : { name, number }
      ),
      reservedRange: [],
      reservedName: [],
    };
    // An enum's descriptor ranges include their end, as protobufjs's do.
    for (const reserved of enumeration.reserved ?? []) {
      if (typeof reserved === "string") out.reservedName.push(reserved);
      else out.reservedRange.push({ start: reserved[0]!, end: reserved[1]! });
    }
    const options = enumeration.options ?? {};
    if (options["allow_alias"] === true || options["deprecated"] === true) {
      out.options = {};
      if (options["allow_alias"] === true) out.options.allowAlias = true;
      if (options["deprecated"] === true) out.options.deprecated = true;
    }
    return out;
  }

  service(service: protobuf.Service): ServiceProto {
    const out: ServiceProto = {
      name: service.name,
      method: service.methodsArray.map((method) => {
        if (method.resolvedRequestType === null || method.resolvedResponseType === null) method.resolve();
        const described: MethodProto = {
          name: method.name,
          inputType: this.#refer(method.resolvedRequestType!),
          outputType: this.#refer(method.resolvedResponseType!),
        };
        if (method.requestStream === true) described.clientStreaming = true;
        if (method.responseStream === true) described.serverStreaming = true;
        const options = method.options ?? {};
        const level = options["idempotency_level"];
        const levelNumber = typeof level === "number" ? level : IDEMPOTENCY_LEVELS[String(level)];
        if (levelNumber !== undefined || options["deprecated"] === true) {
          described.options = {};
          if (levelNumber !== undefined) described.options.idempotencyLevel = levelNumber;
          if (options["deprecated"] === true) described.options.deprecated = true;
        }
        return described;
      }),
    };
    if (service.options?.["deprecated"] === true) out.options = { deprecated: true };
    return out;
  }
}

function emptyMessage(name: string): MessageProto {
  return {
    name,
    field: [],
    extension: [],
    nestedType: [],
    enumType: [],
    extensionRange: [],
    oneofDecl: [],
    reservedRange: [],
    reservedName: [],
  };
}

/** `syntax` and `edition` of a file, from a declaration of it. */
function syntaxOf(declaration: protobuf.ReflectionObject): Pick<FileProto, "syntax" | "edition"> {
  // protobufjs reports proto3, and a Root made from JSON, as undefined.
  const edition = declaration._editionToJSON();
  if (edition === undefined || edition === "proto3") return { syntax: "proto3" };
  if (edition === "proto2") return {}; // protoc leaves proto2's syntax unset
  // FIXME: an editions file is described without its features (protobufjs resolves them into its own objects).
  return { syntax: "editions", edition: EDITIONS[edition] ?? Number(edition) };
}

/** The top-level declarations under `top` (a Root, a namespace, or a declaration with no parent). */
function declarationsOf(top: protobuf.ReflectionObject): Declaration[] {
  const isDeclaration = (object: protobuf.ReflectionObject): object is Declaration =>
    object instanceof protobuf.Type || object instanceof protobuf.Enum || object instanceof protobuf.Service ||
    object instanceof protobuf.Field;
  if (isDeclaration(top)) return [top];
  const out: Declaration[] = [];
  const visit = (namespace: protobuf.NamespaceBase) => {
    for (const nested of namespace.nestedArray) {
      if (isDeclaration(nested)) out.push(nested);
      else if (nested instanceof protobuf.Namespace) visit(nested);
    }
  };
  if (top instanceof protobuf.Namespace) visit(top);
  return out;
}

function packageOf(declaration: protobuf.ReflectionObject): string {
  return declaration.parent === null ? "" : declaration.parent.fullName.replace(/^\./, "");
}

/** A service's protobufjs Service: the one in its types' Root, or one made from the definition alone. */
function serviceOf(definition: ServiceDefinition): protobuf.Service {
  const first = definition.methods.values().next().value;
  if (first !== undefined) {
    const found = (first.requestType.root as protobuf.NamespaceBase).lookup(`.${definition.fullName}`);
    if (found instanceof protobuf.Service) return found;
  }
  // A definition built by hand: its own file, `<full name>.proto`, importing its types' files.
  const dot = definition.fullName.lastIndexOf(".");
  const service = new protobuf.Service(definition.fullName.slice(dot + 1));
  for (const method of definition.methods.values()) {
    const kind = method.kind ?? "unary";
    const made = new protobuf.Method(
      method.name,
      "rpc",
      method.requestType.fullName,
      method.responseType.fullName,
      kind === "client_streaming" || kind === "bidi_streaming",
      kind === "server_streaming" || kind === "bidi_streaming",
    );
    made.resolvedRequestType = method.requestType;
    made.resolvedResponseType = method.responseType;
    service.add(made);
  }
  const root = new protobuf.Root();
  (dot < 0 ? root : root.define(definition.fullName.slice(0, dot))).add(service);
  service.filename = `${definition.fullName}.proto`;
  return service;
}

/** A file being assembled: its declarations, from one Root. */
interface Draft {
  name: string;
  /** Named by this file, not by a .proto's name: renamed on a clash. */
  made: boolean;
  packageName: string;
  declarations: Declaration[];
}

/**
 * The FileDescriptorProtos of every file the services' Roots hold (so of the services, of everything else those
 * .proto files declare, and of their imports), each once, in the order first met.
 */
export function describeFiles(services: Iterable<ServiceDefinition>): FileProto[] {
  const tops: protobuf.ReflectionObject[] = [];
  const addTop = (object: protobuf.ReflectionObject) => {
    const top = object.root as protobuf.ReflectionObject;
    if (!tops.includes(top)) tops.push(top);
  };
  for (const definition of services) {
    addTop(serviceOf(definition));
    for (const method of definition.methods.values()) {
      addTop(method.requestType);
      addTop(method.responseType);
    }
  }

  const drafts: Draft[] = [];
  for (const top of tops) {
    const byName = new Map<string, Draft>();
    const unnamed = new Map<string, Declaration[]>();
    for (const declaration of declarationsOf(top)) {
      const name = declaration.filename ?? WELL_KNOWN_FILES.get(declaration.fullName);
      if (name === undefined) {
        const packageName = packageOf(declaration);
        unnamed.set(packageName, [...unnamed.get(packageName) ?? [], declaration]);
        continue;
      }
      let draft = byName.get(name);
      if (draft === undefined) {
        draft = { name, made: false, packageName: packageOf(declaration), declarations: [] };
        byName.set(name, draft);
        drafts.push(draft);
      }
      draft.declarations.push(declaration);
    }
    for (const [packageName, declarations] of unnamed) {
      const first = declarations.find((declaration) => declaration instanceof protobuf.Service) ?? declarations[0]!;
      const folder = packageName === "" ? "" : `${packageName.replaceAll(".", "/")}/`;
      drafts.push({ name: `${folder}${first.name}.proto`, made: true, packageName, declarations });
    }
  }

  interface Described {
    file: FileProto;
    references: Set<protobuf.ReflectionObject>;
    fingerprint: string;
  }
  const files = new Map<string, Described>();
  const fileOf = new Map<protobuf.ReflectionObject, string>();
  for (const draft of drafts) {
    const describer = new Describer();
    const file: FileProto = {
      name: draft.name,
      dependency: [],
      messageType: [],
      enumType: [],
      service: [],
      extension: [],
      ...syntaxOf(draft.declarations[0]!),
    };
    if (draft.packageName !== "") file.package = draft.packageName;
    for (const declaration of draft.declarations) {
      if (declaration instanceof protobuf.Type) file.messageType.push(describer.message(declaration));
      else if (declaration instanceof protobuf.Enum) file.enumType.push(describer.enum(declaration));
      else if (declaration instanceof protobuf.Service) file.service.push(describer.service(declaration));
      else {
        const extension = describer.field(declaration);
        if (extension !== undefined) file.extension.push(extension);
      }
    }
    const fingerprint = JSON.stringify({ ...file, name: "" });
    // The same file may come from several Roots (an import, a well-known type): it is described once. A made
    // name that clashes is numbered; two different files under one .proto name keep the first.
    let name = draft.name;
    for (let n = 2; files.has(name) && files.get(name)!.fingerprint !== fingerprint && draft.made; n++) {
      name = draft.name.replace(/\.proto$/, `_${n}.proto`);
    }
    const existing = files.get(name);
    if (existing === undefined) {
      file.name = name;
      files.set(name, { file, references: describer.references, fingerprint });
    } else if (existing.fingerprint !== fingerprint) {
      getLogger().warn(`Reflection: two different files are named '${name}'; the first one registered is served`);
    }
    for (const declaration of draft.declarations) fileOf.set(declaration, name);
  }

  for (const { file, references } of files.values()) {
    for (const reference of references) {
      const dependency = fileOf.get(reference);
      if (dependency !== undefined && dependency !== file.name && !file.dependency.includes(dependency)) {
        file.dependency.push(dependency);
      }
    }
  }
  return [...files.values()].map((described) => described.file);
}
