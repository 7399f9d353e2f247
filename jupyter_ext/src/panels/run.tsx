/**
 * Runs of a scenario: the "Run now" form built from the notebooks' typed parameters and the
 * scenario's variables, and a run's details (state, steps, check outcomes, live log, artifacts,
 * abort and re-run). The typed parameter input is shared with the "Schedule this notebook…"
 * dialog's form (scheduleform.tsx).
 */
import React, {
  useCallback,
  useEffect,
  useLayoutEffect,
  useRef,
  useState
} from 'react';

import { Button } from '@jupyterlab/ui-components';

import { ApiError } from '../api';
import {
  ActionButton,
  Badge,
  Empty,
  ErrorNotice,
  Loading,
  When,
  useAsync,
  usePoll
} from '../components/common';
import { errorText } from '../errors';
import { HimaliaModel } from '../model';
import {
  IParameter,
  baseType,
  formatValue,
  inputKind,
  parseParameter,
  parseVariable,
  placeholderOf,
  variableText
} from '../parameters';
import { Problems } from '../schedule';
import { CommandIDs, IHimaliaServices } from '../services';
import type { DescribeRun, DescribeStep, RunRequest, RunState } from '../types';

/** Run states in which a run may still change. */
export const ACTIVE_STATES: RunState[] = ['queued', 'running'];

export function isActive(state: RunState | undefined): boolean {
  return state !== undefined && ACTIVE_STATES.includes(state);
}

/** The log kept in the page; older output is cut beyond it. */
const MAX_LOG_CHARS = 500_000;

// -- one typed parameter ----------------------------------------------------------------------

/**
 * The input of one notebook parameter: a number or text field, a True/False choice, or JSON for
 * lists and dicts; empty stands for the placeholder (the step's value or the default).
 */
export function ParameterField(props: {
  parameter: IParameter;
  text: string;
  onChange: (text: string) => void;
  error?: string | null;
  /** The input's `name` (the parameter's name by default). */
  inputName?: string;
  note?: string;
}): JSX.Element {
  const { parameter, text, onChange, error } = props;
  const kind = inputKind(parameter.type);
  const placeholder = placeholderOf(parameter);
  const common = {
    name: props.inputName ?? parameter.name,
    'aria-label': parameter.name,
    'aria-invalid': error ? true : undefined,
    className: `jp-mod-styled${error ? ' jp-mod-error' : ''}`,
    title: parameter.help || undefined
  };
  let input: JSX.Element;
  if (kind === 'bool') {
    input = (
      <select
        {...common}
        value={text}
        onChange={event => onChange(event.target.value)}
      >
        <option value="">{`${placeholder} (unchanged)`}</option>
        <option value="True">True</option>
        <option value="False">False</option>
        {baseType(parameter.type).optional && (
          <option value="None">None</option>
        )}
      </select>
    );
  } else if (kind === 'json') {
    input = (
      <textarea
        {...common}
        rows={2}
        spellCheck={false}
        placeholder={placeholder}
        value={text}
        onChange={event => onChange(event.target.value)}
      />
    );
  } else {
    input = (
      <input
        {...common}
        type="text"
        inputMode={
          kind === 'int' ? 'numeric' : kind === 'float' ? 'decimal' : undefined
        }
        spellCheck={false}
        autoComplete="off"
        placeholder={placeholder}
        value={text}
        onChange={event => onChange(event.target.value)}
      />
    );
  }
  const defaultShown =
    parameter.value !== null && parameter.value !== undefined
      ? `default ${parameter.default}`
      : '';
  return (
    <label className="hml-parameter" data-parameter={parameter.name}>
      <span className="hml-parameter-head">
        <span className="hml-parameter-name">{parameter.name}</span>
        <span className="hml-parameter-type">{parameter.type}</span>
      </span>
      {input}
      {(parameter.help || defaultShown || props.note) && (
        <span className="hml-help">
          {[parameter.help, defaultShown, props.note]
            .filter(Boolean)
            .join(' · ')}
        </span>
      )}
      {error && <span className="hml-field-error">{error}</span>}
    </label>
  );
}

// -- "Run now" --------------------------------------------------------------------------------

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

// -- a run --------------------------------------------------------------------------------------

