/**
 * The Operations view, a main-area tab: the board of every scenario the caller may see, each
 * with the strip of its expected fires coloured by what came of them, its standing alerts and
 * the stale datasets beside it; filters, counts and what needs attention on top. It reads the
 * board every `BOARD_POLL_SECONDS` while it shows, and again when a run ends (runs/events.ts).
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Button, ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Signal } from '@lumino/signaling';
import React, { useEffect, useState } from 'react';

import { ErrorNotice, Loading, When } from '../components/common';
import { useAsync } from '../hooks/useAsync';
import { usePoll } from '../hooks/usePoll';
import { himaliaIcon } from '../icons';
import { runEvents } from '../runs/events';
import { CommandIDs, IHimaliaServices } from '../services';
import {
  attentionSummary,
  boardProjects,
  BoardWindow,
  cellClass,
  filterScenarios,
  fireTooltip,
  formatSeconds,
  STATUSES,
  StatusFilter,
  stripOrder,
  WINDOWS,
  zonedTime
} from './board';
import type { Board, BoardFire, BoardScenario, StaleDataset } from '../types';

/** How often the board is read again while it shows. */
export const BOARD_POLL_SECONDS = 15;

class OperationsPanel extends ReactWidget {
  constructor(private readonly services: IHimaliaServices) {
    super();
    this.addClass('hml-ops-page');
  }

  protected onAfterShow(message: Message): void {
    super.onAfterShow(message);
    this._visibility.emit();
  }

  protected onAfterHide(message: Message): void {
    super.onAfterHide(message);
    this._visibility.emit();
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this._visibility}>
        {() => (
          <OperationsView services={this.services} visible={this.isVisible} />
        )}
      </UseSignal>
    );
  }

  private _visibility = new Signal<this, void>(this);
}

