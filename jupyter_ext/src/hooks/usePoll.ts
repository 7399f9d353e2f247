/** Polling tied to what is on screen (Lumino's `Poll`, which stands by while the tab is hidden). */
import { Poll } from '@lumino/polling';
import { useEffect, useRef } from 'react';

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
