/**
 * Data quality: the current project's datasets, each with the worst outcome of its checks;
 * opened, a dataset shows its checks and their last results, its last metric values and the
 * history of one metric drawn with the bounds of its range checks, and (for contributors and
 * launchers) buttons to compute the metrics and run the checks now.
 *
 * Outcomes refresh every `listPollSeconds` while a dataset is open and the section is in view;
 * nothing polls while the section is collapsed.
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Button, HTMLSelect } from '@jupyterlab/ui-components';
import React, { useEffect, useMemo, useRef, useState } from 'react';

import { HimaliaClient } from '../api';
import {
  Outcome,
  boundsFor,
  describeOutcomes,
  formatValue,
  toSeries,
  worstOutcome
} from '../charts/values';
import { HistoryChart } from '../charts/history';
import {
  ActionButton,
  Badge,
  Empty,
  ErrorNotice,
  IAsync,
  Loading,
  Pager,
  When,
  useAsync,
  usePoll
} from '../components/common';
import { HimaliaModel } from '../model';
import type {
  CheckRun,
  ComputedMetrics,
  DescribeCheck,
  DescribeDataset,
  DescribeMetricValue,
  DescribeProject
} from '../types';
import { ISectionProps, NoProject, Section } from './section';

/** How many values of one metric the chart draws, newest. */
const CHART_LIMIT = 200;
/** How many recent values of all metrics are read to find each one's last value. */
const LATEST_WINDOW = 500;

export class DataQualitySection extends Section {
  constructor(services: ConstructorParameters<typeof Section>[0]) {
    super(services, { id: 'himalia-dataquality', label: 'Data quality' });
  }

  protected renderView(props: ISectionProps): JSX.Element {
    const project = props.model.project;
    if (!project) {
      return (
        <div className="hml-view hml-dq">
          <NoProject />
        </div>
      );
    }
    // Keyed by project: another project starts on its first page, nothing open.
    return <DataQualityView key={project.key} {...props} project={project} />;
  }
}

function DataQualityView(
  props: ISectionProps & { project: DescribeProject }
): JSX.Element {
  const { model, project, visible } = props;
  const key = project.key;
  const limit = model.settings.pageSize;
  const [offset, setOffset] = useState(0);
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const [refresh, setRefresh] = useState(0);
  const page = useAsync(
    () => model.client.datasets(key, { limit, offset }),
    [key, limit, offset]
  );

  const toggle = (name: string) => {
    const next = new Set(open);
    if (!next.delete(name)) {
      next.add(name);
    }
    setOpen(next);
  };

  return (
    <div className="hml-view hml-dq">
      <div className="hml-toolbar">
        <span className="hml-dq-heading">
          Datasets of <span className="hml-key">{key}</span>
        </span>
        <Button
          small
          minimal
          title="Read the datasets and their outcomes again"
          onClick={() => {
            void page.reload();
            setRefresh(refresh + 1);
          }}
        >
          Refresh
        </Button>
      </div>
      <ErrorNotice error={page.error} />
      {page.loading && !page.value && !page.error && <Loading />}
      {page.value && page.value.items.length === 0 && (
        <Empty>
          {offset > 0
            ? 'No dataset on this page.'
            : 'This project has no dataset yet.'}
        </Empty>
      )}
      {page.value && page.value.items.length > 0 && (
        <ul className="hml-list" aria-label={`Datasets of ${key}`}>
          {page.value.items.map(dataset => (
            <DatasetRow
              key={dataset.name}
              model={model}
              projectKey={key}
              dataset={dataset}
              expanded={open.has(dataset.name)}
              onToggle={() => toggle(dataset.name)}
              visible={visible}
              refresh={refresh}
              rendermime={props.services.rendermime}
            />
          ))}
        </ul>
      )}
      {page.value && (
        <Pager
          offset={offset}
          limit={limit}
          total={page.value.total}
          onChange={setOffset}
        />
      )}
    </div>
  );
}

/** Call `reload` whenever `refresh` changes (not on the first render: it loads by itself). */
function useRefresh(refresh: number, reload: () => Promise<unknown>): void {
  const first = useRef(refresh);
  useEffect(() => {
    if (refresh !== first.current) {
      void reload();
    }
  }, [refresh]);
}

/** The outcomes of the checks that have a result. */
function outcomesOf(checks: DescribeCheck[]): Outcome[] {
  return checks
    .map(check => check.last_result?.outcome)
    .filter((outcome): outcome is Outcome => outcome !== undefined);
}

