/**
 * Said when a run ends, by whoever sees it first (its page, or a list's poll), so that every
 * panel showing what the run changes (its scenario row, the data-quality outcomes, the board)
 * reads again without a manual refresh.
 */
import { Signal } from '@lumino/signaling';

import type { RunState } from '../types';
import { isActive } from './states';

export interface IRunEnded {
  project: string;
  scenario: string;
  run: number;
  state: RunState;
}

export class RunEvents {
  readonly ended = new Signal<this, IRunEnded>(this);

  /** Say that a run ended, once per run however many panels see it end. */
  announceEnded(ended: IRunEnded): void {
    const key = `${ended.project}/${ended.scenario}/${ended.run}`;
    if (isActive(ended.state) || this._announced.has(key)) {
      return;
    }
    this._announced.add(key);
    this.ended.emit(ended);
  }

  private _announced = new Set<string>();
}

export const runEvents = new RunEvents();
