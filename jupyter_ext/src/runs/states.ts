/** Run states and how a run reads in words: pure, shared by the run details and the run lists. */
import { formatTime } from '../times';
import type { DescribeRun, RunState } from '../types';

/** Run states in which a run may still change. */
export const ACTIVE_STATES: RunState[] = ['queued', 'running'];

export function isActive(state: RunState | undefined): boolean {
  return state !== undefined && ACTIVE_STATES.includes(state);
}

/** How long from `start` to `end` (or now): `42 s`, `3 min 5 s`, `1 h 20 min`. */
export function duration(start: string | null, end: string | null): string {
  if (!start) {
    return '';
  }
  const seconds = Math.max(
    0,
    Math.round(
      ((end ? new Date(end) : new Date()).getTime() -
        new Date(start).getTime()) /
        1000
    )
  );
  if (seconds < 60) {
    return `${seconds} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ${seconds % 60} s`;
  }
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** How a run came to be, in a few words. */
export function describeTrigger(run: DescribeRun): string {
  const detail = run.trigger_detail as Record<string, unknown>;
  switch (run.trigger) {
    case 'manual':
      return `manual, by ${run.requested_by}`;
    case 'rerun':
      return (
        `re-run of #${run.rerun_of ?? detail.run}` +
        (run.start_step > 0
          ? ` from step ${(run.steps[run.start_step]?.name ?? run.start_step + 1).toString()}`
          : '')
      );
    case 'cron':
      return (
        `schedule, ${detail.fire_time ? formatTime(String(detail.fire_time)) : 'fire time'}` +
        (detail.catch_up ? ' (caught up)' : '')
      );
    case 'after_scenario':
      return `after ${String(detail.scenario)} #${String(detail.run)} (${String(detail.outcome)})`;
    case 'scenario':
      return `step of ${String(detail.scenario)} #${String(detail.run)}`;
    case 'dataset_change':
      return 'dataset change';
    case 'sql_condition':
      return 'SQL condition';
    default:
      return run.trigger;
  }
}

/** A notebook step's reproducibility record, as its outputs keep it. */
export interface IEnvironment {
  kernel?: string;
  python?: string;
  executor?: string;
  image?: string;
  tier?: string | null;
  packages?: Record<string, string>;
  digest?: string;
}

/** A notebook step's reproducibility record in one line: `Python 3.11.7 · python3 · LocalExecutor · 312 packages`. */
export function describeEnvironment(environment: IEnvironment): string {
  const packages = Object.keys(environment.packages ?? {}).length;
  return [
    environment.python && `Python ${environment.python}`,
    environment.kernel,
    environment.tier && `tier ${environment.tier}`,
    environment.executor,
    environment.image,
    packages > 0 && `${packages} packages`
  ]
    .filter(Boolean)
    .join(' · ');
}
