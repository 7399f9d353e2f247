/**
 * What a run produced (the executed notebooks and HTML reports of its notebook steps) and the
 * buttons that open them in lab tabs, through the commands of `commands.ts`.
 */
import React from 'react';

import { ActionButton } from '../components/common';
import { CommandIDs } from '../services';
import type { DescribeRun, DescribeStep } from '../types';

export interface IRunArtifacts {
  hasReport: boolean;
  hasNotebook: boolean;
  /** Which artifacts one step produced. */
  ofStep: (step: DescribeStep) => { report: boolean; notebook: boolean };
  /** How many steps produced any: with more than one, each step gets its own links. */
  producingSteps: number;
}

/** The artifacts of a run: each step says which kinds it produced. */
export function runArtifacts(run: DescribeRun | null): IRunArtifacts {
  const ofStep = (step: DescribeStep) => ({
    report: (step.artifacts ?? []).includes('html'),
    notebook: (step.artifacts ?? []).includes('ipynb')
  });
  const produced = (run?.steps ?? []).map(ofStep);
  return {
    hasReport: produced.some(step => step.report),
    hasNotebook: produced.some(step => step.notebook),
    ofStep,
    producingSteps: produced.filter(step => step.report || step.notebook).length
  };
}

/** "Open notebook" and "Open report": those of the run's last notebook step. */
export function OpenArtifactButtons(props: {
  artifacts: IRunArtifacts;
  open: (command: string) => Promise<unknown>;
  onError: (message: string) => void;
}): JSX.Element {
  const { artifacts, open, onError } = props;
  return (
    <>
      {artifacts.hasNotebook && (
        <ActionButton
          label="Open notebook"
          title="The executed notebook of the last notebook step, in a lab tab"
          onClick={() => open(CommandIDs.openRunNotebook)}
          onError={onError}
        />
      )}
      {artifacts.hasReport && (
        <ActionButton
          label="Open report"
          title="The HTML report of the last notebook step, in a lab tab"
          onClick={() => open(CommandIDs.openRunReport)}
          onError={onError}
        />
      )}
    </>
  );
}

/** A step's own `ipynb` and `html` links, when several steps produced artifacts. */
export function StepArtifactLinks(props: {
  step: DescribeStep;
  artifacts: IRunArtifacts;
  open: (command: string, step?: string) => Promise<unknown>;
}): JSX.Element | null {
  const { step, artifacts, open } = props;
  if (artifacts.producingSteps <= 1) {
    return null;
  }
  const produced = artifacts.ofStep(step);
  return (
    <>
      {produced.notebook && (
        <button
          type="button"
          className="hml-link"
          title={`Open the executed notebook of ${step.name}`}
          onClick={() => void open(CommandIDs.openRunNotebook, step.name)}
        >
          ipynb
        </button>
      )}
      {produced.report && (
        <button
          type="button"
          className="hml-link"
          title={`Open the report of ${step.name}`}
          onClick={() => void open(CommandIDs.openRunReport, step.name)}
        >
          html
        </button>
      )}
    </>
  );
}
