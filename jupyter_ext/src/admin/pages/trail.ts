/**
 * The Audit page's API calls and the pure logic behind its filters: what a person typed becomes
 * the query of `GET /audit`, the export's link and nothing else, so that the rows shown, the
 * rows exported and the filter on screen always agree.
 */
import type { HimaliaClient } from '../../api';
import type { components } from '../../schema';
import type { Page } from '../../types';

type Schemas = components['schemas'];

export type DescribeAuditEntry = Schemas['DescribeAuditEntry'];
export type AuditFacets = Schemas['AuditFacets'];
export type AuditVerification = Schemas['AuditVerification'];
export type ExportFormat = 'csv' | 'jsonl';

/** How many entries one page of the table shows. */
export const PAGE_SIZE = 50;

/** The filter as the form holds it: text as typed, times as `datetime-local` values (the browser's zone). */
export interface IAuditFilter {
  actor: string;
  action: string;
  objectType: string;
  objectId: string;
  project: string;
  since: string;
  until: string;
}

export const NO_FILTER: IAuditFilter = {
  actor: '',
  action: '',
  objectType: '',
  objectId: '',
  project: '',
  since: '',
  until: ''
};

type Query = Record<string, string | number | undefined>;

function pad(value: number): string {
  return String(Math.floor(Math.abs(value))).padStart(2, '0');
}

/**
 * A `datetime-local` value (`2026-12-02T10:00`, the browser's zone) as a time naming its offset
 * (`2026-12-02T10:00:00+01:00`), so that the server, which reads a time without a zone as UTC,
 * reads the instant the person meant. `undefined` for an empty or unreadable value.
 */
export function zonedTime(local: string): string | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(
    local.trim()
  );
  if (!match) {
    return undefined;
  }
  const [year, month, day, hour, minute, second] = match
    .slice(1)
    .map(part => Number(part ?? 0));
  const moment = new Date(year, month - 1, day, hour, minute, second);
  if (Number.isNaN(moment.getTime()) || moment.getDate() !== day) {
    return undefined;
  }
  const offset = -moment.getTimezoneOffset(); // minutes east of UTC at that instant
  const sign = offset < 0 ? '-' : '+';
  const clock = `${pad(moment.getHours())}:${pad(moment.getMinutes())}:${pad(moment.getSeconds())}`;
  return (
    `${year}-${pad(month)}-${pad(day)}T${clock}` +
    `${sign}${pad(offset / 60)}:${pad(offset % 60)}`
  );
}

/** The query of `GET /audit` and `GET /audit/export` for `filter`: blank fields are left out. */
export function filterQuery(filter: IAuditFilter): Query {
  const text = (value: string) => value.trim() || undefined;
  return {
    actor: text(filter.actor),
    action: text(filter.action)?.replace(/\.+$/, ''),
    object_type: text(filter.objectType),
    object_id: text(filter.objectId),
    project: text(filter.project),
    since: zonedTime(filter.since),
    until: zonedTime(filter.until)
  };
}

/** Whether the filter narrows anything. */
export function isFiltered(filter: IAuditFilter): boolean {
  return Object.values(filterQuery(filter)).some(value => value !== undefined);
}

/**
 * The actions to offer, each prefix first (`project` matches `project.create`,
 * `project.grant`...), then the actions themselves; sorted, without repeats.
 */
export function actionChoices(actions: string[]): string[] {
  const choices = new Set<string>();
  for (const action of actions) {
    const parts = action.split('.');
    for (let length = 1; length < parts.length; length++) {
      choices.add(parts.slice(0, length).join('.'));
    }
    choices.add(action);
  }
  return Array.from(choices).sort();
}

/** "Entries 51–100 of 234", or that there are none. */
export function pageSummary(
  offset: number,
  shown: number,
  total: number
): string {
  if (shown === 0) {
    return total === 0 ? 'No entry matches.' : `No entry past ${total}.`;
  }
  return `Entries ${offset + 1}–${offset + shown} of ${total}`;
}

// -- the API -----------------------------------------------------------------------------------

export function listEntries(
  client: HimaliaClient,
  filter: IAuditFilter,
  offset: number
): Promise<Page<DescribeAuditEntry>> {
  return client.request('audit', 'GET', undefined, {
    ...filterQuery(filter),
    limit: PAGE_SIZE,
    offset
  });
}

export function auditFacets(client: HimaliaClient): Promise<AuditFacets> {
  return client.request('audit/facets');
}

export function verifyChain(client: HimaliaClient): Promise<AuditVerification> {
  return client.request('audit/verify');
}

/** The link that downloads the filtered trail, oldest first (the browser's login cookie authenticates). */
export function exportUrl(
  client: HimaliaClient,
  filter: IAuditFilter,
  format: ExportFormat
): string {
  return client.url('audit/export', { ...filterQuery(filter), format });
}
