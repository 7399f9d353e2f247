/**
 * A scenario's details: description, triggers, steps, "Run now" with its typed parameters
 * (runs/form.tsx), "Edit YAML" (editor.tsx) and "Delete…", and its runs, each opening its own
 * main-area page (runs/page.tsx).
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Button } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import {
  Badge,
  ErrorNotice,
  Loading,
  PageState,
  Pager,
  When
} from '../components/common';
import { ISectionProps } from '../components/section';
import { errorText } from '../errors';
import { useAsync } from '../hooks/useAsync';
import { usePagedList } from '../hooks/usePagedList';
import { usePoll } from '../hooks/usePoll';
import { IRunEnded, RunEvents, runEvents } from '../runs/events';
import { RunForm } from '../runs/form';
import { describeTrigger, isActive } from '../runs/states';
import { CommandIDs } from '../services';
import type { DescribeRun, DescribeScenario } from '../types';
import { ScenarioEvents, scenarioEvents } from './events';

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

export function ScenarioDetails(
  props: ISectionProps & {
    projectKey: string;
    scenarioId: string;
    onChanged: () => Promise<void>;
    /** Called once the scenario is deleted. */
    onDeleted: () => void;
  }
): JSX.Element {
  const { model, services, visible, projectKey, scenarioId } = props;
  const client = model.client;
  const scenario = useAsync(
    () => client.scenario(projectKey, scenarioId),
    [projectKey, scenarioId]
  );
  const [formOpen, setFormOpen] = useState(false);
  const [deleteError, setDeleteError] = useState<string | null>(null);
  const reloadScenario = scenario.reload;
  useEffect(() => {
    // Saved from the YAML editor: show the new revision.
    const onSaved = (
      _: ScenarioEvents,
      saved: { project: string; id: string }
    ) => {
      if (saved.project === projectKey && saved.id === scenarioId) {
        void reloadScenario();
      }
    };
    scenarioEvents.saved.connect(onSaved);
    return () => {
      scenarioEvents.saved.disconnect(onSaved);
    };
  }, [projectKey, scenarioId, reloadScenario]);
  const runs = usePagedList(
    query => client.runs(projectKey, scenarioId, query),
    [projectKey, scenarioId],
    model.settings.pageSize
  );
  // Runs under way are followed at the run pace, else the list pace.
  const anyActive = runs.items.some(run => isActive(run.state));
  usePoll(
    runs.reload,
    anyActive ? model.settings.runPollSeconds : model.settings.listPollSeconds,
    visible
  );

  const runsChanged = async () => {
    await Promise.all([runs.reload(), scenario.reload(), props.onChanged()]);
  };
  /** A run opens in its own main-area tab (runs/page.tsx): the sidebar keeps the lists. */
  const openRun = (run: number) =>
    void services.app.commands.execute(CommandIDs.openRun, {
      project: projectKey,
      scenario: scenarioId,
      run
    });
  const started = (run: DescribeRun) => {
    setFormOpen(false);
    runs.setOffset(0);
    void runsChanged();
    openRun(run.id);
  };
  useEffect(() => {
    // Ended where a run page or a list saw it: its state here is stale.
    const onEnded = (_: RunEvents, ended: IRunEnded) => {
      if (ended.project === projectKey && ended.scenario === scenarioId) {
        void runs.reload();
        void reloadScenario();
      }
    };
    runEvents.ended.connect(onEnded);
    return () => {
      runEvents.ended.disconnect(onEnded);
    };
  }, [projectKey, scenarioId, runs.reload, reloadScenario]);

  const confirmDelete = async () => {
    const runCount = runs.page?.total ?? 0;
    const name = value ? `${value.name} (${scenarioId})` : scenarioId;
    const answer = await showDialog({
      title: `Delete scenario ${name}?`,
      body:
        `${projectKey} loses the scenario ${name} and the history of its ${runCount} run(s): ` +
        'their logs, reports and executed notebooks. This cannot be undone.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await client.deleteScenario(projectKey, scenarioId);
      setDeleteError(null);
      props.onDeleted();
    } catch (failure) {
      setDeleteError(errorText(failure));
    }
  };

  const value = scenario.value;
  const mayRun = model.can('run_scenarios');
  const mayWrite = model.can('write_content');
  const commands = services.app.commands;
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
          {!formOpen && (mayRun || mayWrite) && (
            <div className="hml-buttons">
              {mayRun && (
                <Button
                  small
                  className="jp-mod-styled jp-mod-accept"
                  onClick={() => setFormOpen(true)}
                  aria-expanded={false}
                >
                  Run now
                </Button>
              )}
              {mayWrite && commands.hasCommand(CommandIDs.editScenario) && (
                <Button
                  small
                  className="jp-mod-styled"
                  title="Open its YAML in an editor tab"
                  onClick={() =>
                    void commands.execute(CommandIDs.editScenario, {
                      project: projectKey,
                      scenario: scenarioId
                    })
                  }
                >
                  Edit YAML
                </Button>
              )}
              {mayWrite && (
                <Button
                  small
                  className="jp-mod-styled jp-mod-warn"
                  title="Delete the scenario and its run history"
                  onClick={() => void confirmDelete()}
                >
                  Delete…
                </Button>
              )}
            </div>
          )}
          <ErrorNotice error={deleteError} />
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
      <PageState list={runs} empty="No run yet." />
      {runs.items.length > 0 && (
        <ul className="hml-list hml-runs" aria-label="Runs">
          {runs.items.map(run => (
            <li key={run.id} className="hml-row" data-run-id={run.id}>
              <button
                type="button"
                className="hml-row-main"
                title={`Open run #${run.id} in a tab: its steps, log and artifacts`}
                onClick={() => openRun(run.id)}
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
      <Pager list={runs} />
    </section>
  );
}
