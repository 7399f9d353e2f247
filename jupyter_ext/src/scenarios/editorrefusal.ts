/**
 * Where the server's refusal of a scenario's YAML points. The server names the document `yaml`
 * and answers `yaml:LINE: field: message` for what it can place (a syntax error, a field of
 * the wrong type) and `field: message` for what it checks afterwards (a dataset that does not
 * exist, a permission).
 */

export interface IEditorRefusal {
  /** The 1-based line of the YAML the refusal names, if it names one. */
  line: number | null;
  /** The refusal without the document's name and line. */
  message: string;
}

const LOCATED = /^yaml:(\d+): ([\s\S]*)$/;
const UNLOCATED = /^yaml: ([\s\S]*)$/;

export function locateRefusal(message: string): IEditorRefusal {
  const located = LOCATED.exec(message);
  if (located) {
    return { line: Number(located[1]), message: located[2] };
  }
  const whole = UNLOCATED.exec(message);
  return { line: null, message: whole ? whole[1] : message };
}

/** The notebook paths of a definition's notebook steps: the lab sends their content to be snapshotted. */
export function notebookPaths(
  steps: ReadonlyArray<{ type: string; notebook?: string }>
): string[] {
  const paths = steps
    .filter(step => step.type === 'notebook' && step.notebook)
    .map(step => step.notebook as string);
  return [...new Set(paths)];
}
