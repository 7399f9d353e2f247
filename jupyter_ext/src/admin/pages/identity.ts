/**
 * The API calls of the People, Groups and Tokens pages, through the lab's client.
 *
 * Kept beside the pages rather than in `api.ts`: only the administration application needs
 * them, and the wire types are the generated ones.
 */
import type { HimaliaClient } from '../../api';
import type { components } from '../../schema';
import type { DescribeGroup, GlobalPermission, Page } from '../../types';

type Schemas = components['schemas'];

export type DescribeUser = Schemas['DescribeUser'];
export type UpdateUser = Schemas['UpdateUser'];
export type CreateUser = Schemas['CreateUser'];
export type CreateGroup = Schemas['CreateGroup'];
export type UpdateGroup = Schemas['UpdateGroup'];
export type DescribeToken = Schemas['DescribeToken'];
export type CreateToken = Schemas['CreateToken'];
export type CreatedToken = Schemas['CreatedToken'];
export type DescribeDeactivation = Schemas['DescribeDeactivation'];
export type Profile = DescribeUser['profile'];

/** The most rows one request asks for (the API's page cap). */
export const MOST = 500;

export const PROFILES: Profile[] = ['reader', 'analyst', 'designer'];

/** The global permissions a group may carry, with what each lets its members do. */
export const GLOBAL_PERMISSIONS: { name: GlobalPermission; means: string }[] = [
  { name: 'admin', means: 'everything, on every project and page' },
  { name: 'create_projects', means: 'create projects' },
  { name: 'create_connections', means: 'create connections' },
  { name: 'manage_tiers', means: 'edit the tiers servers and runs use' },
  { name: 'view_audit', means: 'read and verify the audit trail' },
  {
    name: 'write_unsafe_code',
    means: 'run notebooks as the platform itself'
  },
  {
    name: 'write_isolated_code',
    means: 'run notebooks as their own account'
  },
  {
    name: 'manage_all_scenarios',
    means: 'change and run the scenarios of every project'
  }
];

function segment(value: string): string {
  return encodeURIComponent(value);
}

// -- people ------------------------------------------------------------------------------------

export interface IUserFilter {
  kind?: 'user' | 'service';
  active?: boolean;
  search?: string;
  offset?: number;
}

export function listUsers(
  client: HimaliaClient,
  filter: IUserFilter = {}
): Promise<Page<DescribeUser>> {
  return client.request('users', 'GET', undefined, {
    limit: MOST,
    offset: filter.offset,
    kind: filter.kind,
    active: filter.active === undefined ? undefined : String(filter.active),
    search: filter.search
  });
}

export function createUser(
  client: HimaliaClient,
  spec: CreateUser
): Promise<DescribeUser> {
  return client.request('users', 'POST', spec);
}

export function updateUser(
  client: HimaliaClient,
  login: string,
  spec: UpdateUser
): Promise<DescribeUser> {
  return client.request(`users/${segment(login)}`, 'PATCH', spec);
}

/** What deactivating `login` would do, to show before confirming. */
export function deactivation(
  client: HimaliaClient,
  login: string
): Promise<DescribeDeactivation> {
  return client.request(`users/${segment(login)}/deactivation`);
}

// -- groups ------------------------------------------------------------------------------------

export async function listGroups(
  client: HimaliaClient
): Promise<DescribeGroup[]> {
  const page = await client.request<Page<DescribeGroup>>(
    'groups',
    'GET',
    undefined,
    { limit: MOST }
  );
  return page.items;
}

export function createGroup(
  client: HimaliaClient,
  spec: CreateGroup
): Promise<DescribeGroup> {
  return client.request('groups', 'POST', spec);
}

export function updateGroup(
  client: HimaliaClient,
  name: string,
  spec: UpdateGroup
): Promise<DescribeGroup> {
  return client.request(`groups/${segment(name)}`, 'PATCH', spec);
}

export function deleteGroup(
  client: HimaliaClient,
  name: string
): Promise<void> {
  return client.request(`groups/${segment(name)}`, 'DELETE');
}

export function addMember(
  client: HimaliaClient,
  group: string,
  login: string
): Promise<DescribeGroup> {
  return client.request(`groups/${segment(group)}/members`, 'POST', {
    user: login
  });
}

export function removeMember(
  client: HimaliaClient,
  group: string,
  login: string
): Promise<DescribeGroup> {
  return client.request(
    `groups/${segment(group)}/members/${segment(login)}`,
    'DELETE'
  );
}

// -- tokens ------------------------------------------------------------------------------------

/** Everyone's tokens, or one person's (`user`); never their values. */
export function listTokens(
  client: HimaliaClient,
  user?: string,
  offset?: number
): Promise<Page<DescribeToken>> {
  return client.request('tokens', 'GET', undefined, {
    limit: MOST,
    offset,
    user: user || undefined
  });
}

/** Issue a token; its value is in this answer only. */
export function createToken(
  client: HimaliaClient,
  spec: CreateToken
): Promise<CreatedToken> {
  return client.request('tokens', 'POST', spec);
}

export function revokeToken(client: HimaliaClient, id: number): Promise<void> {
  return client.request(`tokens/${id}`, 'DELETE');
}
