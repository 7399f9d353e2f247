/**
 * The rows that broke a check's row condition, in a main-area tab (`himalia:open-failing-rows`),
 * opened from the check in the Data quality section. The sample is the one the check's last
 * evaluation kept; the server shows it only to readers of the project's content.
 */
import { showErrorMessage } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import React from 'react';

import { describeCondition, formatValue } from '../charts/values';
import { Badge, Empty, ErrorNotice, Loading, When } from '../components/common';
import { MainAreaTabs } from '../components/tabs';
import { errorText } from '../errors';
import { useAsync } from '../hooks/useAsync';
import { himaliaIcon } from '../icons';
import { CommandIDs, IHimaliaServices } from '../services';
import type { DescribeCheck, FailingRows } from '../types';

interface IFailingTarget {
  project: string;
  dataset: string;
  check: string;
}

/** `Failing rows: 10 of 7 952`: what the sample holds of what the check counted. */
export function failingSummary(sample: FailingRows, count: unknown): string {
  const shown = sample.rows.length;
  return typeof count === 'number' && Number.isInteger(count) && count > shown
    ? `${shown} of ${formatValue(count)}`
    : `${shown}`;
}

export function FailingRowsTable(props: { sample: FailingRows }): JSX.Element {
  const { sample } = props;
  return (
    <div className="hml-dq-preview" style={{ overflowX: 'auto' }}>
      <table
        className="hml-table"
        aria-label={`Rows that break ${sample.condition}`}
      >
        <thead>
          <tr>
            {sample.columns.map(column => (
              <th key={column}>{column}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {sample.rows.map((row, index) => (
            <tr key={index}>
              {row.map((value, column) => (
                <td key={column}>
                  {value === null ? <em>null</em> : String(value)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function FailingRowsPage(props: {
  services: IHimaliaServices;
  target: IFailingTarget;
}): JSX.Element {
  const { project, dataset, check } = props.target;
  const client = props.services.model.client;
  const found = useAsync(
    () =>
      Promise.all([
        client.check(project, dataset, check),
        client.dataset(project, dataset)
      ]),
    [project, dataset, check]
  );
  const [described, definition] = found.value ?? [null, null];
  const result = described?.last_result ?? null;
  const sample = result?.failing_rows ?? null;
  const condition = (definition?.conditions ?? []).find(
    item => item.name === sample?.condition
  );
  return (
    <div className="hml-section-body">
      <p className="hml-help">
        {project} / {dataset} / {check}
      </p>
      <ErrorNotice error={found.error} />
      {!found.value && !found.error && <Loading />}
      {described && !sample && (
        <Empty>
          {result
            ? 'The last evaluation kept no failing rows.'
            : 'The check has not been evaluated yet.'}
        </Empty>
      )}
      {result && sample && (
        <>
          <p className="hml-dq-failing-about" role="status">
            <Badge value={result.outcome} /> {result.message} ·{' '}
            <When iso={result.evaluated_at} />
          </p>
          <p className="hml-help">
            Rows that break <span className="hml-key">{sample.condition}</span>
            {condition && ` (${describeCondition(condition)})`}:{' '}
            {failingSummary(sample, result.value)}, as the evaluation found
            them.
          </p>
          <FailingRowsTable sample={sample} />
        </>
      )}
    </div>
  );
}

function failingTarget(args: ReadonlyPartialJSONObject): IFailingTarget {
  const { project, dataset, check } = args as Record<string, unknown>;
  if (
    typeof project !== 'string' ||
    typeof dataset !== 'string' ||
    typeof check !== 'string'
  ) {
    throw new Error('The failing rows need {project, dataset, check}.');
  }
  return { project, dataset, check };
}

/** `himalia:open-failing-rows` opens (or shows again) the tab of a check's failing rows. */
export function registerFailingRowsPage(services: IHimaliaServices): void {
  const { app } = services;
  const tabs = new MainAreaTabs(app);
  app.commands.addCommand(CommandIDs.openFailingRows, {
    label: 'Open Failing Rows',
    caption: 'The rows that broke a check on a row condition',
    icon: himaliaIcon,
    execute: async args => {
      try {
        const target = failingTarget(args);
        // Opened again after another evaluation: the tab shows the newest sample, read anew.
        return tabs.open(
          `himalia-failing-${target.project}-${target.dataset}-${target.check}`,
          `Failing rows: ${target.dataset} / ${target.check}`,
          'hml-failing-page',
          () =>
            ReactWidget.create(
              <FailingRowsPage services={services} target={target} />
            ),
          true
        );
      } catch (error) {
        await showErrorMessage(
          'The failing rows cannot be shown',
          errorText(error)
        );
        return null;
      }
    }
  });
}

/** The check table's way to the tab: `10 of 7 952 failing rows`. */
export function OpenFailingRows(props: {
  check: DescribeCheck;
  onOpen: (check: string) => void;
}): JSX.Element | null {
  const sample = props.check.last_result?.failing_rows;
  if (!sample) {
    return null;
  }
  return (
    <button
      className="hml-link hml-dq-failing"
      data-failing={sample.condition}
      title={`Open the rows that break ${sample.condition} in a tab`}
      onClick={() => props.onOpen(props.check.name)}
    >
      {failingSummary(sample, props.check.last_result?.value)} failing rows
    </button>
  );
}
