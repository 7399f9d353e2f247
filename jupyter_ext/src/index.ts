/**
 * Himalia in JupyterLab: one left sidebar with a section per concept (projects, connections,
 * data quality, scenarios, variables), and notebook commands that hand work to the platform.
 */
import {
  ILayoutRestorer,
  IRouter,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, showErrorMessage } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStateDB } from '@jupyterlab/statedb';
import { SidePanel } from '@jupyterlab/ui-components';
import { AccordionPanel } from '@lumino/widgets';

import { registerAdministration } from './admin/link';
import { HimaliaClient } from './api';
import { registerOperations } from './operations/panel';
import { registerArtifactCommands } from './runs/commands';
import { registerComparePage } from './runs/compare';
import { registerFailingRowsPage } from './datasets/failing';
import { registerRunPage } from './runs/page';
import { errorText } from './errors';
import { himaliaIcon } from './icons';
import { DEFAULT_SETTINGS, HimaliaModel, ISettingsValues } from './model';
import { registerNotebookCommands } from './notebook';
import { ConnectionsSection } from './connections/section';
import { DataQualitySection } from './datasets/section';
import { ProjectsSection } from './projects/section';
import { registerScenarioEditor } from './scenarios/editor';
import { ScenariosSection } from './scenarios/section';
import { VariablesSection } from './variables/section';
import { CommandIDs, IHimaliaServices } from './services';
import { registerSnippetCommand } from './connections/snippetcommand';

const PLUGIN_ID = 'himalia:plugin';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'Projects, connections, data quality, scenarios and variables of the Himalia platform.',
  autoStart: true,
  optional: [
    ISettingRegistry,
    IStateDB,
    INotebookTracker,
    IDocumentManager,
    ICommandPalette,
    ILayoutRestorer,
    IRenderMimeRegistry,
    IEditorServices,
    IRouter
  ],
  activate: (
    app: JupyterFrontEnd,
    settingRegistry: ISettingRegistry | null,
    state: IStateDB | null,
    notebooks: INotebookTracker | null,
    documents: IDocumentManager | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    rendermime: IRenderMimeRegistry | null,
    editorServices: IEditorServices | null,
    router: IRouter | null
  ) => {
    const model = new HimaliaModel(
      new HimaliaClient(app.serviceManager.serverSettings),
      state
    );
    const services: IHimaliaServices = {
      model,
      app,
      notebooks,
      documents,
      rendermime
    };

    const sidebar = new SidePanel();
    sidebar.id = 'himalia-sidebar';
    sidebar.title.icon = himaliaIcon;
    sidebar.title.caption = 'Himalia';
    sidebar.addClass('hml-sidebar');
    sidebar.addWidget(new ProjectsSection(services));
    sidebar.addWidget(new ScenariosSection(services));
    sidebar.addWidget(new DataQualitySection(services));
    sidebar.addWidget(new ConnectionsSection(services));
    sidebar.addWidget(new VariablesSection(services));
    // Calm by default: projects and scenarios open, the rest a click away.
    const sections = sidebar.content as AccordionPanel;
    [2, 3, 4].forEach(index => sections.collapse(index));
    // A section opened after starting collapsed would get no height: share it among open ones.
    sections.expansionToggled.connect(panel => {
      panel.setRelativeSizes(
        panel.widgets.map(widget => (widget.isHidden ? 0 : 1))
      );
    });
    app.shell.add(sidebar, 'left', { rank: 450 });
    restorer?.add(sidebar, sidebar.id);

    app.commands.addCommand(CommandIDs.open, {
      label: 'Show the Himalia sidebar',
      icon: himaliaIcon,
      execute: () => app.shell.activateById(sidebar.id)
    });
    palette?.addItem({ command: CommandIDs.open, category: 'Himalia' });
    registerOperations(services);
    registerAdministration(services, sidebar, palette);
    palette?.addItem({
      command: CommandIDs.openOperations,
      category: 'Himalia'
    });
    registerNotebookCommands(services);
    registerArtifactCommands(services);
    registerSnippetCommand(services);
    if (editorServices) {
      registerScenarioEditor(services, editorServices);
    }

    if (settingRegistry) {
      void settingRegistry.load(PLUGIN_ID).then(settings => {
        const apply = () =>
          model.updateSettings(
            settings.composite as unknown as Partial<ISettingsValues>
          );
        settings.changed.connect(apply);
        apply();
      });
    } else {
      model.updateSettings(DEFAULT_SETTINGS);
    }

    const loaded = model.load();
    registerRunPage(services, router, loaded);
    registerComparePage(services);
    registerFailingRowsPage(services);
    loaded
      .then(() => model.startRefreshing())
      .catch(error => {
        void showErrorMessage('Himalia is not available', errorText(error));
      });
  }
};

export default plugin;
