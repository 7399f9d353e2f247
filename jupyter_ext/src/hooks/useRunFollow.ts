/**
 * Follow a run until it ends: its state and steps are read again every `seconds` while it is
 * queued or running and `active` (its section in view), and its log is read from where the
 * last read stopped and appended.
 */
import { useCallback, useEffect, useRef, useState } from 'react';

import { HimaliaClient } from '../api';
import { errorText } from '../errors';
import { isActive } from '../runs/states';
import type { DescribeRun, RunState } from '../types';
import { usePoll } from './usePoll';

/** The log kept in the page; older output is cut beyond it. */
export const MAX_LOG_CHARS = 500_000;

/** The log with a new part appended, its oldest output cut beyond `limit` characters. */
export function appendLog(
  previous: string,
  part: string,
  limit = MAX_LOG_CHARS
): string {
  const joined = previous + part;
  return joined.length > limit
    ? '… (earlier output cut)\n' + joined.slice(-limit)
    : joined;
}

export interface IRunTarget {
  client: HimaliaClient;
  project: string;
  scenario: string;
  runId: number;
}

export interface IRunFollow {
  run: DescribeRun | null;
  /** Why the run could not be read. */
  error: string | null;
  log: string;
  /** Show a run the server just answered with (after an abort). */
  accept: (fresh: DescribeRun) => void;
}

/**
 * The run `target.runId`, followed live. `onChanged` is called when its state changes (not on
 * the first read), so that lists showing the run can be read again.
 */
export function useRunFollow(
  target: IRunTarget,
  seconds: number,
  active: boolean,
  onChanged: () => void
): IRunFollow {
  const { client, project, scenario, runId } = target;
  const [run, setRun] = useState<DescribeRun | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [log, setLog] = useState('');
  const shownRun = useRef(runId);
  const cursor = useRef(0);
  const lastState = useRef<RunState | null>(null);
  const logQueue = useRef<Promise<void>>(Promise.resolve());
  const changed = useRef(onChanged);
  changed.current = onChanged;

  /** Read the log after the cursor; reads are queued so that none overlaps another. */
  const readLog = useCallback((): Promise<void> => {
    const next = logQueue.current.then(async () => {
      if (shownRun.current !== runId) {
        return;
      }
      const part = await client.runLog(
        project,
        scenario,
        runId,
        cursor.current
      );
      if (shownRun.current !== runId) {
        return;
      }
      cursor.current = part.cursor;
      if (part.text) {
        setLog(previous => appendLog(previous, part.text));
      }
    });
    logQueue.current = next.catch(() => undefined);
    return next;
  }, [client, project, scenario, runId]);

  /** Read the run, then its log, and show both: once the run shows as ended, its log is whole. */
  const refresh = useCallback(async (): Promise<void> => {
    try {
      const fresh = await client.run(project, scenario, runId);
      await readLog();
      if (shownRun.current !== runId) {
        return;
      }
      setRun(fresh);
      const before = lastState.current;
      lastState.current = fresh.state;
      setError(null);
      if (before !== null && before !== fresh.state) {
        changed.current();
      }
    } catch (failure) {
      if (shownRun.current === runId) {
        setError(errorText(failure));
      }
      throw failure;
    }
  }, [client, project, scenario, runId, readLog]);

  useEffect(() => {
    shownRun.current = runId;
    cursor.current = 0;
    lastState.current = null;
    setRun(null);
    setLog('');
    setError(null);
    refresh().catch(() => undefined);
  }, [refresh]);

  usePoll(refresh, seconds, active && isActive(run?.state));

  const accept = (fresh: DescribeRun) => {
    setRun(fresh);
    if (lastState.current !== fresh.state) {
      lastState.current = fresh.state;
      changed.current();
    }
  };
  return { run, error, log, accept };
}
