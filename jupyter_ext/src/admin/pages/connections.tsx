/**
 * Connections: where data lives, who may use it and who may read its details; create and edit
 * them and test them for real.
 *
 * Secrets are write-only: the server never returns their values, so the page shows each secret's
 * name as "set" and asks for every value again when the secrets are replaced (they are one set).
 */
import * as React from 'react';

import type { HimaliaClient } from '../../api';
import { errorText } from '../../errors';
import type { DescribeConnection, DescribeGroup } from '../../types';
import type { IAdminPage, IAdminPageProps } from '../page';
import {
  AccessSpec,
  ConnectionTestResult,
  createConnection,
  CreateConnection,
  listConnections,
  refusedField,
  setMyCredentials,
  testConnection,
  deleteConnection,
  updateConnection,
  UpdateConnection
} from './resources';
import { listGroups } from './identity';

type Mode = AccessSpec['mode'];

function accessText(access: AccessSpec): string {
  if (access.mode === 'groups') {
    return `groups: ${access.groups?.join(', ') || 'none'}`;
  }
  return access.mode;
}

function secretsText(connection: DescribeConnection): string {
  if (connection.credentials_mode === 'per_user') {
    return `each person's own (mine: ${connection.has_my_credentials ? 'set' : 'not set'})`;
  }
  if (
    connection.secret_names === null ||
    connection.secret_names === undefined
  ) {
    return '—';
  }
  return connection.secret_names.length
    ? connection.secret_names.map(name => `${name}: set`).join(', ')
    : 'not set';
}

interface ISecretRow {
  name: string;
  value: string;
}

interface IDraft {
  name: string;
  type: 'sql' | 'files';
  description: string;
  url: string;
  /** The other non-secret parameters, as a JSON object. */
  params: string;
  credentials_mode: 'shared' | 'per_user';
  allow_write: boolean;
  usable_by: AccessSpec;
  details_readable_by: AccessSpec;
  /** Whether the secrets are sent (always for a new connection, on request for an edit). */
  replace_secrets: boolean;
  secrets: ISecretRow[];
}

function draftOf(connection: DescribeConnection | null): IDraft {
  const params = { ...(connection?.params ?? {}) } as Record<string, unknown>;
  const url = typeof params.url === 'string' ? params.url : '';
  delete params.url;
  return {
    name: connection?.name ?? '',
    type: (connection?.type as IDraft['type']) ?? 'sql',
    description: connection?.description ?? '',
    url,
    params: Object.keys(params).length ? JSON.stringify(params, null, 2) : '',
    credentials_mode:
      (connection?.credentials_mode as IDraft['credentials_mode']) ?? 'shared',
    allow_write: connection?.allow_write ?? false,
    usable_by: connection?.usable_by ?? { mode: 'nobody', groups: [] },
    details_readable_by: connection?.details_readable_by ?? {
      mode: 'nobody',
      groups: []
    },
    replace_secrets: connection === null,
    secrets: (connection?.secret_names ?? []).map(name => ({ name, value: '' }))
  };
}

class DraftError extends Error {
  constructor(
    readonly field: string,
    message: string
  ) {
    super(message);
  }
}

function paramsOf(draft: IDraft): Record<string, unknown> {
  let extra: unknown = {};
  if (draft.params.trim()) {
    try {
      extra = JSON.parse(draft.params);
    } catch {
      throw new DraftError('params', 'params: not valid JSON.');
    }
    if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) {
      throw new DraftError(
        'params',
        'params: a JSON object of names and values.'
      );
    }
  }
  return { ...(extra as Record<string, unknown>), url: draft.url.trim() };
}

function secretsOf(rows: ISecretRow[]): Record<string, string> {
  const secrets: Record<string, string> = {};
  for (const row of rows) {
    const name = row.name.trim();
    if (!name && !row.value) {
      continue;
    }
    if (!name) {
      throw new DraftError('secrets', 'secrets: every secret needs a name.');
    }
    if (!row.value) {
      throw new DraftError(
        'secrets',
        `secrets: enter the value of ${name} again, or remove it (the secrets are replaced together).`
      );
    }
    secrets[name] = row.value;
  }
  return secrets;
}

interface IRefusal {
  field: string | null;
  message: string;
}

function FieldError(props: {
  field: string;
  refusal: IRefusal | null;
}): React.ReactElement | null {
  const field = props.refusal?.field ?? '';
  if (field !== props.field && !field.startsWith(`${props.field}.`)) {
    return null;
  }
  return (
    <span className="hml-admin-field-error" role="alert">
      {props.refusal?.message}
    </span>
  );
}

