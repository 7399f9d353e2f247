/**
 * Permissions: the authorization matrix as a grid, people or groups against projects. Each cell
 * shows what its subject holds there; selected, it says where each permission comes from and
 * edits the subject's own grant on that project. Below, "why can't X see Y" asks the server.
 */
import * as React from 'react';

import type { HimaliaClient } from '../../api';
import { errorText } from '../../errors';
import type { DescribePreset, ProjectPermission, SetGrant } from '../../types';
import type { IAdminPage, IAdminPageProps } from '../page';
import {
  AccessGrid,
  ExplainAccess,
  GridCell,
  GridProject,
  GridSubject,
  PERMISSIONS,
  Subjects,
  accessGrid,
  cellLabel,
  describeSource,
  explainAccess,
  grantRequest,
  ownGrant,
  sourcesOf,
  spoken
} from './access';

const PAGE_SIZE = 50;

interface ISelection {
  subject: string;
  project: string;
}

export function PermissionsPage(props: IAdminPageProps): React.ReactElement {
  const { client } = props;
  const [subjects, setSubjects] = React.useState<Subjects>('users');
  const [search, setSearch] = React.useState('');
  const [offset, setOffset] = React.useState(0);
  const [grid, setGrid] = React.useState<AccessGrid | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [selected, setSelected] = React.useState<ISelection | null>(null);
  const [version, setVersion] = React.useState(0);
  const [presets, setPresets] = React.useState<DescribePreset[]>([]);

  React.useEffect(() => {
    client.presets().then(setPresets, () => setPresets([]));
  }, [client]);

  React.useEffect(() => {
    let current = true;
    accessGrid(client, { subjects, search, limit: PAGE_SIZE, offset }).then(
      answer => {
        if (current) {
          setGrid(answer);
          setError(null);
        }
      },
      failure => {
        if (current) {
          setError(errorText(failure));
        }
      }
    );
    return () => {
      current = false;
    };
  }, [client, subjects, search, offset, version]);

  const chooseSubjects = (next: Subjects) => {
    setSubjects(next);
    setOffset(0);
    setSelected(null);
    setGrid(null);
  };
  const subject = grid?.subjects.find(s => s.name === selected?.subject);
  const project = grid?.projects.find(p => p.key === selected?.project);

  return (
    <section className="hml-admin-permissions" aria-label="Permissions">
      <h2>Permissions</h2>
      <p className="hml-admin-muted">
        What each {subjects === 'users' ? 'person' : 'group'} holds on each
        project, and where it comes from. Select a cell to see its sources and
        change the grant.
      </p>
      <div className="hml-admin-toolbar">
        <div role="radiogroup" aria-label="Rows">
          {(['users', 'groups'] as Subjects[]).map(kind => (
            <button
              key={kind}
              role="radio"
              aria-checked={subjects === kind}
              className={subjects === kind ? 'hml-admin-primary' : undefined}
              onClick={() => chooseSubjects(kind)}
            >
              {kind === 'users' ? 'People' : 'Groups'}
            </button>
          ))}
        </div>
        <input
          type="search"
          aria-label={subjects === 'users' ? 'Find people' : 'Find groups'}
          placeholder={subjects === 'users' ? 'Find people…' : 'Find groups…'}
          value={search}
          onChange={event => {
            setSearch(event.target.value);
            setOffset(0);
          }}
        />
        <Legend />
      </div>
      {error && (
        <p className="hml-admin-refusal" role="alert">
          {error}
        </p>
      )}
      {!grid && !error && <p role="status">Loading…</p>}
      {grid && (
        <Grid
          grid={grid}
          subjects={subjects}
          selected={selected}
          onSelect={setSelected}
        />
      )}
      {grid && grid.total > grid.limit && (
        <div className="hml-admin-pager">
          <button
            disabled={offset === 0}
            onClick={() => setOffset(Math.max(0, offset - PAGE_SIZE))}
          >
            ‹ Previous
          </button>
          <span>
            {offset + 1}–{Math.min(offset + PAGE_SIZE, grid.total)} of{' '}
            {grid.total}
          </span>
          <button
            disabled={offset + PAGE_SIZE >= grid.total}
            onClick={() => setOffset(offset + PAGE_SIZE)}
          >
            Next ›
          </button>
        </div>
      )}
      {subject && project && (
        <CellDetail
          key={`${subjects}/${subject.name}/${project.key}`}
          client={client}
          subjects={subjects}
          subject={subject}
          project={project}
          presets={presets}
          onChanged={() => setVersion(v => v + 1)}
          onClose={() => setSelected(null)}
        />
      )}
      <Explain
        client={client}
        projects={grid?.projects ?? []}
        people={subjects === 'users' ? (grid?.subjects ?? []) : []}
      />
    </section>
  );
}

