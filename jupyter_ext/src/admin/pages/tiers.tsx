/**
 * Tiers: every hardware tier with its size, price, groups, limits and what runs on it; an editor
 * whose refusals stand next to the field the server names; archive and unarchive; and the spawn
 * form exactly as the hub would show it to a chosen group, in a sandboxed frame.
 */
import * as React from 'react';

import type { HimaliaClient } from '../../api';
import { errorText } from '../../errors';
import type { DescribeGroup } from '../../types';
import type { IAdminPage, IAdminPageProps } from '../page';
import {
  DescribeTier,
  DescribeUsage,
  listTiers,
  putTier,
  refusedField,
  runningOn,
  SpawnFormPreview,
  spawnFormPreview,
  TierSpec
} from './resources';
import { listGroups } from './identity';
import {
  cores,
  DraftError,
  draftOf,
  IDraft,
  limits,
  memory,
  specFrom,
  specOf
} from './tierform';

interface IRefusal {
  field: string | null;
  message: string;
}

function Field(props: {
  name: keyof IDraft;
  label: string;
  refusal: IRefusal | null;
  /** Several inputs of their own (checkboxes): a labelled group, not one label. */
  several?: boolean;
  children: React.ReactNode;
}): React.ReactElement {
  const refused = props.refusal?.field === props.name;
  const title = <span className="hml-admin-label">{props.label}</span>;
  return (
    <div className="hml-admin-field" data-field={props.name}>
      {props.several ? (
        <span role="group" aria-label={props.label}>
          {title}
          {props.children}
        </span>
      ) : (
        <label>
          {title}
          {props.children}
        </label>
      )}
      {refused && (
        <span className="hml-admin-field-error" role="alert">
          {props.refusal?.message}
        </span>
      )}
    </div>
  );
}

function TierEditor(props: {
  client: HimaliaClient;
  tier: DescribeTier | null;
  groups: DescribeGroup[];
  onSaved: (tier: DescribeTier) => void;
  onCancel: () => void;
}): React.ReactElement {
  const { client, tier, groups } = props;
  const [draft, setDraft] = React.useState(() => draftOf(tier));
  const [refusal, setRefusal] = React.useState<IRefusal | null>(null);
  const [saving, setSaving] = React.useState(false);

  const set =
    (field: keyof IDraft) =>
    (event: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) =>
      setDraft({ ...draft, [field]: event.target.value });
  const input = (field: keyof IDraft, decimal = false) => (
    <input
      name={field}
      value={String(draft[field])}
      onChange={set(field)}
      inputMode={decimal ? 'decimal' : 'text'}
      aria-invalid={refusal?.field === field}
    />
  );
  const toggleGroup = (name: string) =>
    setDraft({
      ...draft,
      allowed_groups: draft.allowed_groups.includes(name)
        ? draft.allowed_groups.filter(group => group !== name)
        : [...draft.allowed_groups, name]
    });

  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    setRefusal(null);
    let spec: TierSpec;
    try {
      spec = specFrom(draft, tier);
    } catch (error) {
      if (error instanceof DraftError) {
        setRefusal({ field: error.field, message: error.message });
        return;
      }
      throw error;
    }
    const name = tier?.name ?? draft.name.trim();
    if (!name) {
      setRefusal({ field: 'name', message: 'name: the tier needs a name.' });
      return;
    }
    setSaving(true);
    try {
      props.onSaved(await putTier(client, name, spec));
    } catch (error) {
      setRefusal({ field: refusedField(error), message: errorText(error) });
    } finally {
      setSaving(false);
    }
  };

  const known = new Set([
    'name',
    ...Object.keys(draftOf(null)).filter(field => field !== 'name')
  ]);
  return (
    <form
      className="hml-admin-tier-editor"
      onSubmit={save}
      aria-label={tier ? `Edit the tier ${tier.name}` : 'New tier'}
    >
      <h3>{tier ? `Edit ${tier.display_name || tier.name}` : 'New tier'}</h3>
      {!tier && (
        <Field name="name" label="Name (a-z, 0-9, -)" refusal={refusal}>
          {input('name')}
        </Field>
      )}
      <Field name="display_name" label="Display name" refusal={refusal}>
        {input('display_name')}
      </Field>
      <Field name="description" label="Description" refusal={refusal}>
        {input('description')}
      </Field>
      <Field name="cpu_request" label="Cores guaranteed" refusal={refusal}>
        {input('cpu_request', true)}
      </Field>
      <Field
        name="cpu_limit"
        label="Cores at most (empty: no limit)"
        refusal={refusal}
      >
        {input('cpu_limit', true)}
      </Field>
      <Field
        name="memory_request"
        label="Memory guaranteed (Gi)"
        refusal={refusal}
      >
        {input('memory_request', true)}
      </Field>
      <Field
        name="memory_limit"
        label="Memory at most (Gi; empty: no limit)"
        refusal={refusal}
      >
        {input('memory_limit', true)}
      </Field>
      <Field name="gpus" label="GPUs" refusal={refusal}>
        {input('gpus')}
      </Field>
      <Field
        name="cost_per_hour"
        label={`Cost per hour (${tier?.currency ?? 'instance currency'})`}
        refusal={refusal}
      >
        {input('cost_per_hour', true)}
      </Field>
      <Field
        name="max_servers_per_user"
        label="Servers per person at once"
        refusal={refusal}
      >
        {input('max_servers_per_user')}
      </Field>
      <Field
        name="max_servers"
        label="Servers in all at once"
        refusal={refusal}
      >
        {input('max_servers')}
      </Field>
      <Field
        name="allowed_groups"
        label="Allowed groups (none: everyone)"
        refusal={refusal}
        several
      >
        <span>
          {groups.map(group => (
            <label key={group.name} className="hml-admin-choice">
              <input
                type="checkbox"
                name="allowed_groups"
                value={group.name}
                checked={draft.allowed_groups.includes(group.name)}
                onChange={() => toggleGroup(group.name)}
              />{' '}
              {group.name}
            </label>
          ))}
        </span>
      </Field>
      <Field name="default" label="Preselected in the form" refusal={refusal}>
        <input
          type="checkbox"
          name="default"
          checked={draft.default}
          onChange={event =>
            setDraft({ ...draft, default: event.target.checked })
          }
        />
      </Field>
      {refusal && !known.has(refusal.field ?? '') && (
        <p className="hml-admin-refusal" role="alert">
          {refusal.message}
        </p>
      )}
      <p>
        <button type="submit" className="hml-admin-primary" disabled={saving}>
          Save
        </button>{' '}
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </p>
    </form>
  );
}

