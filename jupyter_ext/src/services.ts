/**
 * What the sections and commands are given: the shared model and the pieces of JupyterLab they
 * act on (commands, the shell, notebooks, documents, mime renderers). Optional pieces are null when the lab runs
 * without them.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { HimaliaModel } from './model';

export interface IHimaliaServices {
  model: HimaliaModel;
  app: JupyterFrontEnd;
  notebooks: INotebookTracker | null;
  documents: IDocumentManager | null;
  /** Renders the charts (Vega-Lite) with the lab's own mime renderers. */
  rendermime: IRenderMimeRegistry | null;
}

/** Command ids, one place. */
export namespace CommandIDs {
  export const open = 'himalia:open';
  export const selectProject = 'himalia:select-project';
  export const markParametersCell = 'himalia:mark-parameters-cell';
  export const scheduleNotebook = 'himalia:schedule-notebook';
  export const editScenario = 'himalia:edit-scenario';
  export const saveScenarioYaml = 'himalia:save-scenario-yaml';
  export const openRunReport = 'himalia:open-run-report';
  export const openRunNotebook = 'himalia:open-run-notebook';
  export const openRun = 'himalia:open-run';
  export const compareRuns = 'himalia:compare-runs';
  export const openFailingRows = 'himalia:open-failing-rows';
  export const openRunLink = 'himalia:open-run-link';
  export const openOperations = 'himalia:open-operations';
  export const openAdministration = 'himalia:open-administration';
  export const insertConnectionSnippet = 'himalia:insert-connection-snippet';
}
