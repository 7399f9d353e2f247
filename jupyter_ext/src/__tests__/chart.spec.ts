import {
  IBound,
  boundsFor,
  describeOutcomes,
  formatMoment,
  formatTimeTick,
  formatValue,
  judge,
  layoutChart,
  linePath,
  linearScale,
  niceDomain,
  niceStep,
  niceTicks,
  numericValue,
  placeLineLabels,
  spreadLabels,
  tickLabels,
  timeInterval,
  timeTicks,
  toSeries,
  valueDomain,
  worstOutcome
} from '../chart';

const utc = (iso: string) => Date.parse(iso);
const HOUR = 3600_000;
const DAY = 24 * HOUR;

describe('values', () => {
  it('keeps finite numbers only', () => {
    expect(numericValue(3)).toBe(3);
    expect(numericValue(-0.5)).toBe(-0.5);
    expect(numericValue(null)).toBeNull();
    expect(numericValue(undefined)).toBeNull();
    expect(numericValue('12')).toBeNull();
    expect(numericValue(true)).toBeNull();
    expect(numericValue(NaN)).toBeNull();
    expect(numericValue(Infinity)).toBeNull();
    expect(numericValue([1, 2])).toBeNull();
    expect(numericValue({ a: 1 })).toBeNull();
  });

  it('skips what cannot be charted and sorts by time', () => {
    const series = toSeries([
      { computed_at: '2025-03-02T00:00:00Z', value: 20 },
      { computed_at: '2025-03-01T00:00:00Z', value: 10 },
      { computed_at: '2025-03-03T00:00:00Z', value: null },
      { computed_at: '2025-03-04T00:00:00Z', value: 'many' },
      { computed_at: 'not a date', value: 5 },
      { computed_at: '2025-03-05T00:00:00Z', value: 0 }
    ]);
    expect(series.points).toEqual([
      { t: utc('2025-03-01T00:00:00Z'), v: 10 },
      { t: utc('2025-03-02T00:00:00Z'), v: 20 },
      { t: utc('2025-03-05T00:00:00Z'), v: 0 }
    ]);
    expect(series.skipped).toBe(3);
  });

  it('formats values like the server does', () => {
    expect(formatValue(9812)).toBe('9\u202f812');
    expect(formatValue(-1234567)).toBe('-1\u202f234\u202f567');
    expect(formatValue(13)).toBe('13');
    expect(formatValue(0.0421)).toBe('0.0421');
    expect(formatValue(612.345678)).toBe('612.346');
    expect(formatValue(1.5e20)).toBe('1.5e+20');
    expect(formatValue(null)).toBe('—');
    expect(formatValue('abc')).toBe('abc');
    expect(formatValue(false)).toBe('false');
    expect(formatValue([['NY', 3]])).toBe('[["NY",3]]');
  });
});

