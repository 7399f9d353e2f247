/**
 * Scenarios: the project's scenarios with their last outcome, next fire time and an active
 * switch; a chosen scenario's description, triggers and steps, "Run now" with its typed
 * parameters, and its runs, one of which is followed live (see `run.tsx`).
 */
import { Button } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';
import React, { useEffect, useState } from 'react';

import {
  Badge,
  Empty,
  ErrorNotice,
  Loading,
  Pager,
  When,
  useAsync,
  usePoll
} from '../components/common';
import { errorText } from '../errors';
import { HimaliaModel } from '../model';
import type { DescribeRun, DescribeScenario } from '../types';
import { RunDetails, RunForm, describeTrigger, isActive } from './run';
import { ISectionProps, NoProject, Section } from './section';

/** Said when a scenario is saved elsewhere in the lab ("Schedule this notebook…"). */
class ScenarioEvents {
  readonly saved = new Signal<this, { project: string; id: string }>(this);
}

export const scenarioEvents = new ScenarioEvents();

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

type Definition = DescribeScenario['definition'];

/** The triggers of a definition, in words. */
export function describeTriggers(definition: Definition): string[] {
  return (definition.triggers ?? []).map(trigger => {
    switch (trigger.type) {
      case 'time':
        return `${trigger.schedule ?? `cron ${trigger.cron}`} (${trigger.timezone ?? 'UTC'})`;
      case 'dataset_change':
        return `when ${trigger.dataset} changes`;
      case 'after_scenario':
        return `after ${trigger.scenario} ${trigger.on === 'any' ? 'ends' : 'succeeds'}`;
      case 'sql_condition':
        return `when a query on ${trigger.connection} changes`;
      default:
        return 'trigger';
    }
  });
}

