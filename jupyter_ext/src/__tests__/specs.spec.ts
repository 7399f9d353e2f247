import type { JSONObject } from '@lumino/coreutils';

import {
  IChartColours,
  boundTitle,
  describeChart,
  formatInZone,
  historySpec
} from '../charts/specs';
import { IPoint, boundsFor } from '../charts/values';

const utc = (iso: string) => Date.parse(iso);

const COLOURS: IChartColours = {
  line: 'blue',
  warning: 'orange',
  error: 'red',
  text: 'grey',
  grid: 'silver'
};

const CHECKS = [
  {
    name: 'Avg FICO Score Range',
    type: 'range',
    metric: 'avg:card_fico_score',
    min: 525,
    max: 650,
    soft_min: null,
    soft_max: 640
  },
  { name: 'FICO known', type: 'in_set', metric: 'avg:card_fico_score' }
];

const POINTS: IPoint[] = [
  { t: utc('2025-03-01T10:00:00Z'), v: 600 },
  { t: utc('2025-03-02T10:00:00Z'), v: 645 },
  { t: utc('2025-03-03T10:00:00Z'), v: 700 }
];

interface ILayer {
  name?: string;
  data?: { values: Array<Record<string, unknown>> };
  mark: { type: string; color?: string; strokeDash?: number[] };
  encoding: Record<string, Record<string, unknown>>;
  layer?: ILayer[];
}

function spec(
  points: IPoint[] = POINTS,
  timeZone = 'UTC',
  metric = 'avg:card_fico_score'
): JSONObject {
  return historySpec(metric, points, boundsFor(metric, CHECKS), {
    width: 300,
    height: 160,
    timeZone,
    colours: COLOURS
  });
}

function layers(built: JSONObject): ILayer[] {
  return built.layer as unknown as ILayer[];
}

function named(built: JSONObject, name: string): ILayer {
  const layer = layers(built).find(item => item.name === name);
  if (!layer) {
    throw new Error(`no layer ${name}`);
  }
  return layer;
}

