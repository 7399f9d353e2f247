/**
 * The board's logic, pure: how a fire reads (its colour, its tooltip in the scenario's time zone
 * and UTC), which scenarios a filter keeps, and what needs attention.
 */
import { formatTime } from '../times';
import type {
  Board,
  BoardFire,
  BoardScenario,
  BoardStatus,
  MissedReason
} from '../types';

/** The board's windows, as the endpoint's `since` takes them. */
export const WINDOWS = ['24h', '7d', '30d'] as const;
export type BoardWindow = (typeof WINDOWS)[number];

/** The statuses in the order the counts show them: what needs a person first. */
export const STATUSES: BoardStatus[] = [
  'failed',
  'late',
  'missed',
  'warning',
  'running',
  'succeeded'
];

/** Statuses someone should look at this morning. */
export const ATTENTION: ReadonlySet<BoardStatus> = new Set<BoardStatus>([
  'failed',
  'late',
  'missed'
]);

/** A status filter: one status, everything that needs attention, or all. */
export type StatusFilter = BoardStatus | 'attention' | 'all';

const MISSED_REASONS: Record<MissedReason, string> = {
  control_plane_down: 'the control plane was down',
  skipped_by_policy: 'skipped: a run was still in progress',
  queue_full: 'the run queue was full',
  run_as_deactivated: 'the user it runs as is deactivated',
  catch_up_skip: "noticed late, and the catch-up policy is 'skip'"
};

const STATUS_WORDS: Record<BoardStatus, string> = {
  succeeded: 'Succeeded',
  warning: 'Warning',
  failed: 'Failed',
  missed: 'Missed',
  running: 'Running',
  late: 'Late'
};

/** The CSS class that colours a fire's cell. */
export function cellClass(fire: BoardFire): string {
  return (
    `hml-ops-cell hml-ops-${fire.status}` +
    (fire.long_running ? ' hml-ops-long' : '')
  );
}

/** The fires as the strip shows them: oldest first, the newest last (the wire sends newest first). */
export function stripOrder(fires: BoardFire[]): BoardFire[] {
  return [...fires].reverse();
}

/** `42 s`, `3 min 5 s`, `1 h 20 min`. */
export function formatSeconds(total: number): string {
  const seconds = Math.max(0, Math.round(total));
  if (seconds < 60) {
    return `${seconds} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ${seconds % 60} s`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 48) {
    return `${hours} h ${minutes % 60} min`;
  }
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** A time in the scenario's zone, then in UTC when that zone is another. */
export function zonedTime(iso: string, timeZone: string): string {
  const local = formatTime(iso, timeZone);
  const utc = formatTime(iso, 'UTC');
  return local === utc ? utc : `${local} (${utc})`;
}

/** The tooltip of a fire's cell: when, what came of it, which run, how long, why. */
export function fireTooltip(fire: BoardFire, timeZone: string): string {
  const lines = [
    fire.due_at
      ? `Due ${zonedTime(fire.due_at, timeZone)}`
      : `Not a scheduled fire (${fire.trigger ?? 'manual'})`,
    STATUS_WORDS[fire.status] +
      (fire.state && fire.state !== fire.status ? ` (run ${fire.state})` : '')
  ];
  if (fire.run_id !== null && fire.run_id !== undefined) {
    lines.push(
      `Run #${fire.run_id}` + (fire.trigger ? `, ${fire.trigger}` : '')
    );
  }
  if (fire.started_at) {
    lines.push(`Started ${zonedTime(fire.started_at, timeZone)}`);
  }
  if (fire.duration_seconds !== null && fire.duration_seconds !== undefined) {
    lines.push(
      `Duration ${formatSeconds(fire.duration_seconds)}` +
        (fire.ended_at ? '' : ' so far')
    );
  }
  if (fire.long_running) {
    lines.push('Long-running: above the 95th percentile of its last 20 runs');
  }
  if (fire.missed_reason) {
    lines.push(`Missed: ${MISSED_REASONS[fire.missed_reason]}`);
  }
  if (fire.message) {
    lines.push(fire.message);
  }
  return lines.join('\n');
}

/** Whether a scenario shows something to look at: a fire failed, late or missed, stale data, an alert. */
export function needsAttention(scenario: BoardScenario): boolean {
  return (
    scenario.fires.some(fire => ATTENTION.has(fire.status)) ||
    scenario.stale_datasets.length > 0 ||
    scenario.alerts.length > 0
  );
}

/** The scenarios a project and status filter keep. */
export function filterScenarios(
  scenarios: BoardScenario[],
  project: string,
  status: StatusFilter
): BoardScenario[] {
  return scenarios.filter(
    scenario =>
      (project === '' || scenario.project === project) &&
      (status === 'all' ||
        (status === 'attention'
          ? needsAttention(scenario)
          : scenario.fires.some(fire => fire.status === status)))
  );
}

/** The projects on the board, sorted, for the project filter. */
export function boardProjects(board: Board): string[] {
  const keys = new Set(board.scenarios.map(scenario => scenario.project));
  board.stale_datasets.forEach(stale => keys.add(stale.project));
  return [...keys].sort();
}

/** The morning check in one sentence: what needs attention, or that all is well. */
export function attentionSummary(board: Board): string {
  const parts: string[] = [];
  const count = (status: BoardStatus) => board.counts[status] ?? 0;
  for (const status of ['failed', 'late', 'missed'] as BoardStatus[]) {
    if (count(status) > 0) {
      parts.push(`${count(status)} ${status}`);
    }
  }
  const stale =
    board.stale_datasets.length +
    board.scenarios.reduce((sum, s) => sum + s.stale_datasets.length, 0);
  if (stale > 0) {
    parts.push(`${stale} stale dataset${stale === 1 ? '' : 's'}`);
  }
  const alerts = board.scenarios.reduce((sum, s) => sum + s.alerts.length, 0);
  if (alerts > 0) {
    parts.push(`${alerts} standing alert${alerts === 1 ? '' : 's'}`);
  }
  if (parts.length === 0) {
    return board.needs_attention
      ? 'Needs attention.'
      : 'All clear: nothing failed, is late, was missed or is stale.';
  }
  return `Needs attention: ${parts.join(', ')}.`;
}
