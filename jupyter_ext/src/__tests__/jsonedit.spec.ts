import {
  NOT_AN_OBJECT,
  findKey,
  firstErrorOffset,
  formatVariables,
  parseVariables,
  placeOf,
  syntaxErrorPlace,
  syntaxErrorSentence
} from '../jsonedit';

function failure(text: string) {
  const result = parseVariables(text);
  if (result.ok) {
    throw new Error(`${JSON.stringify(text)} was accepted`);
  }
  return result.error;
}

describe('parseVariables', () => {
  it('accepts an object and keeps its values', () => {
    const result = parseVariables(
      '{\n  "threshold": 0.8,\n  "regions": ["EU", "US"],\n  "db": {"schema": "sales"}\n}'
    );
    expect(result).toEqual({
      ok: true,
      value: {
        threshold: 0.8,
        regions: ['EU', 'US'],
        db: { schema: 'sales' }
      }
    });
    expect(parseVariables('{}')).toEqual({ ok: true, value: {} });
  });

  it('names the line and column of a syntax error', () => {
    const error = failure('{\n  "a": 1\n  "b": 2\n}');
    expect(error.line).toBe(3);
    expect(error.column).toBe(3);
    expect(error.message).toMatch(/^Line 3, column 3: /);
  });

  it('places a trailing comma, an unterminated string and a cut text', () => {
    expect(failure('{"a": 1,}')).toMatchObject({ line: 1, column: 9 });
    expect(failure('{\n  "a": "x\n}').line).toBe(2);
    const cut = failure('{\n  "a":');
    expect(cut).toMatchObject({ line: 2, column: 7 });
  });

  it('places errors the engine does not place (bad literals)', () => {
    const error = failure('{\n  "ok": tru\n}');
    // Right after "tru", where `true` cannot continue.
    expect(error).toMatchObject({ line: 2, column: 12 });
    expect(error.message).not.toContain('\n');
  });

  it('refuses anything but an object', () => {
    expect(failure('[1, 2]').message).toBe(
      `Line 1, column 1: ${NOT_AN_OBJECT}, not an array.`
    );
    expect(failure('  42').message).toBe(
      `Line 1, column 3: ${NOT_AN_OBJECT}, not a number.`
    );
    expect(failure('null').message).toContain(`${NOT_AN_OBJECT}, not null`);
    expect(failure('"text"').message).toContain('not a string');
    expect(failure('   ').message).toBe(`${NOT_AN_OBJECT}: write {} for none.`);
  });

  it('refuses empty names where they are written', () => {
    const error = failure('{\n  "a": 1,\n  "": 2\n}');
    expect(error).toMatchObject({ line: 3, column: 3 });
    expect(error.message).toMatch(/empty names are refused/);
    expect(failure('{" ": 1}').message).toMatch(/empty names/);
  });

  it('allows empty keys inside values: only variable names are checked', () => {
    expect(parseVariables('{"a": {"": 1}, "b": [{"": 2}]}').ok).toBe(true);
  });

  it('refuses a name given twice (JSON.parse would keep the last)', () => {
    const error = failure('{\n  "a": 1,\n  "b": {"a": 0},\n  "a": 2\n}');
    expect(error).toMatchObject({ line: 4, column: 3 });
    expect(error.message).toContain('"a" is given twice');
  });

  it('reads escaped names as JSON does', () => {
    expect(parseVariables('{"a\\"b": 1, "c\\\\": "}"}')).toEqual({
      ok: true,
      value: { 'a"b': 1, 'c\\': '}' }
    });
    expect(failure('{"\\u0061": 1, "a": 2}').message).toContain(
      '"a" is given twice'
    );
  });
});

