/**
 * The arithmetic of the metric charts, without a chart library and without the DOM: linear
 * scales, "nice" ticks, time-axis ticks and labels, SVG paths, and where check bounds go.
 *
 * Pure functions only (no JupyterLab, no React), so that the unit tests run them in plain Node.
 * Check bounds are drawn even when the data never comes near them: the value domain is widened
 * to include every bound, so a line at `min 10 000` shows under a series around 12 000.
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

// -- scales and numeric ticks --------------------------------------------------------------------

export type Scale = (value: number) => number;

/**
 * Map `domain` linearly onto `range`. A domain of one value (one point, all values equal) maps
 * to the middle of the range rather than dividing by zero.
 */
export function linearScale(
  domain: readonly [number, number],
  range: readonly [number, number]
): Scale {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  if (d1 === d0) {
    const middle = (r0 + r1) / 2;
    return () => middle;
  }
  const ratio = (r1 - r0) / (d1 - d0);
  return value => r0 + (value - d0) * ratio;
}

/** The 1, 2 or 5 × 10ⁿ step that cuts `span` into about `count` intervals. */
export function niceStep(span: number, count = 5): number {
  if (!(span > 0) || !Number.isFinite(span)) {
    return 1;
  }
  const raw = span / Math.max(1, count);
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const normalized = raw / magnitude;
  const nice =
    normalized <= 1 ? 1 : normalized <= 2 ? 2 : normalized <= 5 ? 5 : 10;
  return nice * magnitude;
}

/** Decimal places a multiple of `step` needs (0.25 → 2, 5 → 0). */
function decimalsOf(step: number): number {
  if (!(step > 0) || !Number.isFinite(step)) {
    return 0;
  }
  for (let places = 0; places < 15; places++) {
    const scaled = step * Math.pow(10, places);
    if (Math.abs(scaled - Math.round(scaled)) < 1e-9 * Math.max(1, scaled)) {
      return places;
    }
  }
  return 15;
}

function roundTo(value: number, places: number): number {
  const rounded = Number(value.toFixed(Math.min(places, 20)));
  return rounded === 0 ? 0 : rounded; // never -0
}

/** `[min, max]` widened outwards to multiples of the nice step. */
export function niceDomain(
  min: number,
  max: number,
  count = 5
): [number, number] {
  if (min > max) {
    [min, max] = [max, min];
  }
  if (min === max) {
    return [min, max];
  }
  const step = niceStep(max - min, count);
  const places = decimalsOf(step);
  return [
    roundTo(Math.floor(min / step + 1e-9) * step, places),
    roundTo(Math.ceil(max / step - 1e-9) * step, places)
  ];
}

/** Round numbers between `min` and `max` (inclusive), about `count` intervals apart. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (min > max) {
    [min, max] = [max, min];
  }
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    return [];
  }
  if (min === max) {
    return [min];
  }
  const step = niceStep(max - min, count);
  const places = decimalsOf(step);
  const first = Math.ceil(min / step - 1e-9);
  const last = Math.floor(max / step + 1e-9);
  const ticks: number[] = [];
  for (let i = first; i <= last && ticks.length < 100; i++) {
    ticks.push(roundTo(i * step, places));
  }
  return ticks;
}

const SUFFIXES: Array<[number, string]> = [
  [1e9, 'B'],
  [1e6, 'M'],
  [1e3, 'k']
];

/**
 * Labels of evenly spaced ticks: as many decimals as the step needs, thousands as `k`, millions
 * as `M`, billions as `B` once the largest tick reaches ten thousand (`10k`, `10.5k`).
 */
export function tickLabels(ticks: readonly number[]): string[] {
  if (ticks.length < 2) {
    return ticks.map(tick => formatValue(tick));
  }
  const step = Math.abs(ticks[1] - ticks[0]);
  const largest = Math.max(...ticks.map(Math.abs));
  const [divisor, suffix] =
    largest >= 1e4
      ? (SUFFIXES.find(([size]) => largest >= size) ?? [1, ''])
      : [1, ''];
  const places = Math.min(decimalsOf(roundTo(step / divisor, 12)), 12);
  return ticks.map(tick => {
    if (tick === 0 && suffix) {
      return '0'; // not "0k"
    }
    const text = (tick / divisor).toFixed(places);
    return (/^-0(\.0*)?$/.test(text) ? text.slice(1) : text) + suffix;
  });
}

