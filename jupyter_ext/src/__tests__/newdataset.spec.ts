import {
  INewDatasetAnswers,
  buildDataset,
  checkDataset,
  datasetField,
  kindsOf
} from '../datasets/newdataset';

function answers(
  changes: Partial<INewDatasetAnswers> = {}
): INewDatasetAnswers {
  return {
    name: 'merchants',
    connection: 'warehouse',
    description: '',
    kind: 'table',
    table: 'merchants',
    dbSchema: '',
    query: '',
    path: '',
    format: '',
    ...changes
  };
}

describe('checkDataset', () => {
  it('accepts a table of a sql connection', () => {
    expect(checkDataset(answers(), 'sql')).toEqual({});
  });

  it('names the field of each problem', () => {
    expect(checkDataset(answers({ name: '' }), 'sql').name).toBe(
      'Name the dataset.'
    );
    expect(checkDataset(answers({ name: '-bad name' }), 'sql').name).toMatch(
      /^Letters, digits/
    );
    expect(
      checkDataset(answers({ name: 'x'.repeat(101) }), 'sql').name
    ).toMatch(/at most 100/);
    expect(
      checkDataset(answers({ connection: '' }), undefined).connection
    ).toBe('Choose a connection.');
    expect(checkDataset(answers({ table: ' ' }), 'sql').table).toBe(
      'Name the table.'
    );
    expect(checkDataset(answers({ kind: 'query' }), 'sql').query).toBe(
      'Write the query.'
    );
  });

  it('refuses a kind the connection does not offer', () => {
    expect(checkDataset(answers(), 'files').kind).toBe(
      'A files connection has no table datasets.'
    );
    expect(
      checkDataset(answers({ kind: 'files', path: 'a.csv' }), 'sql').kind
    ).toBe('A sql connection has no files datasets.');
  });

  it('checks a path as the server does', () => {
    const files = (changes: Partial<INewDatasetAnswers>) =>
      checkDataset(answers({ kind: 'files', ...changes }), 'files');
    expect(files({ path: 'sales/*.csv' })).toEqual({});
    expect(files({ path: '' }).path).toMatch(/Give the files' path/);
    expect(files({ path: 'a/../../etc/x.csv' }).path).toMatch(/no '\.\.'/);
    expect(files({ path: 'a\\..\\x.csv' }).path).toMatch(/no '\.\.'/);
    expect(files({ path: 'sales/part-*' }).format).toMatch(/csv or parquet/);
    expect(files({ path: 'sales/part-*', format: 'parquet' })).toEqual({});
  });
});

describe('buildDataset', () => {
  it('sends only the location of its kind', () => {
    expect(buildDataset(answers({ name: ' m ', dbSchema: 'main' }))).toEqual({
      name: 'm',
      connection: 'warehouse',
      description: '',
      table: 'merchants',
      db_schema: 'main'
    });
    expect(buildDataset(answers({ kind: 'query', query: 'select 1' }))).toEqual(
      {
        name: 'merchants',
        connection: 'warehouse',
        description: '',
        query: 'select 1'
      }
    );
    expect(
      buildDataset(answers({ kind: 'files', path: 'sales/*.PARQUET' }))
    ).toMatchObject({ path: 'sales/*.PARQUET', format: 'parquet' });
  });
});

describe('kindsOf and datasetField', () => {
  it('offers tables and queries of sql, files of files', () => {
    expect(kindsOf('sql')).toEqual(['table', 'query']);
    expect(kindsOf('files')).toEqual(['files']);
    expect(kindsOf(undefined)).toEqual([]);
  });

  it('maps the server field names to answers', () => {
    expect(datasetField('db_schema')).toBe('dbSchema');
    expect(datasetField('path')).toBe('path');
    expect(datasetField('probes')).toBeNull();
    expect(datasetField(null)).toBeNull();
  });
});
