/**
 * The header fields of an HTTP message as a multi-map: names in lower case, every field kept in arrival order,
 * duplicates included (the WHATWG `Headers` joins them, which loses the `Content-Length: 5` / `Content-Length: 6`
 * pair a server must see to refuse it).
 *
 * @module
 */

/**
 * What an {@linkcode HttpHeaders} can be made from: another one, `[name, value]` pairs, or a record.
 *
 * @example
 * ```ts
 * import type { HttpHeadersInit } from "./http_headers.ts";
 *
 * const cors: HttpHeadersInit = { "access-control-allow-origin": "*" };
 * const cookies: HttpHeadersInit = [["set-cookie", "a=1"], ["set-cookie", "b=2"]];
 * ```
 */
export type HttpHeadersInit = HttpHeaders | Iterable<readonly [string, string]> | Readonly<Record<string, string>>;

/**
 * Header fields in order, with lower-cased names; one instance per message. Values are kept as received (each
 * byte one UTF-16 unit, so `obs-text` survives). It does not validate: the request parser has checked what it
 * puts in, and the response writer checks what it sends.
 *
 * @example
 * ```ts
 * import { HttpHeaders } from "./http_headers.ts";
 * import assert from "node:assert/strict";
 *
 * const headers = new HttpHeaders([["Accept", "text/html"], ["accept", "application/json"]]);
 * assert.equal(headers.get("ACCEPT"), "text/html, application/json");
 * assert.deepEqual(headers.getAll("accept"), ["text/html", "application/json"]);
 * assert.deepEqual([...headers], [["accept", "text/html"], ["accept", "application/json"]]);
 * ```
 */
export class HttpHeaders implements Iterable<[string, string]> {
  readonly #names: string[] = [];
  readonly #values: string[] = [];

  /** Copy `init` in order (names lower-cased). */
  constructor(init?: HttpHeadersInit) {
    if (init === undefined) return;
    const pairs = init instanceof HttpHeaders || Symbol.iterator in init
      ? init as Iterable<readonly [string, string]>
      : Object.entries(init);
    for (const [name, value] of pairs) this.append(name, value);
  }

  /** The number of fields (a name sent twice counts twice). */
  get size(): number {
    return this.#names.length;
  }

  /** Add a field after the others. */
  append(name: string, value: string): void {
    this.#names.push(name.toLowerCase());
    this.#values.push(value);
  }

  /** Replace every field named `name` with one field, where the first of them stood (else at the end). */
  set(name: string, value: string): void {
    const lower = name.toLowerCase();
    const first = this.#names.indexOf(lower);
    if (first < 0) {
      this.append(lower, value);
      return;
    }
    this.#values[first] = value;
    this.#remove(lower, first + 1);
  }

  /** Remove every field named `name`. */
  delete(name: string): void {
    this.#remove(name.toLowerCase(), 0);
  }

  /** Whether a field named `name` is present. */
  has(name: string): boolean {
    return this.#names.includes(name.toLowerCase());
  }

  /**
   * The values of the fields named `name` joined with `", "` (the combination RFC 9110 §5.3 allows for list-valued
   * fields), or undefined. Use {@linkcode HttpHeaders.getAll} for `set-cookie` and to see duplicates.
   */
  get(name: string): string | undefined {
    const lower = name.toLowerCase();
    let found: string | undefined;
    for (let i = 0; i < this.#names.length; i++) {
      if (this.#names[i] !== lower) continue;
      found = found === undefined ? this.#values[i] : `${found}, ${this.#values[i]}`;
    }
    return found;
  }

  /** The values of the fields named `name`, in order. */
  getAll(name: string): string[] {
    const lower = name.toLowerCase();
    const found: string[] = [];
    for (let i = 0; i < this.#names.length; i++) {
      if (this.#names[i] === lower) found.push(this.#values[i] as string);
    }
    return found;
  }

  /**
   * Call `callback` with each field's value and name, in order (as `Headers.forEach` does): no iterator and no
   * pair array per field, for the code that reads every request's and response's fields.
   */
  forEach(callback: (value: string, name: string) => void): void {
    const names = this.#names;
    const values = this.#values;
    for (let i = 0; i < names.length; i++) callback(values[i] as string, names[i] as string);
  }

  /** The `[name, value]` pairs in order. */
  *entries(): IterableIterator<[string, string]> {
    for (let i = 0; i < this.#names.length; i++) yield [this.#names[i] as string, this.#values[i] as string];
  }

  /** Same as {@linkcode HttpHeaders.entries}. */
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  #remove(lower: string, from: number): void {
    for (let i = this.#names.length - 1; i >= from; i--) {
      if (this.#names[i] !== lower) continue;
      this.#names.splice(i, 1);
      this.#values.splice(i, 1);
    }
  }
}
