/**
 * The board's wire types (`himalia.wire.operations`), until `schema.d.ts` carries them.
 */
export type BoardStatus =
  'succeeded' | 'warning' | 'failed' | 'missed' | 'running' | 'late';

export type MissedReason =
  'control_plane_down' | 'skipped_by_policy' | 'queue_full' | 'catch_up_skip';

export type BoardFire = {
  due_at: string | null;
  status: BoardStatus;
  run_id?: number | null;
  trigger?: string | null;
  state?: string | null;
  started_at?: string | null;
  ended_at?: string | null;
  duration_seconds?: number | null;
  long_running?: boolean;
  missed_reason?: MissedReason | null;
  message?: string;
};

export type DeadlineAlertView = {
  kind: 'late' | 'overrun' | 'missed';
  due_at: string;
  run_id: number | null;
  message: string;
  raised_at: string;
  cleared_at: string | null;
  deliveries?: Record<string, unknown>[];
};

export type StaleDataset = {
  project: string;
  dataset: string;
  check: string;
  outcome: 'WARNING' | 'ERROR' | 'EMPTY';
  newest: string | null;
  age_seconds: number | null;
  max_age: string | null;
  message: string;
  evaluated_at: string;
};

export type Sla = {
  ready_by?: string | null;
  timezone?: string | null;
  max_duration?: string | null;
};

export type BoardScenario = {
  project: string;
  scenario: string;
  name: string;
  active: boolean;
  timezone: string;
  schedule?: string | null;
  next_fire: string | null;
  sla: Sla | null;
  deadline: string | null;
  status: BoardStatus | null;
  p95_seconds: number | null;
  fires: BoardFire[];
  alerts: DeadlineAlertView[];
  stale_datasets: StaleDataset[];
};

export type Board = {
  generated_at: string;
  since: string;
  scenarios: BoardScenario[];
  stale_datasets: StaleDataset[];
  counts: { [status: string]: number };
  needs_attention: boolean;
};