describe('scales and ticks', () => {
  it('maps a domain linearly, reversed ranges included', () => {
    const x = linearScale([0, 10], [100, 200]);
    expect(x(0)).toBe(100);
    expect(x(5)).toBe(150);
    expect(x(10)).toBe(200);
    const y = linearScale([0, 100], [90, 10]);
    expect(y(0)).toBe(90);
    expect(y(100)).toBe(10);
    expect(y(25)).toBe(70);
  });

  it('maps a one-value domain to the middle of the range', () => {
    const x = linearScale([7, 7], [0, 300]);
    expect(x(7)).toBe(150);
    expect(Number.isFinite(x(8))).toBe(true);
  });

  it('chooses 1, 2 or 5 times a power of ten', () => {
    expect(niceStep(10, 5)).toBe(2);
    expect(niceStep(100, 5)).toBe(20);
    expect(niceStep(1, 4)).toBe(0.5);
    expect(niceStep(2600, 4)).toBe(1000);
    expect(niceStep(0.03, 3)).toBeCloseTo(0.01, 12);
    expect(niceStep(0, 5)).toBe(1);
  });

  it('puts ticks on round numbers inside the range', () => {
    expect(niceTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(3, 97, 5)).toEqual([20, 40, 60, 80]);
    expect(niceTicks(0.1, 0.3, 2)).toEqual([0.1, 0.2, 0.3]);
    expect(niceTicks(-5, 5, 4)).toEqual([-5, 0, 5]);
    expect(niceTicks(-5, 5, 5)).toEqual([-4, -2, 0, 2, 4]);
    expect(niceTicks(10, 0, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(4, 4)).toEqual([4]);
  });

  it('has no floating-point noise in ticks', () => {
    for (const tick of niceTicks(0, 0.7, 7)) {
      expect(String(tick).length).toBeLessThanOrEqual(3);
    }
    expect(niceTicks(0, 0.7, 7)).toContain(0.3);
  });

  it('widens a domain to nice numbers', () => {
    expect(niceDomain(3, 97, 5)).toEqual([0, 100]);
    expect(niceDomain(11.7, 14.3, 5)).toEqual([11, 15]);
    expect(niceDomain(11.7, 14.3, 10)).toEqual([11.5, 14.5]);
    expect(niceDomain(-0.3, 0.7, 5)).toEqual([-0.4, 0.8]);
  });

  it('labels ticks with the decimals their step needs and k/M suffixes', () => {
    expect(tickLabels([0, 0.5, 1, 1.5])).toEqual(['0.0', '0.5', '1.0', '1.5']);
    expect(tickLabels([520, 540, 560])).toEqual(['520', '540', '560']);
    expect(tickLabels([10000, 10500, 11000])).toEqual([
      '10.0k',
      '10.5k',
      '11.0k'
    ]);
    expect(tickLabels([0, 1_000_000, 2_000_000])).toEqual(['0', '1M', '2M']);
    expect(tickLabels([-0.2, 0, 0.2])).toEqual(['-0.2', '0.0', '0.2']);
    expect(tickLabels([7])).toEqual(['7']);
  });
});

describe('time axis', () => {
  it('picks an interval from the span', () => {
    expect(timeInterval(30_000, 4)).toEqual({ unit: 'second', step: 15 });
    expect(timeInterval(5 * HOUR, 4)).toEqual({ unit: 'hour', step: 3 });
    expect(timeInterval(3 * DAY, 4)).toEqual({ unit: 'day', step: 1 });
    expect(timeInterval(20 * DAY, 4)).toEqual({ unit: 'week', step: 1 });
    expect(timeInterval(300 * DAY, 4)).toEqual({ unit: 'month', step: 3 });
    expect(timeInterval(30 * 365 * DAY, 4)).toEqual({
      unit: 'year',
      step: 10
    });
  });

  it('puts hour ticks on whole hours, midnight labelled with its date', () => {
    const ticks = timeTicks(
      utc('2025-03-04T19:20:00Z'),
      utc('2025-03-05T07:40:00Z'),
      5,
      true
    );
    expect(ticks.map(tick => tick.label)).toEqual([
      '21:00',
      'Mar 5',
      '03:00',
      '06:00'
    ]);
  });

  it('sorts and bounds hour ticks', () => {
    const start = utc('2025-03-04T19:20:00Z');
    const end = utc('2025-03-05T07:40:00Z');
    const ticks = timeTicks(start, end, 4, true);
    // 12 h 20 min in at most about 4 steps: every 6 hours.
    expect(ticks.map(tick => new Date(tick.t).toISOString())).toEqual([
      '2025-03-05T00:00:00.000Z',
      '2025-03-05T06:00:00.000Z'
    ]);
    for (const tick of ticks) {
      expect(tick.t).toBeGreaterThanOrEqual(start);
      expect(tick.t).toBeLessThanOrEqual(end);
    }
  });

  it('puts day ticks on midnights across a month end', () => {
    const ticks = timeTicks(
      utc('2025-01-30T10:00:00Z'),
      utc('2025-02-02T10:00:00Z'),
      4,
      true
    );
    expect(ticks.map(tick => tick.label)).toEqual(['Jan 31', 'Feb 1', 'Feb 2']);
    expect(ticks[0].t).toBe(utc('2025-01-31T00:00:00Z'));
  });

  it('starts week ticks on Mondays', () => {
    const ticks = timeTicks(
      utc('2025-03-01T00:00:00Z'),
      utc('2025-03-25T00:00:00Z'),
      4,
      true
    );
    expect(ticks.map(tick => new Date(tick.t).getUTCDay())).toEqual([
      1, 1, 1, 1
    ]);
    expect(ticks.map(tick => tick.label)).toEqual([
      'Mar 3',
      'Mar 10',
      'Mar 17',
      'Mar 24'
    ]);
  });

  it('labels month ticks with the year in January', () => {
    const ticks = timeTicks(
      utc('2024-10-15T00:00:00Z'),
      utc('2025-03-20T00:00:00Z'),
      6,
      true
    );
    expect(ticks.map(tick => tick.label)).toEqual([
      'Nov',
      'Dec',
      '2025',
      'Feb',
      'Mar'
    ]);
  });

  it('follows the local calendar by default', () => {
    const start = new Date(2025, 5, 10, 13, 0).getTime();
    const end = new Date(2025, 5, 14, 13, 0).getTime();
    const ticks = timeTicks(start, end, 4);
    expect(ticks.length).toBe(4);
    for (const tick of ticks) {
      const d = new Date(tick.t);
      expect([d.getHours(), d.getMinutes()]).toEqual([0, 0]);
    }
    expect(ticks[0].label).toBe('Jun 11');
  });

  it('gives one point one tick, its moment in full', () => {
    const t = utc('2025-03-05T14:03:00Z');
    expect(timeTicks(t, t, 4, true)).toEqual([
      { t, label: '2025-03-05 14:03' }
    ]);
    expect(formatMoment(t, true)).toBe('2025-03-05 14:03');
  });

  it('formats seconds and years', () => {
    const t = utc('2025-03-05T14:03:09Z');
    expect(formatTimeTick(t, 'second', true)).toBe('14:03:09');
    expect(formatTimeTick(t, 'year', true)).toBe('2025');
  });
});

describe('paths', () => {
  it('draws M then L through the points, rounded', () => {
    expect(
      linePath([
        { x: 0, y: 10 },
        { x: 5.123456, y: 2 },
        { x: 10, y: 0 }
      ])
    ).toBe('M0,10 L5.12,2 L10,0');
    expect(linePath([])).toBe('');
    expect(linePath([{ x: 1, y: 2 }])).toBe('M1,2');
  });
});

describe('check bounds and outcomes', () => {
  const checks = [
    {
      name: 'Avg FICO Score Range',
      type: 'range',
      metric: 'avg:card_fico_score',
      min: 525,
      max: 650,
      soft_min: null,
      soft_max: 640
    },
    {
      name: 'FICO known',
      type: 'in_set',
      metric: 'avg:card_fico_score',
      min: 1
    },
    {
      name: 'Over 10k records',
      type: 'range',
      metric: 'record_count',
      min: 10000
    }
  ];

  it('takes the bounds of range checks on the metric only', () => {
    const bounds = boundsFor('avg:card_fico_score', checks);
    expect(
      bounds.map(bound => [bound.kind, bound.side, bound.value, bound.label])
    ).toEqual([
      ['hard', 'min', 525, 'min 525'],
      ['hard', 'max', 650, 'max 650'],
      ['soft', 'max', 640, 'soft max 640']
    ]);
    expect(bounds.every(bound => bound.check === 'Avg FICO Score Range')).toBe(
      true
    );
    expect(boundsFor('record_count', checks)[0].label).toBe('min 10\u202f000');
    expect(boundsFor('column_count', checks)).toEqual([]);
  });

  it('judges like the server: hard first, inclusive bounds', () => {
    const bounds = boundsFor('avg:card_fico_score', checks);
    expect(judge(600, bounds)).toBe('OK');
    expect(judge(640, bounds)).toBe('OK');
    expect(judge(645, bounds)).toBe('WARNING');
    expect(judge(650, bounds)).toBe('WARNING');
    expect(judge(651, bounds)).toBe('ERROR');
    expect(judge(525, bounds)).toBe('OK');
    expect(judge(524.9, bounds)).toBe('ERROR');
    expect(judge(1, [])).toBe('OK');
  });

  it('combines outcomes worst first', () => {
    expect(worstOutcome(['OK', 'EMPTY'])).toBe('EMPTY');
    expect(worstOutcome(['OK', 'WARNING', 'EMPTY'])).toBe('WARNING');
    expect(worstOutcome(['ERROR', 'OK', 'WARNING'])).toBe('ERROR');
    expect(worstOutcome(['OK'])).toBe('OK');
    expect(worstOutcome([])).toBe('EMPTY');
  });

  it('counts outcomes in words', () => {
    expect(describeOutcomes(['OK', 'ERROR', 'OK'])).toBe('1 error, 2 ok');
    expect(
      describeOutcomes(['WARNING', 'WARNING', 'EMPTY', 'ERROR', 'ERROR'])
    ).toBe('2 errors, 2 warnings, 1 empty');
    expect(describeOutcomes([])).toBe('no checks');
  });
});

describe('value domain', () => {
  it('keeps counts off negative numbers', () => {
    expect(valueDomain([13], [10000])[0]).toBe(0);
    expect(valueDomain([5, 6, 7])[0]).toBeGreaterThanOrEqual(0);
    expect(valueDomain([-5, 6])[0]).toBeLessThan(-5);
  });

  it('includes bounds far from the data', () => {
    const [low, high] = valueDomain([12000, 12500, 13000], [10000]);
    expect(low).toBeLessThanOrEqual(10000);
    expect(high).toBeGreaterThanOrEqual(13000);
    const [low2, high2] = valueDomain([0.5, 0.6], [0.01, 650]);
    expect(low2).toBeLessThanOrEqual(0.01);
    expect(high2).toBeGreaterThanOrEqual(650);
  });

  it('never has zero height', () => {
    const [low, high] = valueDomain([13, 13, 13]);
    expect(low).toBeLessThan(13);
    expect(high).toBeGreaterThan(13);
    // Zero nulls, always: the line lies on the floor of a 0–1 axis.
    expect(valueDomain([0, 0])).toEqual([0, 1]);
    const [negativeLow, negativeHigh] = valueDomain([-2]);
    expect(negativeLow).toBeLessThan(-2);
    expect(negativeHigh).toBeGreaterThan(-2);
    expect(negativeHigh).toBeLessThanOrEqual(0);
    expect(valueDomain([])).toEqual([0, 1]);
  });

  it('ignores values that are not finite', () => {
    expect(valueDomain([1, NaN, 3])).toEqual(valueDomain([1, 3]));
  });
});

describe('label spreading', () => {
  it('moves close labels apart, keeping their order', () => {
    expect(spreadLabels([50, 52, 100], 10, 0, 200)).toEqual([50, 60, 100]);
    expect(spreadLabels([52, 50], 10, 0, 200)).toEqual([60, 50]);
  });

  it('stays inside the plot', () => {
    const placed = spreadLabels([195, 196, 197], 10, 0, 200);
    expect(placed).toEqual([180, 190, 200]);
    expect(spreadLabels([-20], 10, 5, 200)).toEqual([5]);
  });
});

describe('line labels', () => {
  it('puts labels above their line at the right end', () => {
    expect(placeLineLabels([50, 100], 9, 0, 200)).toEqual([
      { y: 48, end: 'right' },
      { y: 98, end: 'right' }
    ]);
  });

  it("puts the lower of two close lines' labels below its line", () => {
    // max 650 at y=43, soft max 640 at y=49.6: above it would cross the max line.
    expect(placeLineLabels([43, 49.6], 9, 0, 200)).toEqual([
      { y: 41, end: 'right' },
      { y: 58.6, end: 'right' }
    ]);
  });

  it('uses the left end when both sides of the right end are taken', () => {
    // 36's label goes below (above, it would cross 30); 50's then touches it above and
    // would cross 55 below: it goes to the left end.
    const places = placeLineLabels([30, 36, 50, 55], 9, 0, 200);
    expect(places).toEqual([
      { y: 28, end: 'right' },
      { y: 45, end: 'right' },
      { y: 48, end: 'left' },
      { y: 64, end: 'right' }
    ]);
  });

  it('moves labels apart when no place is free', () => {
    const places = placeLineLabels([40, 44, 48], 9, 0, 200);
    expect(places[0]).toEqual({ y: 38, end: 'right' });
    for (const a of places) {
      for (const b of places) {
        if (a !== b && a.end === b.end) {
          expect(Math.abs(a.y - b.y)).toBeGreaterThanOrEqual(9);
        }
      }
    }
  });

  it('keeps labels inside the plot', () => {
    const places = placeLineLabels([1, 199], 9, 7, 198);
    expect(places[0].y).toBeGreaterThanOrEqual(7);
    expect(places[1].y).toBeLessThanOrEqual(198);
  });
});

describe('layoutChart', () => {
  const options = {
    width: 300,
    height: 150,
    margin: { top: 10, right: 10, bottom: 20, left: 30 },
    utc: true
  };
  const day = (n: number) => utc('2025-03-01T00:00:00Z') + n * DAY;

  it('places points in time and value, inside the plot', () => {
    const layout = layoutChart(
      [
        { t: day(0), v: 10 },
        { t: day(2), v: 30 },
        { t: day(1), v: 20 }
      ],
      [],
      options
    );
    const { plot, points } = layout;
    expect(points.map(p => p.v)).toEqual([10, 20, 30]);
    expect(points[0].x).toBeCloseTo(plot.left, 6);
    expect(points[2].x).toBeCloseTo(plot.right, 6);
    expect(points[1].x).toBeCloseTo((plot.left + plot.right) / 2, 6);
    // Larger values are higher up (smaller y).
    expect(points[0].y).toBeGreaterThan(points[1].y);
    expect(points[1].y).toBeGreaterThan(points[2].y);
    for (const p of points) {
      expect(p.y).toBeGreaterThanOrEqual(plot.top);
      expect(p.y).toBeLessThanOrEqual(plot.bottom);
    }
    expect(layout.path.startsWith('M')).toBe(true);
    expect(layout.path.split('L').length).toBe(3);
    expect(layout.xTicks.map(tick => tick.label)).toEqual([
      'Mar 1',
      '12:00',
      'Mar 2',
      '12:00',
      'Mar 3'
    ]);
    expect(layout.xTicks[2].x).toBeCloseTo(points[1].x, 6);
    for (const tick of layout.yTicks) {
      expect(tick.y).toBeGreaterThanOrEqual(plot.top - 1e-9);
      expect(tick.y).toBeLessThanOrEqual(plot.bottom + 1e-9);
    }
  });

  it('draws bounds outside the data inside the plot, labelled and judged', () => {
    const bounds: IBound[] = [
      { check: 'c', kind: 'hard', side: 'min', value: 525, label: 'min 525' },
      {
        check: 'c',
        kind: 'soft',
        side: 'max',
        value: 640,
        label: 'soft max 640'
      }
    ];
    const layout = layoutChart(
      [
        { t: day(0), v: 600 },
        { t: day(1), v: 610 },
        { t: day(2), v: 500 }
      ],
      bounds,
      options
    );
    const { plot } = layout;
    expect(layout.yDomain[0]).toBeLessThanOrEqual(500);
    expect(layout.yDomain[1]).toBeGreaterThanOrEqual(640);
    const [min, softMax] = layout.bounds;
    expect(min.y).toBeGreaterThan(softMax.y);
    for (const bound of layout.bounds) {
      expect(bound.y).toBeGreaterThanOrEqual(plot.top);
      expect(bound.y).toBeLessThanOrEqual(plot.bottom);
      expect(bound.labelY).toBeGreaterThanOrEqual(plot.top);
      expect(bound.labelY).toBeLessThanOrEqual(plot.bottom);
    }
    // The point at 600 is between the two lines; the one at 500 is below the minimum.
    expect(layout.points[0].y).toBeLessThan(min.y);
    expect(layout.points[0].y).toBeGreaterThan(softMax.y);
    expect(layout.points.map(p => p.outcome)).toEqual(['OK', 'OK', 'ERROR']);
  });

  it('centres a single point, with one time tick', () => {
    const layout = layoutChart([{ t: day(0), v: 42 }], [], options);
    const { plot } = layout;
    expect(layout.points).toHaveLength(1);
    expect(layout.points[0].x).toBeCloseTo((plot.left + plot.right) / 2, 6);
    expect(layout.points[0].y).toBeGreaterThan(plot.top);
    expect(layout.points[0].y).toBeLessThan(plot.bottom);
    expect(layout.xTicks).toEqual([
      { t: day(0), x: layout.points[0].x, label: '2025-03-01 00:00' }
    ]);
    expect(layout.path).toMatch(/^M[\d.]+,[\d.]+$/);
  });

  it('draws equal values as a flat line in the middle', () => {
    const layout = layoutChart(
      [
        { t: day(0), v: 13 },
        { t: day(1), v: 13 },
        { t: day(2), v: 13 }
      ],
      [],
      options
    );
    const ys = layout.points.map(p => p.y);
    expect(new Set(ys).size).toBe(1);
    expect(ys[0]).toBeGreaterThan(layout.plot.top);
    expect(ys[0]).toBeLessThan(layout.plot.bottom);
    expect(layout.yTicks.length).toBeGreaterThan(1);
    expect(layout.points.every(p => Number.isFinite(p.x))).toBe(true);
  });

  it('makes room on the left for long labels', () => {
    const narrow = layoutChart([{ t: day(0), v: 1 }], [], options);
    const wide = layoutChart(
      [
        { t: day(0), v: 0.001 },
        { t: day(1), v: 0.0012 }
      ],
      [],
      options
    );
    expect(narrow.plot.left).toBe(30);
    expect(wide.plot.left).toBeGreaterThan(30);
  });

  it('draws nothing from nothing', () => {
    const layout = layoutChart([], [], options);
    expect(layout.points).toEqual([]);
    expect(layout.path).toBe('');
    expect(layout.xTicks).toEqual([]);
  });
});
