/**
 * The variables editor's text: parsed into a variables object, with errors that name the line
 * and column, and pretty-printed for display.
 *
 * Pure (no JupyterLab, no React). `JSON.parse` says where it failed differently in each engine:
 * V8 says "at position N" (and, lately, "(line L column C)"), Firefox "at line L column C of the
 * JSON data", Safari nothing at all; all are read here, and an error without a place still
 * gets its sentence.
 */

export type Variables = Record<string, unknown>;

/** Where in the text, both counted from 1. */
export interface ITextPlace {
  line: number;
  column: number;
}

export interface IParseError extends Partial<ITextPlace> {
  /** One sentence, its place first when known: "Line 3, column 7: Expected ',' or '}'." */
  message: string;
}

export type ParseResult =
  { ok: true; value: Variables } | { ok: false; error: IParseError };

export const NOT_AN_OBJECT = 'Variables must be a JSON object';

/** The line and column of a character offset of `text`. */
export function placeOf(text: string, offset: number): ITextPlace {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split('\n');
  return { line: lines.length, column: lines[lines.length - 1].length + 1 };
}

/** The sentence of an error at `place` (or nowhere in particular). */
export function describeAt(
  message: string,
  place?: ITextPlace | null
): IParseError {
  if (!place) {
    return { message };
  }
  return {
    message: `Line ${place.line}, column ${place.column}: ${message}`,
    line: place.line,
    column: place.column
  };
}

const LINE_COLUMN = /line (\d+),? column (\d+)/i;
const POSITION = /position (\d+)/i;
const AT_END = /unexpected end|end of (json )?(data|input)|unterminated/i;

/** Where a `JSON.parse` error of `text` happened, in whichever form the engine said it. */
export function syntaxErrorPlace(
  text: string,
  message: string
): ITextPlace | null {
  const lineColumn = LINE_COLUMN.exec(message);
  if (lineColumn) {
    return { line: Number(lineColumn[1]), column: Number(lineColumn[2]) };
  }
  const position = POSITION.exec(message);
  if (position) {
    return placeOf(text, Number(position[1]));
  }
  if (AT_END.test(message)) {
    return placeOf(text, text.length);
  }
  return null;
}

function scannedPlace(text: string): ITextPlace | null {
  const offset = firstErrorOffset(text);
  return offset === null ? null : placeOf(text, offset);
}

/** The engine's sentence without its engine-specific prefix and location suffix. */
export function syntaxErrorSentence(message: string): string {
  let sentence = message
    .replace(/^JSON\.parse:\s*/i, '') // Firefox
    .replace(/^JSON Parse error:\s*/i, '') // Safari
    .replace(/\s*\(line \d+ column \d+\)\s*$/i, '') // recent V8
    .replace(/\s+at line \d+ column \d+ of the JSON data\s*$/i, '') // Firefox
    .replace(/,?\s*(in JSON )?at position \d+\s*$/i, '') // V8
    .replace(/,\s*".*" is not valid JSON\s*$/is, '') // V8, without a position
    .replace(/\s+in JSON\s*$/i, '')
    .replace(/token '(\r?\n|\r)'/, 'line break')
    .trim();
  if (!sentence) {
    sentence = 'Not valid JSON';
  }
  sentence = sentence.charAt(0).toUpperCase() + sentence.slice(1);
  return /[.!?]$/.test(sentence) ? sentence : sentence + '.';
}

const WHITESPACE = ' \t\n\r';
const ESCAPES = '"\\/bfnrtu';
const LITERALS: Record<string, string> = { t: 'true', f: 'false', n: 'null' };
const NUMBER = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

/**
 * The offset where `text` stops being JSON, or null if it is JSON: what places an error when
 * the engine's message does not say where (V8's "Unexpected token 'x', … is not valid JSON").
 */
