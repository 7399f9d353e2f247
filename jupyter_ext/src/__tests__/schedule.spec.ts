import { IParameter } from '../parameters';
import {
  IScheduleAnswers,
  answerField,
  buildDefinition,
  checkAnswers,
  defaultScenarioId,
  defaultScenarioName,
  filesSummary,
  looksLikeCron,
  scheduleToCron,
  timeTrigger
} from '../scenarios/schedule';

const declared: IParameter[] = [
  { name: 'day', type: 'str', default: '"2018-06-01"', help: 'ISO date' },
  { name: 'threshold', type: 'float', default: '0.8', help: '' }
];

function answers(changes: Partial<IScheduleAnswers> = {}): IScheduleAnswers {
  return {
    id: 'score',
    name: 'Score',
    notebook: 'notebooks/score.ipynb',
    schedule: 'daily at 02:00',
    timezone: 'Europe/Paris',
    parameters: {},
    tier: '',
    ...changes
  };
}

describe('defaults from the file name', () => {
  it('makes a valid scenario id', () => {
    expect(defaultScenarioId('notebooks/score.ipynb')).toBe('score');
    expect(defaultScenarioId('Fraud Scoring (v2).ipynb')).toBe(
      'fraud-scoring-v2'
    );
    expect(defaultScenarioId('2024_report.ipynb')).toBe('notebook-2024_report');
    expect(defaultScenarioId('Élan.ipynb')).toBe('elan');
    expect(defaultScenarioId('___.ipynb')).toBe('notebook');
    expect(defaultScenarioId('x'.repeat(150) + '.ipynb')).toHaveLength(100);
  });

  it('makes a readable name', () => {
    expect(defaultScenarioName('notebooks/fraud_scoring.ipynb')).toBe(
      'Fraud scoring'
    );
    expect(defaultScenarioName('.ipynb')).toBe('Notebook');
  });
});

describe('schedules', () => {
  it("reads the server's simple forms", () => {
    expect(scheduleToCron('daily at 02:00')).toBe('0 2 * * *');
    expect(scheduleToCron('  Weekdays   at 7:30 ')).toBe('30 7 * * 1-5');
    expect(scheduleToCron('weekly on monday at 06:00')).toBe('0 6 * * 1');
    expect(scheduleToCron('every 15 minutes')).toBe('*/15 * * * *');
    expect(scheduleToCron('every 7 minutes')).toBeNull();
    expect(scheduleToCron('every 6 hours')).toBe('0 */6 * * *');
    expect(scheduleToCron('hourly at :30')).toBe('30 * * * *');
    expect(scheduleToCron('daily at 25:00')).toBeNull();
  });

  it('tells cron expressions from prose', () => {
    expect(looksLikeCron('30 6 * * 1-5')).toBe(true);
    expect(looksLikeCron('0 2 * * mon-fri')).toBe(true);
    expect(looksLikeCron('@daily')).toBe(true);
    expect(looksLikeCron('every day')).toBe(false);
    expect(looksLikeCron('1 2 3')).toBe(false);
  });

  it('builds time triggers with their zone', () => {
    expect(timeTrigger('Daily at 02:00', 'Europe/Paris')).toEqual({
      ok: true,
      value: {
        type: 'time',
        schedule: 'daily at 02:00',
        timezone: 'Europe/Paris'
      }
    });
    expect(timeTrigger('0  2 * * *', '')).toEqual({
      ok: true,
      value: { type: 'time', cron: '0 2 * * *', timezone: 'UTC' }
    });
    expect(timeTrigger('', 'Europe/Paris')).toEqual({ ok: true, value: null });
    const prose = timeTrigger('every day please', 'UTC');
    expect(!prose.ok && prose.message).toMatch(
      /^'every day please' is not a schedule: use .*daily at HH:MM/
    );
    const zone = timeTrigger('daily at 02:00', 'Mars/Olympus');
    expect(!zone.ok && zone.message).toMatch(/not a time zone/);
  });
});

