/**
 * Scalar helpers for `json_mapping.ts`: integer ranges, 64-bit values however they are held (bigint, Long,
 * number, decimal string, protobufjs's map-key hash), base64 both ways, integers in JSON number text, and the
 * shortest float32 text. Pure functions over values, apart from the walk that reports their failures.
 *
 * @module
 */

import type { Scalar } from "./_json_plan.ts";

// ---------------------------------------------------------------------------------------------------------------
// Integer ranges.

export const INT32_MIN = -2147483648;
export const INT32_MAX = 2147483647;
export const UINT32_MAX = 4294967295;
export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
export const UINT64_MAX = 2n ** 64n - 1n;

/** The integer kinds, each with its {@linkcode INTEGER_LIMITS}. */
export type IntegerScalar = "int32" | "uint32" | "int64" | "uint64";

interface IntegerLimits {
  readonly min: bigint;
  readonly max: bigint;
  readonly minNumber: number;
  readonly maxNumber: number;
}

/** Each integer kind's range, as bigints and as the numbers a JSON number may reach. */
export const INTEGER_LIMITS: Readonly<Record<IntegerScalar, IntegerLimits>> = {
  int32: { min: BigInt(INT32_MIN), max: BigInt(INT32_MAX), minNumber: INT32_MIN, maxNumber: INT32_MAX },
  uint32: { min: 0n, max: BigInt(UINT32_MAX), minNumber: 0, maxNumber: UINT32_MAX },
  int64: { min: INT64_MIN, max: INT64_MAX, minNumber: -(2 ** 63), maxNumber: 2 ** 63 },
  uint64: { min: 0n, max: UINT64_MAX, minNumber: 0, maxNumber: 2 ** 64 },
};

/** A decimal integer of at most 20 digits: BigInt reads it directly. */
export const PLAIN_INTEGER = /^-?(0|[1-9][0-9]{0,19})$/;

/** Whether a value read from JSON is its field's zero (then an implicit-presence field stays unset). */
export function isZeroValue(value: unknown): boolean {
  if (value instanceof Uint8Array) return value.length === 0;
  return value === 0 || value === 0n || value === false || value === "";
}

/** `an int32`, `a uint64`: a scalar's name with its article, for error messages. */
export function named(scalar: Scalar): string {
  return `${scalar.startsWith("int") ? "an" : "a"} ${scalar}`;
}

// ---------------------------------------------------------------------------------------------------------------
// 64-bit values: read however they are held, written as protobufjs's encoder takes them.

interface LongLike {
  low: number;
  high: number;
}

function isLongLike(value: unknown): value is LongLike {
  return typeof value === "object" && value !== null && typeof (value as LongLike).low === "number" &&
    typeof (value as LongLike).high === "number";
}

/**
 * A 64-bit value, however protobufjs or a caller holds it (bigint, Long, number, decimal string), as a bigint in
 * range for `scalar`; undefined if it is none of those.
 */
export function int64Of(value: unknown, scalar: "int64" | "uint64"): bigint | undefined {
  let big: bigint;
  if (typeof value === "bigint") big = value;
  else if (typeof value === "number") {
    if (!Number.isInteger(value)) return undefined;
    big = BigInt(value);
  } else if (typeof value === "string") {
    if (!/^-?(0|[1-9][0-9]*)$/.test(value)) return undefined;
    big = BigInt(value);
  } else if (isLongLike(value)) {
    // A Long's bits are the value's; read them with the field's signedness, whatever the Long's `unsigned` says.
    const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
    return scalar === "uint64" ? bits : BigInt.asIntN(64, bits);
  } else return undefined;
  const [min, max] = scalar === "uint64" ? [0n, UINT64_MAX] : [INT64_MIN, INT64_MAX];
  return big < min || big > max ? undefined : big;
}

/** protobufjs keys a decoded map with 64-bit keys by an 8-character "hash" of the Long; others use decimal. */
export function int64KeyOf(key: string, scalar: "int64" | "uint64"): bigint | undefined {
  // FIXME: a hash whose 8 characters are all ASCII digits (a key near 4e18 of that exact byte pattern) reads as
  // decimal; protobufjs gives nothing to tell the two apart.
  const decimal = int64Of(key, scalar);
  if (decimal !== undefined) return decimal;
  if (key.length !== 8) return undefined;
  let bits = 0n;
  for (let i = 7; i >= 0; i--) {
    const code = key.charCodeAt(i);
    if (code > 0xff) return undefined;
    bits = (bits << 8n) | BigInt(code);
  }
  return scalar === "uint64" ? bits : BigInt.asIntN(64, bits);
}

