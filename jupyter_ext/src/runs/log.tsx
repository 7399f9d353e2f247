/** A run's log, kept scrolled to its end unless the person scrolled up to read. */
import React, { useLayoutEffect, useRef } from 'react';

import { Empty } from '../components/common';

export function RunLog(props: {
  runId: number;
  log: string;
  active: boolean;
}): JSX.Element {
  const { runId, log } = props;
  const node = useRef<HTMLPreElement>(null);
  const following = useRef(true);
  useLayoutEffect(() => {
    const element = node.current;
    if (element && following.current) {
      element.scrollTop = element.scrollHeight;
    }
  }, [log]);
  if (!log) {
    return <Empty>{props.active ? 'No output yet.' : 'No log.'}</Empty>;
  }
  return (
    <pre
      className="hml-log"
      ref={node}
      aria-label={`Log of run ${runId}`}
      tabIndex={0}
      onScroll={event => {
        const element = event.currentTarget;
        following.current =
          element.scrollHeight - element.scrollTop - element.clientHeight < 16;
      }}
    >
      {log}
    </pre>
  );
}
