/**
 * A dataset's first rows as the server sends them for people: CSV from
 * `GET …/datasets/{name}/data?format=csv`, with `X-Himalia-Rows` and `X-Himalia-Stopped-By`
 * saying how many rows came and whether the read stopped at the limit or the size cap.
 */

export interface IPreview {
  columns: string[];
  rows: string[][];
  /** '' (every row), 'limit' (more rows exist) or 'max_bytes' (the server's size cap). */
  stoppedBy: string;
}

/** RFC 4180 CSV: quoted fields may hold commas, quotes (doubled) and line breaks. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (char === '"') {
        quoted = false;
      } else {
        field += char;
      }
    } else if (char === '"') {
      quoted = true;
    } else if (char === ',') {
      row.push(field);
      field = '';
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[i + 1] === '\n') {
        i++;
      }
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else {
      field += char;
    }
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** The preview a CSV answer holds. */
export function previewOf(text: string, stoppedBy: string | null): IPreview {
  const [columns = [], ...rows] = parseCsv(text);
  return { columns, rows, stoppedBy: stoppedBy ?? '' };
}
