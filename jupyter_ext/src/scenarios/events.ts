/** Said when a scenario is saved elsewhere in the lab ("Schedule this notebook…"). */
import { Signal } from '@lumino/signaling';

export class ScenarioEvents {
  readonly saved = new Signal<this, { project: string; id: string }>(this);
}

export const scenarioEvents = new ScenarioEvents();
