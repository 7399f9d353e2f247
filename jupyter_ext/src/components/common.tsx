/**
 * Small pieces every panel uses: loading and errors, a list's page state and pager, outcome
 * badges, action buttons, times.
 */
import { Button } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { errorText } from '../errors';
import { IPagedList, pageWindow } from '../hooks/usePagedList';
import { formatTime } from '../times';

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

/**
 * What a list shows besides its items: why it failed, that it is loading (the first time only:
 * a reload keeps the page on screen), or `empty` when the page has no item.
 */
export function PageState<T>(props: {
  list: IPagedList<T>;
  empty: React.ReactNode;
}): JSX.Element {
  const { list } = props;
  return (
    <>
      <ErrorNotice error={list.error} />
      {list.loading && !list.page && !list.error && <Loading />}
      {list.page && list.items.length === 0 && <Empty>{props.empty}</Empty>}
    </>
  );
}

/** Previous / next over a paged list; nothing when it fits on one page. */
export function Pager<T>(props: { list: IPagedList<T> }): JSX.Element | null {
  const { list } = props;
  const total = list.page?.total ?? 0;
  if (total <= list.limit) {
    return null;
  }
  const shown = pageWindow(list.offset, list.limit, total);
  return (
    <div className="hml-pager">
      <Button
        small
        minimal
        disabled={!shown.hasPrevious}
        onClick={list.previous}
      >
        ‹ Previous
      </Button>
      <span>
        {shown.first}–{shown.last} of {total}
      </span>
      <Button small minimal disabled={!shown.hasNext} onClick={list.next}>
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

/** An ISO timestamp in the browser's time zone (or `timeZone`), naming the zone; UTC on hover. */
export function When(props: {
  iso: string | null | undefined;
  timeZone?: string;
}): JSX.Element {
  if (!props.iso) {
    return <span>—</span>;
  }
  return (
    <time dateTime={props.iso} title={formatTime(props.iso, 'UTC')}>
      {formatTime(props.iso, props.timeZone)}
    </time>
  );
}
