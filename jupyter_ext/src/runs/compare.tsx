/**
 * Two runs of a scenario side by side, in a main-area tab (`himalia:compare-runs`), opened from a
 * run's page: what they were given, the notebooks they ran (cell by cell where the snapshots
 * differ), the project files, the steps and durations, the metrics and check outcomes.
 */
import { showErrorMessage } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import React, { useState } from 'react';

import { Badge, ErrorNotice, Loading } from '../components/common';
import { MainAreaTabs } from '../components/tabs';
import { errorText } from '../errors';
import { useAsync } from '../hooks/useAsync';
import { himaliaIcon } from '../icons';
import { formatValue } from '../parameters';
import { CommandIDs, IHimaliaServices } from '../services';
import { NbdimeDiff } from './nbdiff';
import type { RunComparison } from '../types';

type Compared = RunComparison['parameters'][number];

interface ICompareTarget {
  project: string;
  scenario: string;
  first: number;
  second: number;
}

function seconds(value: number | null | undefined): string {
  return value === null || value === undefined ? '' : `${value.toFixed(1)} s`;
}

function ValuesTable(props: {
  title: string;
  values: Compared[];
  first: number;
  second: number;
  named?: (value: Compared) => string;
}): JSX.Element | null {
  const { values, first, second } = props;
  if (values.length === 0) {
    return null;
  }
  return (
    <>
      <h5>{props.title}</h5>
      <table className="hml-table hml-compare-values">
        <thead>
          <tr>
            <th>Name</th>
            <th>Run #{first}</th>
            <th>Run #{second}</th>
          </tr>
        </thead>
        <tbody>
          {values.map(value => {
            const name = props.named ? props.named(value) : value.name;
            return (
              <tr
                key={name}
                data-name={name}
                className={value.same ? undefined : 'hml-compare-differs'}
              >
                <td>{name}</td>
                <td>{formatValue(value.a)}</td>
                <td>{formatValue(value.b)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </>
  );
}

/** A notebook that differs, shown with nbdime's view on demand (heavy: only when asked). */
function NbdimeToggle(props: { children: () => JSX.Element }): JSX.Element {
  const [open, setOpen] = useState(false);
  return (
    <div className="hml-compare-nbdime">
      <button
        className="jp-Button jp-mod-styled"
        aria-pressed={open}
        onClick={() => setOpen(!open)}
      >
        {open ? 'Hide nbdime view' : 'Show with nbdime'}
      </button>
      {open && props.children()}
    </div>
  );
}

export function ComparisonView(props: {
  comparison: RunComparison;
  /** nbdime's view of a notebook that differs (none without the lab's renderers). */
  nbdime?: (path: string) => JSX.Element;
}): JSX.Element {
  const { comparison, nbdime } = props;
  const { a, b, files } = comparison;
  const fileChanges = [
    ...files.added.map(path => ['added', path]),
    ...files.removed.map(path => ['removed', path]),
    ...files.changed.map(path => ['changed', path])
  ];
  return (
    <section
      className="hml-compare"
      data-first={a.id}
      data-second={b.id}
      aria-label={`Runs ${a.id} and ${b.id}`}
    >
      <table className="hml-table hml-compare-runs">
        <thead>
          <tr>
            <th />
            <th>Run #{a.id}</th>
            <th>Run #{b.id}</th>
          </tr>
        </thead>
        <tbody>
          <tr>
            <td>State</td>
            <td>
              <Badge value={a.state} />
            </td>
            <td>
              <Badge value={b.state} />
            </td>
          </tr>
          <tr>
            <td>Trigger</td>
            <td>{a.trigger}</td>
            <td>{b.trigger}</td>
          </tr>
          <tr>
            <td>Runs as</td>
            <td>{a.run_as}</td>
            <td>{b.run_as}</td>
          </tr>
          <tr>
            <td>Duration</td>
            <td>{seconds(a.seconds)}</td>
            <td>{seconds(b.seconds)}</td>
          </tr>
        </tbody>
      </table>
      <ValuesTable
        title="Parameters"
        values={comparison.parameters}
        first={a.id}
        second={b.id}
      />
      <ValuesTable
        title="Variables"
        values={comparison.variables}
        first={a.id}
        second={b.id}
      />
      {comparison.notebooks.length > 0 && <h5>Notebooks</h5>}
      {comparison.notebooks.map(notebook => (
        <div
          key={notebook.path}
          className="hml-compare-notebook"
          data-path={notebook.path}
        >
          <p>
            <span className="hml-key">{notebook.path}</span>{' '}
            {notebook.same
              ? 'the same snapshot'
              : `${(notebook.cells ?? []).length} cell(s) differ`}
          </p>
          {!notebook.same && nbdime && (
            <NbdimeToggle>{() => nbdime(notebook.path)}</NbdimeToggle>
          )}
          {(notebook.cells ?? []).map((cell, index) => (
            <details key={index} className="hml-compare-cell" open>
              <summary>
                {cell.change === 'added'
                  ? `cell ${(cell.b ?? 0) + 1} added`
                  : cell.change === 'removed'
                    ? `cell ${(cell.a ?? 0) + 1} removed`
                    : `cell ${(cell.a ?? 0) + 1} changed`}
              </summary>
              <pre className="hml-diff">
                {cell.diff.split('\n').map((line, number) => (
                  <span
                    key={number}
                    className={
                      line.startsWith('+') && !line.startsWith('+++')
                        ? 'hml-diff-added'
                        : line.startsWith('-') && !line.startsWith('---')
                          ? 'hml-diff-removed'
                          : undefined
                    }
                  >
                    {line + '\n'}
                  </span>
                ))}
              </pre>
            </details>
          ))}
        </div>
      ))}
      <h5>Project files</h5>
      {fileChanges.length === 0 ? (
        <p className="hml-help">
          {files.a === null && files.b === null
            ? 'Neither run had project files.'
            : `The same (${files.unchanged} files).`}
        </p>
      ) : (
        <ul className="hml-compare-files">
          {fileChanges.map(([change, path]) => (
            <li key={path} data-change={change}>
              {change} <span className="hml-key">{path}</span>
            </li>
          ))}
          <li className="hml-help">{files.unchanged} the same</li>
        </ul>
      )}
      <h5>Steps</h5>
      <table className="hml-table hml-compare-steps">
        <thead>
          <tr>
            <th>Step</th>
            <th>Run #{a.id}</th>
            <th>Run #{b.id}</th>
          </tr>
        </thead>
        <tbody>
          {comparison.steps.map(step => (
            <tr key={step.position}>
              <td>{step.name}</td>
              <td title={step.message_a}>
                {step.a && <Badge value={step.a} />} {seconds(step.seconds_a)}
              </td>
              <td title={step.message_b}>
                {step.b && <Badge value={step.b} />} {seconds(step.seconds_b)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {comparison.environments.map(environment => (
        <div
          key={environment.position}
          className="hml-compare-environment"
          data-step={environment.step}
        >
          <ValuesTable
            title={`What ${environment.step} ran on`}
            values={environment.settings}
            first={a.id}
            second={b.id}
          />
          {environment.added.length +
            environment.removed.length +
            environment.changed.length ===
          0 ? (
            <p className="hml-help">The same packages.</p>
          ) : (
            <ul className="hml-compare-packages">
              {environment.changed.map(change => (
                <li key={change.name} data-change="changed">
                  changed <span className="hml-key">{change.name}</span>{' '}
                  {formatValue(change.a)} → {formatValue(change.b)}
                </li>
              ))}
              {environment.added.map(name => (
                <li key={name} data-change="added">
                  added in #{b.id} <span className="hml-key">{name}</span>
                </li>
              ))}
              {environment.removed.map(name => (
                <li key={name} data-change="removed">
                  not in #{b.id} <span className="hml-key">{name}</span>
                </li>
              ))}
            </ul>
          )}
        </div>
      ))}
      <ValuesTable
        title="Datasets read"
        values={comparison.inputs}
        first={a.id}
        second={b.id}
      />
      <ValuesTable
        title="Check outcomes"
        values={comparison.checks}
        first={a.id}
        second={b.id}
        named={value => `${value.dataset}/${value.name}`}
      />
      <ValuesTable
        title="Metrics"
        values={comparison.metrics}
        first={a.id}
        second={b.id}
        named={value =>
          value.dataset ? `${value.dataset}/${value.name}` : value.name
        }
      />
    </section>
  );
}

function ComparisonPage(props: {
  services: IHimaliaServices;
  target: ICompareTarget;
}): JSX.Element {
  const { project, scenario, first, second } = props.target;
  const rendermime = props.services.rendermime;
  const comparison = useAsync(
    () =>
      props.services.model.client.compareRuns(project, scenario, first, second),
    [project, scenario, first, second]
  );
  return (
    <div className="hml-section-body">
      <p className="hml-help">
        {project} / {scenario}
      </p>
      <ErrorNotice error={comparison.error} />
      {comparison.value ? (
        <ComparisonView
          comparison={comparison.value}
          nbdime={
            rendermime
              ? path => (
                  <NbdimeDiff
                    client={props.services.model.client}
                    rendermime={rendermime}
                    project={project}
                    scenario={scenario}
                    first={first}
                    second={second}
                    path={path}
                  />
                )
              : undefined
          }
        />
      ) : (
        !comparison.error && <Loading />
      )}
    </div>
  );
}

/** On a run's page: choose another run of the scenario and open the two side by side. */
export function CompareWith(props: {
  services: IHimaliaServices;
  project: string;
  scenario: string;
  runId: number;
}): JSX.Element | null {
  const { services, project, scenario, runId } = props;
  const others = useAsync(
    () =>
      services.model.client
        .runs(project, scenario, { limit: 50 })
        .then(page => page.items.filter(run => run.id !== runId)),
    [project, scenario, runId]
  );
  const [chosen, setChosen] = useState<number | null>(null);
  const runs = others.value ?? [];
  if (runs.length === 0) {
    return null;
  }
  const other = chosen ?? runs[0].id;
  return (
    <span className="hml-compare-with">
      <select
        aria-label="Run to compare with"
        value={other}
        onChange={event => setChosen(Number(event.target.value))}
      >
        {runs.map(run => (
          <option key={run.id} value={run.id}>
            #{run.id} {run.state}
          </option>
        ))}
      </select>
      <button
        className="jp-Button jp-mod-styled"
        onClick={() =>
          void services.app.commands.execute(CommandIDs.compareRuns, {
            project,
            scenario,
            first: Math.min(runId, other),
            second: Math.max(runId, other)
          })
        }
      >
        Compare
      </button>
    </span>
  );
}

function compareTarget(args: ReadonlyPartialJSONObject): ICompareTarget {
  const { project, scenario, first, second } = args as Record<string, unknown>;
  if (
    typeof project !== 'string' ||
    typeof scenario !== 'string' ||
    typeof first !== 'number' ||
    typeof second !== 'number'
  ) {
    throw new Error('Comparing needs {project, scenario, first, second}.');
  }
  return { project, scenario, first, second };
}

/** `himalia:compare-runs` opens (or shows again) the tab of two runs side by side. */
export function registerComparePage(services: IHimaliaServices): void {
  const { app } = services;
  const tabs = new MainAreaTabs(app);
  app.commands.addCommand(CommandIDs.compareRuns, {
    label: 'Compare Runs',
    caption: 'Two runs of a scenario side by side',
    icon: himaliaIcon,
    execute: async args => {
      try {
        const target = compareTarget(args);
        return tabs.open(
          `himalia-compare-${target.project}-${target.scenario}-${target.first}-${target.second}`,
          `Compare: ${target.scenario} #${target.first} ↔ #${target.second}`,
          'hml-compare-page',
          () =>
            ReactWidget.create(
              <ComparisonPage services={services} target={target} />
            )
        );
      } catch (error) {
        await showErrorMessage('The runs cannot be compared', errorText(error));
        return null;
      }
    }
  });
}