describe('the history specification', () => {
  it('is Vega-Lite 5, sized as asked, described for screen readers', () => {
    const built = spec();
    expect(built.$schema).toBe(
      'https://vega.github.io/schema/vega-lite/v5.json'
    );
    expect([built.width, built.height]).toEqual([300, 160]);
    expect(built.description).toBe(
      'History of avg:card_fico_score: 3 values, last 700 on 2025-03-03 10:00 UTC; ' +
        'check bounds min 525, max 650, soft max 640'
    );
  });

  it('draws every bound as a dashed rule, hard in the error colour, soft in the warning colour', () => {
    const built = spec();
    const hardMin = named(built, 'hml_hard_min_rule');
    const hardMax = named(built, 'hml_hard_max_rule');
    const softMax = named(built, 'hml_soft_max_rule');
    expect(hardMin.data?.values.map(value => value.value)).toEqual([525]);
    expect(hardMax.data?.values.map(value => value.value)).toEqual([650]);
    expect(softMax.data?.values.map(value => value.value)).toEqual([640]);
    expect(hardMin.mark).toMatchObject({
      type: 'rule',
      color: 'red',
      strokeDash: [4, 2]
    });
    expect(softMax.mark).toMatchObject({
      type: 'rule',
      color: 'orange',
      strokeDash: [2, 2]
    });
    // No soft minimum: no layer for it.
    expect(
      layers(built).some(layer => layer.name?.startsWith('hml_soft_min'))
    ).toBe(false);
    // On the value scale of the data, so the axis reaches every bound.
    expect(hardMin.encoding.y).toMatchObject({
      field: 'value',
      type: 'quantitative'
    });
  });

  it('shades the failing side of each bound and labels it', () => {
    const built = spec();
    const belowMin = named(built, 'hml_hard_min_band');
    const aboveMax = named(built, 'hml_soft_max_band');
    expect(belowMin.mark.type).toBe('rect');
    expect(belowMin.encoding.y2).toEqual({ value: 'height' });
    expect(aboveMax.encoding.y2).toEqual({ value: 0 });
    const label = named(built, 'hml_soft_max_label');
    expect(label.data?.values[0]).toEqual({
      value: 640,
      label: 'soft max 640',
      title: 'Avg FICO Score Range: WARNING above 640'
    });
    expect(label.encoding.text).toEqual({ field: 'label', type: 'nominal' });
  });

  it('colours each value by how the bounds judge it, with a tooltip of value and time in its zone', () => {
    const history = named(spec(), 'hml_history');
    expect(
      history.data?.values.map(value => [value.v, value.outcome, value.when])
    ).toEqual([
      [600, 'OK', '2025-03-01 10:00 UTC'],
      [645, 'WARNING', '2025-03-02 10:00 UTC'],
      [700, 'ERROR', '2025-03-03 10:00 UTC']
    ]);
    const points = history.layer?.find(layer => layer.name === 'hml_points');
    expect(points?.encoding.color).toMatchObject({
      field: 'outcome',
      scale: {
        domain: ['OK', 'WARNING', 'ERROR'],
        range: ['blue', 'orange', 'red']
      }
    });
    expect(
      (points?.encoding.tooltip as unknown as Array<{ title: string }>).map(
        item => item.title
      )
    ).toEqual(['avg:card_fico_score', 'Computed at', 'Checks']);
  });

  it('shows times in the zone it is given, named on the axis', () => {
    const paris = named(spec(POINTS, 'Europe/Paris'), 'hml_history');
    expect(paris.data?.values[0].when).toBe('2025-03-01 11:00 CET');
    const line = paris.layer?.[0];
    expect(line?.encoding.x).toMatchObject({
      field: 't',
      type: 'temporal',
      title: 'Computed at (Europe/Paris)',
      scale: { type: 'time' }
    });
    const utcLine = named(spec(), 'hml_history').layer?.[0];
    expect(utcLine?.encoding.x.scale).toEqual({ type: 'utc' });
  });

  it('labels the time axis as precisely as the span needs', () => {
    const axis = (points: IPoint[]) =>
      named(spec(points), 'hml_history').layer?.[0].encoding.x.axis as Record<
        string,
        unknown
      >;
    expect(axis(POINTS)).toMatchObject({ format: '%b %d' });
    expect(axis(POINTS).values).toBeUndefined();
    const t = utc('2025-03-01T10:00:00Z');
    const seconds = [
      { t, v: 1 },
      { t: t + 1500, v: 2 }
    ];
    expect(axis(seconds)).toMatchObject({
      format: '%H:%M:%S',
      values: [t, t + 1500]
    });
    expect(
      axis([
        { t, v: 1 },
        { t: t + 90 * 86_400_000, v: 2 }
      ]).format
    ).toBe('%b %d');
  });

  it('has no bound layers and no bounds tooltip for a metric no range check watches', () => {
    const built = spec(POINTS, 'UTC', 'record_count');
    expect(layers(built).map(layer => layer.name)).toEqual(['hml_history']);
    const points = named(built, 'hml_history').layer?.[1];
    expect(
      (points?.encoding.tooltip as unknown as Array<{ title: string }>).length
    ).toBe(2);
  });

  it('is plain JSON, as a mime bundle must be', () => {
    const built = spec();
    expect(JSON.parse(JSON.stringify(built))).toEqual(built);
  });
});

describe('chart words', () => {
  it('formats moments with their zone', () => {
    expect(formatInZone(utc('2025-07-01T22:30:00Z'), 'Europe/Paris')).toBe(
      '2025-07-02 00:30 CEST'
    );
    expect(formatInZone(utc('2025-07-01T22:30:00Z'), 'UTC')).toBe(
      '2025-07-01 22:30 UTC'
    );
  });

  it('describes an empty history and a bound', () => {
    expect(describeChart('rows', [], [], 'UTC')).toBe(
      'History of rows: no numeric value'
    );
    const [bound] = boundsFor('avg:card_fico_score', CHECKS);
    expect(boundTitle(bound)).toBe('Avg FICO Score Range: ERROR below 525');
  });
});