function AccessPicker(props: {
  name: 'usable_by' | 'details_readable_by';
  label: string;
  access: AccessSpec;
  groups: DescribeGroup[];
  refusal: IRefusal | null;
  onChange: (access: AccessSpec) => void;
}): React.ReactElement {
  const { access } = props;
  const chosen = access.groups ?? [];
  return (
    <div className="hml-admin-field" data-field={props.name}>
      <span className="hml-admin-label">{props.label}</span>
      <select
        name={`${props.name}.mode`}
        aria-label={props.label}
        value={access.mode}
        onChange={event =>
          props.onChange({
            mode: event.target.value as Mode,
            groups: event.target.value === 'groups' ? chosen : []
          })
        }
      >
        <option value="nobody">only its owner and administrators</option>
        <option value="everyone">everyone</option>
        <option value="groups">these groups</option>
      </select>
      {access.mode === 'groups' && (
        <span className="hml-admin-choices">
          {props.groups.map(group => (
            <label key={group.name} className="hml-admin-choice">
              <input
                type="checkbox"
                name={`${props.name}.groups`}
                value={group.name}
                checked={chosen.includes(group.name)}
                onChange={() =>
                  props.onChange({
                    mode: 'groups',
                    groups: chosen.includes(group.name)
                      ? chosen.filter(name => name !== group.name)
                      : [...chosen, group.name]
                  })
                }
              />{' '}
              {group.name}
            </label>
          ))}
        </span>
      )}
      <FieldError field={props.name} refusal={props.refusal} />
    </div>
  );
}

