import { locateRefusal, notebookPaths } from '../scenarios/editorrefusal';

describe('locateRefusal', () => {
  it('reads the line and keeps the field and message', () => {
    expect(
      locateRefusal('yaml:12: triggers[0].schedule: not a schedule')
    ).toEqual({ line: 12, message: 'triggers[0].schedule: not a schedule' });
  });

  it('reads a syntax error', () => {
    expect(
      locateRefusal('yaml:4: not valid YAML: did not find expected node')
    ).toEqual({
      line: 4,
      message: 'not valid YAML: did not find expected node'
    });
  });

  it('drops the document name of a refusal without a line', () => {
    expect(locateRefusal('yaml: the file is empty')).toEqual({
      line: null,
      message: 'the file is empty'
    });
  });

  it('keeps a refusal checked after parsing as it is', () => {
    const message = "steps[0].dataset: there is no dataset 'x' in FRAUD.";
    expect(locateRefusal(message)).toEqual({ line: null, message });
  });

  it('does not read a line out of other text', () => {
    expect(locateRefusal('yaml:x: nope').line).toBeNull();
    expect(locateRefusal('myyaml:3: nope').line).toBeNull();
  });
});

describe('notebookPaths', () => {
  it('lists each notebook step once, in order', () => {
    expect(
      notebookPaths([
        { type: 'notebook', notebook: 'b.ipynb' },
        { type: 'run_checks' },
        { type: 'notebook', notebook: 'a.ipynb' },
        { type: 'notebook', notebook: 'b.ipynb' }
      ])
    ).toEqual(['b.ipynb', 'a.ipynb']);
  });
});
