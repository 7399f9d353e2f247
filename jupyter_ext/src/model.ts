/**
 * State the panels share: who I am, the current project and my permissions on it.
 *
 * Choosing a project in the Projects panel sets it for every other panel; the choice survives
 * a page reload through the state database.
 */
import { IStateDB } from '@jupyterlab/statedb';
import { ISignal, Signal } from '@lumino/signaling';

import { HimaliaClient } from './api';
import type { DescribeMe, DescribeProject, ProjectPermission } from './types';

const STATE_KEY = 'himalia:current-project';

export interface ISettingsValues {
  /** Seconds between refreshes of a running scenario's status and log. */
  runPollSeconds: number;
  /** Seconds between refreshes of lists (scenarios, check outcomes) while a panel is visible. */
  listPollSeconds: number;
  /** Rows per page in long lists. */
  pageSize: number;
}

export const DEFAULT_SETTINGS: ISettingsValues = {
  runPollSeconds: 2,
  listPollSeconds: 30,
  pageSize: 25
};

export class HimaliaModel {
  constructor(
    readonly client: HimaliaClient,
    private readonly state: IStateDB | null = null
  ) {}

  get me(): DescribeMe | null {
    return this._me;
  }

  get project(): DescribeProject | null {
    return this._project;
  }

  get settings(): ISettingsValues {
    return this._settings;
  }

  /** Emitted when the current project, my identity or the settings change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Whether I hold `permission` on the current project (global administrators hold them all). */
  can(permission: ProjectPermission): boolean {
    return this._project?.my_permissions.includes(permission) ?? false;
  }

  /** Whether I hold a global permission (`admin` implies every one). */
  canGlobally(permission: string): boolean {
    const granted = this._me?.global_permissions ?? {};
    return Boolean(granted['admin'] || granted[permission]);
  }

  async load(): Promise<void> {
    this._me = await this.client.me();
    const saved = (await this.state?.fetch(STATE_KEY)) as string | undefined;
    if (saved) {
      try {
        this._project = await this.client.project(saved);
      } catch {
        this._project = null; // gone, or no longer visible to me
      }
    }
    this._changed.emit();
  }

  async selectProject(key: string | null): Promise<void> {
    this._project = key ? await this.client.project(key) : null;
    await this.state?.save(STATE_KEY, key ?? '');
    this._changed.emit();
  }

  /** Read the current project again (after a grant changed my permissions, say). */
  async refreshProject(): Promise<void> {
    if (this._project) {
      await this.selectProject(this._project.key);
    }
  }

  updateSettings(values: Partial<ISettingsValues>): void {
    this._settings = { ...this._settings, ...values };
    this._changed.emit();
  }

  private _me: DescribeMe | null = null;
  private _project: DescribeProject | null = null;
  private _settings: ISettingsValues = DEFAULT_SETTINGS;
  private _changed = new Signal<this, void>(this);
}
