/**
 * Projects: every project one sees (administrators: all of them; a project creator: those they
 * hold a grant on) with its owner, status and tags; projects created, renamed, given another
 * owner, archived (which deactivates their scenarios, said and listed before confirming),
 * unarchived and deleted. A deletion the server refuses (active scenarios, unfinished runs,
 * stored bundle versions) shows its sentence in place.
 */
import * as React from 'react';

import type { HimaliaClient } from '../../api';
import { errorText } from '../../errors';
import { useAsync } from '../../hooks/useAsync';
import { formatTime } from '../../times';
import type { DescribeProject } from '../../types';
import type { IAdminPage, IAdminPageProps } from '../page';
import { DescribeUser, listUsers } from './identity';
import {
  activeScenarios,
  createProject,
  deleteProject,
  listProjects,
  updateProject
} from './projectsadmin';

type Panel = 'edit' | 'archive' | 'delete' | null;

/** Runs a change, says its failure, and tells the page to refresh after a success. */
function useAction(onChanged: (said: string) => void): {
  working: boolean;
  failure: string;
  act: (action: () => Promise<unknown>, said: string) => Promise<void>;
} {
  const [working, setWorking] = React.useState(false);
  const [failure, setFailure] = React.useState('');
  const act = async (action: () => Promise<unknown>, said: string) => {
    setWorking(true);
    setFailure('');
    try {
      await action();
      onChanged(said);
    } catch (error) {
      setFailure(errorText(error));
    } finally {
      setWorking(false);
    }
  };
  return { working, failure, act };
}

function Refusal(props: { text: string }): React.ReactElement | null {
  return props.text ? (
    <p className="hml-admin-refusal" role="alert">
      {props.text}
    </p>
  ) : null;
}

/** The owner: a choice among active people for administrators, a login for the others. */
function OwnerField(props: {
  value: string;
  people: DescribeUser[] | null;
  onChange: (login: string) => void;
}): React.ReactElement {
  const { value, people, onChange } = props;
  return (
    <label>
      Owner{' '}
      {people ? (
        <select
          name="owner"
          value={value}
          onChange={event => onChange(event.target.value)}
        >
          {people
            .filter(person => person.active || person.login === value)
            .map(person => (
              <option key={person.login} value={person.login}>
                {person.login}
                {person.display_name && person.display_name !== person.login
                  ? ` (${person.display_name})`
                  : ''}
              </option>
            ))}
        </select>
      ) : (
        <input
          name="owner"
          value={value}
          required
          maxLength={100}
          onChange={event => onChange(event.target.value)}
        />
      )}
    </label>
  );
}

function EditPanel(props: {
  client: HimaliaClient;
  project: DescribeProject;
  people: DescribeUser[] | null;
  onChanged: (said: string) => void;
  onCancel: () => void;
}): React.ReactElement {
  const { client, project, people, onChanged, onCancel } = props;
  const [name, setName] = React.useState(project.name);
  const [description, setDescription] = React.useState(project.description);
  const [owner, setOwner] = React.useState(project.owner);
  const { working, failure, act } = useAction(onChanged);

  const save = (event: React.FormEvent) => {
    event.preventDefault();
    void act(
      () =>
        updateProject(client, project.key, {
          name: name === project.name ? undefined : name,
          description:
            description === project.description ? undefined : description,
          owner: owner === project.owner ? undefined : owner
        }),
      `Saved ${project.key}.`
    );
  };
  const unchanged =
    name === project.name &&
    description === project.description &&
    owner === project.owner;

  return (
    <form
      className="hml-admin-project-panel"
      aria-label={`Edit ${project.key}`}
      onSubmit={save}
    >
      <label>
        Name{' '}
        <input
          name="name"
          value={name}
          required
          maxLength={200}
          size={40}
          onChange={event => setName(event.target.value)}
        />
      </label>{' '}
      <OwnerField value={owner} people={people} onChange={setOwner} />
      <label className="hml-admin-project-description">
        Description{' '}
        <textarea
          name="description"
          value={description}
          rows={2}
          cols={70}
          maxLength={10000}
          onChange={event => setDescription(event.target.value)}
        />
      </label>
      <button
        type="submit"
        className="hml-admin-primary"
        disabled={working || unchanged}
      >
        Save
      </button>{' '}
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
      <Refusal text={failure} />
    </form>
  );
}