function ConnectionEditor(props: {
  client: HimaliaClient;
  connection: DescribeConnection | null;
  groups: DescribeGroup[];
  onSaved: (connection: DescribeConnection) => void;
  onCancel: () => void;
}): React.ReactElement {
  const { client, connection } = props;
  const [draft, setDraft] = React.useState(() => draftOf(connection));
  const [refusal, setRefusal] = React.useState<IRefusal | null>(null);
  const [saving, setSaving] = React.useState(false);
  const update = (change: Partial<IDraft>) => setDraft({ ...draft, ...change });
  const text =
    (field: 'name' | 'description' | 'url' | 'params') =>
    (event: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) =>
      update({ [field]: event.target.value });
  const setSecret = (index: number, change: Partial<ISecretRow>) =>
    update({
      secrets: draft.secrets.map((row, at) =>
        at === index ? { ...row, ...change } : row
      )
    });
  const shared = draft.credentials_mode === 'shared';

  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    setRefusal(null);
    let saved: Promise<DescribeConnection>;
    try {
      const params = paramsOf(draft);
      const secrets =
        shared && draft.replace_secrets ? secretsOf(draft.secrets) : undefined;
      const common = {
        description: draft.description,
        params,
        credentials_mode: draft.credentials_mode,
        allow_write: draft.allow_write,
        usable_by: draft.usable_by,
        details_readable_by: draft.details_readable_by
      };
      if (connection === null) {
        const spec: CreateConnection = {
          ...common,
          name: draft.name.trim(),
          type: draft.type,
          secrets: secrets ?? {}
        };
        saved = createConnection(client, spec);
      } else {
        const spec: UpdateConnection = { ...common };
        if (secrets !== undefined) {
          spec.secrets = secrets;
        }
        saved = updateConnection(client, connection.name, spec);
      }
    } catch (error) {
      if (error instanceof DraftError) {
        setRefusal({ field: error.field, message: error.message });
        return;
      }
      throw error;
    }
    setSaving(true);
    try {
      props.onSaved(await saved);
    } catch (error) {
      setRefusal({ field: refusedField(error), message: errorText(error) });
    } finally {
      setSaving(false);
    }
  };

  const placed = [
    'name',
    'type',
    'description',
    'params',
    'params.url',
    'secrets',
    'credentials_mode',
    'allow_write',
    'usable_by',
    'details_readable_by'
  ];
  const unplaced =
    refusal &&
    !placed.includes(refusal.field ?? '') &&
    !(refusal.field ?? '').startsWith('params.');
  return (
    <form
      className="hml-admin-connection-editor"
      onSubmit={save}
      aria-label={
        connection ? `Edit the connection ${connection.name}` : 'New connection'
      }
    >
      <h3>{connection ? `Edit ${connection.name}` : 'New connection'}</h3>
      {connection === null && (
        <>
          <div className="hml-admin-field" data-field="name">
            <label>
              <span className="hml-admin-label">Name</span>
              <input name="name" value={draft.name} onChange={text('name')} />
            </label>
            <FieldError field="name" refusal={refusal} />
          </div>
          <div className="hml-admin-field" data-field="type">
            <label>
              <span className="hml-admin-label">Type</span>
              <select
                name="type"
                value={draft.type}
                onChange={event =>
                  update({ type: event.target.value as IDraft['type'] })
                }
              >
                <option value="sql">sql (a SQLAlchemy URL)</option>
                <option value="files">files (an fsspec URL)</option>
              </select>
            </label>
          </div>
        </>
      )}
      <div className="hml-admin-field" data-field="description">
        <label>
          <span className="hml-admin-label">Description</span>
          <input
            name="description"
            value={draft.description}
            onChange={text('description')}
          />
        </label>
        <FieldError field="description" refusal={refusal} />
      </div>
      <div className="hml-admin-field" data-field="params.url">
        <label>
          <span className="hml-admin-label">URL (no password in it)</span>
          <input
            name="url"
            size={50}
            value={draft.url}
            onChange={text('url')}
            placeholder={
              draft.type === 'sql'
                ? 'postgresql://reader@db/warehouse'
                : 's3://bucket/path'
            }
          />
        </label>
        <FieldError field="params.url" refusal={refusal} />
      </div>
      <div className="hml-admin-field" data-field="params">
        <label>
          <span className="hml-admin-label">Other parameters (JSON)</span>
          <textarea
            name="params"
            rows={2}
            cols={50}
            value={draft.params}
            onChange={text('params')}
          />
        </label>
        {refusal?.field !== 'params.url' && (
          <FieldError field="params" refusal={refusal} />
        )}
      </div>
      <div className="hml-admin-field" data-field="credentials_mode">
        <label>
          <span className="hml-admin-label">Credentials</span>
          <select
            name="credentials_mode"
            value={draft.credentials_mode}
            onChange={event =>
              update({
                credentials_mode: event.target
                  .value as IDraft['credentials_mode']
              })
            }
          >
            <option value="shared">
              shared: one set for everyone who may use it
            </option>
            <option value="per_user">per person: each sets their own</option>
          </select>
        </label>
        <FieldError field="credentials_mode" refusal={refusal} />
      </div>
      {shared && (
        <fieldset className="hml-admin-secrets" data-field="secrets">
          <legend>Secrets (write-only: never shown again)</legend>
          {connection !== null && (
            <p>
              Now: {secretsText(connection)}.{' '}
              <label>
                <input
                  type="checkbox"
                  name="replace_secrets"
                  checked={draft.replace_secrets}
                  onChange={event =>
                    update({ replace_secrets: event.target.checked })
                  }
                />{' '}
                Replace the secrets (enter every value; leaving this unticked
                keeps them)
              </label>
            </p>
          )}
          {draft.replace_secrets && (
            <>
              {draft.secrets.map((row, index) => (
                <div key={index} className="hml-admin-secret">
                  <input
                    name="secret-name"
                    aria-label="Secret name"
                    placeholder="password"
                    value={row.name}
                    onChange={event =>
                      setSecret(index, { name: event.target.value })
                    }
                  />{' '}
                  <input
                    name="secret-value"
                    aria-label={`Value of ${row.name || 'the secret'}`}
                    type="password"
                    autoComplete="new-password"
                    placeholder={
                      connection?.secret_names?.includes(row.name)
                        ? 'set: enter it again'
                        : 'value'
                    }
                    value={row.value}
                    onChange={event =>
                      setSecret(index, { value: event.target.value })
                    }
                  />{' '}
                  <button
                    type="button"
                    onClick={() =>
                      update({
                        secrets: draft.secrets.filter((_, at) => at !== index)
                      })
                    }
                  >
                    Remove
                  </button>
                </div>
              ))}
              <button
                type="button"
                onClick={() =>
                  update({
                    secrets: [...draft.secrets, { name: '', value: '' }]
                  })
                }
              >
                Add a secret
              </button>
            </>
          )}
          <FieldError field="secrets" refusal={refusal} />
        </fieldset>
      )}
      <div className="hml-admin-field" data-field="allow_write">
        <label>
          <span className="hml-admin-label">Writes allowed</span>
          <input
            type="checkbox"
            name="allow_write"
            checked={draft.allow_write}
            onChange={event => update({ allow_write: event.target.checked })}
          />
        </label>
        <FieldError field="allow_write" refusal={refusal} />
      </div>
      <AccessPicker
        name="usable_by"
        label="Usable by"
        access={draft.usable_by}
        groups={props.groups}
        refusal={refusal}
        onChange={usable_by => update({ usable_by })}
      />
      <AccessPicker
        name="details_readable_by"
        label="Details readable by"
        access={draft.details_readable_by}
        groups={props.groups}
        refusal={refusal}
        onChange={details_readable_by => update({ details_readable_by })}
      />
      {unplaced && (
        <p className="hml-admin-refusal" role="alert">
          {refusal?.message}
        </p>
      )}
      <p>
        <button type="submit" className="hml-admin-primary" disabled={saving}>
          {connection ? 'Save' : 'Create'}
        </button>{' '}
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </p>
    </form>
  );
}

