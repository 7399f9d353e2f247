/** A run's steps: each one's state, duration, message, outputs (check outcomes, values) and artifacts. */
import React from 'react';

import { Badge } from '../components/common';
import { formatValue } from '../parameters';
import type { DescribeStep } from '../types';
import { IRunArtifacts, StepArtifactLinks } from './artifacts';
import { IEnvironment, describeEnvironment, duration } from './states';

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

function EnvironmentLine(props: { step: DescribeStep }): JSX.Element | null {
  const environment = props.step.outputs.environment;
  if (!environment || typeof environment !== 'object') {
    return null;
  }
  const record = environment as IEnvironment;
  return (
    <div
      className="hml-help hml-step-environment"
      title={record.digest ? `Environment digest ${record.digest}` : undefined}
    >
      Ran on {describeEnvironment(record)}
    </div>
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

export function StepList(props: {
  steps: DescribeStep[];
  artifacts: IRunArtifacts;
  open: (command: string, step?: string) => Promise<unknown>;
}): JSX.Element {
  return (
    <ol className="hml-steps">
      {props.steps.map(step => (
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
            <StepArtifactLinks
              step={step}
              artifacts={props.artifacts}
              open={props.open}
            />
          </div>
          {step.message && <div className="hml-message">{step.message}</div>}
          <EnvironmentLine step={step} />
          <StepOutputs step={step} />
        </li>
      ))}
    </ol>
  );
}
