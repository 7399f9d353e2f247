/**
 * Vega-Lite specifications of the metric charts, rendered by JupyterLab's own Vega renderer
 * (`@jupyterlab/vega5-extension`): the extension draws nothing itself and bundles no chart library.
 *
 * Pure functions of the values, the bounds and the options (size, time zone, theme colours), so
 * that the unit tests read the specification the renderer is given. Check bounds are drawn even
 * when the data never comes near them: a bound's rule shares the value scale with the data, so
 * the axis widens to include it, and the side of the bound that fails the check is shaded.
 */
import type { JSONObject } from '@lumino/coreutils';

import { IBound, IPoint, formatValue, judge } from './values';

/** The mime type JupyterLab renders Vega-Lite 5 specifications under. */
export const VEGALITE_MIME = 'application/vnd.vegalite.v5+json';

/** The theme's colours, read from its CSS variables by the component (specs cannot read CSS). */
export interface IChartColours {
  line: string;
  warning: string;
  error: string;
  text: string;
  grid: string;
}

export interface IHistoryOptions {
  width: number;
  height: number;
  /** The IANA time zone the times are shown in (`Europe/Paris`); `UTC` also sets a UTC axis. */
  timeZone: string;
  colours: IChartColours;
}

/** A moment in full, in a time zone, with the zone's name: `2025-03-05 14:03 CET`. */
export function formatInZone(t: number, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZoneName: 'short'
  }).formatToParts(new Date(t));
  const part = (type: Intl.DateTimeFormatPartTypes) =>
    parts.find(item => item.type === type)?.value ?? '';
  return `${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')} ${part('timeZoneName')}`;
}

/** What a screen reader says of the chart: the metric, how many values, the last one. */
export function describeChart(
  metric: string,
  points: ReadonlyArray<IPoint>,
  bounds: ReadonlyArray<IBound>,
  timeZone: string
): string {
  if (points.length === 0) {
    return `History of ${metric}: no numeric value`;
  }
  const last = points[points.length - 1];
  const count = points.length === 1 ? '1 value' : `${points.length} values`;
  let text = `History of ${metric}: ${count}, last ${formatValue(last.v)} on ${formatInZone(last.t, timeZone)}`;
  if (bounds.length > 0) {
    text += `; check bounds ${bounds.map(bound => bound.label).join(', ')}`;
  }
  return text;
}

/** A bound's tooltip: `Avg FICO Score Range: ERROR below 525`. */
export function boundTitle(bound: IBound): string {
  const outcome = bound.kind === 'hard' ? 'ERROR' : 'WARNING';
  const side = bound.side === 'min' ? 'below' : 'above';
  return `${bound.check}: ${outcome} ${side} ${formatValue(bound.value)}`;
}

const OUTSIDE: Record<string, string> = {
  OK: 'inside every bound',
  WARNING: 'outside a soft bound (WARNING)',
  ERROR: 'outside a hard bound (ERROR)'
};

/**
 * The bounds of one kind on one side: the side that fails shaded (from the rule to the plot's
 * edge), a dashed rule, and its label at the right end, above the rule.
 */
