/**
 * The Himalia REST API of this Jupyter server: one method per endpoint the panels use.
 *
 * Requests go through `ServerConnection` (base URL, token, XSRF cookie), so the panels work
 * wherever the server extension is served: a plain `jupyter lab`, or a single-user server whose
 * extension forwards to the hub's control plane.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IPreview, previewOf } from './datasets/preview';
import { describeFailure } from './errors';
import type {
  Board,
  CheckRun,
  ComputedMetrics,
  ConnectionTestResult,
  CreateBundle,
  CreateDataset,
  CreateProject,
  CurrentProject,
  DescribeBundle,
  DescribeCheck,
  DescribeCheckResult,
  DescribeConnection,
  DescribeDataset,
  DescribeGrant,
  DescribeGroup,
  DescribeMe,
  DescribeMetricValue,
  DescribePreset,
  DescribeProject,
  DescribeRun,
  DescribeScenario,
  FilesPreview,
  Page,
  NotebookDiff,
  PreviewFiles,
  ProjectStorage,
  RunComparison,
  RunRequest,
  SaveScenario,
  ScenarioParameters,
  SetGrant,
  Variables
} from './types';

export const API_NAMESPACE = 'himalia/api/v1';

/** A refusal or failure of the API, with the server's sentence and the field it names. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field: string | null = null
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type Query = Record<string, string | number | undefined>;

function withQuery(path: string, query: Query = {}): string {
  const params = Object.entries(query).filter(
    ([, value]) => value !== undefined && value !== ''
  );
  if (params.length === 0) {
    return path;
  }
  return (
    path +
    URLExt.objectToQueryString(
      Object.fromEntries(params) as Record<string, string>
    )
  );
}

function segment(value: string | number): string {
  return encodeURIComponent(String(value));
}

export class HimaliaClient {
  constructor(
    readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  /** The absolute URL of an API path, for links and iframes (the browser's cookie authenticates). */
  url(path: string, query?: Query): string {
    return URLExt.join(
      this.serverSettings.baseUrl,
      API_NAMESPACE,
      withQuery(path, query)
    );
  }

  /** Send one request; JSON in and out, an `ApiError` with the server's message otherwise. */
  async fetch(
    path: string,
    init: RequestInit = {},
    query?: Query
  ): Promise<Response> {
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(
        this.url(path, query),
        init,
        this.serverSettings
      );
    } catch (error) {
      throw new ApiError(
        0,
        'The Jupyter server cannot be reached: ' + (error as Error).message
      );
    }
    if (!response.ok) {
      let body: unknown = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      const failure = describeFailure(response.status, body);
      throw new ApiError(response.status, failure.message, failure.field);
    }
    return response;
  }

  async request<T>(
    path: string,
    method = 'GET',
    body?: unknown,
    query?: Query
  ): Promise<T> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    const response = await this.fetch(path, init, query);
    if (response.status === 204) {
      return undefined as T;
    }
    return (await response.json()) as T;
  }

  // -- people and projects -------------------------------------------------------------------

  me(): Promise<DescribeMe> {
    return this.request('me');
  }

  groups(limit = 500): Promise<Page<DescribeGroup>> {
    return this.request('groups', 'GET', undefined, { limit });
  }

  projects(
    query: { search?: string; limit?: number; offset?: number } = {}
  ): Promise<Page<DescribeProject>> {
    return this.request('projects', 'GET', undefined, query);
  }

  project(key: string): Promise<DescribeProject> {
    return this.request(`projects/${segment(key)}`);
  }

  /** Tell the server the sidebar's project: my kernels use it when a notebook names none. */
  chooseProject(key: string | null): Promise<CurrentProject> {
    return this.request('me/project', 'PUT', { project: key });
  }

  createProject(spec: CreateProject): Promise<DescribeProject> {
    return this.request('projects', 'POST', spec);
  }

  presets(): Promise<DescribePreset[]> {
    return this.request('project-presets');
  }

  grants(key: string): Promise<DescribeGrant[]> {
    return this.request(`projects/${segment(key)}/grants`);
  }

  setGrant(key: string, grant: SetGrant): Promise<DescribeGrant[]> {
    return this.request(`projects/${segment(key)}/grants`, 'POST', grant);
  }

  removeGrant(
    key: string,
    principalType: string,
    name: string
  ): Promise<DescribeGrant[]> {
    return this.request(
      `projects/${segment(key)}/grants/${segment(principalType)}/${segment(name)}`,
      'DELETE'
    );
  }

  // -- connections -----------------------------------------------------------------------------

  connections(
    query: { limit?: number; offset?: number } = {}
  ): Promise<Page<DescribeConnection>> {
    return this.request('connections', 'GET', undefined, query);
  }

  connection(name: string): Promise<DescribeConnection> {
    return this.request(`connections/${segment(name)}`);
  }

  testConnection(name: string): Promise<ConnectionTestResult> {
    return this.request(`connections/${segment(name)}/test`, 'POST');
  }

  setCredentials(
    name: string,
    secrets: Record<string, string>
  ): Promise<DescribeConnection> {
    return this.request(`connections/${segment(name)}/credentials`, 'PUT', {
      secrets
    });
  }

  // -- datasets, metrics and checks ------------------------------------------------------------

  datasets(
    key: string,
    query: { limit?: number; offset?: number } = {}
  ): Promise<Page<DescribeDataset>> {
    return this.request(
      `projects/${segment(key)}/datasets`,
      'GET',
      undefined,
      query
    );
  }

  /** A dataset's first rows, read by the server (read_content is enough). */
  async datasetPreview(
    key: string,
    dataset: string,
    limit: number
  ): Promise<IPreview> {
    const response = await this.fetch(
      `projects/${segment(key)}/datasets/${segment(dataset)}/data`,
      { method: 'GET' },
      { format: 'csv', limit }
    );
    return previewOf(
      await response.text(),
      response.headers.get('X-Himalia-Stopped-By')
    );
  }

  createDataset(key: string, spec: CreateDataset): Promise<DescribeDataset> {
    return this.request(`projects/${segment(key)}/datasets`, 'POST', spec);
  }

  metricHistory(
    key: string,
    dataset: string,
    query: { metric?: string; limit?: number } = {}
  ): Promise<DescribeMetricValue[]> {
    return this.request(
      `projects/${segment(key)}/datasets/${segment(dataset)}/metrics`,
      'GET',
      undefined,
      query
    );
  }

  computeMetrics(key: string, dataset: string): Promise<ComputedMetrics> {
    return this.request(
      `projects/${segment(key)}/datasets/${segment(dataset)}/metrics`,
      'POST',
      {}
    );
  }

  checks(key: string, dataset: string): Promise<DescribeCheck[]> {
    return this.request(
      `projects/${segment(key)}/datasets/${segment(dataset)}/checks`
    );
  }

  check(key: string, dataset: string, check: string): Promise<DescribeCheck> {
    return this.request(
      `projects/${segment(key)}/datasets/${segment(dataset)}/checks/${segment(check)}`
    );
  }

  dataset(key: string, dataset: string): Promise<DescribeDataset> {
    return this.request(
      `projects/${segment(key)}/datasets/${segment(dataset)}`
    );
  }

  runChecks(key: string, dataset: string): Promise<CheckRun> {
    return this.request(
      `projects/${segment(key)}/datasets/${segment(dataset)}/checks/run`,
      'POST'
    );
  }

  checkHistory(
    key: string,
    query: { dataset?: string; check?: string; limit?: number }
  ): Promise<DescribeCheckResult[]> {
    return this.request(
      `projects/${segment(key)}/checks/history`,
      'GET',
      undefined,
      query
    );
  }

  // -- scenarios and runs ----------------------------------------------------------------------

  scenarios(
    key: string,
    query: { limit?: number; offset?: number } = {}
  ): Promise<Page<DescribeScenario>> {
    return this.request(
      `projects/${segment(key)}/scenarios`,
      'GET',
      undefined,
      query
    );
  }

  scenario(key: string, id: string): Promise<DescribeScenario> {
    return this.request(`projects/${segment(key)}/scenarios/${segment(id)}`);
  }

  saveScenario(
    key: string,
    id: string,
    spec: SaveScenario
  ): Promise<DescribeScenario> {
    return this.request(
      `projects/${segment(key)}/scenarios/${segment(id)}`,
      'PUT',
      spec
    );
  }

  /** The project files saving a scenario of this notebook would snapshot; nothing is saved. */
  previewFiles(key: string, spec: PreviewFiles): Promise<FilesPreview> {
    return this.request(
      `projects/${segment(key)}/project-files/preview`,
      'POST',
      spec
    );
  }

  deleteScenario(key: string, id: string): Promise<void> {
    return this.request(
      `projects/${segment(key)}/scenarios/${segment(id)}`,
      'DELETE'
    );
  }

  /** The scenario as YAML, rendered by the server from its saved definition. */
  async scenarioYaml(key: string, id: string): Promise<string> {
    const response = await this.fetch(
      `projects/${segment(key)}/scenarios/${segment(id)}/export`
    );
    return response.text();
  }

  setScenarioActive(
    key: string,
    id: string,
    active: boolean
  ): Promise<DescribeScenario> {
    return this.request(
      `projects/${segment(key)}/scenarios/${segment(id)}`,
      'PATCH',
      { active }
    );
  }

  scenarioParameters(key: string, id: string): Promise<ScenarioParameters> {
    return this.request(
      `projects/${segment(key)}/scenarios/${segment(id)}/parameters`
    );
  }

  runScenario(
    key: string,
    id: string,
    request: RunRequest
  ): Promise<DescribeRun> {
    return this.request(
      `projects/${segment(key)}/scenarios/${segment(id)}/run`,
      'POST',
      request
    );
  }

  runs(
    key: string,
    id: string,
    query: { limit?: number; offset?: number } = {}
  ): Promise<Page<DescribeRun>> {
    return this.request(
      `projects/${segment(key)}/scenarios/${segment(id)}/runs`,
      'GET',
      undefined,
      query
    );
  }

  compareRuns(
    key: string,
    id: string,
    first: number,
    second: number
  ): Promise<RunComparison> {
    return this.request(
      `projects/${segment(key)}/scenarios/${segment(id)}/runs/${first}/compare/${second}`
    );
  }

  /** One notebook of two runs in nbdime's terms: run a's snapshot and nbdime's diff to run b's. */
  compareNotebook(
    key: string,
    id: string,
    first: number,
    second: number,
    path: string
  ): Promise<NotebookDiff> {
    return this.request(
      `projects/${segment(key)}/scenarios/${segment(id)}/runs/${first}/compare/${second}/notebook?path=${encodeURIComponent(path)}`
    );
  }

  run(key: string, id: string, run: number): Promise<DescribeRun> {
    return this.request(
      `projects/${segment(key)}/scenarios/${segment(id)}/runs/${run}`
    );
  }

  abortRun(key: string, id: string, run: number): Promise<DescribeRun> {
    return this.request(
      `projects/${segment(key)}/scenarios/${segment(id)}/runs/${run}/abort`,
      'POST'
    );
  }

  /** Keep a run's artifacts and log whatever retention says (or let it judge the run again). */
  pinRun(
    key: string,
    id: string,
    run: number,
    pinned: boolean
  ): Promise<DescribeRun> {
    return this.request(
      `projects/${segment(key)}/scenarios/${segment(id)}/runs/${run}/pin`,
      'PUT',
      { pinned }
    );
  }

  /** The space a project's runs and snapshots take in the store. */
  projectStorage(key: string): Promise<ProjectStorage> {
    return this.request(`projects/${segment(key)}/storage`);
  }

  rerun(
    key: string,
    id: string,
    run: number,
    fromFailedStep: boolean
  ): Promise<DescribeRun> {
    return this.request(
      `projects/${segment(key)}/scenarios/${segment(id)}/runs/${run}/rerun`,
      'POST',
      {
        from_failed_step: fromFailedStep
      }
    );
  }

  /** The log text after `cursor`, and the cursor to continue from. */
  async runLog(
    key: string,
    id: string,
    run: number,
    cursor: number
  ): Promise<{ text: string; cursor: number }> {
    const response = await this.fetch(
      `projects/${segment(key)}/scenarios/${segment(id)}/runs/${run}/log`,
      {},
      {
        after: cursor
      }
    );
    const next = Number(response.headers.get('X-Himalia-Log-Cursor') ?? cursor);
    return { text: await response.text(), cursor: next };
  }

  /** The executed notebook of a run's notebook step (the last one unless `step` is given). */
  async runNotebook(
    key: string,
    id: string,
    run: number,
    step?: string
  ): Promise<unknown> {
    const response = await this.fetch(
      `projects/${segment(key)}/scenarios/${segment(id)}/runs/${run}/notebook`,
      {},
      {
        step
      }
    );
    return response.json();
  }

  runReportUrl(key: string, id: string, run: number, step?: string): string {
    return this.url(
      `projects/${segment(key)}/scenarios/${segment(id)}/runs/${run}/report`,
      { step }
    );
  }

  // -- bundles ---------------------------------------------------------------------------------

  /** The operations board: each scenario's expected fires since `since` (`24h`, `7d`, `30d`). */
  board(
    query: { since?: string; project?: string; scenario?: string } = {}
  ): Promise<Board> {
    return this.request('board', 'GET', undefined, query);
  }

  bundles(key: string): Promise<DescribeBundle[]> {
    return this.request(`projects/${segment(key)}/bundles`);
  }

  createBundle(key: string, spec: CreateBundle): Promise<DescribeBundle> {
    return this.request(`projects/${segment(key)}/bundles`, 'POST', spec);
  }

  /** The link that downloads a version's bundle file (the browser's cookie authenticates). */
  bundleDownloadUrl(key: string, version: number): string {
    return this.url(`projects/${segment(key)}/bundles/${version}/download`);
  }

  // -- variables -------------------------------------------------------------------------------

  instanceVariables(): Promise<Variables> {
    return this.request('variables');
  }

  setInstanceVariables(variables: Record<string, unknown>): Promise<Variables> {
    return this.request('variables', 'PUT', { variables });
  }

  projectVariables(key: string): Promise<Variables> {
    return this.request(`projects/${segment(key)}/variables`);
  }

  /** The project's variables merged over the instance's, `${name}` references expanded. */
  resolvedProjectVariables(key: string): Promise<Variables> {
    return this.request(
      `projects/${segment(key)}/variables`,
      'GET',
      undefined,
      {
        resolved: 'true'
      }
    );
  }

  setProjectVariables(
    key: string,
    variables: Record<string, unknown>
  ): Promise<Variables> {
    return this.request(`projects/${segment(key)}/variables`, 'PUT', {
      variables
    });
  }
}
