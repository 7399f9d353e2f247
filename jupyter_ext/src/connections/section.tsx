/**
 * Connections: the ones shared with me, their details when I may read them, a real test with my
 * credentials, a snippet for the notebook I am working in, and my own credentials for the
 * per-user ones. Connections belong to the instance, not to a project: no project is needed.
 */
import { Button } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { errorText } from '../errors';
import { HimaliaModel } from '../model';
import { IHimaliaServices } from '../services';
import type { DescribeConnection } from '../types';
import {
  ActionButton,
  ErrorNotice,
  PageState,
  Pager
} from '../components/common';
import { ISectionProps, Section } from '../components/section';
import { usePagedList } from '../hooks/usePagedList';
import { insertConnectionSnippet, IInsertOutcome } from './snippetcommand';

export class ConnectionsSection extends Section {
  constructor(services: ConstructorParameters<typeof Section>[0]) {
    super(services, { id: 'himalia-connections', label: 'Connections' });
  }

  protected renderView(props: ISectionProps): JSX.Element {
    return <ConnectionsView {...props} />;
  }
}

function ConnectionsView({ model, services }: ISectionProps): JSX.Element {
  const connections = usePagedList(
    query => model.client.connections(query),
    [],
    model.settings.pageSize
  );
  const total = connections.page?.total;

  return (
    <div className="hml-view hml-connections">
      <div className="hml-toolbar">
        <span className="hml-summary">
          {total !== undefined
            ? `${total} connection${total === 1 ? '' : 's'}`
            : ''}
        </span>
        <ActionButton label="Refresh" onClick={() => connections.reload()} />
      </div>
      <PageState
        list={connections}
        empty="No connection is shared with you yet: its owner or an administrator decides who may use it."
      />
      {connections.items.length > 0 && (
        <ul className="hml-list" aria-label="Connections">
          {connections.items.map(connection => (
            <ConnectionRow
              key={connection.name}
              connection={connection}
              model={model}
              services={services}
            />
          ))}
        </ul>
      )}
      <Pager list={connections} />
    </div>
  );
}

interface ITestOutcome {
  ok: boolean;
  message: string;
}

function ConnectionRow(props: {
  connection: DescribeConnection;
  model: HimaliaModel;
  services: IHimaliaServices;
}): JSX.Element {
  const { model, services } = props;
  // The row keeps what the server last said of the connection (saving credentials changes it).
  const [connection, setConnection] = useState(props.connection);
  useEffect(() => setConnection(props.connection), [props.connection]);
  const [expanded, setExpanded] = useState(false);
  const [test, setTest] = useState<ITestOutcome | null>(null);
  const [snippet, setSnippet] = useState<IInsertOutcome | null>(null);
  const perUser = connection.credentials_mode === 'per_user';
  const bodyId = `hml-connection-${connection.name}`;

  const runTest = async () => {
    setTest(null);
    const result = await model.client.testConnection(connection.name);
    setTest({
      ok: result.ok,
      message: result.ok
        ? `Connected in ${result.elapsed_ms} ms`
        : result.message || 'The connection failed.'
    });
  };

  return (
    <li
      className={`hml-row hml-connection${connection.can_use ? '' : ' hml-unusable'}`}
      data-connection={connection.name}
    >
      <button
        className="hml-row-main"
        onClick={() => setExpanded(!expanded)}
        aria-expanded={expanded}
        aria-controls={bodyId}
        title={expanded ? 'Hide the details' : 'Show the details'}
      >
        <span className="hml-name">{connection.name}</span>
        <span className="hml-chip hml-connection-type">{connection.type}</span>
        <span
          className="hml-chip hml-credentials-mode"
          title={
            perUser
              ? 'Each user connects with their own credentials'
              : 'Everyone connects with the credentials stored with it'
          }
        >
          {perUser ? 'per-user credentials' : 'shared credentials'}
        </span>
        {perUser && connection.can_use && !connection.has_my_credentials && (
          <span className="hml-chip hml-chip-warn">my credentials not set</span>
        )}
        {!connection.can_use && (
          <span
            className="hml-chip"
            title="You may read its details but not use it"
          >
            details only
          </span>
        )}
        {connection.description && (
          <span className="hml-connection-description">
            {connection.description}
          </span>
        )}
      </button>
      {connection.can_use && (
        <div className="hml-buttons hml-connection-actions">
          <ActionButton
            label="Test"
            busyLabel="Testing…"
            title="Connect for real with my credentials"
            onClick={runTest}
            onError={message => setTest({ ok: false, message })}
          />
          <Button
            small
            type="button"
            title="A code cell below the active cell of the current notebook"
            onClick={() =>
              setSnippet(insertConnectionSnippet(services, connection))
            }
          >
            Insert snippet
          </Button>
        </div>
      )}
      {test && (
        <div
          className="hml-test-result"
          data-ok={test.ok ? 'true' : 'false'}
          role="status"
        >
          {test.message}
        </div>
      )}
      {snippet && (
        <div
          className={`hml-snippet-result${snippet.ok ? '' : ' hml-error'}`}
          data-ok={snippet.ok ? 'true' : 'false'}
          role="status"
        >
          {snippet.message}
        </div>
      )}
      {expanded && (
        <div className="hml-connection-body" id={bodyId}>
          <ConnectionDetails connection={connection} />
          {perUser && connection.can_use && (
            <CredentialsForm
              connection={connection}
              model={model}
              onSaved={setConnection}
            />
          )}
        </div>
      )}
    </li>
  );
}

