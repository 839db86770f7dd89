/**
 * Node paths: absolute, slash-separated, validated once at the edge so the tree can trust them.
 *
 * @module
 */

import { RegistryError, RegistryErrorCode } from "./registry_error.ts";

/** The default longest path, in characters. */
export const DEFAULT_MAX_PATH_LENGTH = 1024;

/**
 * Check that `path` is a valid node path: absolute, no trailing slash (except the root), no empty, `.` or `..`
 * segments, no control characters, at most `maxLength` characters. Throws a BAD_ARGUMENTS RegistryError saying
 * what is wrong.
 */
export function validatePath(path: string, maxLength = DEFAULT_MAX_PATH_LENGTH): string {
  const fail = (why: string) => {
    throw new RegistryError(RegistryErrorCode.BAD_ARGUMENTS, `Invalid path '${path}': ${why}`);
  };
  if (typeof path !== "string" || path.length === 0) fail("it is empty");
  if (path.length > maxLength) fail(`it is longer than ${maxLength} characters`);
  if (path[0] !== "/") fail("it must start with '/'");
  if (path === "/") return path;
  if (path.endsWith("/")) fail("it must not end with '/'");
  // Matching control characters is the point of this regex.
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) fail("it contains a control character");
  for (const segment of path.slice(1).split("/")) {
    if (segment === "") fail("it contains an empty segment");
    if (segment === "." || segment === "..") fail(`it contains a '${segment}' segment`);
  }
  return path;
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