/** A 64-bit value as the Long-like object protobufjs's encoder takes (it would write a bigint as 0). */
export function toLongLike(value: bigint): LongLike {
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffff_ffffn) | 0, high: Number(bits >> 32n) | 0 };
}

// ---------------------------------------------------------------------------------------------------------------
// Base64: written standard with padding; read standard or URL-safe, padded or not.

const BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_VALUES: Int8Array = (() => {
  const values = new Int8Array(128).fill(-1);
  for (let i = 0; i < 64; i++) values[BASE64_ALPHABET.charCodeAt(i)] = i;
  values["-".charCodeAt(0)] = 62;
  values["_".charCodeAt(0)] = 63;
  return values;
})();

// The engine's own encoder where it has one (V8 13.x and later): one string made, where the loop below makes a
// string per character added, all garbage by the next young GC.
const nativeToBase64 = (Uint8Array.prototype as { toBase64?: (this: Uint8Array) => string }).toBase64;

/** Standard base64 with padding, as the mapping writes bytes. */
export function base64Encode(bytes: ArrayLike<number>): string {
  if (nativeToBase64 !== undefined && bytes instanceof Uint8Array) return nativeToBase64.call(bytes);
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += BASE64_ALPHABET[n >> 18]! + BASE64_ALPHABET[(n >> 12) & 63]! + BASE64_ALPHABET[(n >> 6) & 63]! +
      BASE64_ALPHABET[n & 63]!;
  }
  if (bytes.length - i === 1) {
    const n = bytes[i]! << 16;
    out += BASE64_ALPHABET[n >> 18]! + BASE64_ALPHABET[(n >> 12) & 63]! + "==";
  } else if (bytes.length - i === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += BASE64_ALPHABET[n >> 18]! + BASE64_ALPHABET[(n >> 12) & 63]! + BASE64_ALPHABET[(n >> 6) & 63]! + "=";
  }
  return out;
}

/** The bytes of base64 text, or undefined if it is not base64. */
export function base64Decode(text: string): Uint8Array | undefined {
  let end = text.length;
  if (end > 0 && text.charCodeAt(end - 1) === 61 /* = */) {
    // Padding, if any, makes the text a whole number of quads and is one or two characters.
    if (end % 4 !== 0) return undefined;
    end--;
    if (text.charCodeAt(end - 1) === 61) end--;
  }
  if (end % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let bits = 0;
  let count = 0;
  let at = 0;
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? BASE64_VALUES[code]! : -1;
    if (value < 0) return undefined;
    bits = (bits << 6) | value;
    count += 6;
    if (count >= 8) {
      count -= 8;
      out[at++] = (bits >> count) & 0xff;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers in JSON text: integers exactly (as bigint), with exponent forms like "1.5e3".

/** The text of a JSON number: sign, integer part, fraction, exponent. */
export const JSON_NUMBER = /^-?(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/;

/** The integer a JSON number's text denotes, "fraction" if it has one, or undefined if it is no number. */
export function integerOfText(text: string): bigint | "fraction" | "huge" | undefined {
  const match = JSON_NUMBER.exec(text);
  if (match === null) return undefined;
  const negative = text.startsWith("-");
  const fraction = (match[2] ?? "").replace(/0+$/, "");
  let digits = (match[1]! + fraction).replace(/^0+/, "");
  if (digits === "") return 0n;
  const exponent = match[3] === undefined ? 0 : Number(match[3]);
  if (!Number.isSafeInteger(exponent)) return exponent > 0 ? "huge" : "fraction";
  let scale = exponent - fraction.length;
  if (scale < 0) {
    const zeros = digits.length - digits.replace(/0+$/, "").length;
    if (zeros < -scale) return "fraction";
    digits = digits.slice(0, digits.length + scale);
    scale = 0;
  }
  if (digits.length + scale > 40) return "huge"; // beyond any 64-bit value; no need to build it
  const magnitude = BigInt(digits) * 10n ** BigInt(scale);
  return negative ? -magnitude : magnitude;
}

/** The shortest decimal that reads back as the same float32 (as protoc's JSON writers print floats). */
export function shortestFloat32(value: number): number {
  for (let precision = 1; precision < 10; precision++) {
    const candidate = Number(value.toPrecision(precision));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}
