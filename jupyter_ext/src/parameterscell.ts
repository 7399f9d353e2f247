/**
 * The parameters cell (papermill's convention: the code cell tagged `parameters`): finding it,
 * tagging it, and marking it in open notebooks with the `hml-parameters-cell` class, which
 * labels its prompt "parameters" (style/base.css). The mark follows the tag as it is added or
 * removed, by the "Mark as Parameters Cell" command or the property inspector.
 */
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

type ICellModel = NonNullable<NotebookPanel['content']['activeCell']>['model'];

type CellWidget = NotebookPanel['content']['widgets'][number];

/** The tag papermill looks for. */
export const PARAMETERS_TAG = 'parameters';

/** The class of a marked cell. */
const PARAMETERS_CELL_CLASS = 'hml-parameters-cell';

function tagsOf(cell: ICellModel): string[] {
  const tags: unknown = cell.getMetadata('tags');
  return Array.isArray(tags)
    ? tags.filter((tag): tag is string => typeof tag === 'string')
    : [];
}

export function isParametersCell(cell: ICellModel): boolean {
  return cell.type === 'code' && tagsOf(cell).includes(PARAMETERS_TAG);
}

export function setParametersTag(cell: ICellModel, on: boolean): void {
  const tags = tagsOf(cell).filter(tag => tag !== PARAMETERS_TAG);
  if (on) {
    tags.push(PARAMETERS_TAG);
  }
  if (tags.length > 0) {
    cell.setMetadata('tags', tags);
  } else {
    cell.deleteMetadata('tags');
  }
}

function mark(cell: CellWidget): void {
  const marked = isParametersCell(cell.model);
  cell.toggleClass(PARAMETERS_CELL_CLASS, marked);
  if (marked) {
    cell.node.title = "Papermill's parameters cell: scenarios set these values";
  } else if (cell.node.title.startsWith("Papermill's parameters cell")) {
    cell.node.title = '';
  }
}

/** Mark the parameters cell of every notebook the tracker opens, now and as tags change. */
export function markParametersCells(notebooks: INotebookTracker): void {
  notebooks.widgetAdded.connect((_, panel) => {
    const notebook = panel.content;
    const watched = new WeakSet<CellWidget>();
    const markAll = () => {
      for (const cell of notebook.widgets) {
        if (!watched.has(cell)) {
          watched.add(cell);
          cell.model.metadataChanged.connect(() => mark(cell));
        }
        mark(cell);
      }
    };
    // Cell widgets are made from the model's cells: mark after the notebook has made them.
    const later = () => void Promise.resolve().then(markAll);
    void panel.context.ready.then(() => {
      notebook.model?.cells.changed.connect(later);
      later();
    });
  });
}
