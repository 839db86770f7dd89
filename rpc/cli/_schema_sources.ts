// Where `deno task call` gets a schema: the .proto files (--proto) and FileDescriptorSets (--protoset) given on the
// command line, or the server reflection of a provider. A .proto goes through the same FileDescriptorProtos as
// reflection gives (rpc/reflection's fileDescriptorSet of its services), so every source reaches calls and
// `describe` by one road.

import protobuf from "protobufjs";
import type { NetBackend } from "../../reactor/backend/net_backend.ts";
import { ConfigError } from "../config_error.ts";
import { fileDescriptorSet } from "../reflection/mod.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { definitionOf, loadProtoFile, type ServiceDefinition } from "../service_definition.ts";
import type { CallTarget, Lookup } from "./_call_target.ts";
import { DescriptorSchema, type FileDescriptor } from "./_descriptor_schema.ts";

/**
 * The schema of the --proto and --protoset files, or undefined when none is given. Throws a ConfigError naming the
 * file that cannot be read or used.
 */
export async function schemaFromFiles(
  backend: NetBackend,
  protoFiles: readonly string[],
  protosetFiles: readonly string[],
): Promise<DescriptorSchema | undefined> {
  if (protoFiles.length + protosetFiles.length === 0) return undefined;
  const files: FileDescriptor[] = [];
  for (const path of protoFiles) files.push(...(await protoFileSchema(backend, path)).files);
  for (const path of protosetFiles) {
    let bytes: Uint8Array;
    try {
      bytes = await backend.fs.readFile(path);
    } catch (error) {
      throw new ConfigError(`Cannot load --protoset ${path}: ${(error as Error).message}`, { cause: error });
    }
    try {
      files.push(...DescriptorSchema.fromFileDescriptorSet(bytes, `--protoset ${path}`).files);
    } catch (error) {
      throw new ConfigError((error as Error).message, { cause: error });
    }
  }
  const sources = [
    ...protoFiles.map((path) => `--proto ${path}`),
    ...protosetFiles.map((path) => `--protoset ${path}`),
  ];
  return new DescriptorSchema(files, sources.join(", "));
}

async function protoFileSchema(backend: NetBackend, path: string): Promise<DescriptorSchema> {
  let root: protobuf.Root;
  try {
    root = await loadProtoFile(backend, path);
  } catch (error) {
    const message = (error as Error).message.replace(/\s+/g, " ");
    throw new ConfigError(`Cannot load --proto ${path}: ${message}`, { cause: error });
  }
  const services: ServiceDefinition[] = [];
  const visit = (namespace: protobuf.NamespaceBase) => {
    for (const nested of namespace.nestedArray) {
      if (nested instanceof protobuf.Service) services.push(definitionOf(nested));
      else if (nested instanceof protobuf.Namespace) visit(nested);
    }
  };
  visit(root);
  if (services.length === 0) throw new ConfigError(`Cannot use --proto ${path}: it declares no service`);
  return DescriptorSchema.fromFileDescriptorSet(fileDescriptorSet(services), `--proto ${path}`);
}

/**
 * The schema of `symbol` from the reflection of the target's providers of it, asked in turn until one knows it.
 * Rejects NOT_FOUND when none does, or with the error of the last provider that could not be asked.
 */
export async function schemaFromReflection(
  target: CallTarget,
  symbol: string,
  lookup: Lookup,
): Promise<DescriptorSchema> {
  const addresses = await target.providersFor(symbol, lookup);
  if (addresses.length === 0) {
    throw new RpcError(RpcCode.NOT_FOUND, `Cannot find '${symbol}': no provider is registered to ask about it`);
  }
  let failure: RpcError | undefined;
  for (const address of addresses) {
    try {
      return await target.reflection(address, lookup).schemaOf(symbol);
    } catch (error) {
      if (!(error instanceof RpcError)) throw error;
      // The deadline or a cancel ends the search; another provider may know a symbol this one does not.
      if (error.code === RpcCode.DEADLINE_EXCEEDED || error.code === RpcCode.CANCELLED) throw error;
      if (error.code !== RpcCode.NOT_FOUND || failure === undefined) failure = error;
    }
  }
  if (failure?.code === RpcCode.NOT_FOUND && addresses.length > 1) {
    throw new RpcError(
      RpcCode.NOT_FOUND,
      `Cannot find '${symbol}' in the reflection of ${addresses.join(", ")}`,
      { cause: failure },
    );
  }
  throw failure!;
}
