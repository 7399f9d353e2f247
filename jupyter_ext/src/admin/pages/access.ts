/**
 * The permissions page's API calls and the pure logic of its grid: how a cell reads compactly,
 * which sources give each permission, and which grant on a cell belongs to the row's subject.
 */
import type { HimaliaClient } from '../../api';
import type { components } from '../../schema';
import type { ProjectPermission, SetGrant } from '../../types';

type Schemas = components['schemas'];

export type AccessGrid = Schemas['AccessGrid'];
export type GridSubject = Schemas['GridSubject'];
export type GridCell = Schemas['GridCell'];
export type GridSource = Schemas['GridSource'];
export type GridProject = Schemas['GridProject'];
export type ExplainAccess = Schemas['ExplainAccess'];
export type Subjects = 'users' | 'groups';

export interface IGridQuery {
  subjects: Subjects;
  search?: string;
  limit: number;
  offset: number;
}

export function accessGrid(
  client: HimaliaClient,
  query: IGridQuery
): Promise<AccessGrid> {
  return client.request<AccessGrid>('auth-matrix/grid', 'GET', undefined, {
    subjects: query.subjects,
    search: query.search?.trim(),
    limit: query.limit,
    offset: query.offset
  });
}

export function explainAccess(
  client: HimaliaClient,
  user: string,
  project: string,
  permission: ProjectPermission
): Promise<ExplainAccess> {
  return client.request<ExplainAccess>(
    'auth-matrix/explain',
    'GET',
    undefined,
    { user: user.trim(), project, permission }
  );
}

/** Every project permission, in the server's order, with the letter a cell shows for it. */
export const PERMISSIONS: { name: ProjectPermission; letter: string }[] = [
  { name: 'read_dashboards', letter: 'D' },
  { name: 'read_content', letter: 'R' },
  { name: 'write_content', letter: 'W' },
  { name: 'run_scenarios', letter: 'S' },
  { name: 'export_datasets', letter: 'E' },
  { name: 'admin', letter: 'A' }
];

/** A permission's name as people read it: `read_content` → `read content`. */
export function spoken(permission: string): string {
  return permission.replace(/_/g, ' ');
}

/** What a cell shows: its preset's name, else the letters of what it holds; '' for nothing. */
export function cellLabel(cell: GridCell | undefined): string {
  if (!cell || cell.permissions.length === 0) {
    return '';
  }
  if (cell.preset) {
    return cell.preset;
  }
  return PERMISSIONS.filter(p => cell.permissions.includes(p.name))
    .map(p => p.letter)
    .join('');
}

/** The cell's sources that give `permission`. */
export function sourcesOf(
  cell: GridCell,
  permission: ProjectPermission
): GridSource[] {
  return cell.sources.filter(source => source.permissions.includes(permission));
}

/** Where a source comes from, in words. */
export function describeSource(source: GridSource): string {
  switch (source.kind) {
    case 'owner':
      return "the project owner's own grant";
    case 'user':
      return 'a grant to the person';
    case 'group':
      return `a grant to the group ${source.group}`;
    case 'global':
      return `the global permission admin, through the group ${source.group}`;
  }
}

/**
 * The grant a row's subject holds on the cell's project themselves, the one this page edits:
 * a person's own grant (as owner or not), a group's grant to itself. Grants through a person's
 * groups are edited on the group's row; the global admin on the Groups page.
 */
export function ownGrant(
  subjects: Subjects,
  subject: GridSubject,
  cell: GridCell | undefined
): GridSource | undefined {
  return cell?.sources.find(source =>
    subjects === 'users'
      ? source.kind === 'user' || source.kind === 'owner'
      : source.kind === 'group' && source.group === subject.name
  );
}

/** The request giving the subject `preset`, or exactly `permissions` when no preset is chosen. */
export function grantRequest(
  subjects: Subjects,
  name: string,
  preset: SetGrant['preset'],
  permissions: ProjectPermission[]
): SetGrant {
  const principal = subjects === 'users' ? { user: name } : { group: name };
  return preset ? { ...principal, preset } : { ...principal, permissions };
}
