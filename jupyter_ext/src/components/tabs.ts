/** Main-area tabs that a command opens once per target and shows again when asked for again. */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';

import { himaliaIcon } from '../icons';

export class MainAreaTabs {
  constructor(private readonly app: JupyterFrontEnd) {}

  /** The tab `id`: shown again if open (unless `fresh`, which replaces it), else made by `make`. */
  open(
    id: string,
    label: string,
    className: string,
    make: () => ReactWidget,
    fresh = false
  ): MainAreaWidget {
    const existing = this.tabs.get(id);
    if (existing && !existing.isDisposed) {
      if (!fresh) {
        this.app.shell.activateById(id);
        return existing;
      }
      existing.dispose();
    }
    const content = make();
    content.addClass(className);
    const widget = new MainAreaWidget({ content });
    widget.id = id;
    widget.title.label = label;
    widget.title.icon = himaliaIcon;
    widget.title.closable = true;
    this.tabs.set(id, widget);
    widget.disposed.connect(() => {
      if (this.tabs.get(id) === widget) {
        this.tabs.delete(id);
      }
    });
    this.app.shell.add(widget, 'main');
    this.app.shell.activateById(id);
    return widget;
  }

  private readonly tabs = new Map<string, MainAreaWidget>();
}
