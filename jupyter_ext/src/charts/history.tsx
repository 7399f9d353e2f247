/**
 * A metric's history with the bounds of its range checks, rendered by JupyterLab's Vega renderer
 * from the Vega-Lite specification `historySpec` builds. The renderer is asked for by mime type:
 * when the lab runs without `@jupyterlab/vega5-extension` the chart says so instead of staying
 * blank.
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { MimeModel } from '@jupyterlab/rendermime';
import type { IRenderMime } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';
import React, { useEffect, useMemo, useRef, useState } from 'react';

import { ErrorNotice } from '../components/common';
import { errorText } from '../errors';
import { IChartColours, VEGALITE_MIME, historySpec } from './specs';
import { IBound, IPoint } from './values';

export interface IHistoryChartProps {
  /** Null when the lab gives no mime renderers at all. */
  rendermime: IRenderMimeRegistry | null;
  /** The metric's name, as the API names it (`avg:amount`); also `data-metric`. */
  metric: string;
  /** Its numeric values, oldest first. */
  points: IPoint[];
  /** The bounds of the range checks on it. */
  bounds: IBound[];
  height?: number;
}

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

/** The current theme's colours, from its CSS variables (the spec cannot read them). */
function themeColours(element: Element): IChartColours {
  const style = getComputedStyle(element);
  const read = (name: string, fallback: string) =>
    style.getPropertyValue(name).trim() || fallback;
  return {
    line: read('--jp-brand-color1', '#1976d2'),
    warning: read('--jp-warn-color1', '#f57c00'),
    error: read('--jp-error-color1', '#d32f2f'),
    text: read('--jp-ui-font-color2', '#616161'),
    grid: read('--jp-border-color2', '#e0e0e0')
  };
}

/** A number that changes whenever the lab switches theme, so that the chart takes its colours. */
function useThemeChanges(): number {
  const [changes, setChanges] = useState(0);
  useEffect(() => {
    const observer = new MutationObserver(() => setChanges(count => count + 1));
    observer.observe(document.body, {
      attributes: true,
      attributeFilter: ['data-jp-theme-name', 'data-jp-theme-light']
    });
    return () => observer.disconnect();
  }, []);
  return changes;
}

/** The browser's time zone, in which the history's times are shown. */
function localTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

export function HistoryChart(props: IHistoryChartProps): JSX.Element {
  const { rendermime, metric, points, bounds } = props;
  const height = props.height ?? 160;
  const [box, measured] = useWidth(320);
  const width = Math.max(MIN_WIDTH, measured);
  const host = useRef<HTMLDivElement>(null);
  const renderer = useRef<IRenderMime.IRenderer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const available =
    rendermime !== null && rendermime.mimeTypes.includes(VEGALITE_MIME);

  const theme = useThemeChanges();
  const spec = useMemo(
    () =>
      historySpec(metric, points, bounds, {
        width,
        height,
        timeZone: localTimeZone(),
        colours: themeColours(box.current ?? document.body)
      }),
    [metric, points, bounds, width, height, theme]
  );

  useEffect(() => {
    if (!available || !host.current) {
      return;
    }
    const created = rendermime.createRenderer(VEGALITE_MIME);
    Widget.attach(created, host.current);
    renderer.current = created;
    return () => {
      renderer.current = null;
      created.dispose();
    };
  }, [rendermime, available]);

  useEffect(() => {
    const current = renderer.current;
    if (!current) {
      return;
    }
    const model = new MimeModel({
      data: { [VEGALITE_MIME]: spec },
      // No "…" menu of exports, and SVG rather than a canvas: crisp, and readable by tests.
      metadata: {
        [VEGALITE_MIME]: { embed_options: { actions: false, renderer: 'svg' } }
      }
    });
    current.renderModel(model).then(
      () => setError(null),
      failure => setError(`The chart could not be drawn: ${errorText(failure)}`)
    );
  }, [spec, available]);

  if (!available) {
    return (
      <div className="hml-chart-box" data-metric={metric}>
        <div className="hml-chart-missing" role="note">
          The history chart needs JupyterLab&apos;s Vega renderer
          (@jupyterlab/vega5-extension), which is disabled in this lab. Enable
          it with{' '}
          <code>jupyter labextension enable @jupyterlab/vega5-extension</code>.
        </div>
      </div>
    );
  }
  return (
    <div
      className="hml-chart-box"
      ref={box}
      data-metric={metric}
      data-bounds={bounds.map(bound => bound.label).join(', ')}
    >
      <div className="hml-chart" ref={host} />
      <ErrorNotice error={error} />
    </div>
  );
}
