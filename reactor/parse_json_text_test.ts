import assert from "node:assert/strict";
import { parseJsonText } from "./parse_json_text.ts";

function errorOf(text: string): string {
  try {
    parseJsonText(text);
  } catch (error) {
    assert.ok(error instanceof SyntaxError);
    return error.message;
  }
  throw new Error(`parsed: ${JSON.stringify(text)}`);
}

Deno.test("parseJsonText returns what JSON.parse returns", () => {
  const text = '{ "a": [1, -2.5e3, true, false, null, "x\\u00e9\\n"], "b": {}, "c": [] }';
  assert.deepEqual(parseJsonText(text), JSON.parse(text));
});

Deno.test("parseJsonText names the line and column of a mistake, on one line", () => {
  // V8's own message for this one quotes the text around the '}', newline and all, and gives no position.
  assert.equal(errorOf('{\n  "port": 8800,\n}\n'), "Unexpected '}' at line 3, column 1");
  assert.equal(errorOf('{\n  "a": 1\n  "b": 2\n}'), "Unexpected '\"' at line 3, column 3");
  assert.equal(errorOf('{"a": tru}'), "Unexpected 't' at line 1, column 7");
  assert.equal(errorOf('{"a": 01}'), "Unexpected '1' at line 1, column 8");
  assert.equal(errorOf('{"a": "b\nc"}'), "Unexpected U+000A at line 1, column 9");
  assert.equal(errorOf('{"a": "\\x"}'), "Unexpected '\\' at line 1, column 8");
  assert.equal(errorOf("{'a': 1}"), "Unexpected ''' at line 1, column 2");
  assert.equal(errorOf('{"a": 1} {}'), "Unexpected '{' at line 1, column 10");
  assert.equal(errorOf("\uFEFF{}"), "Unexpected U+FEFF at line 1, column 1");
  assert.equal(errorOf('{\r\n  "a": [1,]\r\n}'), "Unexpected ']' at line 2, column 11");
});

Deno.test("parseJsonText names the end of a text that stops early", () => {
  assert.equal(errorOf(""), "Unexpected end of text at line 1, column 1");
  assert.equal(errorOf('{\n  "a": [1, 2'), "Unexpected end of text at line 2, column 13");
  assert.equal(errorOf('{"a": "open'), "Unexpected end of text at line 1, column 12");
});

Deno.test("parseJsonText finds a position for every text JSON.parse refuses (single-character edits)", () => {
  const valid = '{"ip": "127.0.0.1", "port": [8800, -1.5e2], "on": true, "off": false, "no": null, "s": "a\\"\\u0041"}';
  const alphabet = ' {}[],:"\\-+.0123456789eEtrufalsn\nx\u0000\u00e9';
  let refused = 0;
  for (let i = 0; i <= valid.length; i++) {
    for (const c of alphabet) {
      for (const text of [valid.slice(0, i) + c + valid.slice(i), valid.slice(0, i) + c + valid.slice(i + 1)]) {
        try {
          JSON.parse(text);
          continue;
        } catch {
          refused++;
        }
        assert.match(errorOf(text), /^Unexpected .* at line \d+, column \d+$/, JSON.stringify(text));
      }
    }
  }
  assert.ok(refused > 1000);
});

Deno.test("parseJsonText reports deep nesting without overflowing its own stack", () => {
  const depth = 1_000_000;
  assert.equal(errorOf("[".repeat(depth) + "}"), `Unexpected '}' at line 1, column ${depth + 1}`);
});
