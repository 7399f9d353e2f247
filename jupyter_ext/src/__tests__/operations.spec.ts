import {
  attentionSummary,
  boardProjects,
  cellClass,
  filterScenarios,
  fireTooltip,
  formatSeconds,
  stripOrder,
  zonedTime
} from '../operations/board';
import type { Board, BoardFire, BoardScenario } from '../types';
import { formatTime } from '../times';

function fire(overrides: Partial<BoardFire>): BoardFire {
  return {
    due_at: '2026-12-02T06:00:00Z',
    status: 'succeeded',
    run_id: null,
    trigger: null,
    state: null,
    started_at: null,
    ended_at: null,
    duration_seconds: null,
    long_running: false,
    missed_reason: null,
    message: '',
    ...overrides
  };
}

function scenario(overrides: Partial<BoardScenario>): BoardScenario {
  return {
    project: 'FRAUD',
    scenario: 'daily',
    name: 'Daily',
    active: true,
    timezone: 'Europe/Paris',
    schedule: 'daily at 07:00',
    next_fire: null,
    sla: null,
    deadline: null,
    status: 'succeeded',
    p95_seconds: null,
    fires: [],
    alerts: [],
    stale_datasets: [],
    ...overrides
  };
}

function board(overrides: Partial<Board>): Board {
  return {
    generated_at: '2026-12-02T08:00:00Z',
    since: '2026-12-01T08:00:00Z',
    scenarios: [],
    stale_datasets: [],
    counts: {},
    needs_attention: false,
    ...overrides
  };
}

describe('cells', () => {
  it('colour a fire by its status, and mark the long-running ones', () => {
    expect(cellClass(fire({ status: 'failed' }))).toBe(
      'hml-ops-cell hml-ops-failed'
    );
    expect(cellClass(fire({ status: 'missed' }))).toBe(
      'hml-ops-cell hml-ops-missed'
    );
    expect(cellClass(fire({ status: 'running', long_running: true }))).toBe(
      'hml-ops-cell hml-ops-running hml-ops-long'
    );
  });

  it('show the newest fire last, the wire sending it first', () => {
    const newest = fire({ due_at: '2026-12-02T06:00:00Z' });
    const oldest = fire({ due_at: '2026-12-01T06:00:00Z' });
    const wire = [newest, oldest];
    expect(stripOrder(wire)).toEqual([oldest, newest]);
    expect(wire[0]).toBe(newest); // the board's own list is left as it came
  });
});

describe('tooltips', () => {
  it("name the time in the scenario's zone and in UTC", () => {
    expect(zonedTime('2026-12-02T06:00:00Z', 'Europe/Paris')).toBe(
      '2 Dec 2026, 07:00 CET (2 Dec 2026, 06:00 UTC)'
    );
    expect(zonedTime('2026-07-02T06:00:00Z', 'Europe/Paris')).toBe(
      '2 Jul 2026, 08:00 CEST (2 Jul 2026, 06:00 UTC)'
    );
    expect(zonedTime('2026-12-02T06:00:00Z', 'UTC')).toBe(
      '2 Dec 2026, 06:00 UTC'
    );
  });

  it('say which run, how long and that it ran long', () => {
    const text = fireTooltip(
      fire({
        status: 'failed',
        run_id: 12,
        trigger: 'cron',
        state: 'failed',
        started_at: '2026-12-02T06:00:05Z',
        ended_at: '2026-12-02T06:03:10Z',
        duration_seconds: 185,
        long_running: true,
        message: 'Score: division by zero'
      }),
      'Europe/Paris'
    ).split('\n');
    expect(text).toEqual([
      'Due 2 Dec 2026, 07:00 CET (2 Dec 2026, 06:00 UTC)',
      'Failed',
      'Run #12, cron',
      'Started 2 Dec 2026, 07:00 CET (2 Dec 2026, 06:00 UTC)',
      'Duration 3 min 5 s',
      'Long-running: above the 95th percentile of its last 20 runs',
      'Score: division by zero'
    ]);
  });

  it('say why a fire was missed, and what a late run still does', () => {
    expect(
      fireTooltip(
        fire({ status: 'missed', missed_reason: 'control_plane_down' }),
        'UTC'
      )
    ).toBe(
      'Due 2 Dec 2026, 06:00 UTC\nMissed\nMissed: the control plane was down'
    );
    const late = fireTooltip(
      fire({
        status: 'late',
        run_id: 3,
        state: 'running',
        started_at: '2026-12-02T06:00:00Z',
        duration_seconds: 4000
      }),
      'UTC'
    );
    expect(late).toContain('Late (run running)');
    expect(late).toContain('Duration 1 h 6 min so far');
  });

  it('tell a run no schedule accounts for', () => {
    expect(
      fireTooltip(fire({ due_at: null, run_id: 4, trigger: 'manual' }), 'UTC')
    ).toMatch(/^Not a scheduled fire \(manual\)\nSucceeded\nRun #4, manual$/);
  });

  it('fall back to UTC for a zone the browser does not know', () => {
    expect(formatTime('2026-12-02T06:00:00Z', 'Mars/Olympus')).toBe(
      '2 Dec 2026, 06:00 UTC'
    );
    expect(formatTime('not a time')).toBe('not a time');
  });

  it('read durations in the largest units', () => {
    expect(formatSeconds(42)).toBe('42 s');
    expect(formatSeconds(3600 * 30)).toBe('30 h 0 min');
    expect(formatSeconds(3600 * 50)).toBe('2 d 2 h');
  });
});

describe('filters and the summary', () => {
  const green = scenario({
    scenario: 'green',
    fires: [fire({ status: 'succeeded' })]
  });
  const red = scenario({
    project: 'RISK',
    scenario: 'red',
    fires: [fire({ status: 'succeeded' }), fire({ status: 'failed' })]
  });
  const stale = scenario({
    scenario: 'stale',
    stale_datasets: [
      {
        project: 'FRAUD',
        dataset: 'events',
        check: 'Fresh',
        outcome: 'ERROR',
        newest: null,
        age_seconds: 100_000,
        max_age: '26h',
        message: '',
        evaluated_at: '2026-12-02T06:00:00Z'
      }
    ]
  });

  it('keep the scenarios of a project, a status, or those needing attention', () => {
    const all = [green, red, stale];
    expect(filterScenarios(all, '', 'all')).toEqual(all);
    expect(filterScenarios(all, 'RISK', 'all')).toEqual([red]);
    expect(filterScenarios(all, '', 'failed')).toEqual([red]);
    expect(filterScenarios(all, '', 'succeeded')).toEqual([green, red]);
    expect(filterScenarios(all, '', 'attention')).toEqual([red, stale]);
    expect(filterScenarios(all, 'FRAUD', 'attention')).toEqual([stale]);
  });

  it('list the projects once, sorted', () => {
    expect(boardProjects(board({ scenarios: [red, green, stale] }))).toEqual([
      'FRAUD',
      'RISK'
    ]);
  });

  it('sum up what needs attention, or say all is clear', () => {
    expect(attentionSummary(board({ scenarios: [green] }))).toMatch(
      /^All clear/
    );
    expect(
      attentionSummary(
        board({
          scenarios: [red, stale],
          counts: { failed: 1, missed: 2, succeeded: 1 },
          needs_attention: true
        })
      )
    ).toBe('Needs attention: 1 failed, 2 missed, 1 stale dataset.');
  });
});
