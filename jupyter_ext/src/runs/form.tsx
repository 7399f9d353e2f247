/**
 * "Run now": one input per notebook parameter, built from the notebooks' typed parameters, then
 * the scenario's variables; only the fields changed are sent, as overrides.
 */
import { Button } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { ApiError } from '../api';
import { Empty, ErrorNotice, Loading } from '../components/common';
import { errorText } from '../errors';
import { useAsync } from '../hooks/useAsync';
import { HimaliaModel } from '../model';
import {
  IParameter,
  inputKind,
  parseParameter,
  parseVariable,
  variableText
} from '../parameters';
import { Problems } from '../scenarios/schedule';
import type { DescribeRun, RunRequest } from '../types';
import { ParameterField } from './parameterfield';

/**
 * The "Run now" form: one input per notebook parameter (by name: the server applies a parameter
 * to every notebook step declaring it, so a name shared by steps has one input, under the first
 * step), then the scenario's variables. Only the fields changed are sent, as overrides.
 */
export function RunForm(props: {
  model: HimaliaModel;
  project: string;
  scenario: string;
  onStarted: (run: DescribeRun) => void;
  onCancel: () => void;
}): JSX.Element {
  const { model, project, scenario } = props;
  const spec = useAsync(
    () => model.client.scenarioParameters(project, scenario),
    [project, scenario]
  );
  const [texts, setTexts] = useState<Record<string, string>>({});
  const [variableTexts, setVariableTexts] = useState<Record<string, string>>(
    {}
  );
  const [serverProblems, setServerProblems] = useState<Problems>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  // Each parameter once, under the first step that declares it.
  const groups: { step: string; notebook: string; parameters: IParameter[] }[] =
    [];
  const byName = new Map<string, IParameter>();
  const sharedBy: Record<string, string[]> = {};
  for (const step of spec.value?.steps ?? []) {
    const fresh: IParameter[] = [];
    for (const parameter of step.parameters) {
      if (byName.has(parameter.name)) {
        (sharedBy[parameter.name] ??= []).push(step.step);
      } else {
        byName.set(parameter.name, parameter);
        fresh.push(parameter);
      }
    }
    groups.push({
      step: step.step,
      notebook: step.notebook,
      parameters: fresh
    });
  }
  const variables = spec.value?.variables ?? {};

  // What would be sent, and what is wrong with it.
  const problems: Problems = {};
  const request: Required<RunRequest> = { parameters: {}, variables: {} };
  byName.forEach((parameter, name) => {
    const text = texts[name] ?? '';
    if (text === '' || (inputKind(parameter.type) !== 'str' && !text.trim())) {
      return;
    }
    const parsed = parseParameter(parameter, text);
    if (parsed.ok) {
      request.parameters[name] = parsed.value;
    } else {
      problems[`parameters.${name}`] = parsed.message;
    }
  });
  Object.entries(variables).forEach(([name, current]) => {
    const text = variableTexts[name];
    if (text === undefined || text === variableText(current)) {
      return;
    }
    const parsed = parseVariable(name, text, current);
    if (parsed.ok) {
      request.variables[name] = parsed.value;
    } else {
      problems[`variables.${name}`] = parsed.message;
    }
  });
  const shown: Problems = { ...serverProblems, ...problems };
  const invalid = Object.keys(problems).length > 0;

  const submit = async () => {
    if (invalid) {
      return;
    }
    setBusy(true);
    try {
      const run = await model.client.runScenario(project, scenario, request);
      setError(null);
      setServerProblems({});
      props.onStarted(run);
    } catch (failure) {
      if (
        failure instanceof ApiError &&
        failure.field &&
        /^(parameters|variables)\./.test(failure.field)
      ) {
        setServerProblems({ [failure.field]: failure.message });
        setError(null);
      } else {
        setError(errorText(failure));
      }
    } finally {
      setBusy(false);
    }
  };

  const clearServer = (field: string) => {
    if (field in serverProblems) {
      const rest = { ...serverProblems };
      delete rest[field];
      setServerProblems(rest);
    }
  };

  const overrides =
    Object.keys(request.parameters).length +
    Object.keys(request.variables).length;

  return (
    <form
      className="hml-form hml-run-form"
      aria-label="Run now"
      onSubmit={event => {
        event.preventDefault();
        void submit();
      }}
    >
      <ErrorNotice error={spec.error} />
      {spec.loading && !spec.value && <Loading />}
      {spec.value &&
        groups.every(group => group.parameters.length === 0) &&
        Object.keys(variables).length === 0 && (
          <Empty>
            No notebook parameters or variables: the run follows the scenario as
            saved.
          </Empty>
        )}
      {groups
        .filter(group => group.parameters.length > 0)
        .map(group => (
          <fieldset
            key={group.step}
            className="hml-step-parameters"
            data-step={group.step}
          >
            <legend>
              {group.step} <span className="hml-key">{group.notebook}</span>
            </legend>
            {group.parameters.map(parameter => (
              <ParameterField
                key={parameter.name}
                parameter={parameter}
                text={texts[parameter.name] ?? ''}
                error={shown[`parameters.${parameter.name}`]}
                note={
                  sharedBy[parameter.name]
                    ? `also given to ${sharedBy[parameter.name].join(', ')}`
                    : undefined
                }
                onChange={text => {
                  setTexts({ ...texts, [parameter.name]: text });
                  clearServer(`parameters.${parameter.name}`);
                }}
              />
            ))}
          </fieldset>
        ))}
      {Object.keys(variables).length > 0 && (
        <fieldset className="hml-run-variables">
          <legend>Variables</legend>
          {Object.entries(variables).map(([name, current]) => {
            const field = `variables.${name}`;
            const problem = shown[field];
            return (
              <label key={name} className="hml-parameter">
                <span className="hml-parameter-head">
                  <span className="hml-parameter-name">{name}</span>
                </span>
                <input
                  className={`jp-mod-styled${problem ? ' jp-mod-error' : ''}`}
                  name={field}
                  aria-label={`Variable ${name}`}
                  aria-invalid={problem ? true : undefined}
                  spellCheck={false}
                  autoComplete="off"
                  value={variableTexts[name] ?? variableText(current)}
                  onChange={event => {
                    setVariableTexts({
                      ...variableTexts,
                      [name]: event.target.value
                    });
                    clearServer(field);
                  }}
                />
                {problem && <span className="hml-field-error">{problem}</span>}
              </label>
            );
          })}
        </fieldset>
      )}
      <ErrorNotice error={error} />
      <div className="hml-buttons">
        <Button
          small
          type="submit"
          className="jp-mod-styled jp-mod-accept hml-action"
          disabled={busy || invalid || !spec.value}
          aria-busy={busy}
        >
          {busy && <span className="hml-spinner" aria-hidden="true" />}
          Start run
        </Button>
        <Button small minimal type="button" onClick={props.onCancel}>
          Cancel
        </Button>
        <span className="hml-help">
          {overrides === 0
            ? 'As saved'
            : `${overrides} override${overrides > 1 ? 's' : ''}`}
        </span>
      </div>
    </form>
  );
}
