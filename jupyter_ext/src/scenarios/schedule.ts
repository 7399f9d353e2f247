/**
 * "Schedule this notebook…": from the dialog's answers to a scenario definition with one notebook
 * step and, when a schedule is given, one time trigger.
 *
 * Pure logic, unit-tested in plain Node. The checks mirror `scenario_definitions.py` (scenario
 * ids, the simple schedule forms, time zones) so that most mistakes are named in the dialog
 * before the server is asked; the server stays the judge (cron expressions, notebooks).
 */
import { formatSize } from '../charts/values';
import { IParameter, Parsed, parseParameter } from '../parameters';
import type { components } from '../schema';

export type ScenarioDefinition = components['schemas']['ScenarioDefinition'];
type TimeTrigger = components['schemas']['TimeTrigger'];
type FilesPreview = components['schemas']['FilesPreview'];

/** How many paths the dialog names before "and N more". */
const NAMED_FILES = 5;

/**
 * What the scenario will run beside, as the server's preview says: the project files of the
 * notebook's folder snapshotted with it, or the server's refusal (a folder too big) as given.
 */
export function filesSummary(preview: FilesPreview | string): string {
  if (typeof preview === 'string') {
    return `Saving will be refused: ${preview}`;
  }
  if (preview.files === 0) {
    return 'No project files are snapshotted with it: its folder holds none the server can read.';
  }
  const named = preview.paths.slice(0, NAMED_FILES).join(', ');
  const more =
    preview.paths.length > NAMED_FILES
      ? ` and ${preview.paths.length - NAMED_FILES} more`
      : '';
  const count = preview.files === 1 ? '1 file' : `${preview.files} files`;
  return `It runs beside ${count} of its folder (${formatSize(preview.bytes)}), snapshotted with it: ${named}${more}.`;
}

/** What the person answered, as typed. */
export interface IScheduleAnswers {
  id: string;
  name: string;
  /** The notebook's path relative to the server's root (`notebooks/score.ipynb`). */
  notebook: string;
  /** A simple form ("daily at 02:00") or a cron expression; empty: run by hand only. */
  schedule: string;
  timezone: string;
  /** Text typed per parameter name; empty keeps the notebook's default. */
  parameters: Record<string, string>;
  /** Hardware tier; empty: the platform's default. */
  tier: string;
}

/** Field → sentence: `id`, `name`, `notebook`, `schedule`, `timezone`, `parameters.<name>`. */
export type Problems = Record<string, string>;

export const SCENARIO_ID = /^[a-z][a-z0-9_-]{0,99}$/;

export const SCHEDULE_FORMS =
  "'every N minutes', 'every N hours', 'hourly at :MM', 'daily at HH:MM', " +
  "'weekdays at HH:MM', 'weekly on <day> at HH:MM', or a cron expression " +
  "such as '30 6 * * 1-5'";

const WEEKDAYS = [
  'sunday',
  'monday',
  'tuesday',
  'wednesday',
  'thursday',
  'friday',
  'saturday'
];

function fileStem(path: string): string {
  const base = path.split('/').pop() ?? path;
  return base.replace(/\.ipynb$/i, '');
}

/** A scenario id from the notebook's file name: `Fraud Scoring.ipynb` → `fraud-scoring`. */
export function defaultScenarioId(path: string): string {
  let id = fileStem(path)
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[-_]+|[-_]+$/g, '');
  if (!/^[a-z]/.test(id)) {
    id = ('notebook-' + id).replace(/-+$/, '');
  }
  return id.slice(0, 100);
}

/** A scenario name from the notebook's file name: `fraud_scoring.ipynb` → `Fraud scoring`. */
export function defaultScenarioName(path: string): string {
  const words = fileStem(path).replace(/[_-]+/g, ' ').trim();
  if (!words) {
    return 'Notebook';
  }
  return (words[0].toUpperCase() + words.slice(1)).slice(0, 200);
}

function at(hour: string, minute: string, weekdays: string): string | null {
  const h = Number(hour);
  const m = Number(minute);
  return h < 24 && m < 60 ? `${m} ${h} * * ${weekdays}` : null;
}

