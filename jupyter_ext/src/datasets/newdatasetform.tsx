/**
 * "New dataset" in the Data quality section: a name, one of the connections I may use, and a
 * table, a query or files below it. Checked as it is typed (newdataset.ts); the server reads
 * its schema on creation, and its refusal (a table that does not exist, a connection I may not
 * use) is shown under the field it names.
 */
import { Button } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { ApiError } from '../api';
import { ErrorNotice, Loading } from '../components/common';
import { errorText } from '../errors';
import { useAsync } from '../hooks/useAsync';
import { HimaliaModel } from '../model';
import type { DescribeDataset } from '../types';
import {
  DatasetKind,
  INewDatasetAnswers,
  buildDataset,
  checkDataset,
  datasetField,
  kindsOf
} from './newdataset';

const EMPTY: INewDatasetAnswers = {
  name: '',
  connection: '',
  description: '',
  kind: 'table',
  table: '',
  dbSchema: '',
  query: '',
  path: '',
  format: ''
};

const KIND_LABELS: Record<DatasetKind, string> = {
  table: 'Table',
  query: 'Query',
  files: 'Files'
};

export function NewDatasetForm(props: {
  model: HimaliaModel;
  projectKey: string;
  onCreated: (dataset: DescribeDataset) => void;
  onCancel: () => void;
}): JSX.Element {
  const { model, projectKey } = props;
  const connections = useAsync(
    async () =>
      (await model.client.connections({ limit: 500 })).items.filter(
        connection => connection.can_use
      ),
    []
  );
  const [answers, setAnswers] = useState(EMPTY);
  const [tried, setTried] = useState(false);
  const [busy, setBusy] = useState(false);
  const [refusal, setRefusal] = useState<{
    field: keyof INewDatasetAnswers | null;
    message: string;
  } | null>(null);

  const usable = connections.value ?? [];
  const chosen = usable.find(c => c.name === answers.connection);
  const kinds = kindsOf(chosen?.type);
  const problems = {
    ...checkDataset(answers, chosen?.type),
    ...(refusal?.field ? { [refusal.field]: refusal.message } : {})
  };
  const shown = (field: keyof INewDatasetAnswers) =>
    tried || refusal?.field === field ? problems[field] : undefined;

  const change = (patch: Partial<INewDatasetAnswers>) => {
    const next = { ...answers, ...patch };
    if (patch.connection !== undefined) {
      const type = usable.find(c => c.name === patch.connection)?.type;
      const offered = kindsOf(type);
      if (!offered.includes(next.kind) && offered.length > 0) {
        next.kind = offered[0];
      }
    }
    setAnswers(next);
    setRefusal(null);
  };

  const submit = async () => {
    setTried(true);
    if (Object.keys(checkDataset(answers, chosen?.type)).length > 0) {
      return;
    }
    setBusy(true);
    try {
      const created = await model.client.createDataset(
        projectKey,
        buildDataset(answers)
      );
      props.onCreated(created);
    } catch (failure) {
      const field =
        failure instanceof ApiError ? datasetField(failure.field) : null;
      setRefusal({ field, message: errorText(failure) });
    } finally {
      setBusy(false);
    }
  };

  const input = (
    field: keyof INewDatasetAnswers,
    label: string,
    extra: { placeholder?: string; help?: string } = {}
  ) => (
    <label className="hml-field">
      <span>{label}</span>
      <input
        className={`jp-mod-styled${shown(field) ? ' jp-mod-error' : ''}`}
        name={field}
        value={answers[field]}
        placeholder={extra.placeholder}
        aria-invalid={Boolean(shown(field))}
        onChange={event => change({ [field]: event.target.value })}
      />
      {shown(field) ? (
        <span className="hml-field-error">{shown(field)}</span>
      ) : (
        extra.help && <span className="hml-help">{extra.help}</span>
      )}
    </label>
  );

  return (
    <form
      className="hml-form hml-dq-new"
      aria-label={`New dataset in ${projectKey}`}
      onSubmit={event => {
        event.preventDefault();
        void submit();
      }}
    >
      <h4>New dataset</h4>
      {connections.loading && !connections.value && <Loading />}
      <ErrorNotice error={connections.error} />
      {connections.value && usable.length === 0 && (
        <div className="hml-empty">
          You may use no connection: a dataset reads one. Ask a
          connection&apos;s owner to let one of your groups use it.
        </div>
      )}
      {usable.length > 0 && (
        <>
          {input('name', 'Name', { placeholder: 'transactions_2019' })}
          <label className="hml-field">
            <span>Connection</span>
            <select
              className={`jp-mod-styled${shown('connection') ? ' jp-mod-error' : ''}`}
              name="connection"
              value={answers.connection}
              onChange={event => change({ connection: event.target.value })}
            >
              <option value="">Choose…</option>
              {usable.map(connection => (
                <option key={connection.name} value={connection.name}>
                  {connection.name} ({connection.type})
                </option>
              ))}
            </select>
            {shown('connection') && (
              <span className="hml-field-error">{shown('connection')}</span>
            )}
          </label>
          {kinds.length > 1 && (
            <fieldset className="hml-field hml-dq-kind">
              <legend>Reads</legend>
              {kinds.map(kind => (
                <label key={kind}>
                  <input
                    type="radio"
                    name="kind"
                    value={kind}
                    checked={answers.kind === kind}
                    onChange={() => change({ kind })}
                  />{' '}
                  {KIND_LABELS[kind]}
                </label>
              ))}
            </fieldset>
          )}
          {shown('kind') && (
            <span className="hml-field-error">{shown('kind')}</span>
          )}
          {chosen && answers.kind === 'table' && (
            <>
              {input('table', 'Table', { placeholder: 'transactions_2019' })}
              {input('dbSchema', 'Schema (optional)')}
            </>
          )}
          {chosen && answers.kind === 'query' && (
            <label className="hml-field">
              <span>Query</span>
              <textarea
                className={`jp-mod-styled${shown('query') ? ' jp-mod-error' : ''}`}
                name="query"
                rows={4}
                value={answers.query}
                placeholder="SELECT … FROM …"
                onChange={event => change({ query: event.target.value })}
              />
              {shown('query') && (
                <span className="hml-field-error">{shown('query')}</span>
              )}
            </label>
          )}
          {chosen && answers.kind === 'files' && (
            <>
              {input('path', 'Path', {
                placeholder: 'sales/2019-*.csv',
                help: "Below the connection's URL; globs allowed."
              })}
              <label className="hml-field">
                <span>Format</span>
                <select
                  className={`jp-mod-styled${shown('format') ? ' jp-mod-error' : ''}`}
                  name="format"
                  value={answers.format}
                  onChange={event =>
                    change({
                      format: event.target.value as INewDatasetAnswers['format']
                    })
                  }
                >
                  <option value="">From the suffix</option>
                  <option value="csv">CSV</option>
                  <option value="parquet">Parquet</option>
                </select>
                {shown('format') && (
                  <span className="hml-field-error">{shown('format')}</span>
                )}
              </label>
            </>
          )}
          {input('description', 'Description (optional)')}
        </>
      )}
      {refusal && refusal.field === null && (
        <ErrorNotice error={refusal.message} />
      )}
      <div className="hml-buttons">
        <Button
          small
          type="submit"
          className="jp-mod-styled jp-mod-accept"
          disabled={busy || usable.length === 0}
          aria-busy={busy}
        >
          {busy ? 'Reading its schema…' : 'Create'}
        </Button>
        <Button
          small
          type="button"
          className="jp-mod-styled"
          onClick={props.onCancel}
        >
          Cancel
        </Button>
      </div>
    </form>
  );
}
