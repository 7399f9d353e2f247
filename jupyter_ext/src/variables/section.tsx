/**
 * Variables: the current project's as a JSON editor (saved by those with write_content), the
 * instance's below it (changed by administrators only), and, on demand, the resolved variables
 * a notebook of the project gets from `himalia.variables()`.
 */
import { Button } from '@jupyterlab/ui-components';
import React, { useEffect, useMemo, useState } from 'react';

import { ApiError } from '../api';
import { errorText } from '../errors';
import { findKey, formatVariables, parseVariables } from '../jsonedit';
import { HimaliaModel } from '../model';
import type { DescribeProject, Variables } from '../types';
import { ActionButton, ErrorNotice, Loading } from '../components/common';
import { ISectionProps, NoProject, Section } from '../components/section';
import { useAsync } from '../hooks/useAsync';

export class VariablesSection extends Section {
  constructor(services: ConstructorParameters<typeof Section>[0]) {
    super(services, { id: 'himalia-variables', label: 'Variables' });
  }

  protected renderView(props: ISectionProps): JSX.Element {
    return <VariablesView {...props} />;
  }
}

function VariablesView({ model }: ISectionProps): JSX.Element {
  const project = model.project;
  // Bumped by every save, so that the resolved view reads them again.
  const [version, setVersion] = useState(0);
  const saved = () => setVersion(current => current + 1);
  const isAdmin = model.canGlobally('admin');

  return (
    <div className="hml-view hml-variables">
      <section aria-label="Project variables section">
        <h4 className="hml-variables-title">
          Project variables
          {project && <span className="hml-key"> {project.key}</span>}
        </h4>
        {project ? (
          <ProjectVariables
            key={project.key}
            model={model}
            project={project}
            version={version}
            onSaved={saved}
          />
        ) : (
          <NoProject />
        )}
      </section>
      <section aria-label="Instance variables section">
        <h4 className="hml-variables-title">Instance variables</h4>
        <VariablesEditor
          label="Instance variables"
          deps={[]}
          load={() => model.client.instanceVariables()}
          save={
            isAdmin
              ? variables => model.client.setInstanceVariables(variables)
              : null
          }
          readOnlyNote="read-only: only administrators change instance variables"
          onSaved={saved}
        />
        <p className="hml-note">
          Every project sees them; a project variable of the same name wins.
        </p>
      </section>
    </div>
  );
}

function ProjectVariables(props: {
  model: HimaliaModel;
  project: DescribeProject;
  version: number;
  onSaved: () => void;
}): JSX.Element {
  const { model, project } = props;
  const [resolved, setResolved] = useState(false);
  if (!model.can('read_content')) {
    return (
      <div className="hml-empty">
        You need read_content on {project.key} to see its variables.
      </div>
    );
  }
  return (
    <>
      <VariablesEditor
        label="Project variables"
        deps={[project.key]}
        load={() => model.client.projectVariables(project.key)}
        save={
          model.can('write_content')
            ? variables =>
                model.client.setProjectVariables(project.key, variables)
            : null
        }
        readOnlyNote="read-only: you need write_content"
        onSaved={props.onSaved}
      />
      <label className="hml-toggle">
        <input
          type="checkbox"
          checked={resolved}
          onChange={event => setResolved(event.target.checked)}
        />
        Show resolved
      </label>
      {resolved && (
        <ResolvedVariables
          model={model}
          projectKey={project.key}
          version={props.version}
        />
      )}
    </>
  );
}

/** What `himalia.variables()` returns in the project: instance < project, references expanded. */
function ResolvedVariables(props: {
  model: HimaliaModel;
  projectKey: string;
  version: number;
}): JSX.Element {
  const { model, projectKey, version } = props;
  const resolved = useAsync(
    () => model.client.resolvedProjectVariables(projectKey),
    [projectKey, version]
  );
  const text = resolved.value ? formatVariables(resolved.value.variables) : '';
  return (
    <div className="hml-resolved">
      <p className="hml-note">
        The instance&apos;s variables overlaid by the project&apos;s, with{' '}
        <code>{'${name}'}</code> references expanded: what{' '}
        <code>himalia.variables()</code> returns in this project (scenario and
        run variables come on top in runs).
      </p>
      <ErrorNotice error={resolved.error} />
      {resolved.loading && !resolved.value && <Loading />}
      {resolved.value && (
        <textarea
          className="jp-mod-styled hml-code hml-json-editor"
          aria-label="Resolved variables"
          readOnly
          spellCheck={false}
          wrap="off"
          rows={rowsFor(text)}
          value={text}
        />
      )}
    </div>
  );
}