// -- time ticks --------------------------------------------------------------------------------

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export type TimeUnit =
  'second' | 'minute' | 'hour' | 'day' | 'week' | 'month' | 'year';

const APPROXIMATE: Record<TimeUnit, number> = {
  second: SECOND,
  minute: MINUTE,
  hour: HOUR,
  day: DAY,
  week: 7 * DAY,
  month: 30 * DAY,
  year: 365 * DAY
};

/** The intervals time axes step by, finest first. */
const INTERVALS: Array<[TimeUnit, number]> = [
  ['second', 1],
  ['second', 5],
  ['second', 15],
  ['second', 30],
  ['minute', 1],
  ['minute', 5],
  ['minute', 15],
  ['minute', 30],
  ['hour', 1],
  ['hour', 3],
  ['hour', 6],
  ['hour', 12],
  ['day', 1],
  ['day', 2],
  ['week', 1],
  ['month', 1],
  ['month', 3],
  ['month', 6],
  ['year', 1]
];

export const MONTHS = [
  'Jan',
  'Feb',
  'Mar',
  'Apr',
  'May',
  'Jun',
  'Jul',
  'Aug',
  'Sep',
  'Oct',
  'Nov',
  'Dec'
];

interface IFields {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  weekday: number;
}

function fieldsOf(t: number, utc: boolean): IFields {
  const d = new Date(t);
  return utc
    ? {
        year: d.getUTCFullYear(),
        month: d.getUTCMonth(),
        day: d.getUTCDate(),
        hour: d.getUTCHours(),
        minute: d.getUTCMinutes(),
        second: d.getUTCSeconds(),
        weekday: d.getUTCDay()
      }
    : {
        year: d.getFullYear(),
        month: d.getMonth(),
        day: d.getDate(),
        hour: d.getHours(),
        minute: d.getMinutes(),
        second: d.getSeconds(),
        weekday: d.getDay()
      };
}

/** A moment from calendar fields (overflowing fields roll over, as `Date` does). */
function moment(f: Omit<IFields, 'weekday'>, utc: boolean): number {
  // Setting the fields one by one, not `new Date(y, …)`, which reads years 0–99 as 19xx.
  const d = new Date(0);
  if (utc) {
    d.setUTCFullYear(f.year, f.month, f.day);
    d.setUTCHours(f.hour, f.minute, f.second, 0);
  } else {
    d.setFullYear(f.year, f.month, f.day);
    d.setHours(f.hour, f.minute, f.second, 0);
  }
  return d.getTime();
}

/** The interval that cuts `span` milliseconds into at most about `count` steps. */
export function timeInterval(
  span: number,
  count = 4
): { unit: TimeUnit; step: number } {
  for (const [unit, step] of INTERVALS) {
    if (APPROXIMATE[unit] * step * count >= span) {
      return { unit, step };
    }
  }
  const years = span / APPROXIMATE.year;
  return { unit: 'year', step: Math.max(1, niceStep(years, count)) };
}

/** The first tick at or before `t`: `t` rounded down to the interval in the calendar. */
function floorTime(
  t: number,
  unit: TimeUnit,
  step: number,
  utc: boolean
): Omit<IFields, 'weekday'> {
  const f = fieldsOf(t, utc);
  const down = (value: number, by: number, base = 0) =>
    Math.floor((value - base) / by) * by + base;
  switch (unit) {
    case 'second':
      return { ...f, second: down(f.second, step) };
    case 'minute':
      return { ...f, second: 0, minute: down(f.minute, step) };
    case 'hour':
      return { ...f, second: 0, minute: 0, hour: down(f.hour, step) };
    case 'day':
      return {
        ...f,
        second: 0,
        minute: 0,
        hour: 0,
        day: down(f.day, step, 1)
      };
    case 'week':
      // Weeks start on Monday.
      return {
        ...f,
        second: 0,
        minute: 0,
        hour: 0,
        day: f.day - ((f.weekday + 6) % 7)
      };
    case 'month':
      return {
        ...f,
        second: 0,
        minute: 0,
        hour: 0,
        day: 1,
        month: down(f.month, step)
      };
    case 'year':
      return {
        year: down(f.year, step),
        month: 0,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0
      };
  }
}