describe('buildDefinition', () => {
  it('makes one notebook step and one time trigger', () => {
    expect(
      buildDefinition(
        answers({ parameters: { day: '${previous_day}', threshold: '' } }),
        declared
      )
    ).toEqual({
      id: 'score',
      name: 'Score',
      description: 'Runs notebooks/score.ipynb.',
      steps: [
        {
          type: 'notebook',
          name: 'score',
          notebook: 'notebooks/score.ipynb',
          parameters: { day: '${previous_day}' }
        }
      ],
      triggers: [
        { type: 'time', schedule: 'daily at 02:00', timezone: 'Europe/Paris' }
      ]
    });
  });

  it('types parameters, keeps references, names the tier', () => {
    const definition = buildDefinition(
      answers({
        schedule: '',
        tier: ' gpu-small ',
        parameters: { threshold: '0.95' }
      }),
      declared
    );
    expect(definition.triggers).toEqual([]);
    expect(definition.tier).toBe('gpu-small');
    expect(definition.steps[0]).toMatchObject({
      parameters: { threshold: 0.95 }
    });
    expect(
      buildDefinition(answers({ parameters: { threshold: '${t}' } }), declared)
        .steps[0]
    ).toMatchObject({ parameters: { threshold: '${t}' } });
  });

  it('names every problem by field, and refuses to build with one', () => {
    const wrong = answers({
      id: 'Score!',
      name: ' ',
      notebook: '/abs/score.ipynb',
      schedule: 'sometimes',
      parameters: { threshold: 'high' }
    });
    expect(checkAnswers(wrong, declared)).toEqual({
      id: expect.stringMatching(/lower-case letters/),
      name: 'The name is 1 to 200 characters.',
      notebook: expect.stringMatching(/not a notebook path/),
      schedule: expect.stringMatching(/is not a schedule/),
      'parameters.threshold': 'threshold: "high" is not a number (float).'
    });
    expect(
      checkAnswers(answers({ timezone: 'Nowhere/Land' }), declared)
    ).toEqual({ timezone: expect.stringMatching(/not a time zone/) });
    expect(() => buildDefinition(wrong, declared)).toThrow(/id is 1 to 100/);
    expect(checkAnswers(answers(), declared)).toEqual({});
  });
});

describe('answerField', () => {
  it("maps the server's field names onto the dialog's", () => {
    expect(answerField('steps[0].parameters.threshold')).toBe(
      'parameters.threshold'
    );
    expect(answerField('definition.triggers.0.time.schedule')).toBe('schedule');
    expect(answerField('definition.triggers.0.time.cron')).toBe('schedule');
    expect(answerField('definition.triggers.0.time.timezone')).toBe('timezone');
    expect(answerField('definition.steps.0.notebook.notebook')).toBe(
      'notebook'
    );
    expect(answerField('steps[0].notebook')).toBe('notebook');
    expect(answerField('notebooks.notebooks/score.ipynb')).toBe('notebook');
    expect(answerField('definition.id')).toBe('id');
    expect(answerField('id')).toBe('id');
    expect(answerField('body')).toBeNull();
    expect(answerField(null)).toBeNull();
  });
});

describe('filesSummary', () => {
  it('names the first files, their count and size', () => {
    const paths = ['a.py', 'b.csv', 'c.py', 'd.py', 'e.py', 'f.py', 'g.py'];
    expect(filesSummary({ files: 7, bytes: 12_345, paths })).toBe(
      'It runs beside 7 files of its folder (12 kB), snapshotted with it: a.py, b.csv, c.py, d.py, e.py and 2 more.'
    );
    expect(filesSummary({ files: 1, bytes: 20, paths: ['utils.py'] })).toBe(
      'It runs beside 1 file of its folder (20 bytes), snapshotted with it: utils.py.'
    );
  });

  it('says when there are none, and the refusal saving would meet', () => {
    expect(filesSummary({ files: 0, bytes: 0, paths: [] })).toMatch(
      /^No project files/
    );
    expect(
      filesSummary('files: the notebook folder holds more than 1000 files')
    ).toBe(
      'Saving will be refused: files: the notebook folder holds more than 1000 files'
    );
  });
});