/** The worst outcome of a dataset's checks, or why there is none. */
function CheckSummary(props: { checks: IAsync<DescribeCheck[]> }): JSX.Element {
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

function DatasetRow(props: {
  model: HimaliaModel;
  projectKey: string;
  dataset: DescribeDataset;
  expanded: boolean;
  onToggle: () => void;
  visible: boolean;
  refresh: number;
  rendermime: IRenderMimeRegistry | null;
}): JSX.Element {
  const { model, projectKey, dataset, expanded } = props;
  const checks = useAsync(
    () => model.client.checks(projectKey, dataset.name),
    [projectKey, dataset.name]
  );
  useRefresh(props.refresh, checks.reload);
  const where =
    dataset.kind === 'files'
      ? `${dataset.connection}: ${dataset.path ?? ''}`
      : dataset.kind === 'query'
        ? `${dataset.connection}: query`
        : `${dataset.connection}: ${dataset.db_schema ? dataset.db_schema + '.' : ''}${dataset.table ?? ''}`;
  return (
    <li
      className={`hml-row hml-dq-dataset${expanded ? ' hml-dq-open' : ''}`}
      data-dataset={dataset.name}
    >
      <button
        className="hml-row-main"
        aria-expanded={expanded}
        onClick={props.onToggle}
        title={dataset.description ? `${dataset.description}\n${where}` : where}
      >
        <span className="hml-dq-caret" aria-hidden="true">
          {expanded ? '▾' : '▸'}
        </span>
        <span className="hml-name hml-dq-name">{dataset.name}</span>
        <span className="hml-dq-outcome">
          <CheckSummary checks={checks} />
        </span>
      </button>
      {expanded && (
        <DatasetDetails
          model={model}
          projectKey={projectKey}
          dataset={dataset}
          where={where}
          checks={checks}
          visible={props.visible}
          refresh={props.refresh}
          rendermime={props.rendermime}
        />
      )}
    </li>
  );
}

interface ILatest {
  metric: string;
  value: DescribeMetricValue | null;
}

/**
 * The last value of each metric of a dataset: its own probes and custom metrics (computed or
 * not) and whatever else was recorded on it. One read of the recent history; a metric of the
 * dataset missing from a full window is asked for alone.
 */
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
  const own = [
    ...dataset.probes,
    ...dataset.custom_metrics.map(metric => metric.name)
  ];
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

type Report =
  | { kind: 'metrics'; computed: ComputedMetrics }
  | { kind: 'checks'; run: CheckRun };

function DatasetDetails(props: {
  model: HimaliaModel;
  projectKey: string;
  dataset: DescribeDataset;
  where: string;
  checks: IAsync<DescribeCheck[]>;
  visible: boolean;
  refresh: number;
  rendermime: IRenderMimeRegistry | null;
}): JSX.Element {
  const { model, projectKey: key, dataset, checks } = props;
  const name = dataset.name;
  const client = model.client;
  // The dataset's own metrics, as a dependency: new probes are read when the list is refreshed.
  const own = [
    ...dataset.probes,
    ...dataset.custom_metrics.map(metric => metric.name)
  ].join('\n');
  const metrics = useAsync(
    () => latestMetrics(client, key, dataset),
    [key, name, own]
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
  const hasMetrics = dataset.probes.length + dataset.custom_metrics.length > 0;

  return (
    <div className="hml-dq-details" aria-label={`Data quality of ${name}`}>
      <div className="hml-key hml-dq-where">{props.where}</div>
      {dataset.description && (
        <p className="hml-description">{dataset.description}</p>
      )}
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

      <h4>Checks</h4>
      <ErrorNotice error={checks.error} />
      {checks.loading && !checks.value && !checks.error && <Loading />}
      {checks.value && checks.value.length === 0 && (
        <Empty>No check on this dataset.</Empty>
      )}
      {checks.value && checks.value.length > 0 && (
        <ChecksTable checks={checks.value} />
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

/** What the last Compute or Run checks did: `Checks: ERROR — 1 error, 2 ok`. */
function ReportSummary(props: { report: Report }): JSX.Element {
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

function ChecksTable(props: { checks: DescribeCheck[] }): JSX.Element {
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
          const bounds = check.metric ? boundsFor(check.metric, [check]) : [];
          const rule =
            check.type +
            (bounds.length > 0
              ? ': ' + bounds.map(bound => bound.label).join(', ')
              : '');
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

function MetricsTable(props: { latest: ILatest[] }): JSX.Element {
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