function TestOutcome(props: {
  outcome: ConnectionTestResult | string;
}): React.ReactElement {
  const { outcome } = props;
  if (typeof outcome === 'string') {
    return (
      <span className="hml-admin-test-outcome" data-ok="false">
        {outcome}
      </span>
    );
  }
  return (
    <span className="hml-admin-test-outcome" data-ok={String(outcome.ok)}>
      {outcome.ok ? 'Works' : 'Fails'}: {outcome.message} ({outcome.elapsed_ms}{' '}
      ms)
    </span>
  );
}

/** One's own secrets for a per_user connection: write-only as the shared ones. */
function MyCredentials(props: {
  client: HimaliaClient;
  connection: DescribeConnection;
  onSaved: () => void;
  onCancel: () => void;
}): React.ReactElement {
  const { connection } = props;
  const [rows, setRows] = React.useState<ISecretRow[]>([
    { name: 'password', value: '' }
  ]);
  const [refusal, setRefusal] = React.useState<IRefusal | null>(null);
  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    setRefusal(null);
    try {
      await setMyCredentials(props.client, connection.name, {
        secrets: secretsOf(rows)
      });
      props.onSaved();
    } catch (error) {
      setRefusal({
        field: error instanceof DraftError ? error.field : refusedField(error),
        message: errorText(error)
      });
    }
  };
  return (
    <form
      className="hml-admin-connection-editor"
      onSubmit={save}
      aria-label={`My credentials for ${connection.name}`}
    >
      <h3>My credentials for {connection.name}</h3>
      <p>
        Now: {connection.has_my_credentials ? 'set' : 'not set'}. Saving
        replaces them; they are never shown again.
      </p>
      {rows.map((row, index) => (
        <div key={index} className="hml-admin-secret">
          <input
            name="secret-name"
            aria-label="Secret name"
            value={row.name}
            onChange={event =>
              setRows(
                rows.map((r, at) =>
                  at === index ? { ...r, name: event.target.value } : r
                )
              )
            }
          />{' '}
          <input
            name="secret-value"
            aria-label={`Value of ${row.name || 'the secret'}`}
            type="password"
            autoComplete="new-password"
            value={row.value}
            onChange={event =>
              setRows(
                rows.map((r, at) =>
                  at === index ? { ...r, value: event.target.value } : r
                )
              )
            }
          />
        </div>
      ))}
      <button
        type="button"
        onClick={() => setRows([...rows, { name: '', value: '' }])}
      >
        Add a secret
      </button>
      <FieldError field="secrets" refusal={refusal} />
      {refusal && !(refusal.field ?? '').startsWith('secrets') && (
        <p className="hml-admin-refusal" role="alert">
          {refusal.message}
        </p>
      )}
      <p>
        <button type="submit" className="hml-admin-primary">
          Save my credentials
        </button>{' '}
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </p>
    </form>
  );
}

