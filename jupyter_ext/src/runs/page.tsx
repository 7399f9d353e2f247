/**
 * A run in a main-area tab: what the links of emails and webhooks open. The control plane links
 * to `…/lab?himalia-run=KEY/scenario/7` (through the hub's `user-redirect` in hub mode, which
 * logs people in first); the lab's router hands that location to `openRunLink`.
 */
import { IRouter } from '@jupyterlab/application';
import { MainAreaWidget, showErrorMessage } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import React from 'react';

import { errorText } from '../errors';
import { himaliaIcon } from '../icons';
import { CommandIDs, IHimaliaServices } from '../services';
import type { DescribeRun } from '../types';
import { RunDetails } from './details';
import { IRunTarget, parseRunLink, RUN_LINK_PARAMETER } from './links';

function runTarget(args: ReadonlyPartialJSONObject): IRunTarget {
  const { project, scenario, run } = args as Record<string, unknown>;
  if (
    typeof project !== 'string' ||
    typeof scenario !== 'string' ||
    typeof run !== 'number'
  ) {
    throw new Error('A run needs {project, scenario, run}.');
  }
  return { project, scenario, run };
}

class RunPage extends ReactWidget {
  constructor(
    private readonly services: IHimaliaServices,
    private readonly target: IRunTarget,
    private readonly open: (run: IRunTarget) => void
  ) {
    super();
    this.addClass('hml-run-page');
  }

  /** The run is followed live only while its tab shows. */
  protected onAfterShow(): void {
    this.update();
  }

  protected onAfterHide(): void {
    this.update();
  }

  render(): JSX.Element {
    const { project, scenario, run } = this.target;
    return (
      <div className="hml-section-body">
        <p className="hml-help">
          {project} / {scenario}
        </p>
        <RunDetails
          services={this.services}
          project={project}
          scenario={scenario}
          runId={run}
          visible={this.isVisible}
          onStarted={(started: DescribeRun) =>
            this.open({ project, scenario, run: started.id })
          }
          onChanged={() => undefined}
        />
      </div>
    );
  }
}

/** The query of the lab's address without the run link, so that a reload does not open it again. */
function forgetRunLink(): void {
  const url = new URL(window.location.href);
  if (url.searchParams.has(RUN_LINK_PARAMETER)) {
    url.searchParams.delete(RUN_LINK_PARAMETER);
    window.history.replaceState(window.history.state, '', url.toString());
  }
}

/**
 * `himalia:open-run` opens a run's tab (after choosing its project, whose permissions the tab
 * shows); with the lab's router, a location carrying `?himalia-run=` opens it once `ready`.
 */
export function registerRunPage(
  services: IHimaliaServices,
  router: IRouter | null,
  ready: Promise<void>
): void {
  const { app, model } = services;
  const pages = new Map<string, MainAreaWidget<RunPage>>();

  const open = async (target: IRunTarget): Promise<MainAreaWidget<RunPage>> => {
    const id = `himalia-run-${target.project}-${target.scenario}-${target.run}`;
    const existing = pages.get(id);
    if (existing && !existing.isDisposed) {
      app.shell.activateById(existing.id);
      return existing;
    }
    if (model.project?.key !== target.project) {
      await model.selectProject(target.project);
    }
    const widget = new MainAreaWidget({
      content: new RunPage(services, target, run => void open(run))
    });
    widget.id = id;
    widget.title.label = `Run: ${target.scenario} #${target.run}`;
    widget.title.caption = `${target.project} / ${target.scenario}, run #${target.run}`;
    widget.title.icon = himaliaIcon;
    widget.title.closable = true;
    pages.set(id, widget);
    widget.disposed.connect(() => pages.delete(id));
    app.shell.add(widget, 'main');
    app.shell.activateById(widget.id);
    return widget;
  };

  app.commands.addCommand(CommandIDs.openRun, {
    label: 'Open Run',
    caption: 'A scenario run in a lab tab: its steps, artifacts and log',
    icon: himaliaIcon,
    execute: async args => {
      const target = runTarget(args);
      try {
        return await open(target);
      } catch (error) {
        await showErrorMessage(
          `Run #${target.run} of ${target.scenario} cannot be opened`,
          errorText(error)
        );
        return null;
      }
    }
  });

  if (!router) {
    return;
  }
  app.commands.addCommand(CommandIDs.openRunLink, {
    label: 'Open the Run of the Address',
    execute: async args => {
      const target = parseRunLink(
        String((args as Partial<IRouter.ILocation>).search ?? '')
      );
      forgetRunLink();
      if (!target) {
        return null;
      }
      await ready.catch(() => undefined);
      return app.commands.execute(CommandIDs.openRun, { ...target });
    }
  });
  router.register({
    command: CommandIDs.openRunLink,
    pattern: new RegExp(`[?&]${RUN_LINK_PARAMETER}=`)
  });
}
