import {
  baseType,
  formatValue,
  inputKind,
  literalType,
  parseParameter,
  parseParametersCell,
  parsePythonLiteral,
  parseVariable,
  placeholderOf,
  variableText
} from '../parameters';

describe('baseType and inputKind', () => {
  it('reads annotations as the server does', () => {
    expect(baseType('Optional[float]')).toEqual({
      head: 'float',
      optional: true
    });
    expect(baseType('typing.List[str]')).toEqual({
      head: 'list',
      optional: false
    });
    expect(baseType('int | None')).toEqual({ head: 'int', optional: true });
    expect(baseType('int | str')).toEqual({ head: 'any', optional: false });
  });

  it('gives each type its input', () => {
    expect(inputKind('int')).toBe('int');
    expect(inputKind('float')).toBe('float');
    expect(inputKind('Optional[bool]')).toBe('bool');
    expect(inputKind('str')).toBe('str');
    expect(inputKind('List[int]')).toBe('json');
    expect(inputKind('dict')).toBe('json');
    expect(inputKind('any')).toBe('text');
    expect(inputKind('datetime')).toBe('text');
  });
});

describe('parsePythonLiteral', () => {
  const value = (source: string) => {
    const parsed = parsePythonLiteral(source);
    if (!parsed.ok) {
      throw new Error(parsed.message);
    }
    return parsed.value;
  };

  it('reads scalars with their Python type', () => {
    expect(value('0.8')).toEqual({ value: 0.8, type: 'float' });
    expect(value('1e3')).toEqual({ value: 1000, type: 'float' });
    expect(value('-12')).toEqual({ value: -12, type: 'int' });
    expect(value('1_000')).toEqual({ value: 1000, type: 'int' });
    expect(value('0x1F')).toEqual({ value: 31, type: 'int' });
    expect(value('True')).toEqual({ value: true, type: 'bool' });
    expect(value('None')).toEqual({ value: null, type: 'NoneType' });
    expect(value('"2018-06-01"')).toEqual({
      value: '2018-06-01',
      type: 'str'
    });
  });

  it('reads strings with escapes, raw strings and implicit joins', () => {
    expect(value("'it\\'s\\n'").value).toBe("it's\n");
    expect(value('r"C:\\data"').value).toBe('C:\\data');
    expect(value('"ab" \'cd\'').value).toBe('abcd');
    expect(value('"""multi\nline"""').value).toBe('multi\nline');
    expect(value('"\\u00e9"').value).toBe('é');
  });

  it('reads containers, JSON spellings included', () => {
    expect(value("['a', 2, None,]")).toEqual({
      value: ['a', 2, null],
      type: 'list'
    });
    expect(value('(1, 2)')).toEqual({ value: [1, 2], type: 'tuple' });
    expect(value('(1,)')).toEqual({ value: [1], type: 'tuple' });
    expect(value('(3)')).toEqual({ value: 3, type: 'int' });
    expect(value('{"a": [true, null], \'b\': {1: False}}')).toEqual({
      value: { a: [true, null], b: { '1': false } },
      type: 'dict'
    });
    expect(value('[\n  1,  # one\n  2\n]').value).toEqual([1, 2]);
  });

  it('refuses what is not a literal', () => {
    expect(parsePythonLiteral('pd.Timestamp("2020")').ok).toBe(false);
    expect(parsePythonLiteral('{1, 2}').ok).toBe(false);
    expect(parsePythonLiteral('"open').ok).toBe(false);
    expect(parsePythonLiteral('1 2').ok).toBe(false);
    expect(parsePythonLiteral('f"x"').ok).toBe(false);
    expect(parsePythonLiteral('1j').ok).toBe(false);
    expect(parsePythonLiteral('99999999999999999999').ok).toBe(false);
  });

  it('types defaults as the server does', () => {
    expect(literalType('0.8')).toBe('float');
    expect(literalType('"x"')).toBe('str');
    expect(literalType('[1]')).toBe('list');
    expect(literalType('(1, 2)')).toBe('any');
    expect(literalType('None')).toBe('any');
    expect(literalType('date.today()')).toBe('any');
  });
});

