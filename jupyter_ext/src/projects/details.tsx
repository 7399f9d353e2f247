/**
 * A project's details: its description, my permissions, its grants, which its
 * administrators edit, and its bundles.
 */
import { Button } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { formatSize } from '../charts/values';
import { ActionButton, ErrorNotice } from '../components/common';
import { errorText } from '../errors';
import { useAsync } from '../hooks/useAsync';
import { HimaliaModel } from '../model';
import type {
  DescribeGrant,
  DescribePreset,
  DescribeProject,
  ProjectPermission,
  SetGrant
} from '../types';
import { ProjectBundles } from './bundles';
import { PERMISSION_LABELS, PERMISSIONS, grantSummary } from './grants';

export function ProjectDetails(props: {
  model: HimaliaModel;
  project: DescribeProject;
}): JSX.Element {
  const { model, project } = props;
  const isAdmin = model.can('admin');
  const grants = useAsync(
    () => model.client.grants(project.key),
    [project.key]
  );
  const presets = useAsync(
    () => (isAdmin ? model.client.presets() : Promise.resolve([])),
    [isAdmin]
  );
  const storage = useAsync(
    () => model.client.projectStorage(project.key),
    [project.key]
  );
  const [error, setError] = useState<string | null>(null);

  const change = async (action: () => Promise<DescribeGrant[]>) => {
    try {
      await action();
      setError(null);
      await grants.reload();
      await model.refreshProject();
    } catch (failure) {
      setError(errorText(failure));
    }
  };

  return (
    <section className="hml-details" aria-label={`Project ${project.key}`}>
      <h3>
        {project.name} <span className="hml-key">{project.key}</span>
      </h3>
      {project.description && (
        <p className="hml-description">{project.description}</p>
      )}
      <dl className="hml-facts">
        <dt>Owner</dt>
        <dd>{project.owner}</dd>
        <dt>My permissions</dt>
        <dd className="hml-my-permissions">
          {project.my_permissions.length === 0
            ? 'none'
            : project.my_permissions.map(permission => (
                <span
                  key={permission}
                  className="hml-chip"
                  title={PERMISSION_LABELS[permission]}
                >
                  {permission}
                </span>
              ))}
        </dd>
        {storage.value && (
          <>
            <dt>Space used</dt>
            <dd
              className="hml-project-space"
              title={`Run artifacts ${formatSize(storage.value.artifact_bytes)}, logs ${formatSize(storage.value.log_bytes)}, notebook snapshots ${formatSize(storage.value.snapshot_bytes)}, project files ${formatSize(storage.value.file_bytes)}; ${storage.value.runs} runs, ${storage.value.pinned_runs} pinned, ${storage.value.purged_runs} purged by retention`}
            >
              {formatSize(
                storage.value.artifact_bytes +
                  storage.value.log_bytes +
                  storage.value.snapshot_bytes +
                  storage.value.file_bytes
              )}
            </dd>
          </>
        )}
      </dl>
      <h4>Members and grants</h4>
      <ErrorNotice error={grants.error ?? error} />
      {grants.value && (
        <table className="hml-table hml-grants">
          <thead>
            <tr>
              <th>Who</th>
              <th>Grant</th>
              {isAdmin && <th aria-label="Actions" />}
            </tr>
          </thead>
          <tbody>
            {grants.value.map(grant => (
              <tr key={`${grant.principal_type}:${grant.principal}`}>
                <td>
                  <span className="hml-principal-type">
                    {grant.principal_type}
                  </span>{' '}
                  {grant.principal}
                </td>
                <td title={grant.permissions.join(', ')}>
                  {grantSummary(grant)}
                </td>
                {isAdmin && (
                  <td>
                    <Button
                      small
                      minimal
                      title={`Remove the grant of ${grant.principal}`}
                      aria-label={`Remove the grant of ${grant.principal}`}
                      onClick={() =>
                        void change(() =>
                          model.client.removeGrant(
                            project.key,
                            grant.principal_type,
                            grant.principal
                          )
                        )
                      }
                    >
                      ✕
                    </Button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {isAdmin && presets.value && (
        <GrantForm
          presets={presets.value}
          onGrant={grant =>
            change(() => model.client.setGrant(project.key, grant))
          }
        />
      )}
      <ProjectBundles model={model} project={project} />
    </section>
  );
}

/** Give a group or a user a preset or hand-picked permissions (replacing what they held). */
function GrantForm(props: {
  presets: DescribePreset[];
  onGrant: (grant: SetGrant) => Promise<void>;
}): JSX.Element {
  const [principalType, setPrincipalType] = useState<'group' | 'user'>('group');
  const [principal, setPrincipal] = useState('');
  const [preset, setPreset] = useState<string>(
    props.presets[0]?.name ?? 'reader'
  );
  const [fine, setFine] = useState<ProjectPermission[]>([]);
  const usingFine = preset === 'custom';
  const grant = (): SetGrant => {
    const who =
      principalType === 'group'
        ? { group: principal.trim() }
        : { user: principal.trim() };
    return usingFine
      ? { ...who, permissions: fine }
      : { ...who, preset: preset as NonNullable<SetGrant['preset']> };
  };
  return (
    <form
      className="hml-form hml-grant-form"
      aria-label="Grant"
      onSubmit={event => event.preventDefault()}
    >
      <div className="hml-inline">
        <select
          className="jp-mod-styled"
          aria-label="Grant to"
          value={principalType}
          onChange={event =>
            setPrincipalType(event.target.value as 'group' | 'user')
          }
        >
          <option value="group">group</option>
          <option value="user">user</option>
        </select>
        <input
          className="jp-mod-styled"
          aria-label={principalType === 'group' ? 'Group name' : 'User login'}
          placeholder={principalType === 'group' ? 'group name' : 'user login'}
          required
          value={principal}
          onChange={event => setPrincipal(event.target.value)}
        />
      </div>
      <select
        className="jp-mod-styled"
        aria-label="Preset"
        value={preset}
        onChange={event => setPreset(event.target.value)}
      >
        {props.presets.map(item => (
          <option key={item.name} value={item.name} title={item.description}>
            {item.name} — {item.permissions.join(', ')}
          </option>
        ))}
        <option value="custom">fine permissions…</option>
      </select>
      {usingFine && (
        <fieldset className="hml-permissions">
          <legend>Permissions</legend>
          {PERMISSIONS.map(permission => (
            <label key={permission} title={PERMISSION_LABELS[permission]}>
              <input
                type="checkbox"
                checked={fine.includes(permission)}
                onChange={event =>
                  setFine(
                    event.target.checked
                      ? [...fine, permission]
                      : fine.filter(item => item !== permission)
                  )
                }
              />
              {permission}
            </label>
          ))}
        </fieldset>
      )}
      <div className="hml-buttons">
        <ActionButton
          label="Grant"
          accept
          onClick={() => props.onGrant(grant()).then(() => setPrincipal(''))}
          disabled={!principal.trim() || (usingFine && fine.length === 0)}
        />
      </div>
    </form>
  );
}
