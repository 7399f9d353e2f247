/**
 * A run, followed live (`useRunFollow`): its status, abort and re-run, its artifacts, steps,
 * inputs and log.
 */
import React, { useEffect, useState } from 'react';

import { ActionButton, ErrorNotice, Loading, When } from '../components/common';
import { useRunFollow } from '../hooks/useRunFollow';
import { formatValue } from '../parameters';
import { IHimaliaServices } from '../services';
import type { DescribeRun } from '../types';
import { OpenArtifactButtons, runArtifacts } from './artifacts';
import { CompareWith } from './compare';
import { runEvents } from './events';
import { RunStatus, RunTitle } from './header';
import { RunLog } from './log';
import { isActive } from './states';
import { StepList } from './steps';

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
  const { run, error, log, accept } = useRunFollow(
    { client, project, scenario, runId },
    model.settings.runPollSeconds,
    visible,
    props.onChanged
  );
  const [actionError, setActionError] = useState<string | null>(null);
  useEffect(() => setActionError(null), [runId]);
  // Seen here ended: the other panels read what it changed (once per run).
  useEffect(() => {
    if (run && run.id === runId) {
      runEvents.announceEnded({
        project,
        scenario,
        run: runId,
        state: run.state
      });
    }
  }, [run?.state, runId]);

  const act = async (action: () => Promise<DescribeRun>) => {
    const result = await action();
    setActionError(null);
    return result;
  };
  const mayRun = model.can('run_scenarios');
  const mayPin = mayRun || model.can('write_content');
  const artifacts = runArtifacts(run);
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
      <RunTitle runId={runId} run={run} />
      <ErrorNotice error={error} />
      {!run && !error && <Loading />}
      {run && (
        <>
          <RunStatus run={run} />
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
            {mayPin && !isActive(run.state) && (
              <ActionButton
                label={run.pinned ? 'Unpin' : 'Pin'}
                title={
                  run.pinned
                    ? 'Let retention purge its artifacts and log when they are past its bounds'
                    : 'Keep its artifacts and log whatever retention says'
                }
                onClick={() =>
                  act(() =>
                    client.pinRun(project, scenario, runId, !run.pinned)
                  ).then(accept)
                }
                onError={setActionError}
              />
            )}
            <OpenArtifactButtons
              artifacts={artifacts}
              open={command => openArtifact(command)}
              onError={setActionError}
            />
            <CompareWith
              services={services}
              project={project}
              scenario={scenario}
              runId={runId}
            />
          </div>
          <ErrorNotice error={actionError} />
          {run.purged_at && (
            <p className="hml-help hml-run-purged" role="note">
              Retention purged its artifacts and log on{' '}
              <When iso={run.purged_at} />; its record, metrics and check
              results stay.
            </p>
          )}
          <h5>Steps</h5>
          <StepList
            steps={run.steps}
            artifacts={artifacts}
            open={openArtifact}
          />
          <RunInputs run={run} />
          <DatasetsRead run={run} />
          <h5>Log</h5>
          <RunLog runId={runId} log={log} active={isActive(run.state)} />
        </>
      )}
    </section>
  );
}

/** The datasets the run read (its steps, its kernels with its token), with their schema digests. */
function DatasetsRead(props: { run: DescribeRun }): JSX.Element | null {
  const inputs = props.run.inputs ?? [];
  if (inputs.length === 0) {
    return null;
  }
  return (
    <details className="hml-run-datasets">
      <summary>Datasets read ({inputs.length})</summary>
      <ul aria-label="Datasets read">
        {inputs.map(input => (
          <li
            key={`${input.dataset}:${input.schema_digest}:${input.read_by}`}
            data-dataset={input.dataset}
            title={`Schema digest ${input.schema_digest}`}
          >
            <span className="hml-key">{input.dataset}</span> by{' '}
            {input.read_by === 'step' ? 'a step' : 'its kernel'}, schema{' '}
            {input.schema_digest.slice(0, 12)}
            {typeof input.rows === 'number' &&
              `, ${formatValue(input.rows)} rows`}
          </li>
        ))}
      </ul>
    </details>
  );
}

/** The parameters and variables the run was given, folded away. */
function RunInputs(props: { run: DescribeRun }): JSX.Element | null {
  const { run } = props;
  if (
    Object.keys(run.parameters).length === 0 &&
    Object.keys(run.variables).length === 0
  ) {
    return null;
  }
  return (
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
  );
}