function advance(
  f: Omit<IFields, 'weekday'>,
  unit: TimeUnit,
  step: number
): Omit<IFields, 'weekday'> {
  switch (unit) {
    case 'second':
      return { ...f, second: f.second + step };
    case 'minute':
      return { ...f, minute: f.minute + step };
    case 'hour':
      return { ...f, hour: f.hour + step };
    case 'day':
      return { ...f, day: f.day + step };
    case 'week':
      return { ...f, day: f.day + 7 * step };
    case 'month':
      return { ...f, month: f.month + step };
    case 'year':
      return { ...f, year: f.year + step };
  }
}

const pad = (n: number) => String(n).padStart(2, '0');

/**
 * A tick's label at the given unit: `14:05:30` for seconds, `14:00` for minutes and hours (the
 * date, `Mar 5`, at midnight), `Mar 5` for days and weeks, `Mar` for months (the year in
 * January) and `2025` for years. English month names, 24-hour clock.
 */
export function formatTimeTick(t: number, unit: TimeUnit, utc = false): string {
  const f = fieldsOf(t, utc);
  switch (unit) {
    case 'second':
      return `${pad(f.hour)}:${pad(f.minute)}:${pad(f.second)}`;
    case 'minute':
    case 'hour':
      if (f.hour === 0 && f.minute === 0 && f.second === 0) {
        return `${MONTHS[f.month]} ${f.day}`;
      }
      return `${pad(f.hour)}:${pad(f.minute)}`;
    case 'day':
    case 'week':
      return `${MONTHS[f.month]} ${f.day}`;
    case 'month':
      return f.month === 0 ? String(f.year) : MONTHS[f.month];
    case 'year':
      return String(f.year);
  }
}

/** A moment in full, for a single point's axis and for tooltips: `2025-03-05 14:03`. */
export function formatMoment(t: number, utc = false): string {
  const f = fieldsOf(t, utc);
  return `${f.year}-${pad(f.month + 1)}-${pad(f.day)} ${pad(f.hour)}:${pad(f.minute)}`;
}

export interface ITimeTick {
  t: number;
  label: string;
}

/**
 * Ticks on calendar boundaries (whole hours, midnights, Mondays, firsts of months…) between
 * `start` and `end`, about `count` of them; in local time unless `utc`. A zero span (one point)
 * has one tick, at that moment, labelled in full.
 */
export function timeTicks(
  start: number,
  end: number,
  count = 4,
  utc = false
): ITimeTick[] {
  if (!Number.isFinite(start) || !Number.isFinite(end)) {
    return [];
  }
  if (start > end) {
    [start, end] = [end, start];
  }
  if (start === end) {
    return [{ t: start, label: formatMoment(start, utc) }];
  }
  const { unit, step } = timeInterval(end - start, count);
  const ticks: ITimeTick[] = [];
  let fields = floorTime(start, unit, step, utc);
  for (let guard = 0; guard < 1000 && ticks.length < 60; guard++) {
    const t = moment(fields, utc);
    if (t > end) {
      break;
    }
    if (t >= start) {
      ticks.push({ t, label: formatTimeTick(t, unit, utc) });
    }
    fields = advance(fields, unit, step);
  }
  return ticks;
}

// -- paths ---------------------------------------------------------------------------------------

function coordinate(value: number): string {
  return String(roundTo(value, 2));
}

/** An SVG path through the points, in order: `M x,y L x,y …` ('' when there is none). */
export function linePath(
  points: ReadonlyArray<{ x: number; y: number }>
): string {
  return points
    .map(
      (p, i) => `${i === 0 ? 'M' : 'L'}${coordinate(p.x)},${coordinate(p.y)}`
    )
    .join(' ');
}

// -- check bounds and outcomes -------------------------------------------------------------------

export type Outcome = 'OK' | 'WARNING' | 'ERROR' | 'EMPTY';

