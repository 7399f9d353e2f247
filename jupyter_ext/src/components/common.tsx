/**
 * Small pieces every panel uses: loading and errors, paging, outcome badges, polling.
 */
import { Button } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import React, { useCallback, useEffect, useRef, useState } from 'react';

import { errorText } from '../errors';

export interface IAsync<T> {
  value: T | null;
  error: string | null;
  loading: boolean;
  reload: () => Promise<void>;
}

/** Load `load()` now and whenever `deps` change; `reload` loads again without blanking the view. */
export function useAsync<T>(
  load: () => Promise<T>,
  deps: React.DependencyList
): IAsync<T> {
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const run = useCallback(async () => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const result = await load();
      if (mine === generation.current) {
        setValue(result);
        setError(null);
      }
    } catch (failure) {
      if (mine === generation.current) {
        setError(errorText(failure));
      }
    } finally {
      if (mine === generation.current) {
        setLoading(false);
      }
    }
  }, deps);
  useEffect(() => {
    setValue(null);
    void run();
  }, [run]);
  return { value, error, loading, reload: run };
}

/**
 * Call `tick` every `seconds` while `active`, never while the browser tab is hidden, backing
 * off after failures (Lumino's `Poll`).
 */
export function usePoll(
  tick: () => Promise<unknown>,
  seconds: number,
  active: boolean
): void {
  const latest = useRef(tick);
  latest.current = tick;
  useEffect(() => {
    if (!active || seconds <= 0) {
      return;
    }
    const poll = new Poll({
      factory: () => latest.current(),
      frequency: {
        interval: seconds * 1000,
        backoff: true,
        max: Math.max(seconds * 1000 * 8, 60_000)
      },
      standby: 'when-hidden'
    });
    return () => poll.dispose();
  }, [seconds, active]);
}

export function ErrorNotice(props: {
  error: string | null;
}): JSX.Element | null {
  if (!props.error) {
    return null;
  }
  return (
    <div className="hml-error" role="alert">
      {props.error}
    </div>
  );
}

export function Loading(props: { label?: string }): JSX.Element {
  return (
    <div className="hml-loading" role="status">
      <span className="hml-spinner" aria-hidden="true" />
      {props.label ?? 'Loading…'}
    </div>
  );
}

export function Empty(props: { children: React.ReactNode }): JSX.Element {
  return <div className="hml-empty">{props.children}</div>;
}

/** Previous / next over an API page. */
export function Pager(props: {
  offset: number;
  limit: number;
  total: number;
  onChange: (offset: number) => void;
}): JSX.Element | null {
  const { offset, limit, total, onChange } = props;
  if (total <= limit) {
    return null;
  }
  const last = Math.min(offset + limit, total);
  return (
    <div className="hml-pager">
      <Button
        small
        minimal
        disabled={offset === 0}
        onClick={() => onChange(Math.max(0, offset - limit))}
      >
        ‹ Previous
      </Button>
      <span>
        {offset + 1}–{last} of {total}
      </span>
      <Button
        small
        minimal
        disabled={last >= total}
        onClick={() => onChange(offset + limit)}
      >
        Next ›
      </Button>
    </div>
  );
}

/** A coloured label for a check outcome (OK, WARNING, ERROR, EMPTY) or a run / step state. */
export function Badge(props: { value: string; title?: string }): JSX.Element {
  return (
    <span
      className={`hml-badge hml-badge-${props.value.toLowerCase()}`}
      title={props.title ?? props.value}
    >
      {props.value}
    </span>
  );
}

/**
 * A button that shows progress while its action runs and reports its failure: to `onError`, or
 * next to the button when no one else shows it (a failure is never swallowed).
 */
export function ActionButton(props: {
  label: string;
  busyLabel?: string;
  onClick: () => Promise<unknown>;
  disabled?: boolean;
  title?: string;
  accept?: boolean;
  onError?: (message: string) => void;
}): JSX.Element {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const click = async () => {
    setBusy(true);
    setError(null);
    try {
      await props.onClick();
    } catch (failure) {
      const message = errorText(failure);
      if (props.onError) {
        props.onError(message);
      } else {
        setError(message);
      }
    } finally {
      setBusy(false);
    }
  };
  const button = (
    <Button
      small
      type="button"
      className={
        props.accept ? 'jp-mod-styled jp-mod-accept hml-action' : 'hml-action'
      }
      disabled={busy || props.disabled}
      title={props.title}
      aria-busy={busy}
      onClick={() => void click()}
    >
      {busy && <span className="hml-spinner" aria-hidden="true" />}
      {busy ? (props.busyLabel ?? props.label) : props.label}
    </Button>
  );
  if (!error) {
    return button;
  }
  return (
    <>
      {button}
      <span className="hml-error" role="alert">
        {error}
      </span>
    </>
  );
}

/** Local time of an ISO timestamp, short. */
export function When(props: { iso: string | null | undefined }): JSX.Element {
  if (!props.iso) {
    return <span>—</span>;
  }
  const date = new Date(props.iso);
  return (
    <time dateTime={props.iso} title={date.toISOString()}>
      {date.toLocaleString()}
    </time>
  );
}
