/** How a dataset's checks and metrics read: the outcome summary, the last report, the tables. */
import React from 'react';

import {
  Outcome,
  describeRule,
  describeOutcomes,
  formatValue,
  worstOutcome
} from '../charts/values';
import { Badge, When } from '../components/common';
import { IAsync } from '../hooks/useAsync';
import type { DescribeCheck } from '../types';
import { OpenFailingRows } from './failing';
import type { ILatest, Report } from './details';

/** The outcomes of the checks that have a result. */
function outcomesOf(checks: DescribeCheck[]): Outcome[] {
  return checks
    .map(check => check.last_result?.outcome)
    .filter((outcome): outcome is Outcome => outcome !== undefined);
}

/** The worst outcome of a dataset's checks, or why there is none. */
export function CheckSummary(props: {
  checks: IAsync<DescribeCheck[]>;
}): JSX.Element {
  const checks = props.checks.value;
  if (!checks) {
    // Loading, or refused: the details say why.
    return (
      <span className="hml-dq-nochecks">{props.checks.loading ? '…' : ''}</span>
    );
  }
  if (checks.length === 0) {
    return <span className="hml-dq-nochecks">no checks</span>;
  }
  const outcomes = outcomesOf(checks);
  if (outcomes.length === 0) {
    return (
      <span
        className="hml-dq-nochecks"
        title="Its checks have never been evaluated"
      >
        not run
      </span>
    );
  }
  const notRun = checks.length - outcomes.length;
  const title =
    describeOutcomes(outcomes) + (notRun > 0 ? `, ${notRun} not run` : '');
  return <Badge value={worstOutcome(outcomes)} title={`Checks: ${title}`} />;
}

/** What the last Compute or Run checks did: `Checks: ERROR — 1 error, 2 ok`. */
export function ReportSummary(props: { report: Report }): JSX.Element {
  const { report } = props;
  if (report.kind === 'checks') {
    const outcomes = report.run.results.map(result => result.outcome);
    const failing = report.run.results.filter(
      result => result.outcome !== 'OK'
    );
    return (
      <div
        className={`hml-dq-summary hml-dq-summary-${report.run.outcome.toLowerCase()}`}
        role="status"
        title={failing
          .map(result => `${result.check}: ${result.message}`)
          .join('\n')}
      >
        Checks: <Badge value={report.run.outcome} /> —{' '}
        {describeOutcomes(outcomes)}
      </div>
    );
  }
  const values = Object.entries(report.computed.values);
  const shown = values
    .slice(0, 3)
    .map(([metric, value]) => `${metric} ${formatValue(value)}`)
    .join(', ');
  return (
    <div className="hml-dq-summary" role="status">
      Metrics: computed {values.length}
      {values.length > 0 && ` — ${shown}${values.length > 3 ? ', …' : ''}`}
    </div>
  );
}

export function ChecksTable(props: {
  checks: DescribeCheck[];
  /** Opens the rows that broke a check's row condition, in a main-area tab. */
  onOpenFailingRows: (check: string) => void;
}): JSX.Element {
  return (
    <table className="hml-table hml-dq-checks">
      <thead>
        <tr>
          <th>Outcome</th>
          <th>Check and last result</th>
        </tr>
      </thead>
      <tbody>
        {props.checks.map(check => {
          const result = check.last_result;
          const rule = describeRule(check);
          return (
            <tr key={check.name} data-check={check.name}>
              <td className="hml-dq-check-outcome">
                {result ? (
                  <Badge value={result.outcome} />
                ) : (
                  <span
                    className="hml-dq-nochecks"
                    title="Never evaluated: run the checks"
                  >
                    not run
                  </span>
                )}
              </td>
              <td className="hml-dq-check">
                <span className="hml-dq-check-name" title={rule}>
                  {check.name}
                </span>
                <span className="hml-key hml-dq-metric">
                  {check.metric ??
                    (check.type === 'schema_unchanged' ? 'schema' : check.type)}
                </span>
                {result && (
                  <>
                    <span className="hml-dq-message">{result.message}</span>
                    <span className="hml-dq-when">
                      <When iso={result.evaluated_at} />
                      {result.origin !== 'manual' && ` · ${result.origin}`}
                    </span>
                    <OpenFailingRows
                      check={check}
                      onOpen={props.onOpenFailingRows}
                    />
                  </>
                )}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function MetricsTable(props: { latest: ILatest[] }): JSX.Element {
  return (
    <table className="hml-table hml-dq-metrics">
      <thead>
        <tr>
          <th>Metric</th>
          <th className="hml-dq-value">Last value</th>
        </tr>
      </thead>
      <tbody>
        {props.latest.map(({ metric, value }) => {
          const shown = value ? formatValue(value.value) : '—';
          return (
            <tr key={metric} data-last-metric={metric}>
              <td>
                <span className="hml-key hml-dq-metric">{metric}</span>
                <span className="hml-dq-when">
                  {value ? <When iso={value.computed_at} /> : 'never computed'}
                </span>
              </td>
              <td
                className={`hml-dq-value${shown.length <= 16 ? ' hml-dq-short' : ''}`}
              >
                {shown}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
