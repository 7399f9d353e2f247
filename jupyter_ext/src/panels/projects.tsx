/**
 * Projects: the ones I can see, a new one if I may create projects, and the chosen one's
 * description, my permissions and its grants (which its administrators edit).
 */
import { Button, InputGroup } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { errorText } from '../errors';
import { PERMISSION_LABELS, PERMISSIONS, grantSummary } from '../grants';
import type {
  DescribeGrant,
  DescribePreset,
  DescribeProject,
  ProjectPermission,
  SetGrant
} from '../types';
import {
  ActionButton,
  Empty,
  ErrorNotice,
  Loading,
  Pager,
  useAsync
} from '../components/common';
import { HimaliaModel } from '../model';
import { ISectionProps, Section } from './section';

export class ProjectsSection extends Section {
  constructor(services: ConstructorParameters<typeof Section>[0]) {
    super(services, { id: 'himalia-projects', label: 'Projects' });
  }

  protected renderView(props: ISectionProps): JSX.Element {
    return <ProjectsView {...props} />;
  }
}

function ProjectsView({ model }: ISectionProps): JSX.Element {
  const [search, setSearch] = useState('');
  const [offset, setOffset] = useState(0);
  const [creating, setCreating] = useState(false);
  const limit = model.settings.pageSize;
  const page = useAsync(
    () => model.client.projects({ search, limit, offset }),
    [search, limit, offset]
  );
  const current = model.project;

  return (
    <div className="hml-view hml-projects">
      <div className="hml-toolbar">
        <InputGroup
          type="search"
          placeholder="Search projects"
          aria-label="Search projects"
          value={search}
          onChange={event => {
            setSearch((event.target as HTMLInputElement).value);
            setOffset(0);
          }}
        />
        {model.canGlobally('create_projects') && (
          <Button
            small
            onClick={() => setCreating(!creating)}
            aria-expanded={creating}
          >
            New project
          </Button>
        )}
      </div>
      {creating && (
        <CreateProjectForm
          model={model}
          onDone={async key => {
            setCreating(false);
            await page.reload();
            await model.selectProject(key);
          }}
        />
      )}
      <ErrorNotice error={page.error} />
      {page.loading && !page.value && <Loading />}
      {page.value && page.value.items.length === 0 && (
        <Empty>
          {search ? 'No project matches.' : 'You cannot see any project yet.'}
        </Empty>
      )}
      {page.value && page.value.items.length > 0 && (
        <ul className="hml-list" aria-label="Projects">
          {page.value.items.map(project => (
            <ProjectRow
              key={project.key}
              project={project}
              model={model}
              current={current?.key === project.key}
            />
          ))}
        </ul>
      )}
      {page.value && (
        <Pager
          offset={offset}
          limit={limit}
          total={page.value.total}
          onChange={setOffset}
        />
      )}
      {current && <ProjectDetails model={model} project={current} />}
    </div>
  );
}

function ProjectRow(props: {
  project: DescribeProject;
  model: HimaliaModel;
  current: boolean;
}): JSX.Element {
  const { project, model, current } = props;
  const [error, setError] = useState<string | null>(null);
  const choose = async () => {
    try {
      await model.selectProject(current ? null : project.key);
      setError(null);
    } catch (failure) {
      setError(errorText(failure));
    }
  };
  return (
    <li
      className={`hml-row${current ? ' hml-current' : ''}`}
      data-project={project.key}
    >
      <button
        className="hml-row-main"
        onClick={() => void choose()}
        aria-pressed={current}
        title={project.description}
      >
        <span className="hml-key">{project.key}</span>
        <span className="hml-name">{project.name}</span>
        {project.tags.map(tag => (
          <span key={tag} className="hml-tag">
            {tag}
          </span>
        ))}
      </button>
      <ErrorNotice error={error} />
    </li>
  );
}

function CreateProjectForm(props: {
  model: HimaliaModel;
  onDone: (key: string) => Promise<void>;
}): JSX.Element {
  const [key, setKey] = useState('');
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [tags, setTags] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async () => {
    try {
      const created = await props.model.client.createProject({
        key: key.trim().toUpperCase(),
        name: name.trim(),
        description,
        tags: tags
          .split(',')
          .map(tag => tag.trim())
          .filter(Boolean)
      });
      setError(null);
      await props.onDone(created.key);
    } catch (failure) {
      setError(errorText(failure));
    }
  };
  return (
    <form
      className="hml-form"
      aria-label="New project"
      onSubmit={event => {
        event.preventDefault();
        void submit();
      }}
    >
      <label>
        Key
        <input
          className="jp-mod-styled"
          name="key"
          required
          pattern="[A-Za-z][A-Za-z0-9_]{1,39}"
          title="2 to 40 letters, digits or _, starting with a letter; stored in upper case"
          value={key}
          onChange={event => setKey(event.target.value)}
        />
      </label>
      <label>
        Name
        <input
          className="jp-mod-styled"
          name="name"
          required
          value={name}
          onChange={event => setName(event.target.value)}
        />
      </label>
      <label>
        Description
        <textarea
          className="jp-mod-styled"
          name="description"
          rows={2}
          value={description}
          onChange={event => setDescription(event.target.value)}
        />
      </label>
      <label>
        Tags (comma-separated)
        <input
          className="jp-mod-styled"
          name="tags"
          value={tags}
          onChange={event => setTags(event.target.value)}
        />
      </label>
      <ErrorNotice error={error} />
      <div className="hml-buttons">
        <Button small type="submit" className="jp-mod-accept">
          Create
        </Button>
      </div>
    </form>
  );
}

function ProjectDetails(props: {
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