function rowsFor(text: string): number {
  return Math.min(24, Math.max(4, text.split('\n').length + 1));
}

interface IServerError {
  message: string;
  field: string | null;
}

/**
 * A JSON object in a textarea: validated as it is typed, saved whole, reverted to what was
 * last loaded or saved. Read-only (with `readOnlyNote`) when `save` is null.
 */
function VariablesEditor(props: {
  label: string;
  deps: React.DependencyList;
  load: () => Promise<Variables>;
  save: ((variables: Record<string, unknown>) => Promise<Variables>) | null;
  readOnlyNote: string;
  onSaved?: () => void;
}): JSX.Element {
  const { label, save } = props;
  const loaded = useAsync(props.load, props.deps);
  const [pristine, setPristine] = useState('');
  const [text, setText] = useState('');
  const [serverError, setServerError] = useState<IServerError | null>(null);
  const [savedNow, setSavedNow] = useState(false);
  useEffect(() => {
    if (loaded.value) {
      const shown = formatVariables(loaded.value.variables);
      setPristine(shown);
      setText(shown);
      setServerError(null);
    }
  }, [loaded.value]);
  const parsed = useMemo(() => parseVariables(text), [text]);
  const dirty = text !== pristine;
  const slug = label.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  const messageId = `hml-${slug}-message`;

  if (loaded.error) {
    return <ErrorNotice error={loaded.error} />;
  }
  if (!loaded.value) {
    return <Loading />;
  }

  const submit = async () => {
    if (!save || !parsed.ok) {
      return;
    }
    try {
      const stored = await save(parsed.value);
      const shown = formatVariables(stored.variables);
      setPristine(shown);
      setText(shown);
      setServerError(null);
      setSavedNow(true);
      props.onSaved?.();
    } catch (failure) {
      setServerError({
        message: errorText(failure),
        field: failure instanceof ApiError ? failure.field : null
      });
    }
  };

  const fieldPlace = serverError?.field
    ? findKey(text, serverError.field)
    : null;

  return (
    <div className="hml-variables-editor">
      <textarea
        className="jp-mod-styled hml-code hml-json-editor"
        aria-label={label}
        aria-invalid={!parsed.ok}
        aria-describedby={messageId}
        readOnly={!save}
        spellCheck={false}
        wrap="off"
        rows={rowsFor(text)}
        value={text}
        onChange={event => {
          setText(event.target.value);
          setSavedNow(false);
        }}
      />
      <div id={messageId} aria-live="polite">
        {!parsed.ok && (
          <div className="hml-field-error">{parsed.error.message}</div>
        )}
        {serverError && (
          <div
            className="hml-error"
            role="alert"
            data-field={serverError.field ?? undefined}
          >
            {serverError.message}
            {serverError.field && (
              <span className="hml-error-field">
                {' '}
                (field: {serverError.field}
                {fieldPlace && `, line ${fieldPlace.line}`})
              </span>
            )}
          </div>
        )}
        {savedNow && !dirty && (
          <div className="hml-success" role="status">
            Saved.
          </div>
        )}
      </div>
      {save ? (
        <div className="hml-buttons">
          <ActionButton
            label="Save"
            busyLabel="Saving…"
            accept
            disabled={!dirty || !parsed.ok}
            title={
              !parsed.ok
                ? 'Fix the JSON first'
                : dirty
                  ? `Replace the ${label.toLowerCase()}`
                  : 'Nothing changed'
            }
            onClick={submit}
          />
          <Button
            small
            type="button"
            disabled={!dirty}
            onClick={() => {
              setText(pristine);
              setServerError(null);
            }}
          >
            Revert
          </Button>
        </div>
      ) : (
        <p className="hml-note hml-read-only">{props.readOnlyNote}</p>
      )}
    </div>
  );
}
