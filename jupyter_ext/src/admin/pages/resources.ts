/**
 * The API calls of the Connections and Tiers pages, through the lab's client.
 *
 * Kept beside the pages rather than in `api.ts`: only the administration application needs
 * them, and the wire types are the generated ones.
 */
import { ApiError, HimaliaClient } from '../../api';
import type { components } from '../../schema';
import type { DescribeConnection, Page } from '../../types';

type Schemas = components['schemas'];

export type AccessSpec = Schemas['AccessSpec'];
export type CreateConnection = Schemas['CreateConnection'];
export type UpdateConnection = Schemas['UpdateConnection'];
export type ConnectionTestResult = Schemas['ConnectionTestResult'];
export type SetCredentials = Schemas['SetCredentials'];
export type DescribeTier = Schemas['DescribeTier'];
export type TierSpec = Schemas['TierSpec'];
export type DescribeUsage = Schemas['DescribeUsage'];
export type SpawnFormPreview = Schemas['SpawnFormPreview'];

/** The most rows one request asks for (the API's page cap). */
const MOST = 500;

function segment(value: string): string {
  return encodeURIComponent(value);
}

// -- connections -------------------------------------------------------------------------------

export async function listConnections(
  client: HimaliaClient
): Promise<DescribeConnection[]> {
  const page = await client.request<Page<DescribeConnection>>(
    'connections',
    'GET',
    undefined,
    { limit: MOST }
  );
  return page.items;
}

export function createConnection(
  client: HimaliaClient,
  spec: CreateConnection
): Promise<DescribeConnection> {
  return client.request('connections', 'POST', spec);
}

export function updateConnection(
  client: HimaliaClient,
  name: string,
  spec: UpdateConnection
): Promise<DescribeConnection> {
  return client.request(`connections/${segment(name)}`, 'PATCH', spec);
}

/** My own secrets for a per_user connection (replacing those I had set). */
export function setMyCredentials(
  client: HimaliaClient,
  name: string,
  spec: SetCredentials
): Promise<DescribeConnection> {
  return client.request(
    `connections/${segment(name)}/credentials`,
    'PUT',
    spec
  );
}

export function testConnection(
  client: HimaliaClient,
  name: string
): Promise<ConnectionTestResult> {
  return client.request(`connections/${segment(name)}/test`, 'POST');
}

/** Delete a connection: refused, in a sentence, while datasets or scenarios use it. */
export function deleteConnection(
  client: HimaliaClient,
  name: string
): Promise<void> {
  return client.request(`connections/${segment(name)}`, 'DELETE');
}

// -- tiers -------------------------------------------------------------------------------------

/** Every tier, archived ones included (tier managers). */
export function listTiers(client: HimaliaClient): Promise<DescribeTier[]> {
  return client.request('tiers', 'GET', undefined, { archived: 'true' });
}

export function putTier(
  client: HimaliaClient,
  name: string,
  spec: TierSpec
): Promise<DescribeTier> {
  return client.request(`tiers/${segment(name)}`, 'PUT', spec);
}

/** The spawn form as a member of `group` alone would see it; `null`: a person in no group. */
export function spawnFormPreview(
  client: HimaliaClient,
  group: string | null
): Promise<SpawnFormPreview> {
  return client.request(
    'spawn-form',
    'GET',
    undefined,
    group === null ? {} : { group }
  );
}

/** The servers and scenario runs open on a tier now, newest first. */
export async function runningOn(
  client: HimaliaClient,
  tier: string
): Promise<Page<DescribeUsage>> {
  return client.request('usage', 'GET', undefined, {
    running: 'true',
    tier,
    limit: MOST
  });
}

/** The field an API refusal names, without its list index ('allowed_groups.0' → 'allowed_groups'). */
export function refusedField(error: unknown): string | null {
  if (error instanceof ApiError && error.field) {
    return error.field.split('.')[0] === 'params'
      ? error.field
      : error.field.split('.')[0];
  }
  return null;
}
