/** The run a lab address names: what the links of report emails and webhooks carry. */

/** The lab URL's query parameter naming a run (the control plane's `RUN_LINK_PARAMETER`). */
export const RUN_LINK_PARAMETER = 'himalia-run';

export interface IRunTarget {
  project: string;
  scenario: string;
  run: number;
}

/** The run a location's query names (`?himalia-run=KEY/scenario/7`), or null. */
export function parseRunLink(search: string): IRunTarget | null {
  const value = new URLSearchParams(search).get(RUN_LINK_PARAMETER);
  const match = value ? /^([^/]+)\/([^/]+)\/([0-9]+)$/.exec(value) : null;
  if (!match) {
    return null;
  }
  return { project: match[1], scenario: match[2], run: Number(match[3]) };
}