describe('syntaxErrorPlace', () => {
  const text = '{\n  "a": 1\n  "b": 2\n}';

  it('reads V8 positions', () => {
    expect(
      syntaxErrorPlace(
        text,
        "Expected ',' or '}' after property value in JSON at position 13"
      )
    ).toEqual({ line: 3, column: 3 });
  });

  it('prefers an explicit line and column (recent V8, Firefox)', () => {
    expect(
      syntaxErrorPlace(
        text,
        "Expected ',' or '}' after property value in JSON at position 13 (line 3 column 3)"
      )
    ).toEqual({ line: 3, column: 3 });
    expect(
      syntaxErrorPlace(
        text,
        "JSON.parse: expected ',' or '}' after property value in object at line 3 column 3 of the JSON data"
      )
    ).toEqual({ line: 3, column: 3 });
  });

  it('puts an unexpected end at the end of the text', () => {
    expect(
      syntaxErrorPlace('{\n "a":', 'Unexpected end of JSON input')
    ).toEqual({ line: 2, column: 6 });
  });

  it('gives up on messages without a place (Safari)', () => {
    expect(syntaxErrorPlace(text, "JSON Parse error: Expected '}'")).toBeNull();
  });
});

describe('syntaxErrorSentence', () => {
  it('drops the engine-specific wrapping', () => {
    expect(
      syntaxErrorSentence(
        'Expected double-quoted property name in JSON at position 8 (line 1 column 9)'
      )
    ).toBe('Expected double-quoted property name.');
    expect(
      syntaxErrorSentence(
        'JSON.parse: unexpected character at line 1 column 10 of the JSON data'
      )
    ).toBe('Unexpected character.');
    expect(
      syntaxErrorSentence(
        'Unexpected token \'}\', "{"a": tru}" is not valid JSON'
      )
    ).toBe("Unexpected token '}'.");
    expect(syntaxErrorSentence("JSON Parse error: Expected '}'")).toBe(
      "Expected '}'."
    );
    expect(syntaxErrorSentence('')).toBe('Not valid JSON.');
  });
});

describe('firstErrorOffset', () => {
  it('is null for JSON and agrees with JSON.parse on what is not', () => {
    const samples = [
      '{}',
      '{"a": [1, -2.5e3, true, false, null, "\\u00e9\\n"]}',
      '{"a": 1,}',
      '{"a" 1}',
      '{"a": 01}',
      '{"a": -}',
      '{"a": "\\q"}',
      '{"a": "tab\there"}',
      '{"a": 1} x',
      '{"a": [1, 2}',
      '{"a": nul}',
      ''
    ];
    for (const sample of samples) {
      let valid = true;
      try {
        JSON.parse(sample);
      } catch {
        valid = false;
      }
      expect([sample, firstErrorOffset(sample) === null]).toEqual([
        sample,
        valid
      ]);
    }
  });

  it('points at the first character that cannot continue', () => {
    expect(firstErrorOffset('{"a" 1}')).toBe(5);
    expect(firstErrorOffset('{"a": nul}')).toBe(9);
    expect(firstErrorOffset('{"a": [1, 2}')).toBe(11);
  });
});

describe('placeOf, findKey and formatVariables', () => {
  it('counts lines and columns from 1', () => {
    expect(placeOf('ab\ncd', 0)).toEqual({ line: 1, column: 1 });
    expect(placeOf('ab\ncd', 4)).toEqual({ line: 2, column: 2 });
    expect(placeOf('ab', 99)).toEqual({ line: 1, column: 3 });
  });

  it('finds where a top-level variable is written', () => {
    const text = formatVariables({ a: { b: 1 }, b: 2 });
    expect(findKey(text, 'b')).toEqual({ line: 5, column: 3 });
    expect(findKey(text, 'missing')).toBeNull();
  });

  it('pretty-prints with two spaces and round-trips', () => {
    const variables = { threshold: 0.8, tags: ['a'], nested: { k: null } };
    const text = formatVariables(variables);
    expect(text).toBe(
      '{\n  "threshold": 0.8,\n  "tags": [\n    "a"\n  ],\n  "nested": {\n    "k": null\n  }\n}'
    );
    expect(parseVariables(text)).toEqual({ ok: true, value: variables });
    expect(formatVariables(null)).toBe('{}');
  });
});