export function firstErrorOffset(text: string): number | null {
  let index = 0;
  const fail = (at: number): never => {
    throw at;
  };
  const skip = () => {
    while (index < text.length && WHITESPACE.includes(text[index])) {
      index++;
    }
  };
  const expect = (char: string) => {
    skip();
    if (text[index] !== char) {
      fail(index);
    }
    index++;
  };
  const string = () => {
    index++; // the opening quote
    for (;;) {
      if (index >= text.length) {
        fail(index);
      }
      const char = text[index];
      if (char === '"') {
        index++;
        return;
      }
      if (char < ' ') {
        fail(index);
      }
      if (char === '\\') {
        const escaped = text[index + 1];
        if (escaped === undefined || !ESCAPES.includes(escaped)) {
          fail(index + 1);
        }
        if (escaped === 'u') {
          for (let digit = 2; digit < 6; digit++) {
            if (!/[0-9a-fA-F]/.test(text[index + digit] ?? '')) {
              fail(index + digit);
            }
          }
          index += 6;
          continue;
        }
        index += 2;
        continue;
      }
      index++;
    }
  };
  const value = (): void => {
    skip();
    const char = text[index];
    if (char === '{') {
      index++;
      skip();
      if (text[index] === '}') {
        index++;
        return;
      }
      for (;;) {
        skip();
        if (text[index] !== '"') {
          fail(index);
        }
        string();
        expect(':');
        value();
        skip();
        if (text[index] === ',') {
          index++;
          continue;
        }
        expect('}');
        return;
      }
    }
    if (char === '[') {
      index++;
      skip();
      if (text[index] === ']') {
        index++;
        return;
      }
      for (;;) {
        value();
        skip();
        if (text[index] === ',') {
          index++;
          continue;
        }
        expect(']');
        return;
      }
    }
    if (char === '"') {
      string();
      return;
    }
    const literal = LITERALS[char];
    if (literal) {
      for (let at = 0; at < literal.length; at++) {
        if (text[index + at] !== literal[at]) {
          fail(index + at);
        }
      }
      index += literal.length;
      return;
    }
    NUMBER.lastIndex = index;
    const number = NUMBER.exec(text);
    if (number && number[0] !== '' && number[0] !== '-') {
      index += number[0].length;
      return;
    }
    fail(char === '-' ? index + 1 : index);
  };
  try {
    value();
    skip();
    if (index < text.length) {
      fail(index);
    }
    return null;
  } catch (at) {
    if (typeof at === 'number') {
      return at;
    }
    throw at;
  }
}

/** The top-level keys of a valid JSON object's text, each with the offset of its opening quote. */
function topLevelKeys(text: string): { key: string; offset: number }[] {
  const keys: { key: string; offset: number }[] = [];
  let depth = 0;
  let index = 0;
  while (index < text.length) {
    const char = text[index];
    if (char === '"') {
      const start = index;
      index++;
      while (index < text.length && text[index] !== '"') {
        index += text[index] === '\\' ? 2 : 1;
      }
      index++; // past the closing quote
      if (depth === 1) {
        let next = index;
        while (next < text.length && /\s/.test(text[next])) {
          next++;
        }
        if (text[next] === ':') {
          keys.push({
            key: JSON.parse(text.slice(start, index)) as string,
            offset: start
          });
        }
      }
      continue;
    }
    if (char === '{' || char === '[') {
      depth++;
    } else if (char === '}' || char === ']') {
      depth--;
    }
    index++;
  }
  return keys;
}

/**
 * The variables in the editor's `text`, or the first reason they cannot be saved: not JSON,
 * not an object, an empty name, a name given twice (JSON.parse would keep only the last).
 */
export function parseVariables(text: string): ParseResult {
  if (text.trim() === '') {
    return {
      ok: false,
      error: describeAt(`${NOT_AN_OBJECT}: write {} for none.`)
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (failure) {
    const message =
      failure instanceof Error ? failure.message : String(failure);
    return {
      ok: false,
      error: describeAt(
        syntaxErrorSentence(message),
        syntaxErrorPlace(text, message) ?? scannedPlace(text)
      )
    };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const found =
      value === null
        ? 'null'
        : Array.isArray(value)
          ? 'an array'
          : `a ${typeof value}`;
    return {
      ok: false,
      error: describeAt(
        `${NOT_AN_OBJECT}, not ${found}.`,
        placeOf(text, text.length - text.trimStart().length)
      )
    };
  }
  const seen = new Set<string>();
  for (const { key, offset } of topLevelKeys(text)) {
    if (key.trim() === '') {
      return {
        ok: false,
        error: describeAt(
          'A variable needs a name: empty names are refused.',
          placeOf(text, offset)
        )
      };
    }
    if (seen.has(key)) {
      return {
        ok: false,
        error: describeAt(
          `"${key}" is given twice: only the last would be kept.`,
          placeOf(text, offset)
        )
      };
    }
    seen.add(key);
  }
  return { ok: true, value: value as Variables };
}

/** The text the editor shows for `variables`: two-space indented JSON. */
export function formatVariables(
  variables: Variables | null | undefined
): string {
  return JSON.stringify(variables ?? {}, null, 2);
}

/** The line and column where the top-level key `name` is written in `text`, if it is. */
export function findKey(text: string, name: string): ITextPlace | null {
  let keys: { key: string; offset: number }[];
  try {
    keys = topLevelKeys(text);
  } catch {
    return null;
  }
  const found = keys.find(entry => entry.key === name);
  return found ? placeOf(text, found.offset) : null;
}