function Legend(): React.ReactElement {
  return (
    <dl className="hml-admin-legend" aria-label="Legend">
      {PERMISSIONS.map(p => (
        <div key={p.name}>
          <dt>{p.letter}</dt>
          <dd>{spoken(p.name)}</dd>
        </div>
      ))}
      <div>
        <dt>reader…</dt>
        <dd>a preset</dd>
      </div>
    </dl>
  );
}

function Grid(props: {
  grid: AccessGrid;
  subjects: Subjects;
  selected: ISelection | null;
  onSelect: (selection: ISelection) => void;
}): React.ReactElement {
  const { grid, subjects, selected, onSelect } = props;
  if (grid.subjects.length === 0) {
    return (
      <p className="hml-admin-muted">
        No {subjects === 'users' ? 'person' : 'group'} matches.
      </p>
    );
  }
  return (
    <div className="hml-admin-grid-scroll">
      <table className="hml-admin-grid" aria-label="Access grid">
        <thead>
          <tr>
            <th scope="col">{subjects === 'users' ? 'Person' : 'Group'}</th>
            {grid.projects.map(project => (
              <th
                key={project.key}
                scope="col"
                title={`${project.name} (owner ${project.owner})`}
              >
                {project.key}
                {project.status !== 'active' && (
                  <span className="hml-admin-muted"> ({project.status})</span>
                )}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {grid.subjects.map(subject => (
            <tr
              key={subject.name}
              data-subject={subject.name}
              className={subject.active ? undefined : 'hml-admin-inactive'}
            >
              <th scope="row">
                <SubjectName subject={subject} />
              </th>
              {grid.projects.map(project => {
                const cell = subject.cells.find(c => c.project === project.key);
                const isSelected =
                  selected?.subject === subject.name &&
                  selected.project === project.key;
                return (
                  <td key={project.key} data-project={project.key}>
                    <button
                      className="hml-admin-cell"
                      aria-pressed={isSelected}
                      aria-label={cellDescription(subject, project, cell)}
                      onClick={() =>
                        onSelect({
                          subject: subject.name,
                          project: project.key
                        })
                      }
                    >
                      {cellLabel(cell) || '·'}
                      {cell?.sources.some(s => s.kind === 'global') && (
                        <span aria-hidden="true" title="global admin">
                          {' '}
                          ★
                        </span>
                      )}
                    </button>
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function SubjectName(props: { subject: GridSubject }): React.ReactElement {
  const { subject } = props;
  const notes = [
    subject.kind === 'service' ? 'service account' : '',
    subject.active ? '' : 'deactivated',
    subject.global_permissions.includes('admin') ? 'administrator' : ''
  ].filter(Boolean);
  return (
    <>
      <span className="hml-admin-subject">{subject.name}</span>
      {subject.display_name && subject.display_name !== subject.name && (
        <span className="hml-admin-muted"> {subject.display_name}</span>
      )}
      {notes.map(note => (
        <span key={note} className="hml-admin-tag">
          {note}
        </span>
      ))}
    </>
  );
}

function cellDescription(
  subject: GridSubject,
  project: GridProject,
  cell: GridCell | undefined
): string {
  const held = cell?.permissions.length
    ? cell.permissions.map(spoken).join(', ')
    : 'nothing';
  return `${subject.name} on ${project.key}: ${held}`;
}

function CellDetail(props: {
  client: HimaliaClient;
  subjects: Subjects;
  subject: GridSubject;
  project: GridProject;
  presets: DescribePreset[];
  onChanged: () => void;
  onClose: () => void;
}): React.ReactElement {
  const { subjects, subject, project } = props;
  const cell = subject.cells.find(c => c.project === project.key);
  return (
    <section
      className="hml-admin-panel"
      aria-label={`${subject.name} on ${project.key}`}
    >
      <header className="hml-admin-panel-header">
        <h3>
          {subject.name} on {project.key}
        </h3>
        <button onClick={props.onClose}>Close</button>
      </header>
      {!subject.active && (
        <p className="hml-admin-warning">
          {subject.name}’s account is deactivated: they hold nothing on any
          project. The sources below apply once it is reactivated.
        </p>
      )}
      <Sources cell={cell} active={subject.active} />
      <GrantEditor {...props} />
      {subjects === 'users' &&
        cell?.sources.some(s => s.kind === 'group' || s.kind === 'global') && (
          <p className="hml-admin-muted">
            What comes through a group is changed on that group’s row (Groups),
            and its global permissions on the Groups page.
          </p>
        )}
    </section>
  );
}

function Sources(props: {
  cell: GridCell | undefined;
  active: boolean;
}): React.ReactElement {
  const { cell, active } = props;
  if (!cell) {
    return <p>Nothing is granted here.</p>;
  }
  const listed = PERMISSIONS.filter(p => sourcesOf(cell, p.name).length > 0);
  return (
    <table
      className="hml-admin-sources"
      aria-label="Where each permission comes from"
    >
      <thead>
        <tr>
          <th scope="col">Permission</th>
          <th scope="col">Comes from</th>
        </tr>
      </thead>
      <tbody>
        {listed.map(p => (
          <tr key={p.name} data-permission={p.name}>
            <td>
              <b>{p.letter}</b> {spoken(p.name)}
              {!active && <span className="hml-admin-muted"> (not held)</span>}
            </td>
            <td>{sourcesOf(cell, p.name).map(describeSource).join('; ')}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

type Choice = NonNullable<SetGrant['preset']> | 'custom' | '';

function GrantEditor(props: {
  client: HimaliaClient;
  subjects: Subjects;
  subject: GridSubject;
  project: GridProject;
  presets: DescribePreset[];
  onChanged: () => void;
}): React.ReactElement {
  const { client, subjects, subject, project, presets } = props;
  const cell = subject.cells.find(c => c.project === project.key);
  const own = ownGrant(subjects, subject, cell);
  const [choice, setChoice] = React.useState<Choice>(
    own ? (own.preset ?? 'custom') : ''
  );
  const [custom, setCustom] = React.useState<ProjectPermission[]>(
    own?.permissions ?? []
  );
  // Once saved, the form shows the grant as stored: implications added, a preset recognised.
  const stored = own ? `${own.preset}:${own.permissions.join(',')}` : '';
  React.useEffect(() => {
    setChoice(own ? (own.preset ?? 'custom') : '');
    setCustom(own?.permissions ?? []);
  }, [stored]);
  const [busy, setBusy] = React.useState(false);
  const [message, setMessage] = React.useState<{
    text: string;
    failed: boolean;
  } | null>(null);
  const whom = subjects === 'users' ? 'the person' : 'the group';

  const act = async (change: () => Promise<unknown>, done: string) => {
    setBusy(true);
    setMessage(null);
    try {
      await change();
      setMessage({ text: done, failed: false });
      props.onChanged();
    } catch (failure) {
      setMessage({ text: errorText(failure), failed: true });
    } finally {
      setBusy(false);
    }
  };
  const save = () => {
    const preset = choice === 'custom' || choice === '' ? null : choice;
    const grant = grantRequest(subjects, subject.name, preset, custom);
    return act(
      () => client.setGrant(project.key, grant),
      `Saved: ${subject.name}’s own grant on ${project.key} is ${preset ?? custom.map(spoken).join(', ')}.`
    );
  };
  const remove = () =>
    act(
      () =>
        client.removeGrant(
          project.key,
          subjects === 'users' ? 'user' : 'group',
          subject.name
        ),
      `Removed ${subject.name}’s own grant on ${project.key}.`
    );
  const nothingChosen =
    choice === '' || (choice === 'custom' && custom.length === 0);

  return (
    <form
      className="hml-admin-grant"
      aria-label="Grant"
      onSubmit={event => {
        event.preventDefault();
        void save();
      }}
    >
      <h4>
        Grant to {whom} on {project.key}
      </h4>
      <p className="hml-admin-muted">
        {own
          ? `Now: ${own.preset ?? own.permissions.map(spoken).join(', ')}.`
          : `${subject.name} holds no grant of their own on ${project.key}.`}{' '}
        Saving replaces it.
      </p>
      <label>
        Preset{' '}
        <select
          aria-label="Preset"
          value={choice}
          onChange={event => setChoice(event.target.value as Choice)}
        >
          <option value="" disabled>
            Choose…
          </option>
          {presets.map(preset => (
            <option
              key={preset.name}
              value={preset.name}
              title={preset.description}
            >
              {preset.name} ({preset.permissions.map(spoken).join(', ')})
            </option>
          ))}
          <option value="custom">custom permissions</option>
        </select>
      </label>
      {choice === 'custom' && (
        <fieldset>
          <legend>Permissions (each brings what it needs)</legend>
          {PERMISSIONS.map(p => (
            <label key={p.name} className="hml-admin-check">
              <input
                type="checkbox"
                checked={custom.includes(p.name)}
                onChange={event =>
                  setCustom(
                    event.target.checked
                      ? [...custom, p.name]
                      : custom.filter(name => name !== p.name)
                  )
                }
              />{' '}
              {spoken(p.name)}
            </label>
          ))}
        </fieldset>
      )}
      <div className="hml-admin-actions">
        <button
          type="submit"
          className="hml-admin-primary"
          disabled={busy || nothingChosen}
        >
          Save grant
        </button>
        {own && (
          <button type="button" disabled={busy} onClick={() => void remove()}>
            Remove grant
          </button>
        )}
      </div>
      {message && (
        <p
          role={message.failed ? 'alert' : 'status'}
          className={message.failed ? 'hml-admin-refusal' : 'hml-admin-ok'}
        >
          {message.text}
        </p>
      )}
    </form>
  );
}

function Explain(props: {
  client: HimaliaClient;
  projects: GridProject[];
  /** Suggested for the person: the people on the grid's page. */
  people: GridSubject[];
}): React.ReactElement {
  const { client, projects, people } = props;
  const [user, setUser] = React.useState('');
  const [project, setProject] = React.useState('');
  const [permission, setPermission] =
    React.useState<ProjectPermission>('read_content');
  const [answer, setAnswer] = React.useState<ExplainAccess | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const chosenProject = project || projects[0]?.key || '';

  const ask = async () => {
    setAnswer(null);
    setError(null);
    try {
      setAnswer(await explainAccess(client, user, chosenProject, permission));
    } catch (failure) {
      setError(errorText(failure));
    }
  };

  return (
    <section className="hml-admin-explain" aria-label="Why can't someone">
      <h3>Why can’t someone…?</h3>
      <form
        onSubmit={event => {
          event.preventDefault();
          void ask();
        }}
      >
        <label>
          Person{' '}
          <input
            aria-label="Person"
            list="hml-admin-explain-people"
            value={user}
            required
            onChange={event => setUser(event.target.value)}
          />
        </label>{' '}
        <datalist id="hml-admin-explain-people">
          {people.map(person => (
            <option key={person.name} value={person.name}>
              {person.display_name}
            </option>
          ))}
        </datalist>
        <label>
          Permission{' '}
          <select
            aria-label="Permission"
            value={permission}
            onChange={event =>
              setPermission(event.target.value as ProjectPermission)
            }
          >
            {PERMISSIONS.map(p => (
              <option key={p.name} value={p.name}>
                {spoken(p.name)}
              </option>
            ))}
          </select>
        </label>{' '}
        <label>
          Project{' '}
          <select
            aria-label="Project"
            value={chosenProject}
            onChange={event => setProject(event.target.value)}
          >
            {projects.map(p => (
              <option key={p.key} value={p.key}>
                {p.key}
              </option>
            ))}
          </select>
        </label>{' '}
        <button type="submit" disabled={!user.trim() || !chosenProject}>
          Explain
        </button>
      </form>
      {error && (
        <p className="hml-admin-refusal" role="alert">
          {error}
        </p>
      )}
      {answer && (
        <div
          className="hml-admin-answer"
          role="status"
          data-granted={answer.granted}
        >
          <p>
            <b>{answer.granted ? 'Yes. ' : 'No. '}</b>
            {answer.explanation}
          </p>
          {answer.grant_command && (
            <p>
              To grant it: <code>{answer.grant_command}</code>, or select the
              cell above.
            </p>
          )}
        </div>
      )}
    </section>
  );
}

export const PERMISSIONS_PAGE: IAdminPage = {
  id: 'permissions',
  title: 'Permissions',
  permissions: ['admin'],
  component: PermissionsPage
};
