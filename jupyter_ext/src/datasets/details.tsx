/**
 * An opened dataset: its first rows (read by the server, so a reader without the connection's
 * credentials sees them too), its checks and their last results, its last metric values, the
 * history of one metric drawn with the bounds of its range checks (charts/), and, for
 * contributors and launchers, buttons to compute the metrics and run the checks now. A dataset
 * that declares its freshness shows it, with the newest value of its data and that value's age.
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { HTMLSelect } from '@jupyterlab/ui-components';
import React, { useMemo, useState } from 'react';

import { HimaliaClient } from '../api';
import { HistoryChart } from '../charts/history';
import { formatInZone } from '../charts/specs';
import { boundsFor, describeCondition, toSeries } from '../charts/values';
import {
  ActionButton,
  Empty,
  ErrorNotice,
  Loading
} from '../components/common';
import { IAsync, useAsync } from '../hooks/useAsync';
import { usePoll } from '../hooks/usePoll';
import { HimaliaModel } from '../model';
import type {
  CheckRun,
  ComputedMetrics,
  DescribeCheck,
  DescribeDataset,
  DescribeMetricValue
} from '../types';
import { useRefresh } from '../hooks/useRefresh';
import { IPreview } from './preview';
import { ChecksTable, MetricsTable, ReportSummary } from './tables';

/** How many values of one metric the chart draws, newest. */
const CHART_LIMIT = 200;
/** How many recent values of all metrics are read to find each one's last value. */
const LATEST_WINDOW = 500;
/** How many first rows the preview shows. */
const PREVIEW_ROWS = 20;