describe('parseParameter', () => {
  const threshold = { name: 'threshold', type: 'float' };

  it('reads numbers', () => {
    expect(parseParameter(threshold, ' 0.9 ')).toEqual({
      ok: true,
      value: 0.9
    });
    expect(parseParameter(threshold, '1')).toEqual({ ok: true, value: 1 });
    expect(parseParameter({ name: 'n', type: 'int' }, '-1_000')).toEqual({
      ok: true,
      value: -1000
    });
  });

  it('names the parameter when a value does not fit', () => {
    const wrong = parseParameter(threshold, 'high');
    expect(wrong.ok).toBe(false);
    expect(!wrong.ok && wrong.message).toBe(
      'threshold: "high" is not a number (float).'
    );
    const decimal = parseParameter({ name: 'limit', type: 'int' }, '2.5');
    expect(!decimal.ok && decimal.message).toMatch(/^limit: .*whole number/);
    const empty = parseParameter({ name: 'limit', type: 'int' }, '  ');
    expect(!empty.ok && empty.message).toMatch(/^limit: a value is needed/);
    const huge = parseParameter({ name: 'big', type: 'int' }, '9'.repeat(20));
    expect(!huge.ok && huge.message).toMatch(/^big: .*too large/);
  });

  it('keeps strings as typed', () => {
    expect(parseParameter({ name: 'day', type: 'str' }, ' 2018-06-01')).toEqual(
      { ok: true, value: ' 2018-06-01' }
    );
  });

  it('reads booleans and None where optional', () => {
    const flag = { name: 'dry_run', type: 'bool' };
    expect(parseParameter(flag, 'False')).toEqual({ ok: true, value: false });
    expect(parseParameter(flag, 'true')).toEqual({ ok: true, value: true });
    const notBool = parseParameter(flag, 'yes');
    expect(!notBool.ok && notBool.message).toMatch(/^dry_run: .*True or False/);
    const maybe = { name: 'limit', type: 'Optional[int]' };
    expect(parseParameter(maybe, 'None')).toEqual({ ok: true, value: null });
    expect(parseParameter({ name: 'limit', type: 'int' }, 'None').ok).toBe(
      false
    );
  });

  it('reads lists and dicts as JSON or Python literals, of the right kind', () => {
    const columns = { name: 'columns', type: 'List[str]' };
    expect(parseParameter(columns, '["a", "b"]')).toEqual({
      ok: true,
      value: ['a', 'b']
    });
    expect(parseParameter(columns, "('a',)")).toEqual({
      ok: true,
      value: ['a']
    });
    const notList = parseParameter(columns, '{"a": 1}');
    expect(!notList.ok && notList.message).toMatch(
      /^columns: .* is a dict, not a list/
    );
    const broken = parseParameter({ name: 'options', type: 'dict' }, '{a: 1}');
    expect(!broken.ok && broken.message).toMatch(/^options: not a dict/);
  });

  it('reads untyped values as literals, else as text', () => {
    const free = { name: 'start', type: 'any' };
    expect(parseParameter(free, '42')).toEqual({ ok: true, value: 42 });
    expect(parseParameter(free, '"42"')).toEqual({ ok: true, value: '42' });
    expect(parseParameter(free, '2018-06-01')).toEqual({
      ok: true,
      value: '2018-06-01'
    });
  });

  it('keeps variable references only when asked to', () => {
    const day = { name: 'limit', type: 'int' };
    expect(
      parseParameter(day, '${row_limit}', { allowReferences: true })
    ).toEqual({ ok: true, value: '${row_limit}' });
    expect(parseParameter(day, '${row_limit}').ok).toBe(false);
  });
});

