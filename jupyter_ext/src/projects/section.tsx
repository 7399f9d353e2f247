/**
 * Projects: the ones I can see and a new one if I may create projects; the chosen one's
 * description, my permissions and its grants are its details (details.tsx).
 */
import { Button, InputGroup } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { ErrorNotice, PageState, Pager } from '../components/common';
import { ISectionProps, Section } from '../components/section';
import { errorText } from '../errors';
import { usePagedList } from '../hooks/usePagedList';
import { HimaliaModel } from '../model';
import type { DescribeProject } from '../types';
import { ProjectDetails } from './details';

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
  const [creating, setCreating] = useState(false);
  // Another search starts again on the first page.
  const projects = usePagedList(
    query => model.client.projects({ search, ...query }),
    [search],
    model.settings.pageSize
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
          onChange={event =>
            setSearch((event.target as HTMLInputElement).value)
          }
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
            await projects.reload();
            await model.selectProject(key);
          }}
        />
      )}
      <PageState
        list={projects}
        empty={
          search ? 'No project matches.' : 'You cannot see any project yet.'
        }
      />
      {projects.items.length > 0 && (
        <ul className="hml-list" aria-label="Projects">
          {projects.items.map(project => (
            <ProjectRow
              key={project.key}
              project={project}
              model={model}
              current={current?.key === project.key}
            />
          ))}
        </ul>
      )}
      <Pager list={projects} />
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