function boundLayers(
  bounds: ReadonlyArray<IBound>,
  kind: IBound['kind'],
  side: IBound['side'],
  colours: IChartColours
): JSONObject[] {
  const values = bounds
    .filter(bound => bound.kind === kind && bound.side === side)
    .map(bound => ({
      value: bound.value,
      label: bound.label,
      title: boundTitle(bound)
    }));
  if (values.length === 0) {
    return [];
  }
  const colour = kind === 'hard' ? colours.error : colours.warning;
  const y = { field: 'value', type: 'quantitative' };
  const tooltip = [{ field: 'title', type: 'nominal', title: 'Check' }];
  const name = `hml_${kind}_${side}`;
  return [
    {
      name: `${name}_band`,
      data: { values },
      mark: { type: 'rect', color: colour, opacity: 0.08 },
      // The failing side: below a minimum (to the bottom), above a maximum (to the top).
      encoding: { y, y2: { value: side === 'min' ? 'height' : 0 }, tooltip }
    },
    {
      name: `${name}_rule`,
      data: { values },
      mark: {
        type: 'rule',
        color: colour,
        strokeWidth: 1,
        strokeDash: kind === 'hard' ? [4, 2] : [2, 2]
      },
      encoding: { y, tooltip }
    },
    {
      name: `${name}_label`,
      data: { values },
      mark: {
        type: 'text',
        color: colour,
        align: 'right',
        baseline: 'bottom',
        dy: -2,
        fontSize: 9
      },
      encoding: {
        y,
        x: { value: 'width' },
        text: { field: 'label', type: 'nominal' },
        tooltip
      }
    }
  ];
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/**
 * The time axis: labels as precise as the history's span needs (`14:05:30`, `14:05`, `Mar 5`,
 * `Mar 2025`). A history of less than a minute (a few manual runs) is labelled at its first and
 * last value only, rather than at fractions of a second.
 */
function timeAxis(points: ReadonlyArray<IPoint>): JSONObject {
  const span =
    points.length > 0 ? points[points.length - 1].t - points[0].t : 0;
  const format =
    span < MINUTE * 5
      ? '%H:%M:%S'
      : span < 2 * DAY
        ? '%H:%M'
        : span < 365 * DAY
          ? '%b %d'
          : '%b %Y';
  const axis: JSONObject = {
    format,
    labelOverlap: true,
    tickCount: 4,
    grid: false
  };
  if (span < MINUTE && points.length > 0) {
    axis.values = [...new Set([points[0].t, points[points.length - 1].t])];
  }
  return axis;
}

/**
 * A metric's history over time: a line through its values, each value a point coloured by how
 * the check bounds judge it (the line's colour when inside, warning or error colour outside),
 * and every bound of its range checks drawn as a dashed rule with its failing side shaded:
 * hard bounds in the error colour, soft ones in the warning colour. Times are shown in
 * `options.timeZone`, named on the axis and in the tooltips.
 */
export function historySpec(
  metric: string,
  points: ReadonlyArray<IPoint>,
  bounds: ReadonlyArray<IBound>,
  options: IHistoryOptions
): JSONObject {
  const { colours, timeZone } = options;
  const values = points.map(point => {
    const outcome = judge(point.v, bounds);
    return {
      t: point.t,
      v: point.v,
      shown: formatValue(point.v),
      when: formatInZone(point.t, timeZone),
      outcome,
      bounds: OUTSIDE[outcome]
    };
  });
  const x = {
    field: 't',
    type: 'temporal',
    title: `Computed at (${timeZone})`,
    scale: { type: timeZone === 'UTC' ? 'utc' : 'time' },
    axis: timeAxis(points)
  };
  const y = {
    field: 'v',
    type: 'quantitative',
    title: null,
    scale: { zero: false, nice: true },
    axis: { tickCount: 4 }
  };
  const tooltip = [
    { field: 'shown', type: 'nominal', title: metric },
    { field: 'when', type: 'nominal', title: 'Computed at' },
    ...(bounds.length > 0
      ? [{ field: 'bounds', type: 'nominal', title: 'Checks' }]
      : [])
  ];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    description: describeChart(metric, points, bounds, timeZone),
    width: options.width,
    height: options.height,
    autosize: { type: 'fit', contains: 'padding' },
    background: 'transparent',
    config: {
      view: { stroke: null },
      axis: {
        labelColor: colours.text,
        titleColor: colours.text,
        domainColor: colours.grid,
        tickColor: colours.grid,
        gridColor: colours.grid,
        gridOpacity: 0.5,
        labelFontSize: 9,
        titleFontSize: 9,
        titleFontWeight: 'normal'
      }
    },
    layer: [
      ...(['hard', 'soft'] as const).flatMap(kind =>
        (['min', 'max'] as const).flatMap(side =>
          boundLayers(bounds, kind, side, colours)
        )
      ),
      {
        name: 'hml_history',
        data: { values },
        layer: [
          {
            mark: {
              type: 'line',
              color: colours.line,
              strokeWidth: 1.5,
              interpolate: 'linear'
            },
            encoding: { x, y }
          },
          {
            name: 'hml_points',
            mark: {
              type: 'point',
              filled: true,
              opacity: 1,
              size: points.length > 60 ? 12 : 28
            },
            encoding: {
              x,
              y,
              color: {
                field: 'outcome',
                type: 'nominal',
                scale: {
                  domain: ['OK', 'WARNING', 'ERROR'],
                  range: [colours.line, colours.warning, colours.error]
                },
                legend: null
              },
              tooltip
            }
          }
        ]
      }
    ]
  };
}
