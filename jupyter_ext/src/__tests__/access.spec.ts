import {
  GridCell,
  GridSource,
  GridSubject,
  cellLabel,
  describeSource,
  grantRequest,
  ownGrant,
  sourcesOf
} from '../admin/pages/access';

function source(overrides: Partial<GridSource>): GridSource {
  return {
    kind: 'group',
    group: 'readers',
    permissions: ['read_dashboards', 'read_content'],
    preset: 'reader',
    ...overrides
  };
}

function cell(
  sources: GridSource[],
  overrides: Partial<GridCell> = {}
): GridCell {
  const held = Array.from(new Set(sources.flatMap(s => s.permissions)));
  return {
    project: 'FRAUD',
    permissions: held,
    preset: null,
    sources,
    ...overrides
  };
}

function subject(name: string, cells: GridCell[]): GridSubject {
  return {
    name,
    display_name: '',
    kind: 'user',
    active: true,
    groups: [],
    global_permissions: [],
    cells
  };
}

describe('a cell', () => {
  it('reads as its preset, else as the letters of what it holds', () => {
    expect(cellLabel(cell([source({})], { preset: 'reader' }))).toBe('reader');
    const mixed = cell([
      source({}),
      source({
        kind: 'user',
        group: null,
        permissions: ['read_dashboards', 'run_scenarios']
      })
    ]);
    expect(cellLabel(mixed)).toBe('DRS');
  });

  it('is empty when nothing is held, as for a deactivated person', () => {
    expect(cellLabel(undefined)).toBe('');
    expect(cellLabel(cell([source({})], { permissions: [] }))).toBe('');
  });

  it('names the sources giving each permission', () => {
    const direct = source({
      kind: 'user',
      group: null,
      permissions: ['read_dashboards', 'run_scenarios']
    });
    const group = source({});
    const both = cell([direct, group]);
    expect(sourcesOf(both, 'read_dashboards')).toEqual([direct, group]);
    expect(sourcesOf(both, 'run_scenarios')).toEqual([direct]);
    expect(sourcesOf(both, 'admin')).toEqual([]);
    expect(describeSource(group)).toBe('a grant to the group readers');
    expect(describeSource(source({ kind: 'global', group: 'admins' }))).toBe(
      'the global permission admin, through the group admins'
    );
  });
});

describe('the grant a row edits', () => {
  it("is a person's own grant, never one through their groups", () => {
    const owner = source({ kind: 'owner', group: null });
    const person = subject('alice', [cell([source({}), owner])]);
    expect(ownGrant('users', person, person.cells[0])).toBe(owner);
    const member = subject('bob', [cell([source({})])]);
    expect(ownGrant('users', member, member.cells[0])).toBeUndefined();
  });

  it("is a group's grant to itself, not its global admin", () => {
    const global = source({ kind: 'global', group: 'readers' });
    const readers = subject('readers', [cell([global])]);
    expect(ownGrant('groups', readers, readers.cells[0])).toBeUndefined();
    const own = source({});
    expect(ownGrant('groups', readers, cell([own, global]))).toBe(own);
  });

  it('is set by preset or by exact permissions', () => {
    expect(grantRequest('groups', 'readers', 'launcher', ['admin'])).toEqual({
      group: 'readers',
      preset: 'launcher'
    });
    expect(grantRequest('users', 'bob', null, ['run_scenarios'])).toEqual({
      user: 'bob',
      permissions: ['run_scenarios']
    });
  });
});
