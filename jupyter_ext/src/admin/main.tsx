/**
 * The administration application's entry, outside JupyterLab: the page's configuration (written
 * by the host into the HTML) says the base URL; requests carry the login cookie and its `_xsrf`
 * token through `ServerConnection`, as the lab's own do.
 */
import { ServerConnection } from '@jupyterlab/services';
import * as React from 'react';
import { createRoot } from 'react-dom/client';

import { HimaliaClient } from '../api';
import { errorText } from '../errors';
import { App } from './app';
import { PAGES } from './pages';

/** What the host writes into the page (`himalia/hosts/admin`). */
interface IPageConfig {
  /** The Jupyter server's base URL, or the hub service's prefix: the API is below it. */
  baseUrl: string;
  homeUrl: string;
  homeLabel: string;
}

function pageConfig(): IPageConfig {
  const element = document.getElementById('himalia-admin-config');
  return JSON.parse(element?.textContent || '{}') as IPageConfig;
}

async function main(): Promise<void> {
  const config = pageConfig();
  const root = createRoot(document.getElementById('himalia-admin')!);
  const client = new HimaliaClient(
    ServerConnection.makeSettings({ baseUrl: config.baseUrl })
  );
  try {
    const me = await client.me();
    root.render(
      <App
        client={client}
        me={me}
        pages={PAGES}
        home={{ url: config.homeUrl, label: config.homeLabel }}
      />
    );
  } catch (error) {
    root.render(
      <p className="hml-admin-refusal" role="alert">
        Himalia cannot say who you are: {errorText(error)}
      </p>
    );
  }
}

void main();
