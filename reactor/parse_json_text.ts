/**
 * `JSON.parse` for files people edit by hand (config files): a syntax error is one line naming its line and column.
 * V8's own message gives a position for most mistakes, but for an unexpected token it quotes a stretch of the file
 * instead, newlines and all, and no position.
 *
 * @module
 */

/**
 * Parse JSON text. On a syntax error throws a SyntaxError whose message is one line, such as
 * `Unexpected '}' at line 3, column 1`, with V8's error as its `cause`.
 *
 * @example
 * ```ts
 * import { parseJsonText } from "./parse_json_text.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseJsonText('{"port": 8800}'), { port: 8800 });
 * assert.throws(() => parseJsonText('{\n  "port": 8800,\n}'), { message: "Unexpected '}' at line 3, column 1" });
 * ```
 */
export function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const offset = firstErrorOffset(text);
    // Only if the two parsers disagree: V8's message, on one line.
    const where = offset === undefined ? (error as Error).message.replace(/\s+/g, " ") : describe(text, offset);
    throw new SyntaxError(where, { cause: error });
  }
}

function describe(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - before.lastIndexOf("\n");
  const code = text.charCodeAt(offset);
  const what = offset >= text.length
    ? "end of text"
    : code > 0x20 && code < 0x7f
    ? `'${text[offset]}'`
    : `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
  return `Unexpected ${what} at line ${line}, column ${column}`;
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPE = /\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y;

/**
 * Where the first character that RFC 8259 does not allow is (the text's length for a text that ends early), or
 * undefined for valid JSON. Iterative, with a stack of the closing brackets owed, so no nesting depth overflows it.
 */
function firstErrorOffset(text: string): number | undefined {
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  // Each step leaves `i` at the error when it fails.
  const string = (): boolean => {
    if (text[i] !== '"') return false;
    i++;
    while (i < text.length) {
      const code = text.charCodeAt(i);
      if (code === 0x22) {
        i++;
        return true;
      }
      if (code < 0x20) return false;
      if (code === 0x5c) {
        ESCAPE.lastIndex = i;
        if (!ESCAPE.test(text)) return false;
        i = ESCAPE.lastIndex;
      } else {
        i++;
      }
    }
    return false;
  };
  const scalar = (): boolean => {
    if (text[i] === '"') return string();
    for (const word of ["true", "false", "null"]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return true;
      }
    }
    NUMBER.lastIndex = i;
    if (!NUMBER.test(text)) return false;
    i = NUMBER.lastIndex;
    return true;
  };
  const key = (): boolean => {
    skipSpace();
    if (!string()) return false;
    skipSpace();
    if (text[i] !== ":") return false;
    i++;
    return true;
  };
  const closers: string[] = [];
  for (;;) {
    // A value is expected.
    skipSpace();
    const open = text[i];
    if (open === "{" || open === "[") {
      i++;
      skipSpace();
      const closer = open === "{" ? "}" : "]";
      if (text[i] !== closer) {
        closers.push(closer);
        if (closer === "}" && !key()) return i;
        continue;
      }
      i++;
    } else if (!scalar()) {
      return i;
    }
    // A value ended: a comma, a closing bracket, or the end of the text follows.
    for (;;) {
      skipSpace();
      const closer = closers.at(-1);
      if (closer === undefined) return i < text.length ? i : undefined;
      if (text[i] === closer) {
        i++;
        closers.pop();
        continue;
      }
      if (text[i] !== ",") return i;
      i++;
      if (closer === "}" && !key()) return i;
      break;
    }
  }
}
