/**
 * What the metric charts show, as plain values: a history's numeric points, values formatted as
 * the server's check messages format them, the bounds of range checks and how they judge a value.
 *
 * Pure functions only (no JupyterLab, no React), so that the unit tests run them in plain Node;
 * how the chart looks is a Vega-Lite specification built from these (`specs.ts`).
 */

// -- values ------------------------------------------------------------------------------------

/** One value of a metric's history, placed in time (milliseconds since the epoch). */
export interface IPoint {
  t: number;
  v: number;
}

export interface ISeries {
  /** The numeric values, oldest first. */
  points: IPoint[];
  /** How many values were left out: null, not a number, or without a valid time. */
  skipped: number;
}

/** A metric value as a number, or null when it cannot be charted (null, text, a list, NaN…). */
export function numericValue(value: unknown): number | null {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return null;
  }
  return value;
}

/** The chartable points of a history (`computed_at` ISO timestamps), sorted by time. */
export function toSeries(
  values: ReadonlyArray<{ computed_at: string; value: unknown }>
): ISeries {
  const points: IPoint[] = [];
  let skipped = 0;
  for (const item of values) {
    const v = numericValue(item.value);
    const t = Date.parse(item.computed_at);
    if (v === null || Number.isNaN(t)) {
      skipped++;
      continue;
    }
    points.push({ t, v });
  }
  // Stable: values computed at the same moment keep the server's order.
  points.sort((a, b) => a.t - b.t);
  return { points, skipped };
}

/**
 * A value as people read it, like the server's check messages: integers with grouped thousands
 * (`9 812`), other numbers with six significant digits (`0.0421`, `1.5e+12`).
 */
export function formatValue(value: unknown): string {
  if (value === null || value === undefined) {
    return '—';
  }
  if (typeof value === 'number') {
    if (Number.isNaN(value)) {
      return 'NaN';
    }
    if (!Number.isFinite(value)) {
      return value > 0 ? '∞' : '-∞';
    }
    if (Number.isInteger(value) && Math.abs(value) < 1e15) {
      return groupThousands(value);
    }
    const precise = value.toPrecision(6);
    if (precise.includes('e')) {
      const [mantissa, exponent] = precise.split('e');
      return `${trimZeros(mantissa)}e${exponent}`;
    }
    return trimZeros(precise);
  }
  if (typeof value === 'string') {
    return value;
  }
  if (typeof value === 'boolean') {
    return String(value);
  }
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

function groupThousands(integer: number): string {
  const digits = Math.abs(integer).toFixed(0);
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, '\u202f');
  return integer < 0 ? `-${grouped}` : grouped;
}

function trimZeros(decimal: string): string {
  return decimal.includes('.')
    ? decimal.replace(/0+$/, '').replace(/\.$/, '')
    : decimal;
}

// -- check bounds and outcomes -------------------------------------------------------------------

export type Outcome = 'OK' | 'WARNING' | 'ERROR' | 'EMPTY';

/**
 * A check as the API describes it. `range` checks have fixed bounds to draw; `change` and
 * `anomaly` checks move theirs with the history, so the band their last evaluation used (kept
 * in its result's value) is drawn.
 */
export interface ICheckLike {
  name: string;
  type: string;
  metric?: string | null;
  min?: number | null;
  max?: number | null;
  soft_min?: number | null;
  soft_max?: number | null;
  change?: 'percent' | 'absolute' | null;
  compare_to?: number | null;
  method?: 'stddev' | 'mad' | null;
  k?: number | null;
  soft_k?: number | null;
  window?: number | null;
  last_result?: { value?: unknown } | null;
}

export interface IBound {
  /** The check that sets it. */
  check: string;
  /** Hard bounds make an ERROR, soft ones a WARNING. */
  kind: 'hard' | 'soft';
  side: 'min' | 'max';
  value: number;
  /** `min 525`, `soft max 650`. */
  label: string;
}

const BOUND_FIELDS: Array<
  ['min' | 'max' | 'soft_min' | 'soft_max', IBound['kind'], IBound['side']]
> = [
  ['min', 'hard', 'min'],
  ['max', 'hard', 'max'],
  ['soft_min', 'soft', 'min'],
  ['soft_max', 'soft', 'max']
];

type BoundField = 'min' | 'max' | 'soft_min' | 'soft_max';

/** The value bounds a check judges with: its own (`range`), or its last result's band. */
function checkLimits(check: ICheckLike): Partial<Record<BoundField, unknown>> {
  if (check.type === 'range') {
    return check;
  }
  if (check.type === 'change' || check.type === 'anomaly') {
    const value = check.last_result?.value;
    const band =
      value !== null && typeof value === 'object'
        ? (value as { band?: unknown }).band
        : undefined;
    return band !== null && typeof band === 'object'
      ? (band as Partial<Record<BoundField, unknown>>)
      : {};
  }
  return {};
}

/** The bounds that the checks on `metric` set (for `change` and `anomaly`: as last judged). */
export function boundsFor(
  metric: string,
  checks: ReadonlyArray<ICheckLike>
): IBound[] {
  const bounds: IBound[] = [];
  for (const check of checks) {
    if (check.metric !== metric) {
      continue;
    }
    const limits = checkLimits(check);
    for (const [field, kind, side] of BOUND_FIELDS) {
      const value = limits[field];
      if (typeof value === 'number' && Number.isFinite(value)) {
        bounds.push({
          check: check.name,
          kind,
          side,
          value,
          label: `${kind === 'soft' ? 'soft ' : ''}${side} ${formatValue(value)}`
        });
      }
    }
  }
  return bounds;
}