function duration(start: string | null, end: string | null): string {
  if (!start) {
    return '';
  }
  const seconds = Math.max(
    0,
    Math.round(
      ((end ? new Date(end) : new Date()).getTime() -
        new Date(start).getTime()) /
        1000
    )
  );
  if (seconds < 60) {
    return `${seconds} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ${seconds % 60} s`;
  }
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** How a run came to be, in a few words. */
export function describeTrigger(run: DescribeRun): string {
  const detail = run.trigger_detail as Record<string, unknown>;
  switch (run.trigger) {
    case 'manual':
      return `manual, by ${run.requested_by}`;
    case 'rerun':
      return (
        `re-run of #${run.rerun_of ?? detail.run}` +
        (run.start_step > 0
          ? ` from step ${(run.steps[run.start_step]?.name ?? run.start_step + 1).toString()}`
          : '')
      );
    case 'cron':
      return (
        `schedule, ${detail.fire_time ? new Date(String(detail.fire_time)).toLocaleString() : 'fire time'}` +
        (detail.catch_up ? ' (caught up)' : '')
      );
    case 'after_scenario':
      return `after ${String(detail.scenario)} #${String(detail.run)} (${String(detail.outcome)})`;
    case 'scenario':
      return `step of ${String(detail.scenario)} #${String(detail.run)}`;
    case 'dataset_change':
      return 'dataset change';
    case 'sql_condition':
      return 'SQL condition';
    default:
      return run.trigger;
  }
}

interface ICheckResult {
  check: string;
  outcome: string;
  message: string;
}

function checkResults(step: DescribeStep): ICheckResult[] {
  const results = step.outputs.results;
  if (!Array.isArray(results)) {
    return [];
  }
  return results.filter(
    (result): result is ICheckResult =>
      typeof result === 'object' &&
      result !== null &&
      typeof (result as ICheckResult).check === 'string'
  );
}

function StepOutputs(props: { step: DescribeStep }): JSX.Element | null {
  const { step } = props;
  const outputs = step.outputs as Record<string, unknown>;
  if (step.type === 'run_checks') {
    const results = checkResults(step);
    if (results.length === 0) {
      return null;
    }
    return (
      <ul className="hml-check-results" aria-label={`Checks of ${step.name}`}>
        {results.map(result => (
          <li key={result.check} data-check={result.check}>
            <Badge value={result.outcome} />
            <span className="hml-name">{result.check}</span>
            {result.message && (
              <span className="hml-message">{result.message}</span>
            )}
          </li>
        ))}
      </ul>
    );
  }
  const values =
    step.type === 'notebook'
      ? outputs.metrics
      : step.type === 'compute_metrics'
        ? outputs.values
        : step.type === 'set_variables'
          ? outputs.variables
          : null;
  if (!values || typeof values !== 'object') {
    return null;
  }
  const entries = Object.entries(values as Record<string, unknown>);
  if (entries.length === 0) {
    return null;
  }
  return (
    <dl className="hml-facts hml-step-values">
      {entries.map(([name, value]) => (
        <React.Fragment key={name}>
          <dt>{name}</dt>
          <dd>{formatValue(value)}</dd>
        </React.Fragment>
      ))}
    </dl>
  );
}

/**
 * A run, followed live: its state and steps are read again every `runPollSeconds` while it is
 * queued or running and the section is in view, and its log is read from where the last read
 * stopped and appended.
 */
export function RunDetails(props: {
  services: IHimaliaServices;
  project: string;
  scenario: string;
  runId: number;
  visible: boolean;
  /** A new run was started from this one (re-run). */
  onStarted: (run: DescribeRun) => void;
  /** The run's state changed (so lists showing it are stale). */
  onChanged: () => void;
}): JSX.Element {
  const { services, project, scenario, runId, visible } = props;
  const model = services.model;
  const client = model.client;
  const [run, setRun] = useState<DescribeRun | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [log, setLog] = useState('');
  const shownRun = useRef(runId);
  const cursor = useRef(0);
  const lastState = useRef<RunState | null>(null);
  const logQueue = useRef<Promise<void>>(Promise.resolve());
  const onChanged = useRef(props.onChanged);
  onChanged.current = props.onChanged;

  /** Read the log after the cursor; reads are queued so that none overlaps another. */
  const readLog = useCallback((): Promise<void> => {
    const target = runId;
    const next = logQueue.current.then(async () => {
      if (shownRun.current !== target) {
        return;
      }
      const part = await client.runLog(
        project,
        scenario,
        target,
        cursor.current
      );
      if (shownRun.current !== target) {
        return;
      }
      cursor.current = part.cursor;
      if (part.text) {
        setLog(previous => {
          const joined = previous + part.text;
          return joined.length > MAX_LOG_CHARS
            ? '… (earlier output cut)\n' + joined.slice(-MAX_LOG_CHARS)
            : joined;
        });
      }
    });
    logQueue.current = next.catch(() => undefined);
    return next;
  }, [client, project, scenario, runId]);

  /**
   * Read the run, then its log (so a finished run's log is read whole), and show both: the log
   * before the state.
   */
  const refresh = useCallback(async (): Promise<void> => {
    const target = runId;
    try {
      const fresh = await client.run(project, scenario, target);
      // The log first: once the run shows as ended, its log is complete on screen.
      await readLog();
      if (shownRun.current !== target) {
        return;
      }
      setRun(fresh);
      const before = lastState.current;
      lastState.current = fresh.state;
      setError(null);
      if (before !== null && before !== fresh.state) {
        onChanged.current();
      }
    } catch (failure) {
      if (shownRun.current === target) {
        setError(errorText(failure));
      }
      throw failure;
    }
  }, [client, project, scenario, runId, readLog]);

  useEffect(() => {
    shownRun.current = runId;
    cursor.current = 0;
    lastState.current = null;
    setRun(null);
    setLog('');
    setError(null);
    setActionError(null);
    refresh().catch(() => undefined);
  }, [refresh]);

  usePoll(
    refresh,
    model.settings.runPollSeconds,
    visible && isActive(run?.state)
  );

  // Keep the log scrolled to its end unless the person scrolled up to read.
  const logNode = useRef<HTMLPreElement>(null);
  const following = useRef(true);
  useLayoutEffect(() => {
    const node = logNode.current;
    if (node && following.current) {
      node.scrollTop = node.scrollHeight;
    }
  }, [log]);

  const act = async (action: () => Promise<DescribeRun>) => {
    const result = await action();
    setActionError(null);
    return result;
  };
  /** Show a run the server just answered with (after an abort). */
  const accept = (fresh: DescribeRun) => {
    setRun(fresh);
    if (lastState.current !== fresh.state) {
      lastState.current = fresh.state;
      onChanged.current();
    }
  };
  const mayRun = model.can('run_scenarios');
  const artifacts = run?.artifacts ?? [];
  const hasReport = artifacts.some(name => name.endsWith('.html'));
  const hasNotebook = artifacts.some(name => name.endsWith('.ipynb'));
  const stepArtifacts = (step: DescribeStep) => ({
    report: artifacts.includes(`step-${step.position}.html`),
    notebook: artifacts.includes(`step-${step.position}.ipynb`)
  });
  const notebookSteps = (run?.steps ?? []).filter(step => {
    const produced = stepArtifacts(step);
    return produced.report || produced.notebook;
  });
  const openArtifact = (command: string, step?: string) =>
    services.app.commands.execute(command, {
      project,
      scenario,
      run: runId,
      ...(step ? { step } : {})
    });
  const failedStep = run?.steps.some(
    step => step.state === 'failed' || step.state === 'aborted'
  );

  return (
    <section
      className="hml-run"
      aria-label={`Run ${runId}`}
      data-run={runId}
      data-state={run?.state}
    >
      <h4>
        Run #{runId} {run && <Badge value={run.state} />}
        {run && run.abort_requested && isActive(run.state) && (
          <span className="hml-help"> abort requested</span>
        )}
      </h4>
      <ErrorNotice error={error} />
      {!run && !error && <Loading />}
      {run && (
        <>
          <dl className="hml-facts">
            <dt>Trigger</dt>
            <dd>{describeTrigger(run)}</dd>
            <dt>Requested by</dt>
            <dd>
              {run.requested_by}
              {run.run_as !== run.requested_by && (
                <span className="hml-help"> (runs as {run.run_as})</span>
              )}
            </dd>
            <dt>Created</dt>
            <dd>
              <When iso={run.created_at} />
            </dd>
            <dt>Started</dt>
            <dd>
              <When iso={run.started_at} />
            </dd>
            <dt>Ended</dt>
            <dd>
              <When iso={run.ended_at} />
              {run.started_at && (
                <span className="hml-help">
                  {' '}
                  ({duration(run.started_at, run.ended_at)})
                </span>
              )}
            </dd>
          </dl>
          {run.message && <p className="hml-run-message">{run.message}</p>}
          <div className="hml-buttons">
            {mayRun && isActive(run.state) && (
              <ActionButton
                label="Abort"
                busyLabel="Aborting…"
                disabled={run.abort_requested}
                onClick={() =>
                  act(() => client.abortRun(project, scenario, runId)).then(
                    accept
                  )
                }
                onError={setActionError}
              />
            )}
            {mayRun && !isActive(run.state) && (
              <ActionButton
                label="Re-run"
                title="Run the same notebook snapshots and parameters again"
                onClick={() =>
                  act(() => client.rerun(project, scenario, runId, false)).then(
                    props.onStarted
                  )
                }
                onError={setActionError}
              />
            )}
            {mayRun && !isActive(run.state) && failedStep && (
              <ActionButton
                label="Re-run from failed step"
                title="Start at the first failed step, keeping the earlier steps' results"
                onClick={() =>
                  act(() => client.rerun(project, scenario, runId, true)).then(
                    props.onStarted
                  )
                }
                onError={setActionError}
              />
            )}
            {hasNotebook && (
              <ActionButton
                label="Open notebook"
                title="The executed notebook of the last notebook step, in a lab tab"
                onClick={() => openArtifact(CommandIDs.openRunNotebook)}
                onError={setActionError}
              />
            )}
            {hasReport && (
              <ActionButton
                label="Open report"
                title="The HTML report of the last notebook step, in a lab tab"
                onClick={() => openArtifact(CommandIDs.openRunReport)}
                onError={setActionError}
              />
            )}
          </div>
          <ErrorNotice error={actionError} />
          <h5>Steps</h5>
          <ol className="hml-steps">
            {run.steps.map(step => {
              const produced = stepArtifacts(step);
              return (
                <li
                  key={step.position}
                  className="hml-step"
                  data-step={step.name}
                  data-state={step.state}
                >
                  <div className="hml-step-head">
                    <Badge value={step.state} />
                    <span className="hml-name">{step.name}</span>
                    <span className="hml-key">{step.type}</span>
                    {step.started_at && (
                      <span className="hml-help">
                        {duration(step.started_at, step.ended_at)}
                        {step.attempts > 1 && `, ${step.attempts} attempts`}
                      </span>
                    )}
                    {notebookSteps.length > 1 && produced.notebook && (
                      <button
                        type="button"
                        className="hml-link"
                        title={`Open the executed notebook of ${step.name}`}
                        onClick={() =>
                          void openArtifact(
                            CommandIDs.openRunNotebook,
                            step.name
                          )
                        }
                      >
                        ipynb
                      </button>
                    )}
                    {notebookSteps.length > 1 && produced.report && (
                      <button
                        type="button"
                        className="hml-link"
                        title={`Open the report of ${step.name}`}
                        onClick={() =>
                          void openArtifact(CommandIDs.openRunReport, step.name)
                        }
                      >
                        html
                      </button>
                    )}
                  </div>
                  {step.message && (
                    <div className="hml-message">{step.message}</div>
                  )}
                  <StepOutputs step={step} />
                </li>
              );
            })}
          </ol>
          {(Object.keys(run.parameters).length > 0 ||
            Object.keys(run.variables).length > 0) && (
            <details className="hml-run-inputs">
              <summary>Parameters and variables</summary>
              <dl className="hml-facts">
                {Object.entries(run.parameters).map(([name, value]) => (
                  <React.Fragment key={`p:${name}`}>
                    <dt>{name}</dt>
                    <dd>{formatValue(value)}</dd>
                  </React.Fragment>
                ))}
                {Object.entries(run.variables).map(([name, value]) => (
                  <React.Fragment key={`v:${name}`}>
                    <dt>{'${' + name + '}'}</dt>
                    <dd>{formatValue(value)}</dd>
                  </React.Fragment>
                ))}
              </dl>
            </details>
          )}
          <h5>Log</h5>
          {log ? (
            <pre
              className="hml-log"
              ref={logNode}
              aria-label={`Log of run ${runId}`}
              tabIndex={0}
              onScroll={event => {
                const node = event.currentTarget;
                following.current =
                  node.scrollHeight - node.scrollTop - node.clientHeight < 16;
              }}
            >
              {log}
            </pre>
          ) : (
            <Empty>{isActive(run.state) ? 'No output yet.' : 'No log.'}</Empty>
          )}
        </>
      )}
    </section>
  );
}