function ArchivePanel(props: {
  client: HimaliaClient;
  project: DescribeProject;
  onChanged: (said: string) => void;
  onCancel: () => void;
}): React.ReactElement {
  const { client, project, onChanged, onCancel } = props;
  const [scenarios, setScenarios] = React.useState<string[] | null>(null);
  const [lookup, setLookup] = React.useState('');
  const { working, failure, act } = useAction(onChanged);

  React.useEffect(() => {
    let live = true;
    activeScenarios(client, project.key).then(
      found =>
        live &&
        setScenarios(
          found.map(scenario => `${scenario.id} (${scenario.name})`)
        ),
      error => live && setLookup(errorText(error))
    );
    return () => {
      live = false;
    };
  }, [client, project.key]);

  return (
    <div
      className="hml-admin-project-panel"
      role="dialog"
      aria-label={`Archive ${project.key}`}
    >
      <p>
        Archive {project.key}? Archiving deactivates its scenarios: nothing of
        it runs on a schedule any more, and unarchiving leaves them inactive
        until someone activates one again.
      </p>
      {lookup ? (
        <Refusal text={`Its scenarios could not be read: ${lookup}`} />
      ) : scenarios === null ? (
        <p>Reading its active scenarios…</p>
      ) : scenarios.length === 0 ? (
        <p>It has no active scenario.</p>
      ) : (
        <>
          <p>
            Deactivated ({scenarios.length}
            {scenarios.length === 1 ? ' scenario' : ' scenarios'}):
          </p>
          <ul aria-label={`Active scenarios of ${project.key}`}>
            {scenarios.map(scenario => (
              <li key={scenario}>{scenario}</li>
            ))}
          </ul>
        </>
      )}
      <button
        type="button"
        className="hml-admin-danger"
        disabled={working}
        onClick={() =>
          act(
            () => updateProject(client, project.key, { status: 'archived' }),
            `Archived ${project.key}; its scenarios are inactive.`
          )
        }
      >
        Archive {project.key}
      </button>{' '}
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
      <Refusal text={failure} />
    </div>
  );
}

function DeletePanel(props: {
  client: HimaliaClient;
  project: DescribeProject;
  onChanged: (said: string) => void;
  onCancel: () => void;
}): React.ReactElement {
  const { client, project, onChanged, onCancel } = props;
  const [withBundles, setWithBundles] = React.useState(false);
  const { working, failure, act } = useAction(onChanged);

  return (
    <div
      className="hml-admin-project-panel"
      role="dialog"
      aria-label={`Delete ${project.key}`}
    >
      <p>
        Delete {project.key} and everything in it: its datasets, checks,
        scenarios and their runs, variables and grants? This cannot be undone.
        The platform refuses while one of its scenarios is active, a run of it
        is unfinished, or bundle versions of it are stored.
      </p>
      <label>
        <input
          type="checkbox"
          name="delete_bundles"
          checked={withBundles}
          onChange={event => setWithBundles(event.target.checked)}
        />{' '}
        Also delete its bundle versions (download those to keep first)
      </label>
      <p>
        <button
          type="button"
          className="hml-admin-danger"
          disabled={working}
          onClick={() =>
            act(
              () => deleteProject(client, project.key, withBundles),
              `Deleted ${project.key}.`
            )
          }
        >
          Delete {project.key}
        </button>{' '}
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </p>
      <Refusal text={failure} />
    </div>
  );
}

function ProjectRows(props: {
  client: HimaliaClient;
  project: DescribeProject;
  people: DescribeUser[] | null;
  onChanged: (said: string) => void;
}): React.ReactElement {
  const { client, project, people, onChanged } = props;
  const [panel, setPanel] = React.useState<Panel>(null);
  const archived = project.status === 'archived';
  const mayChange = project.my_permissions.includes('admin');
  const done = (said: string) => {
    setPanel(null);
    onChanged(said);
  };
  const unarchive = useAction(done);

  const close = () => setPanel(null);

  return (
    <>
      <tr data-project={project.key} data-status={project.status}>
        <td>
          <code>{project.key}</code>
        </td>
        <td title={project.description}>{project.name}</td>
        <td>{project.owner}</td>
        <td className={`hml-admin-project-${project.status}`}>
          {project.status}
        </td>
        <td>{project.tags.length ? project.tags.join(', ') : '—'}</td>
        <td>{formatTime(project.created_at)}</td>
        <td>
          {mayChange ? (
            <>
              <button type="button" onClick={() => setPanel('edit')}>
                Edit…
              </button>{' '}
              {archived ? (
                <button
                  type="button"
                  disabled={unarchive.working}
                  onClick={() =>
                    unarchive.act(
                      () =>
                        updateProject(client, project.key, {
                          status: 'active'
                        }),
                      `Unarchived ${project.key}; its scenarios stay inactive until one is activated.`
                    )
                  }
                >
                  Unarchive
                </button>
              ) : (
                <button type="button" onClick={() => setPanel('archive')}>
                  Archive…
                </button>
              )}{' '}
              <button type="button" onClick={() => setPanel('delete')}>
                Delete…
              </button>
              <Refusal text={unarchive.failure} />
            </>
          ) : (
            <span className="hml-admin-muted">
              its administrators change it
            </span>
          )}
        </td>
      </tr>
      {panel && (
        <tr className="hml-admin-project-panel-row">
          <td colSpan={7}>
            {panel === 'edit' ? (
              <EditPanel
                client={client}
                project={project}
                people={people}
                onChanged={done}
                onCancel={close}
              />
            ) : panel === 'archive' ? (
              <ArchivePanel
                client={client}
                project={project}
                onChanged={done}
                onCancel={close}
              />
            ) : (
              <DeletePanel
                client={client}
                project={project}
                onChanged={done}
                onCancel={close}
              />
            )}
          </td>
        </tr>
      )}
    </>
  );
}

