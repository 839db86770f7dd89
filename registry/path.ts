/**
 * Node paths: absolute, slash-separated, validated once at the edge so the tree can trust them.
 *
 * @module
 */

import { RegistryError, RegistryErrorCode } from "./registry_error.ts";

/** The default longest path, in characters. */
export const DEFAULT_MAX_PATH_LENGTH = 1024;

/**
 * Check that `path` is a valid node path and return it. Throws a BAD_ARGUMENTS RegistryError saying what is wrong.
 *
 * The rules are ZooKeeper's (`PathUtils.validatePath`) with one deliberate difference:
 *
 * - absolute: starts with `/`; no trailing `/` except the root; no empty, `.` or `..` segments;
 * - at most `maxLength` UTF-16 code units;
 * - well-formed UTF-16 (`String.prototype.isWellFormed`): a lone surrogate has no UTF-8 encoding, so it would be
 *   written to the log as U+FFFD and two distinct paths would become one after a restart;
 * - none of U+0000–U+001F, U+007F–U+009F (control characters), U+E000–U+F8FF (private use) or U+FFF0–U+FFFF
 *   (specials, among them U+FFFD, the mark of text damaged by a lossy decoder);
 * - unlike ZooKeeper, characters outside the BMP (a well-formed surrogate pair, such as an emoji) are accepted:
 *   ZooKeeper forbids U+D800–U+DFFF because it checks UTF-16 units one by one, which rules out every such
 *   character, though each has one exact UTF-8 encoding. Such a path is refused by a ZooKeeper backend.
 *
 * @example
 * ```ts
 * import { validatePath } from "./path.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(validatePath("/dwt.UserServiceRpc/Login"), "/dwt.UserServiceRpc/Login");
 * assert.throws(() => validatePath("/a/\uD800"), /lone surrogate/);
 * ```
 */
export function validatePath(path: string, maxLength = DEFAULT_MAX_PATH_LENGTH): string {
  if (typeof path !== "string" || path.length === 0) invalidPath(path, "it is empty");
  if (path.length > maxLength) {
    invalidPath(path, `it is longer than ${maxLength} characters: current length is ${path.length}`);
  }
  if (path[0] !== "/") invalidPath(path, "it must start with '/'");
  if (path === "/") return path;
  if (path.endsWith("/")) invalidPath(path, "it must not end with '/'");
  if (!path.isWellFormed()) {
    const index = firstLoneSurrogate(path);
    invalidPath(
      path,
      `it contains a lone surrogate U+${codeUnitHex(path, index)} at index ${index}, which has no UTF-8 form`,
    );
  }
  const bad = FORBIDDEN.exec(path);
  if (bad !== null) {
    const kind = bad[0] <= "\u009f" ? "a control character" : "a forbidden character";
    invalidPath(path, `it contains ${kind} U+${codeUnitHex(path, bad.index)} at index ${bad.index}`);
  }
  // Segment by segment without splitting (no array per path): none empty, none "." or "..".
  for (let start = 1; start <= path.length;) {
    let end = path.indexOf("/", start);
    if (end < 0) end = path.length;
    if (end === start) invalidPath(path, "it contains an empty segment");
    if (end - start <= 2 && path[start] === "." && (end - start === 1 || path[start + 1] === ".")) {
      invalidPath(path, `it contains a '${path.slice(start, end)}' segment`);
    }
    start = end + 1;
  }
  return path;
}

// The error of validatePath, made only when a path is bad (a closure for it would be made for every path).
function invalidPath(path: string, why: string): never {
  throw new RegistryError(RegistryErrorCode.BAD_ARGUMENTS, `Invalid path '${printable(path)}': ${why}`);
}

// ZooKeeper's forbidden ranges, less the surrogates (lone ones are caught by isWellFormed, pairs are allowed).
// Matching control characters is the point of this regex.
// deno-lint-ignore no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\ue000-\uf8ff\ufff0-\uffff]/;

// Error messages quote the path: characters that could forge log lines or hide text are shown escaped, well-formed
// surrogate pairs (the first alternative) as they are.
const UNPRINTABLE =
  // deno-lint-ignore no-control-regex
  /[\ud800-\udbff][\udc00-\udfff]|[\u0000-\u001f\u007f-\u009f\ud800-\udfff\ue000-\uf8ff\ufff0-\uffff]/g;

function printable(path: unknown): string {
  if (typeof path !== "string") return String(path);
  const shown = path.length > 200 ? `${path.slice(0, 200)}...` : path;
  return shown.replace(UNPRINTABLE, (match) => match.length === 2 ? match : `\\u${codeUnitHex(match, 0)}`);
}

function firstLoneSurrogate(path: string): number {
  for (let i = 0; i < path.length; i++) {
    const unit = path.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = path.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
      else return i;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) return i;
  }
  return -1;
}

function codeUnitHex(text: string, index: number): string {
  return text.charCodeAt(index).toString(16).toUpperCase().padStart(4, "0");
}

/** The parent of a valid path (`/a/b` → `/a`, `/a` → `/`). */
export function parentOf(path: string): string {
  const index = path.lastIndexOf("/");
  return index <= 0 ? "/" : path.slice(0, index);
}

/** The last segment of a valid path (`/a/b` → `b`; the root → ``). */
export function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Join a parent path and a child name. */
export function joinPath(parent: string, name: string): string {
  return parent === "/" ? `/${name}` : `${parent}/${name}`;
}