function ConnectionsPage(props: IAdminPageProps): React.ReactElement {
  const { client } = props;
  const [connections, setConnections] = React.useState<
    DescribeConnection[] | null
  >(null);
  const [groups, setGroups] = React.useState<DescribeGroup[]>([]);
  const [editing, setEditing] = React.useState<
    DescribeConnection | 'new' | null
  >(null);
  const [outcomes, setOutcomes] = React.useState<
    Record<string, ConnectionTestResult | string | undefined>
  >({});
  const [testing, setTesting] = React.useState<string | null>(null);
  const [credentialsFor, setCredentialsFor] =
    React.useState<DescribeConnection | null>(null);
  const [failure, setFailure] = React.useState('');
  const [deleting, setDeleting] = React.useState<string | null>(null);
  const [refusals, setRefusals] = React.useState<Record<string, string>>({});

  const reload = React.useCallback(() => {
    listConnections(client).then(setConnections, error =>
      setFailure(errorText(error))
    );
  }, [client]);
  React.useEffect(() => {
    reload();
    listGroups(client).then(setGroups, error => setFailure(errorText(error)));
  }, [client, reload]);

  const test = async (name: string) => {
    setTesting(name);
    setOutcomes(current => ({ ...current, [name]: undefined }));
    let outcome: ConnectionTestResult | string;
    try {
      outcome = await testConnection(client, name);
    } catch (error) {
      outcome = errorText(error);
    }
    setOutcomes(current => ({ ...current, [name]: outcome }));
    setTesting(null);
  };

  const remove = async (name: string) => {
    setDeleting(null);
    try {
      await deleteConnection(client, name);
      setRefusals(current => ({ ...current, [name]: '' }));
    } catch (error) {
      setRefusals(current => ({ ...current, [name]: errorText(error) }));
    }
    reload();
  };

  if (connections === null) {
    return failure ? (
      <p className="hml-admin-refusal">{failure}</p>
    ) : (
      <p>Loading…</p>
    );
  }
  const mayCreate =
    Boolean(props.me.global_permissions.admin) ||
    Boolean(props.me.global_permissions.create_connections);
  return (
    <div className="hml-admin-connections">
      <h2>Connections</h2>
      <p>
        Where data lives. Who may use a connection reads its data with its
        credentials; who may read its details sees its parameters and which
        secrets it holds, never their values.
      </p>
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
      <table className="hml-admin-connection-table">
        <thead>
          <tr>
            <th>Connection</th>
            <th>Type</th>
            <th>Owner</th>
            <th>Credentials</th>
            <th>Secrets</th>
            <th>Usable by</th>
            <th>Details readable by</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {connections.map(connection => (
            <tr key={connection.name} data-connection={connection.name}>
              <td>
                <b>{connection.name}</b>
                {connection.description && (
                  <>
                    <br />
                    <small>{connection.description}</small>
                  </>
                )}
              </td>
              <td>
                {connection.type}
                {connection.allow_write ? ', writes' : ''}
              </td>
              <td>{connection.owner}</td>
              <td>
                {connection.credentials_mode === 'per_user'
                  ? 'per person'
                  : 'shared'}
              </td>
              <td className="hml-admin-secret-state">
                {secretsText(connection)}
              </td>
              <td>{accessText(connection.usable_by)}</td>
              <td>{accessText(connection.details_readable_by)}</td>
              <td>
                {connection.can_manage && (
                  <button type="button" onClick={() => setEditing(connection)}>
                    Edit
                  </button>
                )}{' '}
                {connection.can_use &&
                  connection.credentials_mode === 'per_user' && (
                    <button
                      type="button"
                      onClick={() => setCredentialsFor(connection)}
                    >
                      My credentials
                    </button>
                  )}{' '}
                {connection.can_use && (
                  <button
                    type="button"
                    disabled={testing === connection.name}
                    onClick={() => test(connection.name)}
                  >
                    {testing === connection.name ? 'Testing…' : 'Test'}
                  </button>
                )}{' '}
                {connection.can_manage && deleting !== connection.name && (
                  <button
                    type="button"
                    className="hml-admin-danger"
                    onClick={() => setDeleting(connection.name)}
                  >
                    Delete
                  </button>
                )}
                {deleting === connection.name && (
                  <span className="hml-admin-confirm" role="group">
                    Delete {connection.name}? Its secrets and everyone&apos;s
                    credentials for it are erased.{' '}
                    <button
                      type="button"
                      className="hml-admin-danger"
                      onClick={() => remove(connection.name)}
                    >
                      Delete it
                    </button>{' '}
                    <button type="button" onClick={() => setDeleting(null)}>
                      Keep it
                    </button>
                  </span>
                )}{' '}
                {outcomes[connection.name] !== undefined && (
                  <TestOutcome outcome={outcomes[connection.name]!} />
                )}
                {refusals[connection.name] && (
                  <p className="hml-admin-refusal" role="alert">
                    {refusals[connection.name]}
                  </p>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {connections.length === 0 && (
        <p>No connection you may use or read yet.</p>
      )}
      {mayCreate && (
        <p>
          <button type="button" onClick={() => setEditing('new')}>
            New connection
          </button>
        </p>
      )}
      {credentialsFor !== null && (
        <MyCredentials
          key={credentialsFor.name}
          client={client}
          connection={credentialsFor}
          onCancel={() => setCredentialsFor(null)}
          onSaved={() => {
            setCredentialsFor(null);
            reload();
          }}
        />
      )}
      {editing !== null && (
        <ConnectionEditor
          key={editing === 'new' ? '(new)' : editing.name}
          client={client}
          connection={editing === 'new' ? null : editing}
          groups={groups}
          onCancel={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            reload();
          }}
        />
      )}
    </div>
  );
}

export const CONNECTIONS_PAGE: IAdminPage = {
  id: 'connections',
  title: 'Connections',
  permissions: ['create_connections'],
  component: ConnectionsPage
};
