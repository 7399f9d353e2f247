/**
 * State the panels share: who I am, the current project and my permissions on it.
 *
 * Choosing a project in the Projects panel sets it for every other panel; the choice survives
 * a page reload through the state database, and the server is told it (again on every load), so
 * that `himalia.dataset(...)` in my kernels finds the project without `project=`.
 */
import { IStateDB } from '@jupyterlab/statedb';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { HimaliaClient } from './api';
import type { DescribeMe, DescribeProject, ProjectPermission } from './types';

const STATE_KEY = 'himalia:current-project';

/** What my global and project permissions are, as one comparable string. */
export function permissionsOf(
  me: DescribeMe | null,
  project: DescribeProject | null
): string {
  const global = Object.entries(me?.global_permissions ?? {})
    .filter(([, held]) => held)
    .map(([name]) => name)
    .sort();
  const own = [...(project?.my_permissions ?? [])].sort();
  return JSON.stringify([me?.login ?? null, global, project?.key ?? null, own]);
}

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
    await this.tellKernels();
    this._changed.emit();
  }

  async selectProject(key: string | null): Promise<void> {
    this._project = key ? await this.client.project(key) : null;
    await this.state?.save(STATE_KEY, key ?? '');
    await this.tellKernels();
    this._changed.emit();
  }

  /** The server keeps my current project for my kernels; the panels work on without it. */
  private async tellKernels(): Promise<void> {
    try {
      await this.client.chooseProject(this._project?.key ?? null);
    } catch (error) {
      console.warn(
        'Himalia: kernels will not know the current project:',
        (error as Error).message
      );
    }
  }

  /**
   * Read my identity and the current project's permissions again; emit `changed` only if they
   * differ, so that a permission an administrator grants or withdraws shows without a reload.
   */
  async refreshPermissions(): Promise<void> {
    const me = await this.client.me();
    const project = this._project
      ? await this.client.project(this._project.key).catch(() => null)
      : null;
    const before = permissionsOf(this._me, this._project);
    this._me = me;
    this._project = project;
    if (permissionsOf(me, project) !== before) {
      this._changed.emit();
    }
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

  /** Refresh permissions every list interval while the page is visible (Lumino `Poll`). */
  startRefreshing(): void {
    this._poll?.dispose();
    this._poll = new Poll({
      factory: () => this.refreshPermissions(),
      frequency: {
        interval: this._settings.listPollSeconds * 1000,
        backoff: true,
        max: 300_000
      },
      standby: 'when-hidden'
    });
  }

  private _poll: Poll | null = null;
  private _me: DescribeMe | null = null;
  private _project: DescribeProject | null = null;
  private _settings: ISettingsValues = DEFAULT_SETTINGS;
  private _changed = new Signal<this, void>(this);
}
