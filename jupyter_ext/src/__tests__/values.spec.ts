import {
  boundsFor,
  describeOutcomes,
  describeCondition,
  describeRule,
  formatSize,
  formatValue,
  judge,
  numericValue,
  toSeries,
  worstOutcome
} from '../charts/values';

const utc = (iso: string) => Date.parse(iso);

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

describe('checks on a metric history', () => {
  const change = {
    name: 'Steady',
    type: 'change',
    metric: 'record_count',
    change: 'percent' as const,
    min: -30,
    soft_min: -10,
    compare_to: 1,
    last_result: {
      value: { value: 4, reference: 20, band: { min: 14, soft_min: 18 } }
    }
  };
  const anomaly = {
    name: 'Usual',
    type: 'anomaly',
    metric: 'record_count',
    method: 'mad' as const,
    k: 3,
    soft_k: 2,
    window: 10,
    last_result: {
      value: {
        value: 4,
        band: { min: 17.5, max: 22.5, soft_min: 18.2, soft_max: 21.8 }
      }
    }
  };

  it('draws the band their last evaluation used, in metric units', () => {
    expect(
      boundsFor('record_count', [change, anomaly]).map(bound => [
        bound.check,
        bound.kind,
        bound.side,
        bound.value
      ])
    ).toEqual([
      ['Steady', 'hard', 'min', 14],
      ['Steady', 'soft', 'min', 18],
      ['Usual', 'hard', 'min', 17.5],
      ['Usual', 'hard', 'max', 22.5],
      ['Usual', 'soft', 'min', 18.2],
      ['Usual', 'soft', 'max', 21.8]
    ]);
  });

  it('draws nothing before a first evaluation, or from a value without a band', () => {
    const fresh = { ...anomaly, last_result: null };
    const early = {
      ...anomaly,
      last_result: { value: { value: 4, history: 2 } }
    };
    const odd = { ...change, last_result: { value: 7 } };
    expect(boundsFor('record_count', [fresh, early, odd])).toEqual([]);
  });

  it('says what each asks in a few words', () => {
    expect(describeRule(change)).toBe(
      'change ≥ -30%, soft ≥ -10% against the previous value'
    );
    expect(
      describeRule({
        ...change,
        change: 'absolute',
        compare_to: 7,
        min: null,
        max: 50
      })
    ).toBe('change ≤ 50, soft ≥ -10 against 7 computations back');
    expect(describeRule(anomaly)).toBe(
      'anomaly: within ±3 scaled MAD of the median (soft ±2) of the last 10'
    );
    expect(
      describeRule({ name: 'R', type: 'range', metric: 'm', min: 1 })
    ).toBe('range: min 1');
    expect(describeRule({ name: 'S', type: 'in_set', metric: 'm' })).toBe(
      'in_set'
    );
  });

  it('says what a row condition asks of every row', () => {
    expect(describeCondition({ column: 'amount', min: 0 })).toBe('amount ≥ 0');
    expect(describeCondition({ column: 'amount', max: 1500 })).toBe(
      `amount ≤ ${formatValue(1500)}`
    );
    expect(describeCondition({ column: 'amount', min: 0, max: 10 })).toBe(
      'amount between 0 and 10'
    );
    expect(describeCondition({ column: 'code', pattern: '^[A-Z]{2}$' })).toBe(
      'code matches /^[A-Z]{2}$/'
    );
    expect(
      describeCondition({ column: 'status', values: ['paid', 'refunded'] })
    ).toBe('status is one of paid, refunded');
    expect(
      describeCondition({ column: 'n', values: [1, 2, 3, 4, 5, 6, 7] })
    ).toBe('n is one of 1, 2, 3, 4, 5 and 2 more');
    expect(describeCondition({ column: 'amount', not_null: true })).toBe(
      'amount is never null'
    );
    expect(describeCondition({ column: 'id', unique: true })).toBe(
      'id is unique'
    );
  });

  it('says a size as people read it', () => {
    expect(formatSize(812)).toBe('812 bytes');
    expect(formatSize(20_026)).toBe('20 kB');
    expect(formatSize(3_400)).toBe('3.4 kB');
    expect(formatSize(12_300_000)).toBe('12 MB');
    expect(formatSize(5e12)).toBe('5000 GB');
  });
});
