/**
 * A run's artifacts in lab tabs: the HTML report in a sandboxed frame, the executed notebook as a
 * copy under `himalia-runs/` that opens like any notebook.
 */
import { MainAreaWidget, showErrorMessage } from '@jupyterlab/apputils';
import { Contents } from '@jupyterlab/services';
import { IFrame } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { errorText } from '../errors';
import { himaliaIcon } from '../icons';
import { CommandIDs, IHimaliaServices } from '../services';

/** Where executed notebooks are copied, relative to the server's root. */
export const RUNS_FOLDER = 'himalia-runs';

export interface IRunArtifactArgs {
  project: string;
  scenario: string;
  run: number;
  /** A notebook step's name; the last notebook step that produced the artifact by default. */
  step?: string;
}

function artifactArgs(args: ReadonlyPartialJSONObject): IRunArtifactArgs {
  const { project, scenario, run, step } = args as Record<string, unknown>;
  if (
    typeof project !== 'string' ||
    typeof scenario !== 'string' ||
    typeof run !== 'number'
  ) {
    throw new Error('A run artifact needs {project, scenario, run}.');
  }
  return {
    project,
    scenario,
    run,
    step: typeof step === 'string' && step !== '' ? step : undefined
  };
}

/** A file name part: letters, digits, `-` and `_` only. */
function safe(part: string): string {
  return part.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '');
}

/** `himalia-runs/FRAUD-daily_fraud_scoring-run12[-Score].ipynb` */
export function runNotebookPath(args: IRunArtifactArgs): string {
  const step = args.step ? `-${safe(args.step)}` : '';
  return `${RUNS_FOLDER}/${safe(args.project)}-${safe(args.scenario)}-run${args.run}${step}.ipynb`;
}

async function ensureFolder(contents: Contents.IManager): Promise<void> {
  try {
    const folder = await contents.get(RUNS_FOLDER, { content: false });
    if (folder.type !== 'directory') {
      throw new Error(
        `'${RUNS_FOLDER}' exists and is not a folder: rename it to open executed notebooks.`
      );
    }
  } catch (error) {
    if (error instanceof Error && error.message.includes('not a folder')) {
      throw error;
    }
    await contents.save(RUNS_FOLDER, { type: 'directory' });
  }
}

export function registerArtifactCommands(services: IHimaliaServices): void {
  const { app, model, documents } = services;
  const reports = new Map<string, MainAreaWidget<IFrame>>();

  app.commands.addCommand(CommandIDs.openRunReport, {
    label: 'Open Run Report',
    caption: "A run's HTML report in a lab tab",
    icon: himaliaIcon,
    execute: args => {
      const target = artifactArgs(args);
      const id = `himalia-report-${safe(target.project)}-${safe(target.scenario)}-${target.run}-${safe(target.step ?? '')}`;
      const open = reports.get(id);
      if (open && !open.isDisposed) {
        app.shell.activateById(open.id);
        return open;
      }
      const frame = new IFrame({ sandbox: ['allow-scripts'] });
      frame.url = model.client.runReportUrl(
        target.project,
        target.scenario,
        target.run,
        target.step
      );
      const widget = new MainAreaWidget({ content: frame });
      widget.id = id;
      widget.addClass('hml-report');
      widget.title.label = `Report: ${target.scenario} #${target.run}`;
      widget.title.caption =
        `${target.project} / ${target.scenario}, run #${target.run}` +
        (target.step ? `, step ${target.step}` : '');
      widget.title.icon = himaliaIcon;
      widget.title.closable = true;
      reports.set(id, widget);
      widget.disposed.connect(() => reports.delete(id));
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
      return widget;
    }
  });

  app.commands.addCommand(CommandIDs.openRunNotebook, {
    label: 'Open Executed Notebook',
    caption:
      "Copy a run's executed notebook into himalia-runs/ and open it in a tab",
    icon: himaliaIcon,
    execute: async args => {
      const target = artifactArgs(args);
      const path = runNotebookPath(target);
      try {
        const content = await model.client.runNotebook(
          target.project,
          target.scenario,
          target.run,
          target.step
        );
        const contents = app.serviceManager.contents;
        await ensureFolder(contents);
        await contents.save(path, {
          type: 'notebook',
          format: 'json',
          content
        });
        if (documents) {
          documents.openOrReveal(path);
        } else {
          await app.commands.execute('docmanager:open', { path });
        }
        return path;
      } catch (error) {
        await showErrorMessage(
          'The executed notebook cannot be opened',
          errorText(error)
        );
        return null;
      }
    }
  });
}
