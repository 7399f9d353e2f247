/**
 * The way from the lab to the administration application: a sidebar button and a palette
 * command, for those whose permissions open one of its pages; it opens in a new browser tab.
 */
import { ICommandPalette, ToolbarButton } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { launchIcon, SidePanel } from '@jupyterlab/ui-components';

import { CommandIDs, IHimaliaServices } from '../services';
import { ADMIN_PATH, mayAdminister } from './access';

export function registerAdministration(
  services: IHimaliaServices,
  sidebar: SidePanel,
  palette: ICommandPalette | null
): void {
  const { app, model } = services;
  const may = () => mayAdminister(model.me);
  app.commands.addCommand(CommandIDs.openAdministration, {
    label: 'Open Himalia administration',
    caption:
      'People, projects, permissions, connections, tiers, usage and audit, in a new tab',
    isEnabled: may,
    isVisible: may,
    execute: () => {
      const url = URLExt.join(model.client.serverSettings.baseUrl, ADMIN_PATH);
      window.open(url, '_blank', 'noopener');
    }
  });
  palette?.addItem({
    command: CommandIDs.openAdministration,
    category: 'Himalia'
  });

  const button = new ToolbarButton({
    label: 'Administration',
    icon: launchIcon,
    tooltip: 'Open Himalia administration in a new tab',
    className: 'hml-admin-link',
    onClick: () => void app.commands.execute(CommandIDs.openAdministration)
  });
  sidebar.toolbar.addItem('administration', button);
  const update = () => {
    button.setHidden(!may());
    app.commands.notifyCommandChanged(CommandIDs.openAdministration);
  };
  model.changed.connect(update);
  update();
}
