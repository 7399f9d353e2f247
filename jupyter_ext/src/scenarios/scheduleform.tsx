/**
 * The form of "Schedule this notebook…": a scenario with one notebook step, its schedule,
 * parameters and tier, checked as it is typed.
 */
import React, { useEffect, useRef, useState } from 'react';

import { IParameter } from '../parameters';
import { FilesPreview } from '../types';
import {
  IScheduleAnswers,
  Problems,
  SCHEDULE_FORMS,
  answerField,
  checkAnswers,
  filesSummary,
  scheduleToCron
} from './schedule';

import { ParameterField } from '../runs/parameterfield';

export interface IScheduleFormProps {
  initial: IScheduleAnswers;
  declared: IParameter[];
  project: string;
  /** The server's refusal of the previous attempt, if any. */
  refusal: { field: string | null; message: string } | null;
  /** The project files saving would snapshot (the server's preview), or why it would refuse. */
  files: FilesPreview | string;
  onChange: (answers: IScheduleAnswers) => void;
}

function timeZones(): string[] {
  const intl = Intl as unknown as {
    supportedValuesOf?: (key: string) => string[];
  };
  try {
    return intl.supportedValuesOf ? intl.supportedValuesOf('timeZone') : [];
  } catch {
    return [];
  }
}

/**
 * The body of the "Schedule this notebook…" dialog. Problems are named under their fields as the
 * person types; a field in error carries `jp-mod-error`, which keeps the dialog's accept button
 * disabled (the dialog checks on input events, so one is sent after each render that changes
 * the problems).
 */
export function ScheduleForm(props: IScheduleFormProps): JSX.Element {
  const [answers, setAnswers] = useState(props.initial);
  const [refusal, setRefusal] = useState(props.refusal);
  const [zones] = useState(timeZones);
  const node = useRef<HTMLDivElement>(null);
  const refusedField = refusal ? answerField(refusal.field) : null;
  const problems: Problems = {
    ...(refusal && refusedField ? { [refusedField]: refusal.message } : {}),
    ...checkAnswers(answers, props.declared)
  };
  const problemKey = JSON.stringify(problems);
  useEffect(() => {
    node.current?.dispatchEvent(new Event('input', { bubbles: true }));
  }, [problemKey]);

  const change = (patch: Partial<IScheduleAnswers>, field: string) => {
    const next = { ...answers, ...patch };
    setAnswers(next);
    props.onChange(next);
    if (refusal && (refusedField === field || refusedField === null)) {
      setRefusal(null);
    }
  };
  const fieldClass = (field: string) =>
    `jp-mod-styled${problems[field] ? ' jp-mod-error' : ''}`;
  const problem = (field: string) =>
    problems[field] ? (
      <span className="hml-field-error">{problems[field]}</span>
    ) : null;
  const cron = scheduleToCron(answers.schedule);

  return (
    <div className="hml-form hml-schedule-form" ref={node}>
      <p className="hml-description">
        Saves a scenario in <strong>{props.project}</strong> that runs{' '}
        <code>{answers.notebook}</code> as it is now (the notebook is saved and
        snapshotted; later edits need scheduling again).
      </p>
      <p
        className={`hml-description hml-schedule-files${typeof props.files === 'string' ? ' hml-error' : ''}`}
      >
        {filesSummary(props.files)}
      </p>
      {refusal && !refusedField && (
        <div className="hml-error" role="alert">
          {refusal.message}
        </div>
      )}
      <label>
        Scenario id
        <input
          className={fieldClass('id')}
          name="id"
          aria-label="Scenario id"
          spellCheck={false}
          autoComplete="off"
          value={answers.id}
          onChange={event => change({ id: event.target.value }, 'id')}
        />
        {problem('id')}
      </label>
      <label>
        Name
        <input
          className={fieldClass('name')}
          name="name"
          aria-label="Name"
          value={answers.name}
          onChange={event => change({ name: event.target.value }, 'name')}
        />
        {problem('name')}
      </label>
      <label>
        Schedule
        <input
          className={fieldClass('schedule')}
          name="schedule"
          aria-label="Schedule"
          spellCheck={false}
          autoComplete="off"
          placeholder="daily at 02:00 — empty: run by hand only"
          value={answers.schedule}
          onChange={event =>
            change({ schedule: event.target.value }, 'schedule')
          }
        />
        {problem('schedule') ?? (
          <span className="hml-help">
            {answers.schedule.trim() === ''
              ? 'No schedule: the scenario runs when someone runs it.'
              : cron
                ? `cron ${cron}`
                : `Use ${SCHEDULE_FORMS}.`}
          </span>
        )}
      </label>
      <label>
        Time zone
        <input
          className={fieldClass('timezone')}
          name="timezone"
          aria-label="Time zone"
          list="hml-time-zones"
          spellCheck={false}
          autoComplete="off"
          placeholder="UTC"
          value={answers.timezone}
          onChange={event =>
            change({ timezone: event.target.value }, 'timezone')
          }
        />
        <datalist id="hml-time-zones">
          {zones.map(zone => (
            <option key={zone} value={zone} />
          ))}
        </datalist>
        {problem('timezone')}
      </label>
      <label>
        Tier
        <input
          className={fieldClass('tier')}
          name="tier"
          aria-label="Tier"
          spellCheck={false}
          autoComplete="off"
          placeholder="the platform's default"
          value={answers.tier}
          onChange={event => change({ tier: event.target.value }, 'tier')}
        />
        {problem('tier')}
      </label>
      {problem('notebook')}
      <fieldset className="hml-step-parameters">
        <legend>Parameters</legend>
        {props.declared.length === 0 ? (
          <span className="hml-help">
            This notebook has no cell tagged <code>parameters</code>: mark one
            (right-click a cell, Mark as Parameters Cell) to give the scenario
            typed parameters.
          </span>
        ) : (
          <span className="hml-help">
            Empty: the notebook&apos;s default. A value may use a variable, as
            in <code>{'${previous_day}'}</code>.
          </span>
        )}
        {props.declared.map(parameter => (
          <ParameterField
            key={parameter.name}
            parameter={parameter}
            text={answers.parameters[parameter.name] ?? ''}
            error={problems[`parameters.${parameter.name}`]}
            onChange={text =>
              change(
                {
                  parameters: { ...answers.parameters, [parameter.name]: text }
                },
                `parameters.${parameter.name}`
              )
            }
          />
        ))}
      </fieldset>
    </div>
  );
}
