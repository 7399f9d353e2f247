import { HimaliaModel, permissionsOf } from '../model';
import type { HimaliaClient } from '../api';
import type { DescribeMe, DescribeProject } from '../types';

function me(permissions: Record<string, boolean>): DescribeMe {
  return {
    login: 'bob',
    display_name: 'Bob',
    email: '',
    profile: 'analyst',
    kind: 'user',
    active: true,
    groups: [],
    source: 'local',
    created_at: '2026-12-01T00:00:00Z',
    last_seen_at: null,
    global_permissions: permissions
  } as DescribeMe;
}

function fakeClient(answers: DescribeMe[]): HimaliaClient {
  return {
    me: jest.fn(async () => answers.shift()!),
    chooseProject: jest.fn(async (project: string | null) => ({ project })),
    project: jest.fn(
      async (key: string) =>
        ({ key, my_permissions: [] }) as unknown as DescribeProject
    )
  } as unknown as HimaliaClient;
}

describe('permissionsOf', () => {
  it('ignores order and permissions not held', () => {
    const a = permissionsOf(
      me({ admin: false, write_isolated_code: true, create_projects: true }),
      null
    );
    const b = permissionsOf(
      me({ create_projects: true, write_isolated_code: true }),
      null
    );
    expect(a).toEqual(b);
  });
});

describe('HimaliaModel.refreshPermissions', () => {
  it('emits only when my permissions changed', async () => {
    const model = new HimaliaModel(
      fakeClient([me({}), me({}), me({ write_isolated_code: true })])
    );
    await model.load();
    const seen: number[] = [];
    model.changed.connect(() => seen.push(1));
    await model.refreshPermissions();
    expect(seen).toHaveLength(0);
    await model.refreshPermissions();
    expect(seen).toHaveLength(1);
    expect(model.canGlobally('write_isolated_code')).toBe(true);
  });
});
