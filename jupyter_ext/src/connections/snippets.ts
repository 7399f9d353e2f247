/**
 * The code a notebook needs to reach a connection through the kernel client (`import himalia`).
 *
 * Pure: no JupyterLab, no React, so that it is tested in plain Node. The snippets call the
 * client's real methods: `Connection.read_sql(query, params)` for `sql` connections and
 * `Connection.fs()` (an fsspec filesystem rooted at the connection's URL) for `files` ones.
 */

/** What a snippet needs to know of a connection. */
export interface ISnippetTarget {
  name: string;
  type: string;
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '"': '\\"',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t'
};

/**
 * `value` as a double-quoted Python string literal: backslashes, quotes and control characters
 * escaped, so that no name can end the string or the line early.
 */
export function pythonString(value: string): string {
  let quoted = '"';
  for (const char of value) {
    const code = char.codePointAt(0) ?? 0;
    if (SIMPLE_ESCAPES[char] !== undefined) {
      quoted += SIMPLE_ESCAPES[char];
    } else if (code < 0x20 || code === 0x7f) {
      quoted += '\\x' + code.toString(16).padStart(2, '0');
    } else if (code === 0x2028 || code === 0x2029 || code === 0x85) {
      // Line separators: valid in a Python string, but editors may show them as line breaks.
      quoted += '\\u' + code.toString(16).padStart(4, '0');
    } else if (code >= 0xd800 && code <= 0xdfff) {
      // A lone surrogate (a paired one arrives as one code point above): keep it explicit.
      quoted += '\\u' + code.toString(16);
    } else {
      quoted += char;
    }
  }
  return quoted + '"';
}

/** The code of a new cell that reads from `connection` with the kernel client. */
export function connectionSnippet(connection: ISnippetTarget): string {
  const name = pythonString(connection.name);
  switch (connection.type) {
    case 'sql':
      return [
        'import himalia',
        '',
        `df = himalia.connection(${name}).read_sql("SELECT 1 AS ok")`,
        '# Bind values as :name, e.g.',
        '# .read_sql("SELECT * FROM merchants WHERE state = :state", {"state": "CA"})',
        'df'
      ].join('\n');
    case 'files':
      return [
        'import himalia',
        '',
        `fs = himalia.connection(${name}).fs()  # fsspec, rooted at the connection's URL`,
        '# import pandas as pd',
        '# with fs.open("path/to/file.csv") as handle:',
        '#     df = pd.read_csv(handle)  # or pd.read_parquet(handle)',
        'fs.ls("", detail=False)'
      ].join('\n');
    default:
      return [
        'import himalia',
        '',
        `connection = himalia.connection(${name})`,
        `# ${JSON.stringify(connection.type)} connections: see .read_sql() (sql) or .fs() (files).`,
        'connection'
      ].join('\n');
  }
}