function showValue(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function ConnectionDetails(props: {
  connection: DescribeConnection;
}): JSX.Element {
  const { connection } = props;
  const readable = connection.can_read_details;
  const params = Object.entries(connection.params ?? {});
  const secrets = connection.secret_names ?? [];
  return (
    <>
      <dl className="hml-facts">
        <dt>Owner</dt>
        <dd>{connection.owner}</dd>
        <dt>Use</dt>
        <dd>
          {connection.can_use
            ? 'you may use it'
            : `you may not use it: ask ${connection.owner}`}
        </dd>
        {readable && (
          <>
            <dt>Writes</dt>
            <dd>{connection.allow_write ? 'allowed' : 'read-only'}</dd>
            <dt>Secrets</dt>
            <dd className="hml-secret-names">
              {secrets.length === 0
                ? 'none stored with it'
                : secrets.map(name => (
                    <span key={name} className="hml-chip" title="value hidden">
                      {name}
                    </span>
                  ))}
            </dd>
          </>
        )}
      </dl>
      {readable ? (
        params.length > 0 && (
          <table className="hml-table hml-params" aria-label="Parameters">
            <thead>
              <tr>
                <th>Parameter</th>
                <th>Value</th>
              </tr>
            </thead>
            <tbody>
              {params.map(([key, value]) => (
                <tr key={key}>
                  <td>{key}</td>
                  <td className="hml-code">{showValue(value)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : (
        <p className="hml-note">
          Its parameters are not shown to you: you may only use it.
        </p>
      )}
    </>
  );
}

interface ISecretField {
  /** Stable React key. */
  id: number;
  name: string;
  value: string;
  /** Named by the connection (its name is fixed) or added here (its name is typed). */
  named: boolean;
}

const SECRET_HINTS: Record<string, string> = {
  sql: "'password' goes into the URL; any other secret is passed to the driver as a connect argument.",
  files:
    'Each secret is passed to fsspec as a storage option (for S3: key and secret).'
};

function initialFields(connection: DescribeConnection): ISecretField[] {
  const names = connection.secret_names?.length
    ? connection.secret_names
    : connection.type === 'sql'
      ? ['password']
      : [];
  return names.map((name, id) => ({ id, name, value: '', named: true }));
}

/**
 * My own secrets for a per-user connection. Never pre-filled: the server does not give stored
 * secrets back, and saving replaces all of mine at once.
 */
function CredentialsForm(props: {
  connection: DescribeConnection;
  model: HimaliaModel;
  onSaved: (connection: DescribeConnection) => void;
}): JSX.Element {
  const { connection, model } = props;
  const [fields, setFields] = useState<ISecretField[]>(() =>
    initialFields(connection)
  );
  const [nextId, setNextId] = useState(fields.length);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const stored = Boolean(connection.has_my_credentials);

  const update = (id: number, change: Partial<ISecretField>) => {
    setFields(
      fields.map(field => (field.id === id ? { ...field, ...change } : field))
    );
    setSaved(false);
  };

  const problem = (): string | null => {
    const names = fields.map(field => field.name.trim());
    if (names.some(name => name === '')) {
      return 'Name every secret.';
    }
    if (new Set(names).size !== names.length) {
      return 'Each secret name may appear once.';
    }
    if (fields.some(field => field.value === '')) {
      return stored
        ? 'Saving replaces all your stored secrets for this connection: fill in every field.'
        : 'Fill in every field, or remove the secrets you do not need.';
    }
    return null;
  };

  const save = async () => {
    const refusal = problem();
    if (refusal) {
      setError(refusal);
      return;
    }
    try {
      const secrets = Object.fromEntries(
        fields.map(field => [field.name.trim(), field.value])
      );
      const described = await model.client.setCredentials(
        connection.name,
        secrets
      );
      setFields(fields.map(field => ({ ...field, value: '' })));
      setError(null);
      setSaved(true);
      props.onSaved(described);
    } catch (failure) {
      setError(errorText(failure));
    }
  };

  return (
    <form
      className="hml-form hml-credentials"
      aria-label={`My credentials for ${connection.name}`}
      autoComplete="off"
      onSubmit={event => event.preventDefault()}
    >
      <div
        className="hml-credentials-state"
        data-set={stored ? 'true' : 'false'}
      >
        {stored
          ? 'Your credentials are set.'
          : 'Your credentials are not set: tests and notebooks cannot use this connection until you set them.'}
      </div>
      {fields.map(field => (
        <div key={field.id} className="hml-inline hml-secret-field">
          {field.named ? (
            <label
              className="hml-secret-label"
              htmlFor={`hml-secret-${connection.name}-${field.id}`}
            >
              {field.name}
            </label>
          ) : (
            <input
              className="jp-mod-styled hml-secret-name"
              aria-label="Secret name"
              placeholder="name"
              value={field.name}
              onChange={event => update(field.id, { name: event.target.value })}
            />
          )}
          <input
            id={`hml-secret-${connection.name}-${field.id}`}
            className="jp-mod-styled hml-secret-value"
            type="password"
            autoComplete="new-password"
            aria-label={
              field.named
                ? undefined
                : `Value of ${field.name || 'the new secret'}`
            }
            placeholder={
              stored && field.named ? 'stored — type to replace' : 'value'
            }
            value={field.value}
            onChange={event => update(field.id, { value: event.target.value })}
          />
          <Button
            small
            minimal
            type="button"
            title={`Remove ${field.name || 'this secret'}`}
            aria-label={`Remove ${field.name || 'this secret'}`}
            onClick={() => {
              setFields(fields.filter(item => item.id !== field.id));
              setSaved(false);
            }}
          >
            ✕
          </Button>
        </div>
      ))}
      <p className="hml-note">{SECRET_HINTS[connection.type] ?? ''}</p>
      <ErrorNotice error={error} />
      {saved && (
        <div className="hml-success" role="status">
          Your credentials are saved.
        </div>
      )}
      <div className="hml-buttons">
        <Button
          small
          minimal
          type="button"
          onClick={() => {
            setFields([
              ...fields,
              { id: nextId, name: '', value: '', named: false }
            ]);
            setNextId(nextId + 1);
          }}
        >
          Add a secret
        </Button>
        <ActionButton
          label="Save credentials"
          busyLabel="Saving…"
          accept
          onClick={save}
        />
      </div>
    </form>
  );
}
