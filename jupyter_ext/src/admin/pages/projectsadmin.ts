/**
 * The API calls of the Projects page, through the lab's client.
 *
 * Listing asks for every project the person sees: administrators see them all, a project
 * creator the ones they hold a grant on (theirs among them).
 */
import type { HimaliaClient } from '../../api';
import type { components } from '../../schema';
import type { CreateProject, DescribeProject, Page } from '../../types';
import { MOST } from './identity';

type Schemas = components['schemas'];

export type UpdateProject = Schemas['UpdateProject'];
type DescribeScenario = Schemas['DescribeScenario'];

function segment(value: string): string {
  return encodeURIComponent(value);
}

export function listProjects(
  client: HimaliaClient
): Promise<Page<DescribeProject>> {
  return client.request('projects', 'GET', undefined, { limit: MOST });
}

export function createProject(
  client: HimaliaClient,
  spec: CreateProject
): Promise<DescribeProject> {
  return client.request('projects', 'POST', spec);
}

export function updateProject(
  client: HimaliaClient,
  key: string,
  spec: UpdateProject
): Promise<DescribeProject> {
  return client.request(`projects/${segment(key)}`, 'PATCH', spec);
}

/** Delete a project; `deleteBundles` deletes its stored bundle versions with it. */
export function deleteProject(
  client: HimaliaClient,
  key: string,
  deleteBundles: boolean
): Promise<void> {
  return client.request(
    `projects/${segment(key)}`,
    'DELETE',
    undefined,
    deleteBundles ? { delete_bundles: 'true' } : undefined
  );
}

/** The project's active scenarios: archiving it deactivates them. */
export async function activeScenarios(
  client: HimaliaClient,
  key: string
): Promise<DescribeScenario[]> {
  const page = await client.request<Page<DescribeScenario>>(
    `projects/${segment(key)}/scenarios`,
    'GET',
    undefined,
    { limit: MOST }
  );
  return page.items.filter(scenario => scenario.active);
}
