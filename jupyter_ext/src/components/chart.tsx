/**
 * A metric's history as an SVG line chart, with the bounds of its range checks: hard bounds
 * dashed red, soft ones dashed yellow, each labelled. No chart library: `chart.ts` does the
 * arithmetic, the `.hml-chart*` classes give the theme's colours.
 */
import React, { useEffect, useMemo, useRef, useState } from 'react';

import {
  IBound,
  IPlacedPoint,
  IPoint,
  formatValue,
  layoutChart
} from '../chart';

export interface ILineChartProps {
  /** The metric's name, as the API names it (`avg:amount`); also `data-metric`. */
  metric: string;
  /** Its numeric values, oldest first. */
  points: IPoint[];
  /** The bounds of the range checks on it. */
  bounds?: IBound[];
  /** Until the container is measured; then the container's width, in pixels. */
  width?: number;
  height?: number;
}

const NO_BOUNDS: IBound[] = [];
const MIN_WIDTH = 160;

/** A ref for an element, and its width, kept up to date as it is resized. */
function useWidth(initial: number): [React.RefObject<HTMLDivElement>, number] {
  const ref = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(initial);
  useEffect(() => {
    const element = ref.current;
    if (!element || typeof ResizeObserver === 'undefined') {
      return;
    }
    const measure = () => {
      const next = Math.floor(element.clientWidth);
      if (next > 0) {
        setWidth(next);
      }
    };
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

function when(t: number): string {
  return new Date(t).toLocaleString();
}

/** What a screen reader says of the chart: the metric, how many values, the last one. */
export function describeChart(
  metric: string,
  points: IPoint[],
  bounds: IBound[]
): string {
  if (points.length === 0) {
    return `History of ${metric}: no numeric value`;
  }
  const last = points[points.length - 1];
  const count = points.length === 1 ? '1 value' : `${points.length} values`;
  let text = `History of ${metric}: ${count}, last ${formatValue(last.v)} on ${when(last.t)}`;
  if (bounds.length > 0) {
    text += `; check bounds ${bounds.map(bound => bound.label).join(', ')}`;
  }
  return text;
}

/** A bound's tooltip: `Avg FICO Score Range: ERROR below 525`. */
function boundTitle(bound: IBound): string {
  const outcome = bound.kind === 'hard' ? 'ERROR' : 'WARNING';
  const side = bound.side === 'min' ? 'below' : 'above';
  return `${bound.check}: ${outcome} ${side} ${formatValue(bound.value)}`;
}

/** A point's tooltip: the value, when, and which bound it is outside of. */
function pointTitle(metric: string, point: IPlacedPoint): string {
  const outside =
    point.outcome === 'ERROR'
      ? ' (outside a hard bound)'
      : point.outcome === 'WARNING'
        ? ' (outside a soft bound)'
        : '';
  return `${metric} ${formatValue(point.v)} — ${when(point.t)}${outside}`;
}

export function LineChart(props: ILineChartProps): JSX.Element {
  const { metric, points } = props;
  const bounds = props.bounds ?? NO_BOUNDS;
  const [box, measured] = useWidth(props.width ?? 320);
  // One SVG unit per pixel, so that the labels keep the theme's small font size.
  const width = Math.max(MIN_WIDTH, measured);
  const height = props.height ?? 160;
  const layout = useMemo(
    () => layoutChart(points, bounds, { width, height }),
    [points, bounds, width, height]
  );
  const { plot } = layout;
  // Edge labels are anchored inwards, so that none is cut off.
  const anchor = (x: number) =>
    layout.xTicks.length > 1 && x - plot.left < 16
      ? 'start'
      : layout.xTicks.length > 1 && plot.right - x < 16
        ? 'end'
        : 'middle';

  return (
    <div className="hml-chart-box" ref={box}>
      <svg
        className="hml-chart hml-dq-chart"
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={describeChart(metric, points, bounds)}
        data-metric={metric}
      >
        <g className="hml-chart-grid" aria-hidden="true">
          {layout.yTicks.map(tick => (
            <g key={`y${tick.value}`}>
              <line x1={plot.left} x2={plot.right} y1={tick.y} y2={tick.y} />
              <text
                x={plot.left - 4}
                y={tick.y}
                textAnchor="end"
                dominantBaseline="middle"
              >
                {tick.label}
              </text>
            </g>
          ))}
          {layout.xTicks.map(tick => (
            <text
              key={`x${tick.t}`}
              x={tick.x}
              y={plot.bottom + 12}
              textAnchor={anchor(tick.x)}
            >
              {tick.label}
            </text>
          ))}
        </g>
        <line
          className="hml-chart-axis"
          x1={plot.left}
          x2={plot.right}
          y1={plot.bottom}
          y2={plot.bottom}
        />
        <line
          className="hml-chart-axis"
          x1={plot.left}
          x2={plot.left}
          y1={plot.top}
          y2={plot.bottom}
        />
        {layout.bounds.map((bound, i) => (
          <g
            key={`${bound.check}:${bound.kind}:${bound.side}:${i}`}
            className={`hml-chart-bound hml-chart-bound-${bound.kind}`}
            data-bound={`${bound.kind === 'soft' ? 'soft_' : ''}${bound.side}`}
          >
            <title>{boundTitle(bound)}</title>
            <line
              className={`hml-chart-${bound.kind}`}
              x1={plot.left}
              x2={plot.right}
              y1={bound.y}
              y2={bound.y}
            />
            <text
              className="hml-chart-bound-label"
              x={bound.labelEnd === 'right' ? plot.right - 2 : plot.left + 2}
              y={bound.labelY}
              textAnchor={bound.labelEnd === 'right' ? 'end' : 'start'}
            >
              {bound.label}
            </text>
          </g>
        ))}
        {layout.path && <path className="hml-chart-line" d={layout.path} />}
        {layout.points.map((point, i) => (
          <circle
            key={`${point.t}:${i}`}
            className={`hml-chart-point hml-chart-point-${point.outcome.toLowerCase()}`}
            cx={point.x}
            cy={point.y}
            r={layout.points.length > 60 ? 1.75 : 2.5}
          >
            <title>{pointTitle(metric, point)}</title>
          </circle>
        ))}
      </svg>
    </div>
  );
}
