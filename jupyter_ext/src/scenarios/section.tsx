/**
 * Scenarios: the project's scenarios with their last outcome, next fire time and an active
 * switch; a chosen scenario opens its details (details.tsx) with its runs, each of which opens
 * in the main area (runs/page.tsx), and where it is edited (editor.tsx) or deleted. A run that
 * ends, seen here or anywhere else (runs/events.ts), reads the list again. "Operations" opens the
 * board across projects (operations/).
 */
import { Button } from '@jupyterlab/ui-components';
import React, { useEffect, useRef, useState } from 'react';

import {
  Badge,
  ErrorNotice,
  PageState,
  Pager,
  When
} from '../components/common';
import { ISectionProps, NoProject, Section } from '../components/section';
import { errorText } from '../errors';
import { usePagedList } from '../hooks/usePagedList';
import { HimaliaModel } from '../model';
import { IRunEnded, RunEvents, runEvents } from '../runs/events';
import { isActive } from '../runs/states';
import { CommandIDs } from '../services';
import type { DescribeScenario } from '../types';
import { ScenarioDetails } from './details';
import { ScenarioEvents, scenarioEvents } from './events';

export class ScenariosSection extends Section {
  constructor(services: ConstructorParameters<typeof Section>[0]) {
    super(services, { id: 'himalia-scenarios', label: 'Scenarios' });
  }

  protected renderView(props: ISectionProps): JSX.Element {
    const project = props.model.project;
    const commands = props.services.app.commands;
    return (
      <>
        <div className="hml-toolbar hml-operations-entry">
          <Button
            small
            className="jp-mod-styled hml-open-operations"
            title="The board of every project's scheduled runs, deadlines and stale data"
            onClick={() => void commands.execute(CommandIDs.openOperations)}
          >
            Open Operations
          </Button>
        </div>
        {project ? (
          <ScenariosView
            key={project.key}
            {...props}
            projectKey={project.key}
          />
        ) : (
          <NoProject />
        )}
      </>
    );
  }
}

/**
 * Announce the runs a poll of the list shows ended: a scenario's last run that was queued or
 * running at the previous read and is not any more (a scheduled run, one started elsewhere).
 */
function useAnnounceEndedRuns(
  projectKey: string,
  scenarios: DescribeScenario[]
): void {
  const running = useRef(new Map<string, number>());
  useEffect(() => {
    for (const scenario of scenarios) {
      const last = scenario.last_run;
      const before = running.current.get(scenario.id);
      if (last && isActive(last.state)) {
        running.current.set(scenario.id, last.id);
      } else if (before !== undefined) {
        running.current.delete(scenario.id);
        if (last) {
          runEvents.announceEnded({
            project: projectKey,
            scenario: scenario.id,
            run: last.id,
            state: last.state
          });
        }
      }
    }
  }, [projectKey, scenarios]);
}

function ScenariosView(
  props: ISectionProps & { projectKey: string }
): JSX.Element {
  const { model, visible, projectKey } = props;
  const [selected, setSelected] = useState<string | null>(null);
  const scenarios = usePagedList(
    query => model.client.scenarios(projectKey, query),
    [projectKey],
    model.settings.pageSize,
    { pollSeconds: model.settings.listPollSeconds, active: visible }
  );
  const reload = scenarios.reload;
  useEffect(() => {
    const onSaved = (
      _: ScenarioEvents,
      saved: { project: string; id: string }
    ) => {
      if (saved.project === projectKey) {
        setSelected(saved.id);
        void reload();
      }
    };
    const onEnded = (_: RunEvents, ended: IRunEnded) => {
      if (ended.project === projectKey) {
        void reload();
      }
    };
    scenarioEvents.saved.connect(onSaved);
    runEvents.ended.connect(onEnded);
    return () => {
      scenarioEvents.saved.disconnect(onSaved);
      runEvents.ended.disconnect(onEnded);
    };
  }, [projectKey, reload]);
  useAnnounceEndedRuns(projectKey, scenarios.items);

  const mayWrite = model.can('write_content');
  return (
    <div className="hml-view hml-scenarios">
      <PageState
        list={scenarios}
        empty={
          <>
            {projectKey} has no scenario yet. Open a notebook and use
            &quot;Schedule this notebook…&quot;, or save one with{' '}
            <code>himalia scenario apply</code>.
          </>
        }
      />
      {scenarios.items.length > 0 && (
        <ul className="hml-list" aria-label="Scenarios">
          {scenarios.items.map(scenario => (
            <ScenarioRow
              key={scenario.id}
              model={model}
              projectKey={projectKey}
              scenario={scenario}
              current={scenario.id === selected}
              mayWrite={mayWrite}
              onSelect={() =>
                setSelected(scenario.id === selected ? null : scenario.id)
              }
              onChanged={reload}
            />
          ))}
        </ul>
      )}
      <Pager list={scenarios} />
      {selected && (
        <ScenarioDetails
          key={selected}
          {...props}
          scenarioId={selected}
          onChanged={reload}
          onDeleted={() => {
            setSelected(null);
            void reload();
          }}
        />
      )}
    </div>
  );
}

function ScenarioRow(props: {
  model: HimaliaModel;
  projectKey: string;
  scenario: DescribeScenario;
  current: boolean;
  mayWrite: boolean;
  onSelect: () => void;
  onChanged: () => Promise<void>;
}): JSX.Element {
  const { model, projectKey, scenario, current, mayWrite } = props;
  const [pending, setPending] = useState<boolean | null>(null);
  const [error, setError] = useState<string | null>(null);
  const active = pending ?? scenario.active;
  const hasTimeTrigger = (scenario.definition.triggers ?? []).some(
    trigger => trigger.type === 'time'
  );

  const toggle = async (value: boolean) => {
    setPending(value);
    try {
      await model.client.setScenarioActive(projectKey, scenario.id, value);
      setError(null);
      await props.onChanged();
    } catch (failure) {
      setError(errorText(failure));
    } finally {
      setPending(null);
    }
  };

  const last = scenario.last_run;
  return (
    <li
      className={`hml-row hml-scenario-row${current ? ' hml-current' : ''}`}
      data-scenario={scenario.id}
      data-active={scenario.active}
    >
      <div className="hml-row-line">
        <button
          className="hml-row-main"
          onClick={props.onSelect}
          aria-pressed={current}
          title={scenario.description || scenario.name}
        >
          <span className="hml-name">{scenario.name}</span>
          <span className="hml-key">{scenario.id}</span>
          {last ? (
            <Badge
              value={last.state}
              title={`Last run #${last.id}: ${last.state}`}
            />
          ) : (
            <span className="hml-help">never run</span>
          )}
          <span
            className="hml-next"
            title={
              !hasTimeTrigger
                ? 'No time trigger'
                : scenario.active
                  ? 'Next scheduled run'
                  : 'Inactive: its triggers do not fire'
            }
          >
            next:{' '}
            {scenario.active || !hasTimeTrigger ? (
              <When iso={scenario.next_fire_at} />
            ) : (
              'paused'
            )}
          </span>
        </button>
        <label
          className="hml-active-toggle"
          title={
            mayWrite
              ? 'Whether its triggers fire (it can always be run by hand)'
              : 'Turning triggers on or off needs write_content'
          }
        >
          <input
            type="checkbox"
            aria-label="Active"
            checked={active}
            disabled={!mayWrite || pending !== null}
            onChange={event => void toggle(event.target.checked)}
          />
        </label>
      </div>
      <ErrorNotice error={error} />
    </li>
  );
}