/** The first rows as a small table; says when more rows exist or the server's size cap cut them. */
export function PreviewTable(props: { preview: IPreview }): JSX.Element {
  const { columns, rows, stoppedBy } = props.preview;
  if (rows.length === 0) {
    return <Empty>The dataset has no rows.</Empty>;
  }
  return (
    <div className="hml-dq-preview" style={{ overflowX: 'auto' }}>
      <table className="hml-table" aria-label="First rows">
        <thead>
          <tr>
            {columns.map(column => (
              <th key={column}>{column}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, index) => (
            <tr key={index}>
              {row.map((value, column) => (
                <td key={column}>{value}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      <div className="hml-dq-note">
        {stoppedBy === 'limit' && `The first ${rows.length} rows; more exist.`}
        {stoppedBy === 'max_bytes' &&
          `The first ${rows.length} rows: the server's size limit stopped the read.`}
      </div>
    </div>
  );
}

/** "3 hours", "2.5 days": an age as people say it. */
function ageInWords(seconds: number): string {
  for (const [unit, size] of [
    ['day', 86400],
    ['hour', 3600],
    ['minute', 60]
  ] as const) {
    if (seconds >= size) {
      const count = Math.round((seconds / size) * 10) / 10;
      return `${count} ${unit}${count === 1 ? '' : 's'}`;
    }
  }
  return `${Math.round(seconds)} seconds`;
}

/**
 * The declared freshness (column or files' modification times, maximum age) and the newest value
 * last computed, in UTC as stored, with the reader's own zone in its tooltip.
 */
export function FreshnessSummary(props: {
  dataset: DescribeDataset;
  latest: ILatest[] | null;
}): JSX.Element | null {
  const declared = props.dataset.freshness;
  if (!declared) {
    return null;
  }
  const what = declared.column
    ? `the newest ${declared.column}`
    : 'the newest modification of its files';
  const newest = props.latest?.find(
    item => item.metric === 'freshness.newest'
  )?.value;
  let shown = 'not computed yet';
  let title = '';
  if (newest && typeof newest.value === 'string') {
    const moment = Date.parse(newest.value);
    const age = (Date.now() - moment) / 1000;
    const local = Intl.DateTimeFormat().resolvedOptions().timeZone;
    shown = `${formatInZone(moment, 'UTC')} (${ageInWords(Math.max(age, 0))} old)`;
    title = `${formatInZone(moment, local)} in your time zone; computed ${new Date(newest.computed_at).toLocaleString()}`;
  } else if (newest) {
    shown = 'no value (no row, or only nulls)';
  }
  return (
    <div className="hml-dq-freshness" aria-label="Freshness">
      <span>
        Fresh when {what} is at most {declared.max_age} old (times without a
        zone count as UTC).
      </span>{' '}
      <span title={title}>Newest: {shown}</span>
    </div>
  );
}

export interface ILatest {
  metric: string;
  value: DescribeMetricValue | null;
}

/**
 * The last value of each metric of a dataset: its own probes and custom metrics (computed or
 * not) and whatever else was recorded on it. One read of the recent history; a metric of the
 * dataset missing from a full window is asked for alone.
 */
/** The metrics a dataset computes by default: its probes, its conditions' counts, its custom ones. */
function ownMetrics(dataset: DescribeDataset): string[] {
  return [
    ...dataset.probes,
    ...(dataset.conditions ?? []).flatMap(condition => [
      `invalid_count:${condition.name}`,
      `invalid_percent:${condition.name}`
    ]),
    ...dataset.custom_metrics.map(metric => metric.name)
  ];
}

async function latestMetrics(
  client: HimaliaClient,
  key: string,
  dataset: DescribeDataset
): Promise<ILatest[]> {
  const recent = await client.metricHistory(key, dataset.name, {
    limit: LATEST_WINDOW
  });
  const latest = new Map<string, DescribeMetricValue>();
  for (const value of recent) {
    latest.set(value.metric, value); // oldest first: the last one wins
  }
  const own = ownMetrics(dataset);
  if (recent.length >= LATEST_WINDOW) {
    const missing = own.filter(metric => !latest.has(metric));
    const found = await Promise.all(
      missing.map(metric =>
        client.metricHistory(key, dataset.name, { metric, limit: 1 })
      )
    );
    for (const values of found) {
      if (values.length > 0) {
        latest.set(values[0].metric, values[0]);
      }
    }
  }
  const others = [...latest.keys()].filter(metric => !own.includes(metric));
  return [...new Set(own), ...others.sort()].map(metric => ({
    metric,
    value: latest.get(metric) ?? null
  }));
}

export type Report =
  | { kind: 'metrics'; computed: ComputedMetrics }
  | { kind: 'checks'; run: CheckRun };

export function DatasetDetails(props: {
  model: HimaliaModel;
  projectKey: string;
  dataset: DescribeDataset;
  where: string;
  checks: IAsync<DescribeCheck[]>;
  visible: boolean;
  refresh: number;
  rendermime: IRenderMimeRegistry | null;
  onOpenFailingRows: (check: string) => void;
}): JSX.Element {
  const { model, projectKey: key, dataset, checks } = props;
  const name = dataset.name;
  const client = model.client;
  // The dataset's own metrics, as a dependency: new probes are read when the list is refreshed.
  const own = ownMetrics(dataset).join('\n');
  const metrics = useAsync(
    () => latestMetrics(client, key, dataset),
    [key, name, own]
  );
  const preview = useAsync(
    () => client.datasetPreview(key, name, PREVIEW_ROWS),
    [key, name]
  );
  const [chosen, setChosen] = useState<string | null>(null);
  const [busy, setBusy] = useState<'compute' | 'checks' | null>(null);
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState<string | null>(null);

  const checkList = checks.value ?? [];
  const rangeMetrics = checkList
    .filter(check => check.type === 'range' && check.metric)
    .map(check => check.metric as string);
  const metricNames = useMemo(() => {
    const names = (metrics.value ?? []).map(item => item.metric);
    for (const check of checkList) {
      if (check.metric && !names.includes(check.metric)) {
        names.push(check.metric);
      }
    }
    return names;
  }, [metrics.value, checks.value]);
  // By default the first metric a range check watches, else the first with a numeric value.
  const metric =
    chosen ??
    rangeMetrics.find(item => metricNames.includes(item)) ??
    metrics.value?.find(item => typeof item.value?.value === 'number')
      ?.metric ??
    metricNames[0] ??
    null;

  const history = useAsync(
    () =>
      metric
        ? client.metricHistory(key, name, { metric, limit: CHART_LIMIT })
        : Promise.resolve([]),
    [key, name, metric]
  );
  const series = useMemo(() => toSeries(history.value ?? []), [history.value]);
  const bounds = useMemo(
    () => (metric ? boundsFor(metric, checkList) : []),
    [metric, checks.value]
  );

  const reloadAll = () =>
    Promise.all([checks.reload(), metrics.reload(), history.reload()]);
  usePoll(reloadAll, model.settings.listPollSeconds, props.visible);
  useRefresh(props.refresh, () =>
    Promise.all([metrics.reload(), history.reload()])
  );

  const canRun =
    model.can('read_content') &&
    (model.can('run_scenarios') || model.can('write_content'));
  const act = async (
    which: 'compute' | 'checks',
    action: () => Promise<Report>
  ) => {
    setBusy(which);
    setError(null);
    setReport(null);
    try {
      setReport(await action());
    } finally {
      setBusy(null);
      await reloadAll();
    }
  };
  const fail = (message: string) => {
    setError(message);
  };
  const hasMetrics = ownMetrics(dataset).length > 0;
  const conditions = dataset.conditions ?? [];

  return (
    <div className="hml-dq-details" aria-label={`Data quality of ${name}`}>
      <div className="hml-key hml-dq-where">{props.where}</div>
      {dataset.description && (
        <p className="hml-description">{dataset.description}</p>
      )}
      <FreshnessSummary dataset={dataset} latest={metrics.value ?? null} />
      {canRun && (
        <div className="hml-buttons">
          <ActionButton
            label="Compute"
            busyLabel="Computing…"
            title={
              hasMetrics
                ? `Compute the metrics of ${name} now, where the data lives`
                : `${name} has no metric to compute`
            }
            disabled={!hasMetrics || busy === 'checks'}
            onError={fail}
            onClick={() =>
              act('compute', async () => ({
                kind: 'metrics',
                computed: await client.computeMetrics(key, name)
              }))
            }
          />
          <ActionButton
            label="Run checks"
            busyLabel="Running checks…"
            title={`Compute the metrics the checks of ${name} need, then evaluate every check`}
            disabled={busy === 'compute'}
            onError={fail}
            onClick={() =>
              act('checks', async () => ({
                kind: 'checks',
                run: await client.runChecks(key, name)
              }))
            }
          />
        </div>
      )}
      {busy && (
        <div className="hml-dq-progress" role="status">
          <span className="hml-spinner" aria-hidden="true" />
          {busy === 'compute'
            ? `Computing the metrics of ${name}…`
            : `Running the checks of ${name}…`}
        </div>
      )}
      <ErrorNotice error={error} />
      {report && <ReportSummary report={report} />}

      <h4>First rows</h4>
      <ErrorNotice error={preview.error} />
      {preview.loading && !preview.value && !preview.error && <Loading />}
      {preview.value && <PreviewTable preview={preview.value} />}

      {conditions.length > 0 && (
        <>
          <h4>Row conditions</h4>
          <ul className="hml-dq-conditions" aria-label="Row conditions">
            {conditions.map(condition => (
              <li key={condition.name} data-condition={condition.name}>
                <span className="hml-key">{condition.name}</span>{' '}
                {describeCondition(condition)}
              </li>
            ))}
          </ul>
        </>
      )}

      <h4>Checks</h4>
      <ErrorNotice error={checks.error} />
      {checks.loading && !checks.value && !checks.error && <Loading />}
      {checks.value && checks.value.length === 0 && (
        <Empty>No check on this dataset.</Empty>
      )}
      {checks.value && checks.value.length > 0 && (
        <ChecksTable
          checks={checks.value}
          onOpenFailingRows={props.onOpenFailingRows}
        />
      )}

      <h4>Last metric values</h4>
      <ErrorNotice error={metrics.error} />
      {metrics.loading && !metrics.value && !metrics.error && <Loading />}
      {metrics.value && metrics.value.length === 0 && (
        <Empty>No metric on this dataset.</Empty>
      )}
      {metrics.value && metrics.value.length > 0 && (
        <MetricsTable latest={metrics.value} />
      )}

      <h4>History</h4>
      {metricNames.length === 0 && !metrics.loading && (
        <Empty>No metric to chart.</Empty>
      )}
      {metric && (
        <div className="hml-dq-history">
          <div className="hml-dq-chooser">
            <span>Metric</span>
            <HTMLSelect
              aria-label="Metric"
              title="The metric whose history is drawn"
              value={metric}
              onChange={event => setChosen(event.target.value)}
              options={metricNames}
            />
          </div>
          <ErrorNotice error={history.error} />
          {history.loading && !history.value && !history.error && <Loading />}
          {history.value && series.points.length === 0 && (
            <Empty>
              {history.value.length === 0
                ? `${metric} has not been computed yet.`
                : `${metric} has no numeric value to chart.`}
            </Empty>
          )}
          {history.value && series.points.length > 0 && (
            <HistoryChart
              rendermime={props.rendermime}
              metric={metric}
              points={series.points}
              bounds={bounds}
            />
          )}
          {history.value && (
            <div className="hml-dq-note">
              {history.value.length >= CHART_LIMIT &&
                `The last ${CHART_LIMIT} values. `}
              {series.skipped > 0 &&
                series.points.length > 0 &&
                `${series.skipped} value${series.skipped === 1 ? ' is' : 's are'} not a number and not drawn.`}
            </div>
          )}
        </div>
      )}
    </div>
  );
}