function ScenariosView(
  props: ISectionProps & { projectKey: string }
): JSX.Element {
  const { model, visible, projectKey } = props;
  const [offset, setOffset] = useState(0);
  const [selected, setSelected] = useState<string | null>(null);
  const limit = model.settings.pageSize;
  const page = useAsync(
    () => model.client.scenarios(projectKey, { limit, offset }),
    [projectKey, limit, offset]
  );
  usePoll(page.reload, model.settings.listPollSeconds, visible);

  const reload = page.reload;
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
      <ErrorNotice error={page.error} />
      {page.loading && !page.value && <Loading />}
      {page.value && page.value.items.length === 0 && (
        <Empty>
          {projectKey} has no scenario yet. Open a notebook and use
          &quot;Schedule this notebook…&quot;, or save one with{' '}
          <code>himalia scenario apply</code>.
        </Empty>
      )}
      {page.value && page.value.items.length > 0 && (
        <ul className="hml-list" aria-label="Scenarios">
          {page.value.items.map(scenario => (
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
      {page.value && (
        <Pager
          offset={offset}
          limit={limit}
          total={page.value.total}
          onChange={setOffset}
        />
      )}
      {selected && (
        <ScenarioDetails
          key={selected}
          {...props}
          scenarioId={selected}
          onChanged={reload}
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

function ScenarioDetails(
  props: ISectionProps & {
    projectKey: string;
    scenarioId: string;
    onChanged: () => Promise<void>;
  }
): JSX.Element {
  const { model, services, visible, projectKey, scenarioId } = props;
  const client = model.client;
  const limit = model.settings.pageSize;
  const scenario = useAsync(
    () => client.scenario(projectKey, scenarioId),
    [projectKey, scenarioId]
  );
  const [formOpen, setFormOpen] = useState(false);
  const [runsOffset, setRunsOffset] = useState(0);
  const [selectedRun, setSelectedRun] = useState<number | null>(null);
  const runs = useAsync(
    () => client.runs(projectKey, scenarioId, { limit, offset: runsOffset }),
    [projectKey, scenarioId, limit, runsOffset]
  );
  const anyActive = (runs.value?.items ?? []).some(run => isActive(run.state));
  usePoll(
    runs.reload,
    anyActive ? model.settings.runPollSeconds : model.settings.listPollSeconds,
    visible
  );

  const runsChanged = async () => {
    await Promise.all([runs.reload(), scenario.reload(), props.onChanged()]);
  };
  const started = (run: DescribeRun) => {
    setFormOpen(false);
    setSelectedRun(run.id);
    if (runsOffset !== 0) {
      setRunsOffset(0);
    }
    void runsChanged();
  };

  const value = scenario.value;
  const mayRun = model.can('run_scenarios');
  const triggers = value ? describeTriggers(value.definition) : [];
  return (
    <section
      className="hml-details hml-scenario"
      aria-label={`Scenario ${scenarioId}`}
      data-scenario-details={scenarioId}
    >
      <ErrorNotice error={scenario.error} />
      {scenario.loading && !value && <Loading />}
      {value && (
        <>
          <h3>
            {value.name} <span className="hml-key">{value.id}</span>
          </h3>
          {value.description && (
            <p className="hml-description">{value.description}</p>
          )}
          <dl className="hml-facts">
            <dt>Triggers</dt>
            <dd>
              {triggers.length === 0
                ? 'none: run by hand'
                : triggers.join('; ')}
              {!value.active && triggers.length > 0 && ' — inactive'}
            </dd>
            <dt>Next run</dt>
            <dd>
              <When iso={value.next_fire_at} />
            </dd>
            <dt>Steps</dt>
            <dd>
              <ol className="hml-step-names">
                {value.definition.steps.map(step => (
                  <li key={step.name}>
                    {step.name} <span className="hml-key">{step.type}</span>
                  </li>
                ))}
              </ol>
            </dd>
            <dt>Runs as</dt>
            <dd>{value.run_as}</dd>
            <dt>Revision</dt>
            <dd>
              {value.revision}, by {value.updated_by},{' '}
              <When iso={value.updated_at} />
            </dd>
            {value.definition.tier && (
              <>
                <dt>Tier</dt>
                <dd>{value.definition.tier}</dd>
              </>
            )}
          </dl>
          {mayRun && !formOpen && (
            <div className="hml-buttons">
              <Button
                small
                className="jp-mod-styled jp-mod-accept"
                onClick={() => setFormOpen(true)}
                aria-expanded={false}
              >
                Run now
              </Button>
            </div>
          )}
          {mayRun && formOpen && (
            <RunForm
              model={model}
              project={projectKey}
              scenario={scenarioId}
              onStarted={started}
              onCancel={() => setFormOpen(false)}
            />
          )}
        </>
      )}
      <h4>Runs</h4>
      <ErrorNotice error={runs.error} />
      {runs.loading && !runs.value && <Loading />}
      {runs.value && runs.value.items.length === 0 && (
        <Empty>No run yet.</Empty>
      )}
      {runs.value && runs.value.items.length > 0 && (
        <ul className="hml-list hml-runs" aria-label="Runs">
          {runs.value.items.map(run => (
            <li
              key={run.id}
              className={`hml-row${run.id === selectedRun ? ' hml-current' : ''}`}
              data-run-id={run.id}
            >
              <button
                type="button"
                className="hml-row-main"
                aria-pressed={run.id === selectedRun}
                title={`Show run #${run.id}`}
                onClick={() =>
                  setSelectedRun(run.id === selectedRun ? null : run.id)
                }
              >
                <span className="hml-name">#{run.id}</span>
                <Badge value={run.state} />
                <span className="hml-help">{describeTrigger(run)}</span>
                <span className="hml-help">
                  <When iso={run.created_at} />
                </span>
              </button>
            </li>
          ))}
        </ul>
      )}
      {runs.value && (
        <Pager
          offset={runsOffset}
          limit={limit}
          total={runs.value.total}
          onChange={setRunsOffset}
        />
      )}
      {selectedRun !== null && (
        <RunDetails
          services={services}
          project={projectKey}
          scenario={scenarioId}
          runId={selectedRun}
          visible={visible}
          onStarted={started}
          onChanged={() => void runsChanged()}
        />
      )}
    </section>
  );
}