/** The cron expression of a simple schedule form, or null (as the server's `schedule_to_cron`). */
export function scheduleToCron(schedule: string): string | null {
  const text = normalizeSchedule(schedule);
  let match = /^every (\d+) minutes?$/.exec(text);
  if (match) {
    const n = Number(match[1]);
    return n > 0 && 60 % n === 0 ? `*/${n} * * * *` : null;
  }
  match = /^every (\d+) hours?$/.exec(text);
  if (match) {
    const n = Number(match[1]);
    return n > 0 && 24 % n === 0 ? `0 */${n} * * *` : null;
  }
  match = /^hourly at :(\d{2})$/.exec(text);
  if (match) {
    return Number(match[1]) < 60 ? `${Number(match[1])} * * * *` : null;
  }
  match = /^daily at (\d{1,2}):(\d{2})$/.exec(text);
  if (match) {
    return at(match[1], match[2], '*');
  }
  match = /^weekdays at (\d{1,2}):(\d{2})$/.exec(text);
  if (match) {
    return at(match[1], match[2], '1-5');
  }
  match = new RegExp(
    `^weekly on (${WEEKDAYS.join('|')}) at (\\d{1,2}):(\\d{2})$`
  ).exec(text);
  if (match) {
    return at(match[2], match[3], String(WEEKDAYS.indexOf(match[1])));
  }
  return null;
}

/** Lower case, single spaces: how the server compares simple forms. */
export function normalizeSchedule(schedule: string): string {
  return schedule.toLowerCase().split(/\s+/).filter(Boolean).join(' ');
}

const MACROS = new Set([
  '@yearly',
  '@annually',
  '@monthly',
  '@weekly',
  '@daily',
  '@midnight',
  '@hourly'
]);