/** A check as the API describes it; only `range` checks have bounds to draw. */
export interface ICheckLike {
  name: string;
  type: string;
  metric?: string | null;
  min?: number | null;
  max?: number | null;
  soft_min?: number | null;
  soft_max?: number | null;
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

/** The bounds that the `range` checks on `metric` set. */
export function boundsFor(
  metric: string,
  checks: ReadonlyArray<ICheckLike>
): IBound[] {
  const bounds: IBound[] = [];
  for (const check of checks) {
    if (check.type !== 'range' || check.metric !== metric) {
      continue;
    }
    for (const [field, kind, side] of BOUND_FIELDS) {
      const value = check[field];
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

// -- the whole chart -----------------------------------------------------------------------------

/** The value domain to draw: the data and every bound, never of zero height, on nice numbers. */
export function valueDomain(
  values: ReadonlyArray<number>,
  bounds: ReadonlyArray<number> = [],
  count = 4
): [number, number] {
  const all = [...values, ...bounds].filter(Number.isFinite);
  if (all.length === 0) {
    return [0, 1];
  }
  let min = Math.min(...all);
  let max = Math.max(...all);
  if (min === max) {
    // One value (or all equal): a band around it, ±10 % (±1 around zero).
    const half = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= half;
    max += half;
  } else {
    // A little air so that the extreme points do not sit on the frame.
    const air = (max - min) * 0.04;
    min -= air;
    max += air;
  }
  // Counts and other non-negative values never get a negative axis (nor positive ones).
  if (all.every(value => value >= 0)) {
    min = Math.max(min, 0);
  } else if (all.every(value => value <= 0)) {
    max = Math.min(max, 0);
  }
  return niceDomain(min, max, count);
}

export interface IChartOptions {
  width: number;
  height: number;
  /** Space kept around the plot for the axes' labels (the left one grows with them). */
  margin?: { top: number; right: number; bottom: number; left: number };
  /** Label times in UTC instead of local time (tests). */
  utc?: boolean;
  /** About how many ticks on each axis. */
  xTicks?: number;
  yTicks?: number;
}

export interface IPlacedPoint extends IPoint {
  x: number;
  y: number;
  /** How the drawn bounds judge this value. */
  outcome: Outcome;
}

export interface IPlacedBound extends IBound {
  y: number;
  /** Where its label goes, apart from the other labels. */
  labelY: number;
  labelEnd: ILabelPlace['end'];
}

export interface IChartLayout {
  width: number;
  height: number;
  plot: { left: number; top: number; right: number; bottom: number };
  xDomain: [number, number];
  yDomain: [number, number];
  points: IPlacedPoint[];
  path: string;
  xTicks: Array<ITimeTick & { x: number }>;
  yTicks: Array<{ value: number; y: number; label: string }>;
  bounds: IPlacedBound[];
}

/** Roughly how wide the axis labels' text is, in pixels at the chart's 9px font. */
const CHARACTER_WIDTH = 5.5;

/**
 * Spread label positions (sorted or not) so that neighbours are at least `gap` apart, keeping
 * them between `low` and `high` and in their original order; returned in the input's order.
 */
export function spreadLabels(
  positions: ReadonlyArray<number>,
  gap: number,
  low: number,
  high: number
): number[] {
  const order = positions
    .map((position, index) => ({ position, index }))
    .sort((a, b) => a.position - b.position || a.index - b.index);
  const placed = order.map(item => item.position);
  for (let i = 1; i < placed.length; i++) {
    placed[i] = Math.max(placed[i], placed[i - 1] + gap);
  }
  // Pushed past the bottom: shift back up, keeping the gaps.
  const overflow = placed.length > 0 ? placed[placed.length - 1] - high : 0;
  if (overflow > 0) {
    for (let i = placed.length - 1; i >= 0; i--) {
      const limit = i === placed.length - 1 ? high : placed[i + 1] - gap;
      placed[i] = Math.min(placed[i], limit);
    }
  }
  for (let i = 0; i < placed.length; i++) {
    placed[i] = Math.max(placed[i], low);
  }
  const result = new Array<number>(positions.length);
  order.forEach((item, i) => {
    result[item.index] = placed[i];
  });
  return result;
}

export interface ILabelPlace {
  /** The baseline of the label. */
  y: number;
  /** Which end of its line the label sits at. */
  end: 'left' | 'right';
}

/** The height of a label's text above its baseline, at the chart's 9px font. */
const LABEL_HEIGHT = 7;

/**
 * Where the labels of horizontal lines go: just above their line at the right end if that is
 * free, else just below it, else at the left end (above, then below). "Free" means touching no
 * other label and crossing no other line. When nothing is free the label goes above its line at
 * the right end, and the labels there are moved apart (`spreadLabels`).
 */
export function placeLineLabels(
  lineYs: ReadonlyArray<number>,
  gap: number,
  low: number,
  high: number
): ILabelPlace[] {
  const clamp = (y: number) => Math.min(Math.max(y, low), high);
  const places: ILabelPlace[] = lineYs.map(y => ({
    y: clamp(y - 2),
    end: 'right'
  }));
  const order = lineYs
    .map((y, index) => ({ y, index }))
    .sort((a, b) => a.y - b.y || a.index - b.index);
  const taken: ILabelPlace[] = [];
  const free = (candidate: ILabelPlace, own: number) =>
    taken.every(
      other =>
        other.end !== candidate.end || Math.abs(other.y - candidate.y) >= gap
    ) &&
    lineYs.every(
      (line, index) =>
        index === own ||
        line <= candidate.y - LABEL_HEIGHT - 0.5 ||
        line >= candidate.y + 0.5
    );
  for (const { y, index } of order) {
    const candidates: ILabelPlace[] = [
      { y: clamp(y - 2), end: 'right' },
      { y: clamp(y + LABEL_HEIGHT + 2), end: 'right' },
      { y: clamp(y - 2), end: 'left' },
      { y: clamp(y + LABEL_HEIGHT + 2), end: 'left' }
    ];
    const chosen = candidates.find(candidate => free(candidate, index));
    places[index] = chosen ?? places[index];
    taken.push(places[index]);
  }
  const crowded = places
    .map((place, index) => (place.end === 'right' ? index : -1))
    .filter(index => index >= 0);
  const spread = spreadLabels(
    crowded.map(index => places[index].y),
    gap,
    low,
    high
  );
  crowded.forEach((index, i) => {
    places[index] = { ...places[index], y: spread[i] };
  });
  return places;
}

/** Everything the chart component draws, in SVG user units. */
export function layoutChart(
  series: ReadonlyArray<IPoint>,
  bounds: ReadonlyArray<IBound>,
  options: IChartOptions
): IChartLayout {
  const { width, height } = options;
  const utc = options.utc ?? false;
  const margin = options.margin ?? { top: 10, right: 10, bottom: 18, left: 0 };
  const points = [...series]
    .filter(p => Number.isFinite(p.v) && Number.isFinite(p.t))
    .sort((a, b) => a.t - b.t);

  const yDomain = valueDomain(
    points.map(p => p.v),
    bounds.map(b => b.value),
    options.yTicks ?? 4
  );
  const yValues = niceTicks(yDomain[0], yDomain[1], options.yTicks ?? 4);
  const yLabels = tickLabels(yValues);
  const longest = Math.max(0, ...yLabels.map(label => label.length));
  const left = Math.max(margin.left, Math.ceil(longest * CHARACTER_WIDTH) + 8);

  const plot = {
    left,
    top: margin.top,
    right: width - margin.right,
    bottom: height - margin.bottom
  };
  const xDomain: [number, number] =
    points.length > 0 ? [points[0].t, points[points.length - 1].t] : [0, 0];
  const xScale = linearScale(xDomain, [plot.left, plot.right]);
  const yScale = linearScale(yDomain, [plot.bottom, plot.top]);
  // Two decimals are plenty in SVG units, and keep the markup short.
  const x = (t: number) => roundTo(xScale(t), 2);
  const y = (v: number) => roundTo(yScale(v), 2);

  const placed = points.map(p => ({
    ...p,
    x: x(p.t),
    y: y(p.v),
    outcome: judge(p.v, bounds)
  }));

  const boundYs = bounds.map(b => y(b.value));
  // Labels sit just above their line, at either end when two bounds are close.
  const labels = placeLineLabels(boundYs, 9, plot.top + 7, plot.bottom - 2);

  return {
    width,
    height,
    plot,
    xDomain,
    yDomain,
    points: placed,
    path: linePath(placed),
    xTicks:
      points.length > 0
        ? timeTicks(xDomain[0], xDomain[1], options.xTicks ?? 4, utc).map(
            tick => ({ ...tick, x: x(tick.t) })
          )
        : [],
    yTicks: yValues.map((value, i) => ({
      value,
      y: y(value),
      label: yLabels[i]
    })),
    bounds: bounds.map((bound, i) => ({
      ...bound,
      y: boundYs[i],
      labelY: labels[i].y,
      labelEnd: labels[i].end
    }))
  };
}
