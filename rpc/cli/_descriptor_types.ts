// The shapes of FileDescriptorProtos as protobufjs's `toObject` gives them, and of a symbol a schema declares: a
// leaf both the schema (which parses printed files) and the printer (which prints them) import.

/** `FieldDescriptorProto`, as protobufjs's `toObject` gives it. */
export interface FieldDescriptor {
  name: string;
  number: number;
  /** 1 optional, 2 required, 3 repeated. */
  label: number;
  /** descriptor.proto's `Type` number (9 string, 11 message, 14 enum...). */
  type: number;
  typeName?: string;
  extendee?: string;
  defaultValue?: string;
  oneofIndex?: number;
  jsonName?: string;
  options?: { packed?: boolean; deprecated?: boolean };
  proto3Optional?: boolean;
}

/** `DescriptorProto.ReservedRange` and its kin. */
export interface RangeDescriptor {
  start: number;
  end: number;
}

/** `DescriptorProto`. */
export interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  extension: FieldDescriptor[];
  nestedType: MessageDescriptor[];
  enumType: EnumDescriptor[];
  extensionRange: RangeDescriptor[];
  oneofDecl: { name: string }[];
  options?: { mapEntry?: boolean; deprecated?: boolean };
  reservedRange: RangeDescriptor[];
  reservedName: string[];
}

/** `EnumDescriptorProto`. */
export interface EnumDescriptor {
  name: string;
  value: { name: string; number: number; options?: { deprecated?: boolean } }[];
  options?: { allowAlias?: boolean; deprecated?: boolean };
  reservedRange: RangeDescriptor[];
  reservedName: string[];
}

/** `MethodDescriptorProto`. */
export interface MethodDescriptor {
  name: string;
  inputType: string;
  outputType: string;
  clientStreaming?: boolean;
  serverStreaming?: boolean;
  options?: { idempotencyLevel?: number; deprecated?: boolean };
}

/** `ServiceDescriptorProto`. */
export interface ServiceDescriptor {
  name: string;
  method: MethodDescriptor[];
  options?: { deprecated?: boolean };
}

/** `FileDescriptorProto`. */
export interface FileDescriptor {
  name: string;
  package?: string;
  dependency: string[];
  messageType: MessageDescriptor[];
  enumType: EnumDescriptor[];
  service: ServiceDescriptor[];
  extension: FieldDescriptor[];
  syntax?: string;
  edition?: number;
}

/** Something a schema declares, by its full name (no leading dot). */
export type SchemaSymbol =
  | { kind: "service"; fullName: string; file: FileDescriptor; service: ServiceDescriptor }
  | {
    kind: "method";
    fullName: string;
    file: FileDescriptor;
    service: ServiceDescriptor;
    method: MethodDescriptor;
  }
  | { kind: "message"; fullName: string; file: FileDescriptor; message: MessageDescriptor }
  | { kind: "enum"; fullName: string; file: FileDescriptor; enumeration: EnumDescriptor };

/** What the printer needs of a schema: finding a symbol by its full name. */
export interface SymbolLookup {
  lookup(name: string): SchemaSymbol | undefined;
}