function RunningNow(props: {
  client: HimaliaClient;
  tier: string;
  version: number;
}): React.ReactElement {
  const [usage, setUsage] = React.useState<DescribeUsage[] | null>(null);
  const [failure, setFailure] = React.useState('');
  React.useEffect(() => {
    let current = true; // an answer for a tier no longer watched is dropped
    runningOn(props.client, props.tier).then(
      page => current && setUsage(page.items),
      error => current && setFailure(errorText(error))
    );
    return () => {
      current = false;
    };
  }, [props.client, props.tier, props.version]);
  if (failure) {
    return <p className="hml-admin-refusal">{failure}</p>;
  }
  if (usage === null) {
    return <p>Loading…</p>;
  }
  if (usage.length === 0) {
    return (
      <p className="hml-admin-running-none">
        Nothing runs on {props.tier} now.
      </p>
    );
  }
  return (
    <table
      className="hml-admin-running"
      aria-label={`Running on ${props.tier}`}
    >
      <thead>
        <tr>
          <th>What</th>
          <th>Person</th>
          <th>Project</th>
          <th>Started</th>
        </tr>
      </thead>
      <tbody>
        {usage.map(row => (
          <tr key={row.id} data-kind={row.kind}>
            <td>
              {row.kind === 'server'
                ? `server ${row.server_name ? `“${row.server_name}”` : '(default)'}`
                : `scenario run #${row.run_id}`}
            </td>
            <td>{row.user}</td>
            <td>{row.project ?? '—'}</td>
            <td>{new Date(row.started_at).toLocaleString()}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Preview(props: {
  client: HimaliaClient;
  groups: DescribeGroup[];
  version: number;
}): React.ReactElement {
  const [group, setGroup] = React.useState<string | null>(null);
  const [preview, setPreview] = React.useState<SpawnFormPreview | null>(null);
  const [failure, setFailure] = React.useState('');
  React.useEffect(() => {
    let current = true; // an answer for a group no longer chosen is dropped
    setFailure('');
    spawnFormPreview(props.client, group).then(
      answer => current && setPreview(answer),
      error => current && setFailure(errorText(error))
    );
    return () => {
      current = false;
    };
  }, [props.client, group, props.version]);
  return (
    <section className="hml-admin-preview" aria-label="Spawn form preview">
      <h3>The spawn form as a group sees it</h3>
      <label>
        Someone in the group{' '}
        <select
          name="preview-group"
          value={group ?? ''}
          onChange={event => setGroup(event.target.value || null)}
        >
          <option value="">(no group)</option>
          {props.groups.map(item => (
            <option key={item.name} value={item.name}>
              {item.name}
            </option>
          ))}
        </select>{' '}
        and no other is offered:{' '}
        <span className="hml-admin-preview-tiers">
          {preview ? preview.tiers.join(', ') || 'no tier' : ''}
        </span>
      </label>
      {failure && <p className="hml-admin-refusal">{failure}</p>}
      {preview && (
        <iframe
          // A new frame for each form: a srcdoc changed while the last one loads can be ignored.
          key={preview.html}
          title="Spawn form preview"
          className="hml-admin-preview-frame"
          sandbox=""
          srcDoc={`<!doctype html><meta charset="utf-8"><body style="font-family:system-ui;background:#fff;color:#1f2328">${preview.html}</body>`}
        />
      )}
    </section>
  );
}

function TiersPage(props: IAdminPageProps): React.ReactElement {
  const { client } = props;
  const [tiers, setTiers] = React.useState<DescribeTier[] | null>(null);
  const [groups, setGroups] = React.useState<DescribeGroup[]>([]);
  const [editing, setEditing] = React.useState<DescribeTier | 'new' | null>(
    null
  );
  const [watched, setWatched] = React.useState<string | null>(null);
  const [failure, setFailure] = React.useState('');
  const [version, setVersion] = React.useState(0);

  const reload = React.useCallback(() => {
    listTiers(client).then(
      list => {
        setTiers(list);
        setVersion(value => value + 1);
      },
      error => setFailure(errorText(error))
    );
  }, [client]);
  React.useEffect(() => {
    reload();
    listGroups(client).then(setGroups, error => setFailure(errorText(error)));
  }, [client, reload]);

  const setArchived = async (tier: DescribeTier, archived: boolean) => {
    setFailure('');
    try {
      await putTier(client, tier.name, {
        ...specOf(tier),
        archived,
        default: archived ? false : tier.default
      });
      reload();
    } catch (error) {
      setFailure(errorText(error));
    }
  };

  if (tiers === null) {
    return failure ? (
      <p className="hml-admin-refusal">{failure}</p>
    ) : (
      <p>Loading…</p>
    );
  }
  return (
    <div className="hml-admin-tiers">
      <h2>Hardware tiers</h2>
      <p>
        What a workspace or a scenario run gets, who may choose it and how many
        run at once. Changes apply to the next spawn form and the next server or
        run started.
      </p>
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
      <table className="hml-admin-tier-table">
        <thead>
          <tr>
            <th>Tier</th>
            <th>Cores</th>
            <th>Memory (Gi)</th>
            <th>GPUs</th>
            <th>Cost per hour</th>
            <th>Allowed groups</th>
            <th>Limits</th>
            <th>Running</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {tiers.map(tier => (
            <tr
              key={tier.name}
              data-tier={tier.name}
              data-archived={tier.archived}
            >
              <td>
                <b>{tier.display_name || tier.name}</b>
                {tier.display_name && tier.display_name !== tier.name && (
                  <small> ({tier.name})</small>
                )}
                {tier.default && <small> · default</small>}
                {tier.archived && <small> · archived</small>}
              </td>
              <td>{cores(tier)}</td>
              <td>{memory(tier)}</td>
              <td>{tier.gpus}</td>
              <td>
                {tier.cost_per_hour} {tier.currency}
              </td>
              <td>{tier.allowed_groups?.join(', ') ?? 'everyone'}</td>
              <td>{limits(tier)}</td>
              <td className="hml-admin-tier-running">
                {tier.running_servers} server
                {tier.running_servers === 1 ? '' : 's'}, {tier.running_runs} run
                {tier.running_runs === 1 ? '' : 's'}
              </td>
              <td className="hml-admin-actions">
                <button type="button" onClick={() => setEditing(tier)}>
                  Edit
                </button>{' '}
                <button
                  type="button"
                  onClick={() => setArchived(tier, !tier.archived)}
                >
                  {tier.archived ? 'Unarchive' : 'Archive'}
                </button>{' '}
                <button
                  type="button"
                  aria-pressed={watched === tier.name}
                  onClick={() =>
                    setWatched(watched === tier.name ? null : tier.name)
                  }
                >
                  What runs
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p>
        <button type="button" onClick={() => setEditing('new')}>
          New tier
        </button>
      </p>
      {editing !== null && (
        <TierEditor
          key={editing === 'new' ? '(new)' : editing.name}
          client={client}
          tier={editing === 'new' ? null : editing}
          groups={groups}
          onCancel={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            reload();
          }}
        />
      )}
      {watched !== null && (
        <section aria-label={`What runs on ${watched}`}>
          <h3>Running on {watched} now</h3>
          <RunningNow client={client} tier={watched} version={version} />
        </section>
      )}
      <Preview client={client} groups={groups} version={version} />
    </div>
  );
}

export const TIERS_PAGE: IAdminPage = {
  id: 'tiers',
  title: 'Tiers',
  permissions: ['manage_tiers'],
  component: TiersPage
};
