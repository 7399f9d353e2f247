/** A run's heading and status: its state, how it came to be, who asked, when it ran. */
import React from 'react';

import { Badge, When } from '../components/common';
import type { DescribeRun } from '../types';
import { describeTrigger, duration, isActive } from './states';

export function RunTitle(props: {
  runId: number;
  run: DescribeRun | null;
}): JSX.Element {
  const { runId, run } = props;
  return (
    <h4>
      Run #{runId} {run && <Badge value={run.state} />}
      {run && run.abort_requested && isActive(run.state) && (
        <span className="hml-help"> abort requested</span>
      )}
    </h4>
  );
}

export function RunStatus(props: { run: DescribeRun }): JSX.Element {
  const { run } = props;
  return (
    <>
      <dl className="hml-facts">
        <dt>Trigger</dt>
        <dd>{describeTrigger(run)}</dd>
        <dt>Requested by</dt>
        <dd>
          {run.requested_by}
          {run.run_as !== run.requested_by && (
            <span className="hml-help"> (runs as {run.run_as})</span>
          )}
        </dd>
        <dt>Created</dt>
        <dd>
          <When iso={run.created_at} />
        </dd>
        <dt>Started</dt>
        <dd>
          <When iso={run.started_at} />
        </dd>
        <dt>Ended</dt>
        <dd>
          <When iso={run.ended_at} />
          {run.started_at && (
            <span className="hml-help">
              {' '}
              ({duration(run.started_at, run.ended_at)})
            </span>
          )}
        </dd>
      </dl>
      {run.message && <p className="hml-run-message">{run.message}</p>}
    </>
  );
}
