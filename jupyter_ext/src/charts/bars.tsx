/**
 * A horizontal bar chart in plain SVG: one labelled bar per item, scaled to the largest.
 *
 * For pages without JupyterLab's Vega renderer (the administration application): no
 * dependency, crisp at any size, readable by tests and screen readers (each bar has a title).
 */
import * as React from 'react';

export interface IBar {
  label: string;
  value: number;
  /** What the bar's end says, e.g. "12.50 USD". */
  shown: string;
}

export interface IBarChartProps {
  bars: IBar[];
  /** Names the chart for assistive technology. */
  label: string;
  /** Colour of the bars; defaults to the accent colour of the page. */
  colour?: string;
}

const ROW = 22;
const LABEL_WIDTH = 140;
const VALUE_WIDTH = 110;
const WIDTH = 560;

export function BarChart(props: IBarChartProps): React.ReactElement {
  const { bars } = props;
  const largest = Math.max(0, ...bars.map(bar => bar.value));
  const room = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
  const height = Math.max(ROW, bars.length * ROW);
  return (
    <svg
      className="hml-bar-chart"
      role="img"
      aria-label={props.label}
      viewBox={`0 0 ${WIDTH} ${height}`}
      width="100%"
      style={{ maxWidth: `${WIDTH}px` }}
    >
      {bars.map((bar, index) => {
        const length = largest > 0 ? (bar.value / largest) * room : 0;
        const y = index * ROW;
        return (
          <g key={bar.label} data-bar={bar.label}>
            <title>{`${bar.label}: ${bar.shown}`}</title>
            <text
              x={LABEL_WIDTH - 8}
              y={y + ROW / 2}
              textAnchor="end"
              dominantBaseline="middle"
              fill="currentColor"
              fontSize="12"
            >
              {bar.label.length > 20 ? `${bar.label.slice(0, 19)}…` : bar.label}
            </text>
            <rect
              x={LABEL_WIDTH}
              y={y + 4}
              width={Math.max(length, bar.value > 0 ? 1 : 0)}
              height={ROW - 8}
              rx="2"
              fill={props.colour ?? 'var(--hml-admin-accent, #0969da)'}
            />
            <text
              x={LABEL_WIDTH + length + 6}
              y={y + ROW / 2}
              dominantBaseline="middle"
              fill="currentColor"
              fontSize="12"
            >
              {bar.shown}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
