/**
 * Notebook commands: tag the parameters cell (papermill's; parameterscell.ts marks it), and
 * "Schedule this notebook…", which saves a scenario running the notebook in the current project.
 */
import {
  Dialog,
  Notification,
  ReactWidget,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import React from 'react';

import { ApiError } from './api';
import { errorText } from './errors';
import { himaliaIcon } from './icons';
import { IParameter, parseParametersCell } from './parameters';
import {
  isParametersCell,
  markParametersCells,
  setParametersTag
} from './parameterscell';
import { IScheduleFormProps, ScheduleForm } from './scenarios/scheduleform';
import { scenarioEvents } from './scenarios/events';
import {
  IScheduleAnswers,
  buildDefinition,
  checkAnswers,
  defaultScenarioId,
  defaultScenarioName
} from './scenarios/schedule';
import { CommandIDs, IHimaliaServices } from './services';
import type { DescribeScenario } from './types';

const SCHEDULE_TITLE = 'Schedule this notebook';

/** The parameters of the notebook's first cell tagged `parameters` (papermill reads that one). */
export function notebookParameters(panel: NotebookPanel): IParameter[] {
  const cells = panel.content.model?.cells;
  if (!cells) {
    return [];
  }
  for (let index = 0; index < cells.length; index++) {
    const cell = cells.get(index);
    if (isParametersCell(cell)) {
      return parseParametersCell(cell.sharedModel.getSource());
    }
  }
  return [];
}

/** The dialog's body: the form, and its answers for the dialog's result. */
class ScheduleBody
  extends ReactWidget
  implements Dialog.IBodyWidget<IScheduleAnswers>
{
  constructor(private readonly props: Omit<IScheduleFormProps, 'onChange'>) {
    super();
    this.answers = props.initial;
    this.addClass('hml-schedule-dialog');
  }

  getValue(): IScheduleAnswers {
    return this.answers;
  }

  protected render(): JSX.Element {
    return React.createElement(ScheduleForm, {
      ...this.props,
      onChange: answers => {
        this.answers = answers;
      }
    });
  }

  private answers: IScheduleAnswers;
}

function browserTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** Ask, then save the scenario; the dialog comes back with the server's refusal until it is fixed. */
async function scheduleNotebook(
  services: IHimaliaServices,
  panel: NotebookPanel
): Promise<DescribeScenario | null> {
  const { model, app } = services;
  const project = model.project;
  if (!project) {
    await showErrorMessage(
      SCHEDULE_TITLE,
      'Choose a project in the Himalia sidebar first: the scenario is saved in it.'
    );
    return null;
  }
  if (!model.can('write_content')) {
    await showErrorMessage(
      SCHEDULE_TITLE,
      `You cannot save scenarios in ${project.key}: that needs the write_content permission on it.`
    );
    return null;
  }
  if (!model.canGlobally('write_isolated_code')) {
    await showErrorMessage(
      SCHEDULE_TITLE,
      'Scheduling a notebook needs the global permission write_isolated_code: its scenario runs the notebook as your own account.'
    );
    return null;
  }
  await panel.context.ready;
  const path = app.serviceManager.contents.localPath(panel.context.path);
  const declared = notebookParameters(panel);
  let answers: IScheduleAnswers = {
    id: defaultScenarioId(path),
    name: defaultScenarioName(path),
    notebook: path,
    schedule: 'daily at 02:00',
    timezone: browserTimeZone(),
    parameters: {},
    tier: ''
  };
  let refusal: IScheduleFormProps['refusal'] = null;
  let files: IScheduleFormProps['files'];
  try {
    files = await model.client.previewFiles(project.key, { notebook: path });
  } catch (error) {
    files = errorText(error);
  }

  for (;;) {
    const result = await showDialog({
      title: `${SCHEDULE_TITLE} in ${project.key}`,
      body: new ScheduleBody({
        initial: answers,
        declared,
        project: project.key,
        refusal,
        files
      }),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Schedule' })],
      focusNodeSelector: 'input[name="id"]'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    answers = result.value;
    refusal = null;
    if (Object.keys(checkAnswers(answers, declared)).length > 0) {
      continue; // the form names the problems
    }
    const id = answers.id.trim();

    let existing: DescribeScenario | null = null;
    try {
      existing = await model.client.scenario(project.key, id);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) {
        refusal = { field: null, message: errorText(error) };
        continue;
      }
    }
    if (existing) {
      const replace = await showDialog({
        title: `Replace scenario ${id}?`,
        body:
          `${project.key} already has a scenario '${id}' (${existing.name}, ` +
          `${existing.definition.steps.length} step(s), revision ${existing.revision}). ` +
          'Saving replaces its steps, triggers and reporters with this notebook and schedule.',
        buttons: [
          Dialog.cancelButton({ label: 'Back' }),
          Dialog.warnButton({ label: 'Replace' })
        ]
      });
      if (!replace.button.accept) {
        continue;
      }
    }

    try {
      if (panel.context.model.dirty) {
        await panel.context.save();
      }
      const saved = await model.client.saveScenario(project.key, id, {
        definition: buildDefinition(answers, declared),
        notebooks: {
          [path]: panel.context.model.toJSON() as unknown as Record<
            string,
            unknown
          >
        }
      });
      const next = saved.next_fire_at
        ? `; next run ${new Date(saved.next_fire_at).toLocaleString()}`
        : '';
      Notification.success(
        `Scenario '${saved.id}' saved in ${saved.project}${next}.`,
        { autoClose: 6000 }
      );
      scenarioEvents.saved.emit({ project: saved.project, id: saved.id });
      app.shell.activateById('himalia-sidebar');
      return saved;
    } catch (error) {
      if (
        error instanceof ApiError &&
        (error.status === 400 || error.status === 409)
      ) {
        refusal = { field: error.field, message: error.message };
        continue;
      }
      await showErrorMessage('The scenario was not saved', errorText(error));
      return null;
    }
  }
}

export function registerNotebookCommands(services: IHimaliaServices): void {
  const { app, notebooks } = services;
  const activeCell = () => notebooks?.currentWidget?.content.activeCell ?? null;

  app.commands.addCommand(CommandIDs.markParametersCell, {
    label: 'Mark as Parameters Cell',
    caption:
      "Tag this cell 'parameters': its assignments (name: type = value  # help) become the " +
      "notebook's typed parameters in Himalia scenarios",
    isEnabled: () => activeCell()?.model.type === 'code',
    isToggled: () => {
      const cell = activeCell();
      return cell !== null && isParametersCell(cell.model);
    },
    execute: () => {
      const cell = activeCell();
      const notebook = notebooks?.currentWidget?.content.model;
      if (!cell || cell.model.type !== 'code' || !notebook) {
        return;
      }
      const on = !isParametersCell(cell.model);
      if (on) {
        // Papermill reads only the first tagged cell: keep one.
        for (let index = 0; index < notebook.cells.length; index++) {
          const other = notebook.cells.get(index);
          if (other !== cell.model && isParametersCell(other)) {
            setParametersTag(other, false);
          }
        }
      }
      setParametersTag(cell.model, on);
      app.commands.notifyCommandChanged(CommandIDs.markParametersCell);
    }
  });

  app.commands.addCommand(CommandIDs.scheduleNotebook, {
    label: args => (args.toolbar ? 'Schedule' : 'Schedule this notebook…'),
    caption:
      'Save a Himalia scenario that runs this notebook on a schedule, in the current project',
    icon: himaliaIcon,
    isEnabled: () => Boolean(notebooks?.currentWidget),
    execute: async () => {
      const panel = notebooks?.currentWidget;
      if (!panel) {
        await showErrorMessage(SCHEDULE_TITLE, 'Open a notebook first.');
        return null;
      }
      try {
        return await scheduleNotebook(services, panel);
      } catch (error) {
        await showErrorMessage('The scenario was not saved', errorText(error));
        return null;
      }
    }
  });

  if (notebooks) {
    markParametersCells(notebooks);
    const changed = () => {
      app.commands.notifyCommandChanged(CommandIDs.markParametersCell);
      app.commands.notifyCommandChanged(CommandIDs.scheduleNotebook);
    };
    notebooks.activeCellChanged.connect(changed);
    notebooks.currentChanged.connect(changed);
  }
}
