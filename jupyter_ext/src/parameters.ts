/**
 * Notebook parameters as people type them: which input a typed parameter gets, reading what was
 * typed into a value of the parameter's type, and reading a papermill parameters cell.
 *
 * Pure logic (no JupyterLab, no React), so that it is unit-tested in plain Node. The rules mirror
 * the server's (`notebook_snapshots.py`): a parameter's type is its annotation
 * (`threshold: float = 0.8`), else the type of its default's literal; `Optional[...]` admits
 * `None`; only str, int, float, bool, list and dict are checked, anything else is free.
 */

/** What the server says of a notebook parameter (`NotebookParameter`). */
export interface IParameter {
  name: string;
  /** The annotation as written (`float`, `Optional[int]`, `List[str]`), or the literal's type. */
  type: string;
  /** The default as written in the parameters cell (Python source). */
  default: string;
  help?: string;
  /** The value the scenario's step gives, if any (JSON; may be a `${variable}` reference). */
  value?: unknown;
}

/** The input a parameter gets: typed ones, JSON for lists and dicts, free text otherwise. */
export type InputKind = 'int' | 'float' | 'bool' | 'str' | 'json' | 'text';

export type Parsed<T = unknown> =
  { ok: true; value: T } | { ok: false; message: string };

/** Python's type names that the server checks a value against. */
const CHECKED = new Set(['str', 'int', 'float', 'bool', 'list', 'dict']);

/** A `${name}` reference to a variable, as scenario steps may use in values. */
export const REFERENCE = /\$\{[A-Za-z_][A-Za-z0-9_.]*\}/;

/** `Optional[float]` → {head: 'float', optional: true}; `List[str]` → {head: 'list', …}. */
export function baseType(type: string): { head: string; optional: boolean } {
  let text = type.replace(/typing\./g, '').trim();
  let optional = false;
  if (text.startsWith('Optional[') && text.endsWith(']')) {
    text = text.slice('Optional['.length, -1);
    optional = true;
  }
  if (text.includes('|')) {
    let parts = text.split('|').map(part => part.trim());
    optional = optional || parts.includes('None');
    parts = parts.filter(part => part !== 'None');
    text = parts.length === 1 ? parts[0] : 'any';
  }
  return { head: text.split('[', 1)[0].toLowerCase(), optional };
}

export function inputKind(type: string): InputKind {
  const { head } = baseType(type);
  switch (head) {
    case 'int':
    case 'float':
    case 'bool':
    case 'str':
      return head;
    case 'list':
    case 'dict':
      return 'json';
    default:
      return 'text';
  }
}

// -- Python literals ------------------------------------------------------------------------------

/** A Python literal's value (lists and tuples as arrays) and its Python type name. */
export interface ILiteral {
  value: unknown;
  type:
    'str' | 'int' | 'float' | 'bool' | 'NoneType' | 'list' | 'tuple' | 'dict';
}

class LiteralError extends Error {}

class LiteralReader {
  constructor(private readonly text: string) {}

  private at = 0;

  read(): ILiteral {
    const literal = this.value();
    this.space();
    if (this.at < this.text.length) {
      this.fail(`unexpected '${this.text.slice(this.at, this.at + 10)}'`);
    }
    return literal;
  }

  private fail(message: string): never {
    throw new LiteralError(message);
  }

  /** Skip blanks, line continuations and comments. */
  private space(): void {
    while (this.at < this.text.length) {
      const char = this.text[this.at];
      if (char === '#') {
        while (this.at < this.text.length && this.text[this.at] !== '\n') {
          this.at++;
        }
      } else if (/\s/.test(char)) {
        this.at++;
      } else if (char === '\\' && /^\\\r?\n/.test(this.text.slice(this.at))) {
        this.at++; // a line continuation
      } else {
        return;
      }
    }
  }

  private peek(): string {
    return this.text[this.at] ?? '';
  }

  private value(): ILiteral {
    this.space();
    const char = this.peek();
    if (char === '[') {
      const { items } = this.sequence('[', ']');
      return { value: items.map(item => item.value), type: 'list' };
    }
    if (char === '(') {
      const { items, comma } = this.sequence('(', ')');
      if (items.length === 1 && !comma) {
        return items[0]; // a value in parentheses
      }
      return { value: items.map(item => item.value), type: 'tuple' };
    }
    if (char === '{') {
      return this.dict();
    }
    if (/['"]/.test(char) || /^[rRuU]['"]/.test(this.text.slice(this.at))) {
      return this.strings();
    }
    if (/^[bBfF][rR]?['"]/.test(this.text.slice(this.at))) {
      this.fail('byte strings and f-strings are not values');
    }
    if (char === '-' || char === '+') {
      this.at++;
      this.space();
      const number = this.number();
      if (char === '-') {
        number.value = -(number.value as number);
      }
      return number;
    }
    if (/[0-9.]/.test(char)) {
      return this.number();
    }
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.at));
    if (name) {
      this.at += name[0].length;
      switch (name[0]) {
        case 'True':
        case 'true':
          return { value: true, type: 'bool' };
        case 'False':
        case 'false':
          return { value: false, type: 'bool' };
        case 'None':
        case 'null':
          return { value: null, type: 'NoneType' };
      }
      this.fail(`'${name[0]}' is a name, not a value`);
    }
    this.fail(char ? `unexpected '${char}'` : 'a value is missing');
  }