/** Whether `text` has the shape of a cron expression (the server checks it fully). */
export function looksLikeCron(text: string): boolean {
  const trimmed = text.trim();
  if (MACROS.has(trimmed.toLowerCase())) {
    return true;
  }
  const fields = trimmed.split(/\s+/);
  return (
    fields.length >= 5 &&
    fields.length <= 6 &&
    fields.every(field =>
      /^[0-9*?,/#LW-]+$|^[A-Za-z]{3}(-[A-Za-z]{3})?$/.test(field)
    )
  );
}

/** Whether the browser knows the IANA time zone (the server asks zoneinfo). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The time trigger of the answers, null for none, or the sentence saying what is wrong. */
export function timeTrigger(
  schedule: string,
  timezone: string
): Parsed<TimeTrigger | null> {
  const text = schedule.trim();
  if (text === '') {
    return { ok: true, value: null };
  }
  const zone = timezone.trim() || 'UTC';
  if (!isTimeZone(zone)) {
    return {
      ok: false,
      message: `'${zone}' is not a time zone such as Europe/Paris or UTC.`
    };
  }
  if (scheduleToCron(text) !== null) {
    return {
      ok: true,
      value: { type: 'time', schedule: normalizeSchedule(text), timezone: zone }
    };
  }
  if (looksLikeCron(text)) {
    return {
      ok: true,
      value: { type: 'time', cron: text.split(/\s+/).join(' '), timezone: zone }
    };
  }
  return {
    ok: false,
    message: `'${text}' is not a schedule: use ${SCHEDULE_FORMS}.`
  };
}

/** The typed values of the parameters given (empty ones are left out), or their problems. */
export function stepParameters(
  declared: IParameter[],
  texts: Record<string, string>
): { values: Record<string, unknown>; problems: Problems } {
  const values: Record<string, unknown> = {};
  const problems: Problems = {};
  for (const parameter of declared) {
    const text = texts[parameter.name] ?? '';
    if (text.trim() === '') {
      continue;
    }
    const parsed = parseParameter(parameter, text, { allowReferences: true });
    if (parsed.ok) {
      values[parameter.name] = parsed.value;
    } else {
      problems[`parameters.${parameter.name}`] = parsed.message;
    }
  }
  return { values, problems };
}

/** Everything wrong with the answers, by field; empty when the definition can be built. */
export function checkAnswers(
  answers: IScheduleAnswers,
  declared: IParameter[]
): Problems {
  const problems: Problems = {};
  const id = answers.id.trim();
  if (!SCENARIO_ID.test(id)) {
    problems.id =
      'The id is 1 to 100 lower-case letters, digits, - or _, starting with a letter.';
  }
  const name = answers.name.trim();
  if (name === '' || name.length > 200) {
    problems.name = 'The name is 1 to 200 characters.';
  }
  if (!/^[^/].*\.ipynb$/.test(answers.notebook)) {
    problems.notebook = `'${answers.notebook}' is not a notebook path relative to the server's root.`;
  }
  if (answers.tier.trim().length > 100) {
    problems.tier = 'The tier is a short name.';
  }
  const trigger = timeTrigger(answers.schedule, answers.timezone);
  if (!trigger.ok) {
    problems[trigger.message.includes('time zone') ? 'timezone' : 'schedule'] =
      trigger.message;
  }
  Object.assign(
    problems,
    stepParameters(declared, answers.parameters).problems
  );
  return problems;
}

/**
 * The scenario definition of the answers: one notebook step named after the notebook, a time
 * trigger when a schedule is given, the tier when one is named. Throws if `checkAnswers` finds
 * a problem (call it first).
 */
export function buildDefinition(
  answers: IScheduleAnswers,
  declared: IParameter[]
): ScenarioDefinition {
  const problems = checkAnswers(answers, declared);
  const first = Object.values(problems)[0];
  if (first) {
    throw new Error(first);
  }
  const trigger = timeTrigger(answers.schedule, answers.timezone);
  const { values } = stepParameters(declared, answers.parameters);
  const definition: ScenarioDefinition = {
    id: answers.id.trim(),
    name: answers.name.trim(),
    description: `Runs ${answers.notebook}.`,
    steps: [
      {
        type: 'notebook',
        name: stepName(answers.notebook),
        notebook: answers.notebook,
        parameters: values
      }
    ],
    triggers: trigger.ok && trigger.value ? [trigger.value] : []
  };
  const tier = answers.tier.trim();
  if (tier) {
    definition.tier = tier;
  }
  return definition;
}

/** The notebook step's name: the notebook's file name without `.ipynb`. */
export function stepName(path: string): string {
  return (fileStem(path) || 'Notebook').slice(0, 100);
}

/**
 * The dialog field a server refusal names. The server names fields two ways: its own checks as
 * `steps[0].parameters.day`, `steps[0].notebook`, `id`; body validation by the model's path,
 * discriminator included (`definition.triggers.0.time.schedule`, `definition.id`,
 * `definition.steps.0.notebook.notebook`). Both map to the dialog's `parameters.day`,
 * `notebook`, `schedule`, `timezone`, `id`, `name`, `tier`; anything else to null.
 */
export function answerField(field: string | null): string | null {
  if (!field) {
    return null;
  }
  const path = field
    .replace(/^definition\./, '')
    .replace(/\.(\d+)(?=\.|$)/g, '[$1]')
    .replace(/^(steps\[\d+\])\.notebook(?=\.)/, '$1')
    .replace(/^(triggers\[\d+\])\.time(?=\.|$)/, '$1');
  const parameter = /^steps\[0\]\.parameters\.(.+)$/.exec(path);
  if (parameter) {
    return `parameters.${parameter[1]}`;
  }
  if (/^steps\[0\]\.notebook$|^notebooks\./.test(path)) {
    return 'notebook';
  }
  const trigger = /^triggers\[0\]\.(cron|schedule|timezone)$/.exec(path);
  if (trigger) {
    return trigger[1] === 'timezone' ? 'timezone' : 'schedule';
  }
  if (/^triggers\[0\]/.test(path)) {
    return 'schedule';
  }
  const plain = /^(id|name|tier)$/.exec(path);
  return plain ? plain[1] : null;
}
