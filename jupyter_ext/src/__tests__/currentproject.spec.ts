import { HimaliaModel } from '../model';
import type { IStateDB } from '@jupyterlab/statedb';

import type { HimaliaClient } from '../api';
import type { DescribeProject } from '../types';

function client(told: (string | null)[]): HimaliaClient {
  return {
    me: jest.fn(async () => ({ login: 'carol', global_permissions: {} })),
    project: jest.fn(
      async (key: string) =>
        ({
          key,
          my_permissions: ['read_content']
        }) as unknown as DescribeProject
    ),
    chooseProject: jest.fn(async (key: string | null) => {
      told.push(key);
      return { project: key };
    })
  } as unknown as HimaliaClient;
}

function state(saved: string): IStateDB {
  const stored: Record<string, unknown> = { 'himalia:current-project': saved };
  return {
    fetch: jest.fn(async (key: string) => stored[key]),
    save: jest.fn(async (key: string, value: unknown) => {
      stored[key] = value;
    })
  } as unknown as IStateDB;
}

describe('the current project reaches my kernels', () => {
  it('is told on every load, the restored choice included', async () => {
    const told: (string | null)[] = [];
    await new HimaliaModel(client(told), state('FRAUD')).load();
    expect(told).toEqual(['FRAUD']);
  });

  it('follows the sidebar: a project, then none', async () => {
    const told: (string | null)[] = [];
    const model = new HimaliaModel(client(told), state(''));
    await model.load();
    await model.selectProject('FRAUD');
    await model.selectProject(null);
    expect(told).toEqual([null, 'FRAUD', null]);
    expect(model.project).toBeNull();
  });

  it('leaves the panels working when the server cannot be told', async () => {
    const failing = client([]);
    (failing.chooseProject as jest.Mock).mockRejectedValue(new Error('down'));
    const warn = jest
      .spyOn(console, 'warn')
      .mockImplementation(() => undefined);
    const model = new HimaliaModel(failing, state(''));
    await model.selectProject('FRAUD');
    expect(model.project?.key).toBe('FRAUD');
    expect(warn).toHaveBeenCalled();
    warn.mockRestore();
  });
});