function NewProject(props: {
  client: HimaliaClient;
  me: string;
  people: DescribeUser[] | null;
  onCreated: (said: string) => void;
}): React.ReactElement {
  const { client, me, people, onCreated } = props;
  const [key, setKey] = React.useState('');
  const [name, setName] = React.useState('');
  const [description, setDescription] = React.useState('');
  const [tags, setTags] = React.useState('');
  const [owner, setOwner] = React.useState(me);
  const created = (said: string) => {
    setKey('');
    setName('');
    setDescription('');
    setTags('');
    setOwner(me);
    onCreated(said);
  };
  const { working, failure, act } = useAction(created);

  const create = (event: React.FormEvent) => {
    event.preventDefault();
    void act(
      () =>
        createProject(client, {
          key,
          name,
          description,
          tags: tags
            .split(',')
            .map(tag => tag.trim())
            .filter(Boolean),
          owner: people ? owner : undefined
        }),
      `Created ${key}.`
    );
  };

  return (
    <form
      className="hml-admin-new-project"
      aria-label="New project"
      onSubmit={create}
    >
      <label>
        Key{' '}
        <input
          name="key"
          value={key}
          required
          maxLength={40}
          size={12}
          placeholder="FRAUD"
          title="Capital letters, digits and _, starting with a letter"
          onChange={event => setKey(event.target.value)}
        />
      </label>{' '}
      <label>
        Name{' '}
        <input
          name="name"
          value={name}
          required
          maxLength={200}
          size={30}
          onChange={event => setName(event.target.value)}
        />
      </label>{' '}
      {people ? (
        <OwnerField value={owner} people={people} onChange={setOwner} />
      ) : (
        <span className="hml-admin-muted">You will own it.</span>
      )}
      <label className="hml-admin-project-description">
        Description{' '}
        <textarea
          name="description"
          value={description}
          rows={2}
          cols={70}
          maxLength={10000}
          onChange={event => setDescription(event.target.value)}
        />
      </label>
      <label>
        Tags{' '}
        <input
          name="tags"
          value={tags}
          size={30}
          placeholder="comma-separated"
          onChange={event => setTags(event.target.value)}
        />
      </label>{' '}
      <button type="submit" className="hml-admin-primary" disabled={working}>
        Create project
      </button>
      <Refusal text={failure} />
    </form>
  );
}

export function ProjectsPage(props: IAdminPageProps): React.ReactElement {
  const { client, me } = props;
  const isAdmin = Boolean(
    (me.global_permissions as Record<string, boolean>).admin
  );
  const [people, setPeople] = React.useState<DescribeUser[] | null>(null);
  const [failure, setFailure] = React.useState('');
  const [said, setSaid] = React.useState('');
  const listing = useAsync(() => listProjects(client), [client]);
  const projects: DescribeProject[] | null = listing.value?.items ?? null;
  const total = listing.value?.total ?? 0;
  const changed = (sentence: string) => {
    setSaid(sentence);
    void listing.reload();
  };

  React.useEffect(() => {
    if (!isAdmin) {
      return;
    }
    listUsers(client).then(
      page => setPeople(page.items),
      error => setFailure(errorText(error))
    );
  }, [client, isAdmin]);

  return (
    <div className="hml-admin-projects">
      <h2>Projects</h2>
      <p>
        {isAdmin
          ? 'Every project of the platform.'
          : 'The projects you hold a grant on; administrators see them all.'}{' '}
        A project&apos;s administrators change, archive and delete it; who holds
        what on it is on the Permissions page.
      </p>
      <Refusal text={failure || listing.error || ''} />
      {said && (
        <p className="hml-admin-said" role="status">
          {said}
        </p>
      )}
      {projects === null ? (
        !failure && !listing.error && <p>Loading…</p>
      ) : projects.length === 0 ? (
        <p>There is no project yet.</p>
      ) : (
        <table className="hml-admin-project-table" aria-label="Projects">
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Name</th>
              <th scope="col">Owner</th>
              <th scope="col">Status</th>
              <th scope="col">Tags</th>
              <th scope="col">Created</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {projects.map(project => (
              <ProjectRows
                key={project.key}
                client={client}
                project={project}
                people={people}
                onChanged={changed}
              />
            ))}
          </tbody>
        </table>
      )}
      {projects !== null && total > projects.length && (
        <p>
          Showing the first {projects.length} of {total} projects.
        </p>
      )}
      <h3>Create a project</h3>
      <NewProject
        client={client}
        me={me.login}
        people={people}
        onCreated={changed}
      />
    </div>
  );
}

export const PROJECTS_PAGE: IAdminPage = {
  id: 'projects',
  title: 'Projects',
  permissions: ['admin', 'create_projects'],
  component: ProjectsPage
};