/** What a check asks, in a few words: `min 525, max 650`, `change ≥ -30% (soft -10%) vs previous`. */
export function describeRule(check: ICheckLike): string {
  if (check.type === 'change') {
    const unit = check.change === 'percent' ? '%' : '';
    const limit = (field: BoundField) => {
      const value = check[field];
      return typeof value === 'number' ? `${formatValue(value)}${unit}` : null;
    };
    const parts = [
      limit('min') && `≥ ${limit('min')}`,
      limit('max') && `≤ ${limit('max')}`,
      limit('soft_min') && `soft ≥ ${limit('soft_min')}`,
      limit('soft_max') && `soft ≤ ${limit('soft_max')}`
    ].filter(Boolean);
    const back =
      (check.compare_to ?? 1) === 1
        ? 'the previous value'
        : `${check.compare_to} computations back`;
    return `change ${parts.join(', ')} against ${back}`;
  }
  if (check.type === 'anomaly') {
    const spread =
      check.method === 'mad' ? 'scaled MAD of the median' : 'σ of the mean';
    const soft = check.soft_k ? ` (soft ±${formatValue(check.soft_k)})` : '';
    return `anomaly: within ±${formatValue(check.k ?? 3)} ${spread}${soft} of the last ${check.window ?? 20}`;
  }
  const bounds =
    check.type === 'range' ? boundsFor(check.metric ?? '', [check]) : [];
  return (
    check.type +
    (bounds.length > 0
      ? ': ' + bounds.map(bound => bound.label).join(', ')
      : '')
  );
}

/**
 * How the bounds judge a value, as the server's range checks do: outside a hard bound is an
 * ERROR, else outside a soft bound a WARNING, else OK. Bounds are inclusive.
 */
export function judge(value: number, bounds: ReadonlyArray<IBound>): Outcome {
  const outside = (bound: IBound) =>
    bound.side === 'min' ? value < bound.value : value > bound.value;
  if (bounds.some(bound => bound.kind === 'hard' && outside(bound))) {
    return 'ERROR';
  }
  if (bounds.some(bound => bound.kind === 'soft' && outside(bound))) {
    return 'WARNING';
  }
  return 'OK';
}

/** How bad each outcome is, to combine several into one (the server's order). */
export const SEVERITY: Record<Outcome, number> = {
  OK: 0,
  EMPTY: 1,
  WARNING: 2,
  ERROR: 3
};

/** The worst of some outcomes; EMPTY when there is none (as the server says of no checks). */
export function worstOutcome(outcomes: ReadonlyArray<Outcome>): Outcome {
  let worst: Outcome | null = null;
  for (const outcome of outcomes) {
    if (worst === null || SEVERITY[outcome] > SEVERITY[worst]) {
      worst = outcome;
    }
  }
  return worst ?? 'EMPTY';
}

/** `1 error, 2 ok`: how many of each outcome, worst first, none of the absent ones. */
export function describeOutcomes(outcomes: ReadonlyArray<Outcome>): string {
  const order: Outcome[] = ['ERROR', 'WARNING', 'EMPTY', 'OK'];
  const parts = order
    .map(outcome => {
      const count = outcomes.filter(item => item === outcome).length;
      if (count === 0) {
        return '';
      }
      const word =
        outcome === 'OK'
          ? 'ok'
          : outcome === 'EMPTY'
            ? 'empty'
            : outcome === 'ERROR'
              ? count === 1
                ? 'error'
                : 'errors'
              : count === 1
                ? 'warning'
                : 'warnings';
      return `${count} ${word}`;
    })
    .filter(Boolean);
  return parts.length > 0 ? parts.join(', ') : 'no checks';
}

// -- row conditions --------------------------------------------------------------------------

/** A row condition as its rule reads (the API's `RowCondition`, structurally). */
export interface IConditionLike {
  column: string;
  min?: number | null;
  max?: number | null;
  pattern?: string | null;
  values?: ReadonlyArray<string | number | boolean> | null;
  not_null?: boolean | null;
  unique?: boolean | null;
}

/** How many allowed values a description lists before it says how many more there are. */
const LISTED_VALUES = 5;

/** What a row condition asks of every row, in a few words: `amount ≥ 0`, `id is unique`. */
export function describeCondition(condition: IConditionLike): string {
  const { column } = condition;
  const hasMin = typeof condition.min === 'number';
  const hasMax = typeof condition.max === 'number';
  if (hasMin && hasMax) {
    return `${column} between ${formatValue(condition.min)} and ${formatValue(condition.max)}`;
  }
  if (hasMin) {
    return `${column} ≥ ${formatValue(condition.min)}`;
  }
  if (hasMax) {
    return `${column} ≤ ${formatValue(condition.max)}`;
  }
  if (condition.pattern) {
    return `${column} matches /${condition.pattern}/`;
  }
  if (condition.values) {
    const listed = condition.values.slice(0, LISTED_VALUES).map(String);
    const more = condition.values.length - listed.length;
    return `${column} is one of ${listed.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
  }
  if (condition.not_null) {
    return `${column} is never null`;
  }
  return `${column} is unique`;
}

/** `12 MB`, `3.4 kB`, `812 bytes`: a size as people read it (powers of 1000). */
export function formatSize(bytes: number): string {
  if (bytes < 1000) {
    return `${bytes} bytes`;
  }
  const units = ['kB', 'MB', 'GB'];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
