/**
 * What the JSON writer and the JSON reader of `json_mapping.ts` share as they walk a message: the JSON value type,
 * the field path an error names, the rendering of a value in an error, and own-property helpers. Kept apart so both
 * directions (and the well-known types) use one copy without importing each other.
 *
 * @module
 */

/**
 * A value `JSON.stringify` writes as it is and `JSON.parse` gives back: what {@linkcode messageToJson} returns.
 *
 * @example
 * ```ts
 * import type { JsonValue } from "./json_mapping.ts";
 *
 * const body: JsonValue = { name: "ZHd0", ids: ["9007199254740993"], active: true };
 * ```
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** How deep messages may nest, in both directions, unless a reader is told otherwise. */
export const DEFAULT_MAX_DEPTH = 100;

const SEGMENT_LIMIT = 64;

/** A field path as a reader of the JSON sees it: `items[2].labels["a"].count`. */
export class FieldPath {
  readonly #segments: string[] = [];

  pushKey(key: string): void {
    this.#segments.push(key.length > SEGMENT_LIMIT ? `${key.slice(0, SEGMENT_LIMIT)}…` : key);
  }

  pushIndex(index: number): void {
    this.#segments.push(`[${index}]`);
  }

  pushMapKey(key: string): void {
    this.#segments.push(`[${JSON.stringify(key.length > SEGMENT_LIMIT ? `${key.slice(0, SEGMENT_LIMIT)}…` : key)}]`);
  }

  pop(): void {
    this.#segments.pop();
  }

  toString(): string {
    let out = "";
    for (const segment of this.#segments) out += segment.startsWith("[") || out === "" ? segment : `.${segment}`;
    // A path 100 levels deep says enough in its last few.
    return out.length > 240 ? `…${out.slice(-240)}` : out;
  }
}

/** A short rendering of a value for an error message. */
export function show(value: unknown): string {
  let text: string;
  if (typeof value === "bigint") text = `${value}`;
  else if (typeof value === "number") text = Object.is(value, -0) ? "-0" : String(value);
  else if (value === undefined) text = "undefined";
  else if (value instanceof Uint8Array) text = `${value.length} bytes`;
  else {
    try {
      text = JSON.stringify(value, (_key, item) => typeof item === "bigint" ? `${item}` : item) ?? String(value);
    } catch {
      text = Object.prototype.toString.call(value);
    }
  }
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/** An own property, safe for keys like `__proto__` that a plain assignment would treat specially. */
export function define(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

/** Whether `value` is a JSON object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