  private sequence(
    open: string,
    close: string
  ): { items: ILiteral[]; comma: boolean } {
    this.at++; // open
    const items: ILiteral[] = [];
    let comma = false;
    for (;;) {
      this.space();
      if (this.peek() === close) {
        this.at++;
        return { items, comma };
      }
      items.push(this.value());
      this.space();
      if (this.peek() === ',') {
        this.at++;
        comma = true;
      } else if (this.peek() !== close) {
        this.fail(`'${close}' or ',' expected after an item of '${open}…'`);
      }
    }
  }

  private dict(): ILiteral {
    this.at++; // {
    const entries: Record<string, unknown> = {};
    for (;;) {
      this.space();
      if (this.peek() === '}') {
        this.at++;
        return { value: entries, type: 'dict' };
      }
      const key = this.value();
      this.space();
      if (this.peek() !== ':') {
        this.fail('sets are not supported; a dict needs key: value pairs');
      }
      this.at++;
      const item = this.value();
      if (key.type === 'list' || key.type === 'dict') {
        this.fail('a dict key cannot be a list or a dict');
      }
      entries[
        key.type === 'str'
          ? (key.value as string)
          : JSON.stringify(key.value as unknown)
      ] = item.value;
      this.space();
      if (this.peek() === ',') {
        this.at++;
      } else if (this.peek() !== '}') {
        this.fail("'}' or ',' expected after a dict entry");
      }
    }
  }

