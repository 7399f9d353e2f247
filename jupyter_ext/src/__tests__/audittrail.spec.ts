import {
  IAuditFilter,
  NO_FILTER,
  actionChoices,
  filterQuery,
  isFiltered,
  pageSummary,
  zonedTime
} from '../admin/pages/trail';

function filter(overrides: Partial<IAuditFilter>): IAuditFilter {
  return { ...NO_FILTER, ...overrides };
}

describe('zonedTime', () => {
  it('names the offset of the browser zone at that instant, as the server reads it', () => {
    for (const local of [
      '2026-12-02T10:00',
      '2026-07-01T23:59:30',
      '2026-03-29T01:30'
    ]) {
      const zoned = zonedTime(local)!;
      expect(zoned).toMatch(
        /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$/
      );
      // The same instant as the browser reads the local value.
      expect(Date.parse(zoned)).toBe(new Date(local).getTime());
    }
  });

  it('keeps the wall clock as typed', () => {
    expect(zonedTime('2026-12-02T10:05')!.slice(0, 19)).toBe(
      '2026-12-02T10:05:00'
    );
    expect(zonedTime('2026-12-02T10:05:09')!.slice(0, 19)).toBe(
      '2026-12-02T10:05:09'
    );
  });

  it('is undefined for nothing or what is no time', () => {
    for (const value of [
      '',
      ' ',
      'yesterday',
      '2026-12-02',
      '2026-02-30T10:00'
    ]) {
      expect(zonedTime(value)).toBeUndefined();
    }
  });
});

describe('filterQuery', () => {
  it('leaves blank fields out and trims the others', () => {
    expect(filterQuery(NO_FILTER)).toEqual({
      actor: undefined,
      action: undefined,
      object_type: undefined,
      object_id: undefined,
      project: undefined,
      since: undefined,
      until: undefined
    });
    const query = filterQuery(
      filter({
        actor: ' alice ',
        objectType: 'connection',
        objectId: 'wh',
        project: 'FRAUD'
      })
    );
    expect(query).toMatchObject({
      actor: 'alice',
      object_type: 'connection',
      object_id: 'wh',
      project: 'FRAUD'
    });
  });

  it('sends an action prefix without its trailing dot', () => {
    expect(filterQuery(filter({ action: 'project.' })).action).toBe('project');
    expect(filterQuery(filter({ action: 'project.grant' })).action).toBe(
      'project.grant'
    );
  });

  it('sends times with their offset', () => {
    const query = filterQuery(
      filter({ since: '2026-12-01T00:00', until: '2026-12-02T00:00' })
    );
    expect(Date.parse(query.since as string)).toBe(
      new Date('2026-12-01T00:00').getTime()
    );
    expect(Date.parse(query.until as string)).toBe(
      new Date('2026-12-02T00:00').getTime()
    );
  });

  it('says whether anything is filtered', () => {
    expect(isFiltered(NO_FILTER)).toBe(false);
    expect(isFiltered(filter({ actor: '  ' }))).toBe(false);
    expect(isFiltered(filter({ since: 'soon' }))).toBe(false);
    expect(isFiltered(filter({ action: 'user' }))).toBe(true);
  });
});

describe('actionChoices', () => {
  it('offers each prefix before its actions, once', () => {
    expect(
      actionChoices([
        'project.grant',
        'project.create',
        'user.create',
        'bundle.key.trust'
      ])
    ).toEqual([
      'bundle',
      'bundle.key',
      'bundle.key.trust',
      'project',
      'project.create',
      'project.grant',
      'user',
      'user.create'
    ]);
    expect(actionChoices([])).toEqual([]);
  });
});

describe('pageSummary', () => {
  it('counts the entries shown of those matching', () => {
    expect(pageSummary(0, 50, 234)).toBe('Entries 1–50 of 234');
    expect(pageSummary(200, 34, 234)).toBe('Entries 201–234 of 234');
    expect(pageSummary(0, 0, 0)).toBe('No entry matches.');
  });
});
