/**
 * The "New dataset" form's answers, checked as they are typed with the server's own rules
 * (wire/data.py `CreateDataset`), and turned into the request: a table or a query of a `sql`
 * connection, or files (a path below the connection's URL, globs allowed) of a `files` one.
 */
import type { CreateDataset } from '../types';

export type DatasetKind = 'table' | 'query' | 'files';

export interface INewDatasetAnswers {
  name: string;
  connection: string;
  description: string;
  /** `table` or `query` for a sql connection; `files` for a files connection. */
  kind: DatasetKind;
  table: string;
  dbSchema: string;
  query: string;
  path: string;
  /** Empty: read from the path's suffix. */
  format: '' | 'csv' | 'parquet';
}

export type DatasetProblems = Partial<Record<keyof INewDatasetAnswers, string>>;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/** The kinds of dataset a connection type offers. */
export function kindsOf(connectionType: string | undefined): DatasetKind[] {
  if (connectionType === 'sql') {
    return ['table', 'query'];
  }
  if (connectionType === 'files') {
    return ['files'];
  }
  return [];
}

function suffixFormat(path: string): 'csv' | 'parquet' | null {
  const suffix = path.trim().split('.').pop()?.toLowerCase();
  return suffix === 'csv' || suffix === 'parquet' ? suffix : null;
}

export function checkDataset(
  answers: INewDatasetAnswers,
  connectionType: string | undefined
): DatasetProblems {
  const problems: DatasetProblems = {};
  const name = answers.name.trim();
  if (!name) {
    problems.name = 'Name the dataset.';
  } else if (!NAME.test(name)) {
    problems.name =
      'Letters, digits, ".", "_" and "-" only, starting with a letter or digit (at most 100).';
  }
  if (!answers.connection) {
    problems.connection = 'Choose a connection.';
  } else if (!kindsOf(connectionType).includes(answers.kind)) {
    problems.kind = `A ${connectionType ?? 'unknown'} connection has no ${answers.kind} datasets.`;
  }
  if (answers.kind === 'table' && !answers.table.trim()) {
    problems.table = 'Name the table.';
  }
  if (answers.kind === 'query' && !answers.query.trim()) {
    problems.query = 'Write the query.';
  }
  if (answers.kind === 'files') {
    const path = answers.path.trim();
    if (!path) {
      problems.path = "Give the files' path below the connection's URL.";
    } else if (path.replace(/\\/g, '/').split('/').includes('..')) {
      problems.path = "A path stays below its connection's root: no '..'.";
    } else if (!answers.format && !suffixFormat(path)) {
      problems.format = 'Say the format (csv or parquet) of the files.';
    }
  }
  return problems;
}

/** The request for answers without problems. */
export function buildDataset(answers: INewDatasetAnswers): CreateDataset {
  const spec: CreateDataset = {
    name: answers.name.trim(),
    connection: answers.connection,
    description: answers.description.trim()
  };
  if (answers.kind === 'table') {
    spec.table = answers.table.trim();
    if (answers.dbSchema.trim()) {
      spec.db_schema = answers.dbSchema.trim();
    }
  } else if (answers.kind === 'query') {
    spec.query = answers.query;
  } else {
    spec.path = answers.path.trim();
    spec.format = answers.format || suffixFormat(spec.path) || undefined;
  }
  return spec;
}

/** The answer a refusal's field names (`db_schema` is `dbSchema`), if the form has one. */
export function datasetField(
  field: string | null
): keyof INewDatasetAnswers | null {
  if (field === 'db_schema') {
    return 'dbSchema';
  }
  const known: (keyof INewDatasetAnswers)[] = [
    'name',
    'connection',
    'description',
    'table',
    'query',
    'path',
    'format'
  ];
  return known.find(name => name === field) ?? null;
}
