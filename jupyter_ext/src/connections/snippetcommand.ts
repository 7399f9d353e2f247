/**
 * Putting a connection's snippet into the notebook being worked on: a new code cell below its
 * active cell, selected. The Connections section's "Insert snippet" button and the
 * `himalia:insert-connection-snippet` command both go through `insertConnectionSnippet`.
 */
import { NotebookActions } from '@jupyterlab/notebook';

import { CommandIDs, IHimaliaServices } from '../services';
import { connectionSnippet, ISnippetTarget } from './snippets';

export const NO_NOTEBOOK =
  'Open a notebook first: the snippet goes below its active cell.';

export interface IInsertOutcome {
  ok: boolean;
  /** What happened, in a sentence. */
  message: string;
}

/** Insert the snippet of `connection` below the active cell of the current notebook. */
export function insertConnectionSnippet(
  services: IHimaliaServices,
  connection: ISnippetTarget
): IInsertOutcome {
  const panel = services.notebooks?.currentWidget ?? null;
  const notebook = panel?.content;
  if (!panel || !notebook || !notebook.model) {
    return { ok: false, message: NO_NOTEBOOK };
  }
  if (notebook.model.readOnly) {
    return {
      ok: false,
      message: `${panel.title.label} is read-only: the snippet cannot go into it.`
    };
  }
  NotebookActions.insertBelow(notebook);
  if (notebook.activeCell?.model.type !== 'code') {
    // insertBelow makes the notebook's default cell type, which may be Markdown.
    NotebookActions.changeCellType(notebook, 'code');
  }
  const cell = notebook.activeCell;
  if (!cell) {
    return { ok: false, message: 'The new cell could not be made.' };
  }
  cell.model.sharedModel.setSource(connectionSnippet(connection));
  services.app.shell.activateById(panel.id);
  return {
    ok: true,
    message: `Inserted into ${panel.title.label} below the active cell.`
  };
}

/**
 * Register `himalia:insert-connection-snippet` (args: `name`, and `type` — looked up when
 * omitted). Call once, from the plugin's activation.
 */
export function registerSnippetCommand(services: IHimaliaServices): void {
  const { app, model } = services;
  app.commands.addCommand(CommandIDs.insertConnectionSnippet, {
    label: args =>
      args.name
        ? `Insert a snippet for the connection ${String(args.name)}`
        : 'Insert a connection snippet',
    caption:
      'A code cell below the active one that reads from the connection with the kernel client',
    isEnabled: () => Boolean(services.notebooks?.currentWidget),
    execute: async args => {
      const name = typeof args.name === 'string' ? args.name : '';
      if (!name) {
        throw new Error('Name the connection: { name: "…" }.');
      }
      let type = typeof args.type === 'string' ? args.type : '';
      if (!type) {
        type = (await model.client.connection(name)).type;
      }
      const outcome = insertConnectionSnippet(services, { name, type });
      if (!outcome.ok) {
        throw new Error(outcome.message);
      }
      return outcome.message;
    }
  });
}
