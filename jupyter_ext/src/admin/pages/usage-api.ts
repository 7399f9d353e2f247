/**
 * The API calls of the Usage page, through the lab's client, and the month arithmetic it needs.
 *
 * Kept beside the page rather than in `api.ts`: only the administration application needs them,
 * and the wire types are the generated ones.
 */
import type { HimaliaClient } from '../../api';
import type { components } from '../../schema';

type Schemas = components['schemas'];

export type UsageTotals = Schemas['UsageTotals'];
export type UsageTotal = Schemas['UsageTotal'];
export type UsageDimension = UsageTotals['by'];
export type DescribeBudget = Schemas['DescribeBudget'];
export type DescribeBudgetAlert = Schemas['DescribeBudgetAlert'];
export type CreateBudget = Schemas['CreateBudget'];

export const DIMENSIONS: { by: UsageDimension; title: string }[] = [
  { by: 'month', title: 'By month' },
  { by: 'tier', title: 'By tier' },
  { by: 'user', title: 'By person' },
  { by: 'project', title: 'By project' }
];

/** A month as the API and `<input type="month">` write it: `YYYY-MM`, in UTC. */
export function thisMonth(now: Date = new Date()): string {
  return `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** The window of a month: its first instant and the next month's, in UTC. */
export function monthWindow(month: string): { since: string; until: string } {
  const [year, index] = month.split('-').map(Number);
  const start = new Date(Date.UTC(year, index - 1, 1));
  const end = new Date(Date.UTC(year, index, 1));
  return { since: start.toISOString(), until: end.toISOString() };
}

/** The window of the twelve months ending with `month`, for the totals by month. */
export function yearWindow(month: string): { since: string; until: string } {
  const [year, index] = month.split('-').map(Number);
  const start = new Date(Date.UTC(year, index - 12, 1));
  const end = new Date(Date.UTC(year, index, 1));
  return { since: start.toISOString(), until: end.toISOString() };
}

export function usageTotals(
  client: HimaliaClient,
  by: UsageDimension,
  window: { since: string; until: string }
): Promise<UsageTotals> {
  return client.request('usage/totals', 'GET', undefined, { by, ...window });
}

/** The CSV export's address: a plain link, which the browser's session authenticates. */
export function exportLink(
  client: HimaliaClient,
  window: { since: string; until: string }
): string {
  return client.url('usage/export', { format: 'csv', ...window });
}

export function listBudgets(client: HimaliaClient): Promise<DescribeBudget[]> {
  return client.request('budgets');
}

export function createBudget(
  client: HimaliaClient,
  spec: CreateBudget
): Promise<DescribeBudget> {
  return client.request('budgets', 'POST', spec);
}

export function updateBudget(
  client: HimaliaClient,
  id: number,
  amount: number
): Promise<DescribeBudget> {
  return client.request(`budgets/${id}`, 'PATCH', { amount });
}

export function deleteBudget(client: HimaliaClient, id: number): Promise<void> {
  return client.request(`budgets/${id}`, 'DELETE');
}

/** An amount with its currency, as people read money: two decimals. */
export function money(amount: number, currency: string): string {
  return `${amount.toFixed(2)} ${currency}`;
}

export function hours(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toFixed(value >= 10 ? 1 : 2);
}
