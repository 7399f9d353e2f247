import { connectionSnippet, pythonString } from '../connections/snippets';

describe('pythonString', () => {
  it('quotes a plain name as is', () => {
    expect(pythonString('warehouse')).toBe('"warehouse"');
    expect(pythonString('dw.sales-2024_v2')).toBe('"dw.sales-2024_v2"');
  });

  it('escapes what could end the string or the line', () => {
    expect(pythonString('a"b')).toBe('"a\\"b"');
    expect(pythonString('back\\slash')).toBe('"back\\\\slash"');
    expect(pythonString('two\nlines\r\tend')).toBe('"two\\nlines\\r\\tend"');
    expect(pythonString('bell\u0007del\u007f')).toBe('"bell\\x07del\\x7f"');
    expect(pythonString('para\u2028graph')).toBe('"para\\u2028graph"');
  });

  it('keeps other characters, astral ones whole', () => {
    expect(pythonString("l'été 😀")).toBe('"l\'été 😀"');
    expect(pythonString('lone\ud800')).toBe('"lone\\ud800"');
  });

  it('never leaves an unescaped quote or newline inside', () => {
    const quoted = pythonString('x"\n"; import os; os.system("rm -rf /")  #');
    const inside = quoted.slice(1, -1);
    expect(inside).not.toMatch(/(^|[^\\])"/);
    expect(inside).not.toContain('\n');
  });
});

describe('connectionSnippet', () => {
  it('reads a sql connection into a DataFrame with read_sql', () => {
    const code = connectionSnippet({ name: 'warehouse', type: 'sql' });
    expect(code.split('\n')[0]).toBe('import himalia');
    expect(code).toContain(
      'df = himalia.connection("warehouse").read_sql("SELECT 1 AS ok")'
    );
    expect(code).toContain('{"state": "CA"}');
    expect(code.trimEnd().split('\n').pop()).toBe('df');
    expect(code).not.toContain('.fs()');
  });

  it('opens a files connection as an fsspec filesystem', () => {
    const code = connectionSnippet({ name: 'lake', type: 'files' });
    expect(code).toContain('fs = himalia.connection("lake").fs()');
    expect(code.trimEnd().split('\n').pop()).toBe('fs.ls("", detail=False)');
    expect(code).not.toContain('read_sql(');
  });

  it('quotes the name safely in every snippet', () => {
    for (const type of ['sql', 'files', 'other']) {
      const code = connectionSnippet({ name: 'a"b\nc', type });
      expect(code).toContain('himalia.connection("a\\"b\\nc")');
      // Only the comment lines and code lines the snippet itself writes: no line from the name.
      expect(code.split('\n').every(line => !line.startsWith('c"'))).toBe(true);
    }
  });

  it('falls back to the bare connection for an unknown type', () => {
    const code = connectionSnippet({ name: 'odd', type: 'nosql\nx = 1' });
    expect(code).toContain('connection = himalia.connection("odd")');
    expect(code).toContain('# "nosql\\nx = 1" connections');
    expect(code.split('\n')).not.toContain('x = 1');
    expect(code.trimEnd().split('\n').pop()).toBe('connection');
  });
});