describe('placeholders and variables', () => {
  it("shows the step's value, else the default (a str without quotes)", () => {
    expect(
      placeholderOf({
        name: 'day',
        type: 'str',
        default: '"2018-06-01"',
        value: '${previous_day}'
      })
    ).toBe('${previous_day}');
    expect(
      placeholderOf({ name: 'day', type: 'str', default: '"2018-06-01"' })
    ).toBe('2018-06-01');
    expect(
      placeholderOf({ name: 'on', type: 'bool', default: 'True', value: false })
    ).toBe('False');
    expect(
      placeholderOf({ name: 'threshold', type: 'float', default: '0.8' })
    ).toBe('0.8');
    expect(formatValue(null)).toBe('None');
    expect(formatValue({ a: [1] })).toBe('{"a":[1]}');
  });

  it('edits variables keeping their kind', () => {
    expect(variableText('2018-06-01')).toBe('2018-06-01');
    expect(variableText(3)).toBe('3');
    expect(variableText({ a: 1 })).toBe('{"a":1}');
    expect(parseVariable('day', '2018-06-02', 'x')).toEqual({
      ok: true,
      value: '2018-06-02'
    });
    expect(parseVariable('rows', '10', 3)).toEqual({ ok: true, value: 10 });
    const notNumber = parseVariable('rows', 'ten', 3);
    expect(!notNumber.ok && notNumber.message).toBe(
      'rows: "ten" is not a number.'
    );
    expect(parseVariable('on', 'FALSE', true)).toEqual({
      ok: true,
      value: false
    });
    expect(parseVariable('cfg', '{"a": 2}', { a: 1 })).toEqual({
      ok: true,
      value: { a: 2 }
    });
    const notJson = parseVariable('cfg', '{a', { a: 1 });
    expect(!notJson.ok && notJson.message).toMatch(/^cfg: not valid JSON/);
    expect(parseVariable('unset', 'hello', null)).toEqual({
      ok: true,
      value: 'hello'
    });
  });
});

describe('parseParametersCell', () => {
  it("reads the demo notebook's parameters cell", () => {
    const cell = [
      '# Parameters: papermill (and the scenario) inject their values in a cell after this one.',
      'day: str = "2018-06-01"  # ISO date; the scenario passes yesterday',
      'threshold: float = 0.8  # flag transactions whose score is above this'
    ].join('\n');
    expect(parseParametersCell(cell)).toEqual([
      {
        name: 'day',
        type: 'str',
        default: '"2018-06-01"',
        help: 'ISO date; the scenario passes yesterday'
      },
      {
        name: 'threshold',
        type: 'float',
        default: '0.8',
        help: 'flag transactions whose score is above this'
      }
    ]);
  });

  it('types unannotated parameters by their literal', () => {
    const cell =
      'limit = 100\nname = "x"  # who\nwhen = date.today()\nflag=True';
    expect(
      parseParametersCell(cell).map(p => [p.name, p.type, p.default, p.help])
    ).toEqual([
      ['limit', 'int', '100', ''],
      ['name', 'str', '"x"', 'who'],
      ['when', 'any', 'date.today()', ''],
      ['flag', 'bool', 'True', '']
    ]);
  });

  it('joins multi-line defaults and reads type comments and Optional', () => {
    const cell = [
      'columns = [',
      '    "amount",  # money',
      '    "merchant",',
      ']  # the columns to score',
      'limit: Optional[int] = None',
      'ratio = 1  # type: float the share'
    ].join('\n');
    expect(parseParametersCell(cell)).toEqual([
      {
        name: 'columns',
        type: 'list',
        default: '["amount","merchant",]',
        help: 'the columns to score'
      },
      { name: 'limit', type: 'Optional[int]', default: 'None', help: '' },
      { name: 'ratio', type: 'float', default: '1', help: 'the share' }
    ]);
  });

  it('skips what papermill skips', () => {
    const cell = [
      'query = "a = b"',
      'import os',
      'x: str | None = None',
      'kept = 1'
    ].join('\n');
    expect(parseParametersCell(cell).map(p => p.name)).toEqual(['kept']);
    expect(parseParametersCell('')).toEqual([]);
  });
});