  /** One string, or several written side by side (Python joins them). */
  private strings(): ILiteral {
    let value = '';
    do {
      value += this.string();
      this.space();
    } while (/^[rRuU]?['"]/.test(this.text.slice(this.at)));
    return { value, type: 'str' };
  }

  private string(): string {
    let raw = false;
    if (/[rRuU]/.test(this.peek())) {
      raw = /[rR]/.test(this.peek());
      this.at++;
    }
    const quote = this.text.startsWith(this.peek().repeat(3), this.at)
      ? this.peek().repeat(3)
      : this.peek();
    this.at += quote.length;
    let value = '';
    for (;;) {
      if (this.at >= this.text.length) {
        this.fail('a string is not closed');
      }
      if (this.text.startsWith(quote, this.at)) {
        this.at += quote.length;
        return value;
      }
      const char = this.text[this.at];
      if (char === '\n' && quote.length === 1) {
        this.fail('a string is not closed on its line');
      }
      if (char === '\\') {
        const next = this.text[this.at + 1] ?? '';
        if (raw) {
          value += char + next;
          this.at += 2;
          continue;
        }
        this.at += 2;
        value += this.escape(next);
        continue;
      }
      value += char;
      this.at++;
    }
  }

  private escape(code: string): string {
    const simple: Record<string, string> = {
      '\n': '',
      '\\': '\\',
      "'": "'",
      '"': '"',
      a: '\x07',
      b: '\b',
      f: '\f',
      n: '\n',
      r: '\r',
      t: '\t',
      v: '\v',
      '0': '\0'
    };
    if (code in simple) {
      return simple[code];
    }
    const digits = { x: 2, u: 4, U: 8 }[code];
    if (digits) {
      const hex = this.text.slice(this.at, this.at + digits);
      if (!new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(hex)) {
        this.fail(`\\${code} needs ${digits} hexadecimal digits`);
      }
      this.at += digits;
      return String.fromCodePoint(parseInt(hex, 16));
    }
    return '\\' + code; // Python keeps unknown escapes as written
  }

  private number(): ILiteral {
    const rest = this.text.slice(this.at);
    const radix = /^0([xXoObB])([0-9a-fA-F_]+)/.exec(rest);
    if (radix) {
      this.at += radix[0].length;
      const base = { x: 16, o: 8, b: 2 }[radix[1].toLowerCase() as 'x'];
      return this.integer(parseInt(radix[2].replace(/_/g, ''), base));
    }
    const match =
      /^(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?/.exec(rest);
    if (!match) {
      this.fail(`'${rest.slice(0, 10)}' is not a number`);
    }
    this.at += match[0].length;
    if (/^[jJ]/.test(this.text.slice(this.at))) {
      this.fail('complex numbers are not supported');
    }
    const text = match[0].replace(/_/g, '');
    if (/[.eE]/.test(text)) {
      return { value: Number(text), type: 'float' };
    }
    return this.integer(Number(text));
  }

  private integer(value: number): ILiteral {
    if (!Number.isSafeInteger(value)) {
      this.fail('the number is too large to be sent exactly');
    }
    return { value, type: 'int' };
  }
}

/**
 * The value of a Python literal (numbers, strings, True/False/None, lists, tuples, dicts); JSON's
 * `true`, `false` and `null` are read too, so JSON is accepted wherever a literal is.
 */
export function parsePythonLiteral(source: string): Parsed<ILiteral> {
  try {
    return { ok: true, value: new LiteralReader(source).read() };
  } catch (error) {
    if (error instanceof LiteralError) {
      return { ok: false, message: error.message };
    }
    throw error;
  }
}

/** The type the server gives a parameter without annotation: its default literal's, else `any`. */
export function literalType(source: string): string {
  const literal = parsePythonLiteral(source);
  return literal.ok && CHECKED.has(literal.value.type)
    ? literal.value.type
    : 'any';
}

// -- what a person types ---------------------------------------------------------------------

function quoted(text: string): string {
  const short = text.length > 40 ? text.slice(0, 39) + '…' : text;
  return JSON.stringify(short);
}

/** A value shown in Python's spelling where it differs from JSON's (True, None). */
export function formatValue(value: unknown): string {
  if (value === null || value === undefined) {
    return 'None';
  }
  if (typeof value === 'boolean') {
    return value ? 'True' : 'False';
  }
  if (typeof value === 'string') {
    return value;
  }
  if (typeof value === 'number') {
    return String(value);
  }
  return JSON.stringify(value);
}

/**
 * What an empty field stands for: the step's value if the scenario gives one, else the default
 * as written (a str default without its quotes).
 */
export function placeholderOf(parameter: IParameter): string {
  if (parameter.value !== null && parameter.value !== undefined) {
    return formatValue(parameter.value);
  }
  if (inputKind(parameter.type) === 'str') {
    const literal = parsePythonLiteral(parameter.default);
    if (literal.ok && literal.value.type === 'str') {
      return literal.value.value as string;
    }
  }
  return parameter.default;
}

/**
 * Read `text` as a value for `parameter`, or say why it is not one, naming the parameter.
 *
 * - str: the text as typed; int / float: a number (`1_000`, `1e-3`); bool: True/False (any case);
 * - list / dict: JSON or a Python literal of that kind;
 * - any other type: a Python or JSON literal if it reads as one, else the text as a string;
 * - `None` (or `null`) where the type is Optional;
 * - with `allowReferences`, a text holding a `${variable}` reference is kept as a string, which
 *   the scenario expands when it runs (step parameters accept them, run overrides do not).
 */
export function parseParameter(
  parameter: Pick<IParameter, 'name' | 'type'>,
  text: string,
  options: { allowReferences?: boolean } = {}
): Parsed {
  const { name, type } = parameter;
  const { head, optional } = baseType(type);
  const kind = inputKind(type);
  const trimmed = text.trim();
  if (kind === 'str') {
    return { ok: true, value: text };
  }
  if (options.allowReferences && REFERENCE.test(text)) {
    return { ok: true, value: text };
  }
  if (trimmed === '') {
    return { ok: false, message: `${name}: a value is needed (${type}).` };
  }
  if (optional && (trimmed === 'None' || trimmed === 'null')) {
    return { ok: true, value: null };
  }
  const none = optional ? ', or None' : '';
  switch (kind) {
    case 'int': {
      if (!/^[+-]?\d(_?\d)*$/.test(trimmed)) {
        return {
          ok: false,
          message: `${name}: ${quoted(text)} is not a whole number (${type}${none}).`
        };
      }
      const value = Number(trimmed.replace(/_/g, ''));
      if (!Number.isSafeInteger(value)) {
        return {
          ok: false,
          message: `${name}: ${quoted(text)} is too large to be sent exactly.`
        };
      }
      return { ok: true, value };
    }
    case 'float': {
      const plain = trimmed.replace(/_/g, '');
      if (
        !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(plain) ||
        !Number.isFinite(Number(plain))
      ) {
        return {
          ok: false,
          message: `${name}: ${quoted(text)} is not a number (${type}${none}).`
        };
      }
      return { ok: true, value: Number(plain) };
    }
    case 'bool': {
      const lower = trimmed.toLowerCase();
      if (lower === 'true' || lower === 'false') {
        return { ok: true, value: lower === 'true' };
      }
      return {
        ok: false,
        message: `${name}: ${quoted(text)} is not True or False (${type}${none}).`
      };
    }
    case 'json': {
      const literal = parsePythonLiteral(trimmed);
      const wanted = head === 'list' ? ['list', 'tuple'] : ['dict'];
      const example = head === 'list' ? '["a", "b"]' : '{"key": 1}';
      if (!literal.ok) {
        return {
          ok: false,
          message: `${name}: not a ${head} (${literal.message}); write JSON such as ${example}.`
        };
      }
      if (!wanted.includes(literal.value.type)) {
        return {
          ok: false,
          message: `${name}: ${quoted(text)} is a ${literal.value.type}, not a ${head}; write JSON such as ${example}.`
        };
      }
      return { ok: true, value: literal.value.value };
    }
    default: {
      const literal = parsePythonLiteral(trimmed);
      return { ok: true, value: literal.ok ? literal.value.value : text };
    }
  }
}

/** The text a variable's value is edited as: strings as they are, anything else as JSON. */
export function variableText(value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  return JSON.stringify(value ?? null);
}

/** Read an edited variable, keeping the kind of its current value (string, number, boolean, JSON). */
export function parseVariable(
  name: string,
  text: string,
  current: unknown
): Parsed {
  const trimmed = text.trim();
  if (typeof current === 'string') {
    return { ok: true, value: text };
  }
  if (typeof current === 'number') {
    const value = Number(trimmed);
    if (trimmed === '' || !Number.isFinite(value)) {
      return {
        ok: false,
        message: `${name}: ${quoted(text)} is not a number.`
      };
    }
    return { ok: true, value };
  }
  if (typeof current === 'boolean') {
    const lower = trimmed.toLowerCase();
    if (lower === 'true' || lower === 'false') {
      return { ok: true, value: lower === 'true' };
    }
    return {
      ok: false,
      message: `${name}: ${quoted(text)} is not true or false.`
    };
  }
  const literal = parsePythonLiteral(trimmed);
  if (literal.ok) {
    return { ok: true, value: literal.value.value };
  }
  if (current === null || current === undefined) {
    return { ok: true, value: text };
  }
  return {
    ok: false,
    message: `${name}: not valid JSON (${literal.message}).`
  };
}

// -- the parameters cell -------------------------------------------------------------------------

/**
 * Papermill's pattern for one assignment of a Python parameters cell
 * (`papermill.translators.PythonTranslator.PARAMETER_PATTERN`).
 */
const PARAMETER_PATTERN =
  /^(?<target>\w[\w_]*)\s*(:\s*["']?(?<annotation>\w[\w_[\],\s]*)["']?\s*)?=\s*(?<value>.*?)(\s*#\s*(type:\s*(?<typeComment>[^\s]*)\s*)?(?<help>.*))?$/;

/** Join the lines of one multi-line assignment, dropping comments but the last line's (its help). */
function flatten(lines: string[]): string {
  let flat = '';
  lines.slice(0, -1).forEach(line => {
    const comment = line.indexOf('#');
    flat += (comment >= 0 ? line.slice(0, comment) : line).trim();
  });
  if (lines.length > 0) {
    flat += lines[lines.length - 1].trim();
  }
  return flat;
}

/**
 * The parameters of a papermill parameters cell, read as papermill (and so the server) reads
 * them: `name: type = literal  # help` or `name = literal  # help`, a list or dict default may
 * span lines, a line with two `=` is skipped, and the type of an unannotated one is its
 * literal's (`any` when it is not a str, int, float, bool, list or dict).
 */
export function parseParametersCell(source: string): IParameter[] {
  const groups: string[] = [];
  let lines: string[] = [];
  for (const line of source.split(/\r\n|\r|\n/)) {
    const stripped = line.trim();
    if (stripped === '' || stripped.startsWith('#')) {
      continue;
    }
    const equals = line.split('=').length - 1;
    if (equals > 0) {
      groups.push(flatten(lines));
      lines = [];
      if (equals > 1) {
        continue; // papermill warns "Unable to parse line" and skips it
      }
    }
    lines.push(line);
  }
  groups.push(flatten(lines));

  const parameters: IParameter[] = [];
  for (const definition of groups) {
    const match = definition ? PARAMETER_PATTERN.exec(definition) : null;
    if (!match?.groups) {
      continue;
    }
    const found = match.groups;
    const defaultText = (found.value ?? '').trim();
    const declared = (found.annotation || found.typeComment || '').trim();
    parameters.push({
      name: found.target.trim(),
      type: declared || literalType(defaultText),
      default: defaultText,
      help: (found.help ?? '').trim()
    });
  }
  return parameters;
}
