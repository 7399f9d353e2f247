/**
 * One page of an API list at a time, with previous / next, a reload for after actions and,
 * when asked, a poll while the list is in view: what every section listing projects,
 * connections, datasets, scenarios or runs needs, once.
 */
import { DependencyList, useState } from 'react';

import { useAsync } from './useAsync';
import { usePoll } from './usePoll';
import type { Page } from '../types';

export interface IPageQuery {
  limit: number;
  offset: number;
}

export interface IPagedList<T> {
  /** The items of the page shown; empty until it is loaded. */
  items: T[];
  /** The page as the server answered, null until it is loaded. */
  page: Page<T> | null;
  error: string | null;
  loading: boolean;
  offset: number;
  limit: number;
  /** Show the page starting at `offset`. */
  setOffset: (offset: number) => void;
  next: () => void;
  previous: () => void;
  /** Read the page shown again (after an action changed the list), without blanking it. */
  reload: () => Promise<void>;
}

export interface IPagedListOptions {
  /** Read the page again every so many seconds (0: never)… */
  pollSeconds?: number;
  /** …while this is true (the section is in view). */
  active?: boolean;
}

/** Which items a page shows and whether there are pages around it. */
export function pageWindow(
  offset: number,
  limit: number,
  total: number
): { first: number; last: number; hasPrevious: boolean; hasNext: boolean } {
  const last = Math.min(offset + limit, total);
  return {
    first: total === 0 ? 0 : offset + 1,
    last,
    hasPrevious: offset > 0,
    hasNext: last < total
  };
}

/**
 * Load `load({ limit, offset })` now and whenever `deps` or the page change. Another `deps`
 * (another project, another search) starts again on the first page.
 */
export function usePagedList<T>(
  load: (query: IPageQuery) => Promise<Page<T>>,
  deps: DependencyList,
  limit: number,
  options: IPagedListOptions = {}
): IPagedList<T> {
  // The offset belongs to the deps it was chosen under: new deps mean the first page.
  const key = JSON.stringify(deps);
  const [chosen, setChosen] = useState({ key, offset: 0 });
  const offset = chosen.key === key ? chosen.offset : 0;
  const async = useAsync(
    () => load({ limit, offset }),
    [...deps, limit, offset]
  );
  usePoll(async.reload, options.pollSeconds ?? 0, options.active ?? false);

  const total = async.value?.total ?? 0;
  const setOffset = (next: number) =>
    setChosen({ key, offset: Math.max(0, next) });
  return {
    items: async.value?.items ?? [],
    page: async.value,
    error: async.error,
    loading: async.loading,
    offset,
    limit,
    setOffset,
    next: () => {
      if (pageWindow(offset, limit, total).hasNext) {
        setOffset(offset + limit);
      }
    },
    previous: () => setOffset(offset - limit),
    reload: async.reload
  };
}
