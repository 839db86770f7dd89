// Parsing a .proto together with its imports into one protobufjs Root, for parseProto and the code generator.
// Google's well-known types come from the definitions protobufjs ships (protobuf.common); every other import's
// text must be given, keyed by the import path exactly as the .proto writes it.

import protobuf from "protobufjs";

/** The well-known imports protobufjs carries definitions of. */
export const WELL_KNOWN_IMPORTS: readonly string[] = [
  "google/protobuf/any.proto",
  "google/protobuf/duration.proto",
  "google/protobuf/empty.proto",
  "google/protobuf/field_mask.proto",
  "google/protobuf/struct.proto",
  "google/protobuf/timestamp.proto",
  "google/protobuf/wrappers.proto",
];

/** The JSON definition of a well-known import, or undefined. */
function wellKnown(name: string): protobuf.INamespace | undefined {
  if (!WELL_KNOWN_IMPORTS.includes(name)) return undefined;
  return protobuf.common.get(name) ?? undefined;
}

/** The import paths a .proto text names (public, weak and plain), in order. Throws on a syntax error. */
export function importsOf(text: string): string[] {
  const parsed = protobuf.parse(text, new protobuf.Root(), { keepCase: false });
  return [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])];
}

/** What {@linkcode parseWithImports} gives back. */
export interface ParsedProto {
  /** The Root with the main file and every import in it, resolved. */
  readonly root: protobuf.Root;
  /** The main file's package ("" when it has none). */
  readonly packageName: string;
  /** The types, enums and services the main file itself declares (not its imports'), in declaration order. */
  readonly declared: readonly protobuf.ReflectionObject[];
  /** The imports read from `imports` (not the well-known ones), in the order they were first named. */
  readonly importsUsed: readonly string[];
}

/** Options of {@linkcode parseWithImports}: protobufjs's, and the main file's name. */
export interface ParseWithImportsOptions extends protobuf.IParseOptions {
  /** The main file's name, set on what it declares (`filename`) as each import's path is on what the import declares. */
  fileName?: string;
}

// protobufjs stamps `filename` on what it parses from the one global `parse.filename` (its own loader sets it the
// same way); reflection tells the files of a Root apart by it.
const parser = protobuf.parse as typeof protobuf.parse & { filename: string | null };

function parseFile(
  text: string,
  root: protobuf.Root,
  options: protobuf.IParseOptions,
  fileName: string | undefined,
): protobuf.IParserResult {
  parser.filename = fileName ?? null;
  try {
    return protobuf.parse(text, root, options);
  } finally {
    parser.filename = null;
  }
}

/**
 * Parse `text` and, recursively, every file it imports into one Root and resolve it. Throws a TypeError naming an
 * import that is neither well-known nor in `imports`. What each file declares carries the file's name
 * (`filename`: the import path, or `options.fileName` for the main file).
 */
export function parseWithImports(
  text: string,
  imports: Readonly<Record<string, string>>,
  options: ParseWithImportsOptions,
): ParsedProto {
  const { fileName, ...parseOptions } = options;
  const root = new protobuf.Root();
  const main = parseFile(text, root, parseOptions, fileName);
  const declared: protobuf.ReflectionObject[] = [];
  const visit = (ns: protobuf.NamespaceBase) => {
    for (const nested of ns.nestedArray) {
      if (nested instanceof protobuf.Type || nested instanceof protobuf.Enum || nested instanceof protobuf.Service) {
        declared.push(nested);
      }
      if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) visit(nested);
    }
  };
  visit(root);

  const loaded = new Set<string>();
  const importsUsed: string[] = [];
  const load = (names: readonly string[], from: string) => {
    for (const name of names) {
      if (loaded.has(name)) continue;
      loaded.add(name);
      const given = Object.hasOwn(imports, name) ? imports[name] : undefined;
      if (given !== undefined) {
        importsUsed.push(name);
        const parsed = parseFile(given, root, parseOptions, name);
        load([...(parsed.imports ?? []), ...(parsed.weakImports ?? [])], name);
        continue;
      }
      const json = wellKnown(name);
      if (json !== undefined) {
        root.addJSON(json.nested ?? {});
        continue;
      }
      const hint = name.startsWith("google/protobuf/")
        ? `the well-known types available are ${WELL_KNOWN_IMPORTS.join(", ")}`
        : "give its text (the code generator reads it beside the importing file or from an --proto_path directory)";
      throw new TypeError(`Cannot resolve import '${name}' of ${from}: ${hint}`);
    }
  };
  load([...(main.imports ?? []), ...(main.weakImports ?? [])], "the .proto");
  root.resolveAll();
  return { root, packageName: main.package ?? "", declared, importsUsed };
}

/** Options of {@linkcode readImports}. */
export interface ReadImportsOptions {
  /** Reads a file; rejects when it cannot. */
  readText: (path: string) => Promise<string>;
  /** Directories an import path is looked up in after the importing file's own directory (protoc's -I). */
  includeDirs?: readonly string[];
}

function dirOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

function join(dir: string, name: string): string {
  return dir === "." ? name : dir.endsWith("/") ? `${dir}${name}` : `${dir}/${name}`;
}

/**
 * The texts of every file `mainPath` imports, directly or not, keyed by import path as written (what
 * {@linkcode parseWithImports} takes). Each import is looked up beside the file that names it, then in
 * `includeDirs`; well-known imports are left to protobufjs. Throws a TypeError naming an import found nowhere or
 * one path that names two different files.
 */
export async function readImports(
  mainPath: string,
  mainText: string,
  options: ReadImportsOptions,
): Promise<Record<string, string>> {
  const texts: Record<string, string> = {};
  const foundAt = new Map<string, string>();
  const pending: { names: string[]; file: string }[] = [{ names: importsOf(mainText), file: mainPath }];
  while (pending.length > 0) {
    const { names, file } = pending.shift()!;
    for (const name of names) {
      if (WELL_KNOWN_IMPORTS.includes(name)) continue;
      const candidates = [join(dirOf(file), name), ...(options.includeDirs ?? []).map((dir) => join(dir, name))];
      let found: { path: string; text: string } | undefined;
      for (const path of candidates) {
        try {
          found = { path, text: await options.readText(path) };
          break;
        } catch {
          // not here; try the next directory
        }
      }
      if (found === undefined) {
        throw new TypeError(`Cannot find import '${name}' of ${file}: looked in ${candidates.join(", ")}`);
      }
      const previous = foundAt.get(name);
      if (previous === undefined) {
        foundAt.set(name, found.path);
        texts[name] = found.text;
        pending.push({ names: importsOf(found.text), file: found.path });
      } else if (previous !== found.path && texts[name] !== found.text) {
        throw new TypeError(`Cannot resolve import '${name}': it names both ${previous} and ${found.path}`);
      }
    }
  }
  return texts;
}