function OperationsView(props: {
  services: IHimaliaServices;
  visible: boolean;
}): JSX.Element {
  const { services, visible } = props;
  const client = services.model.client;
  const [since, setSince] = useState<BoardWindow>('24h');
  const [project, setProject] = useState('');
  const [status, setStatus] = useState<StatusFilter>('all');
  const board = useAsync(() => client.board({ since }), [since]);
  const reload = board.reload;
  usePoll(reload, BOARD_POLL_SECONDS, visible);
  useEffect(() => {
    const onEnded = () => void reload();
    runEvents.ended.connect(onEnded);
    return () => {
      runEvents.ended.disconnect(onEnded);
    };
  }, [reload]);

  const openRun = (scenario: BoardScenario, run: number) =>
    void services.app.commands.execute(CommandIDs.openRun, {
      project: scenario.project,
      scenario: scenario.scenario,
      run
    });

  const value = board.value;
  const shown = value ? filterScenarios(value.scenarios, project, status) : [];
  const stale = value ? allStale(value, project) : [];
  const alerts = shown.flatMap(scenario =>
    scenario.alerts.map(alert => ({ scenario, alert }))
  );
  return (
    <div className="hml-ops">
      <div className="hml-ops-toolbar">
        <label>
          Since{' '}
          <select
            aria-label="Since"
            value={since}
            onChange={event => setSince(event.target.value as BoardWindow)}
          >
            {WINDOWS.map(window => (
              <option key={window} value={window}>
                {window}
              </option>
            ))}
          </select>
        </label>
        <label>
          Project{' '}
          <select
            aria-label="Project"
            value={project}
            onChange={event => setProject(event.target.value)}
          >
            <option value="">all</option>
            {(value ? boardProjects(value) : []).map(key => (
              <option key={key} value={key}>
                {key}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status{' '}
          <select
            aria-label="Status"
            value={status}
            onChange={event => setStatus(event.target.value as StatusFilter)}
          >
            <option value="all">all</option>
            <option value="attention">needs attention</option>
            {STATUSES.map(name => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <Button
          small
          minimal
          title="Read the board again"
          onClick={() => void reload()}
        >
          Refresh
        </Button>
        {value && (
          <span className="hml-help">
            as of <When iso={value.generated_at} />
          </span>
        )}
      </div>
      <ErrorNotice error={board.error} />
      {!value && !board.error && <Loading />}
      {value && (
        <>
          <p
            className="hml-ops-summary"
            data-attention={value.needs_attention}
            role="status"
          >
            {attentionSummary(value)}
          </p>
          <ul className="hml-ops-counts" aria-label="Fires by status">
            {STATUSES.map(name => (
              <li key={name} data-status={name}>
                <span className={`hml-ops-cell hml-ops-${name}`} />
                {value.counts[name] ?? 0} {name}
              </li>
            ))}
          </ul>
          {shown.length === 0 ? (
            <div className="hml-empty">
              {value.scenarios.length === 0
                ? 'No scenario you may see.'
                : 'No scenario matches these filters.'}
            </div>
          ) : (
            <table className="hml-ops-board" aria-label="Scenarios">
              <thead>
                <tr>
                  <th>Project</th>
                  <th>Scenario</th>
                  <th>Schedule</th>
                  <th>Time zone</th>
                  <th>Next fire</th>
                  <th>Deadline</th>
                  <th>Fires (newest last)</th>
                  <th>Stale data</th>
                </tr>
              </thead>
              <tbody>
                {shown.map(scenario => (
                  <ScenarioRow
                    key={`${scenario.project}/${scenario.scenario}`}
                    scenario={scenario}
                    openRun={run => openRun(scenario, run)}
                  />
                ))}
              </tbody>
            </table>
          )}
          <h3>Standing alerts</h3>
          {alerts.length === 0 ? (
            <div className="hml-empty">No alert stands.</div>
          ) : (
            <ul
              className="hml-list hml-ops-alerts"
              aria-label="Standing alerts"
            >
              {alerts.map(({ scenario, alert }) => (
                <li
                  key={`${scenario.project}/${scenario.scenario}/${alert.kind}/${alert.due_at}`}
                  className={`hml-row hml-ops-alert-${alert.kind}`}
                  data-kind={alert.kind}
                >
                  <span className="hml-name">
                    {scenario.project} / {scenario.name}
                  </span>{' '}
                  <span className="hml-key">{alert.kind}</span> {alert.message}{' '}
                  <span className="hml-help">
                    due {zonedTime(alert.due_at, scenario.timezone)}
                  </span>
                </li>
              ))}
            </ul>
          )}
          <h3>Stale datasets</h3>
          {stale.length === 0 ? (
            <div className="hml-empty">Every freshness check passes.</div>
          ) : (
            <ul className="hml-list hml-ops-stale" aria-label="Stale datasets">
              {stale.map(item => (
                <li
                  key={`${item.project}/${item.dataset}/${item.check}`}
                  className="hml-row"
                  data-dataset={item.dataset}
                >
                  <StaleLabel stale={item} withProject />
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </div>
  );
}

/** Every stale dataset once: those beside scenarios and those no scenario reads. */
function allStale(board: Board, project: string): StaleDataset[] {
  const seen = new Map<string, StaleDataset>();
  for (const item of [
    ...board.scenarios.flatMap(scenario => scenario.stale_datasets),
    ...board.stale_datasets
  ]) {
    if (project === '' || item.project === project) {
      seen.set(`${item.project}/${item.dataset}/${item.check}`, item);
    }
  }
  return [...seen.values()];
}

function StaleLabel(props: {
  stale: StaleDataset;
  withProject?: boolean;
}): JSX.Element {
  const { stale } = props;
  const age =
    stale.age_seconds !== null ? `${formatSeconds(stale.age_seconds)} old` : '';
  return (
    <span
      className="hml-ops-stale-item"
      title={
        `${stale.check}: ${stale.outcome}` +
        (stale.message ? `\n${stale.message}` : '') +
        (stale.newest ? `\nNewest ${zonedTime(stale.newest, 'UTC')}` : '') +
        `\nChecked ${zonedTime(stale.evaluated_at, 'UTC')}`
      }
    >
      <span className={`hml-badge hml-badge-${stale.outcome.toLowerCase()}`}>
        {stale.outcome}
      </span>{' '}
      {props.withProject && `${stale.project} / `}
      <span className="hml-name">{stale.dataset}</span>
      {age && <span className="hml-help"> {age}</span>}
      {stale.max_age && (
        <span className="hml-help"> (max {stale.max_age})</span>
      )}
    </span>
  );
}

function ScenarioRow(props: {
  scenario: BoardScenario;
  openRun: (run: number) => void;
}): JSX.Element {
  const { scenario } = props;
  const zone = scenario.timezone;
  return (
    <tr
      data-project={scenario.project}
      data-scenario={scenario.scenario}
      data-status={scenario.status ?? ''}
    >
      <td>
        <span className="hml-key">{scenario.project}</span>
      </td>
      <td>
        <span className="hml-name" title={scenario.scenario}>
          {scenario.name}
        </span>
        {!scenario.active && <span className="hml-help"> (inactive)</span>}
      </td>
      <td>{scenario.schedule ?? <span className="hml-help">by hand</span>}</td>
      <td>{zone}</td>
      <td>
        <When iso={scenario.next_fire} timeZone={zone} />
      </td>
      <td>
        {scenario.deadline ? (
          <When iso={scenario.deadline} timeZone={zone} />
        ) : scenario.sla?.ready_by ? (
          `by ${scenario.sla.ready_by}`
        ) : (
          '—'
        )}
        {scenario.sla?.max_duration && (
          <span className="hml-help"> max {scenario.sla.max_duration}</span>
        )}
      </td>
      <td>
        <div className="hml-ops-strip" aria-label={`Fires of ${scenario.name}`}>
          {stripOrder(scenario.fires).map((fire, index) => (
            <FireCell
              key={`${fire.due_at ?? ''}/${fire.run_id ?? index}`}
              fire={fire}
              timeZone={zone}
              openRun={props.openRun}
            />
          ))}
          {scenario.fires.length === 0 && (
            <span className="hml-help">no fire in the window</span>
          )}
        </div>
      </td>
      <td>
        {scenario.stale_datasets.map(stale => (
          <div key={`${stale.dataset}/${stale.check}`}>
            <StaleLabel stale={stale} />
          </div>
        ))}
      </td>
    </tr>
  );
}

function FireCell(props: {
  fire: BoardFire;
  timeZone: string;
  openRun: (run: number) => void;
}): JSX.Element {
  const { fire } = props;
  const tooltip = fireTooltip(fire, props.timeZone);
  const run = fire.run_id;
  if (run === null || run === undefined) {
    return (
      <span
        className={cellClass(fire)}
        data-status={fire.status}
        title={tooltip}
        aria-label={tooltip}
        role="img"
      />
    );
  }
  return (
    <button
      type="button"
      className={cellClass(fire)}
      data-status={fire.status}
      data-run={run}
      title={tooltip}
      aria-label={tooltip}
      onClick={() => props.openRun(run)}
    />
  );
}

/** `himalia:open-operations`: the Operations tab, one for the lab, brought forward if open. */
export function registerOperations(services: IHimaliaServices): void {
  const { app } = services;
  let current: MainAreaWidget<OperationsPanel> | null = null;
  app.commands.addCommand(CommandIDs.openOperations, {
    label: 'Himalia: Open Operations',
    caption:
      'The board of every scenario you may see: expected fires, deadlines, stale data',
    icon: himaliaIcon,
    execute: () => {
      if (!current || current.isDisposed) {
        current = new MainAreaWidget({
          content: new OperationsPanel(services)
        });
        current.id = 'himalia-operations';
        current.title.label = 'Operations';
        current.title.caption = 'Himalia operations: the morning check';
        current.title.icon = himaliaIcon;
        current.title.closable = true;
        app.shell.add(current, 'main');
      }
      app.shell.activateById(current.id);
      return current;
    }
  });
}
