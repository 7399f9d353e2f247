/**
 * Scenarios: the project's scenarios with their last outcome, next fire time and an active
 * switch; a chosen scenario opens its details (details.tsx) with its runs, one of which is
 * followed live (runs/), and where it is edited (editor.tsx) or deleted.
 */
import React, { useEffect, useState } from 'react';

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
import type { DescribeScenario } from '../types';
import { ScenarioDetails } from './details';
import { ScenarioEvents, scenarioEvents } from './events';

export class ScenariosSection extends Section {
  constructor(services: ConstructorParameters<typeof Section>[0]) {
    super(services, { id: 'himalia-scenarios', label: 'Scenarios' });
  }

  protected renderView(props: ISectionProps): JSX.Element {
    const project = props.model.project;
    if (!project) {
      return <NoProject />;
    }
    return (
      <ScenariosView key={project.key} {...props} projectKey={project.key} />
    );
  }
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
    scenarioEvents.saved.connect(onSaved);
    return () => {
      scenarioEvents.saved.disconnect(onSaved);
    };
  }, [projectKey, reload]);

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
