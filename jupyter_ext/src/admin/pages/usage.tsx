/**
 * Usage and cost: hours and cost of a month by tier, person and project, the twelve months up to
 * it, each as a table and a bar chart; the month's CSV export; and the budgets, with this month's
 * spend against their amount and the alerts raised at 75 % and 100 % (administrators set them).
 */
import * as React from 'react';

import type { HimaliaClient } from '../../api';
import { ApiError } from '../../api';
import { BarChart } from '../../charts/bars';
import { errorText } from '../../errors';
import type { IAdminPage, IAdminPageProps } from '../page';
import {
  createBudget,
  deleteBudget,
  DescribeBudget,
  DIMENSIONS,
  exportLink,
  hours,
  listBudgets,
  money,
  monthWindow,
  thisMonth,
  updateBudget,
  UsageDimension,
  UsageTotals,
  usageTotals,
  yearWindow
} from './usage-api';

const NO_PROJECT = 'no project';
const COLUMN: Record<UsageDimension, string> = {
  month: 'Month',
  tier: 'Tier',
  user: 'Person',
  project: 'Project'
};

function TotalsTable(props: {
  title: string;
  totals: UsageTotals;
}): React.ReactElement {
  const { totals } = props;
  const name = (key: string | null | undefined) =>
    key ?? (totals.by === 'project' ? NO_PROJECT : '—');
  return (
    <section className="hml-usage-totals" data-by={totals.by}>
      <h3>{props.title}</h3>
      {totals.totals.length === 0 ? (
        <p>No usage.</p>
      ) : (
        <>
          <BarChart
            label={`Cost ${props.title.toLowerCase()}`}
            bars={totals.totals.map(total => ({
              label: name(total.key),
              value: total.cost,
              shown: money(total.cost, totals.currency)
            }))}
          />
          <table aria-label={`Usage ${props.title.toLowerCase()}`}>
            <thead>
              <tr>
                <th scope="col">{COLUMN[totals.by]}</th>
                <th scope="col">Hours</th>
                <th scope="col">Cost</th>
              </tr>
            </thead>
            <tbody>
              {totals.totals.map(total => (
                <tr key={name(total.key)} data-key={name(total.key)}>
                  <td>{name(total.key)}</td>
                  <td>{hours(total.hours)}</td>
                  <td>{money(total.cost, totals.currency)}</td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row">Total</th>
                <td>{hours(totals.hours)}</td>
                <td>{money(totals.cost, totals.currency)}</td>
              </tr>
            </tfoot>
          </table>
        </>
      )}
    </section>
  );
}

function refusalOf(error: unknown): { field: string | null; message: string } {
  return {
    field: error instanceof ApiError ? error.field : null,
    message: errorText(error)
  };
}

function BudgetForm(props: {
  client: HimaliaClient;
  onSaved: () => void;
}): React.ReactElement {
  const [kind, setKind] = React.useState<'project' | 'group'>('project');
  const [subject, setSubject] = React.useState('');
  const [amount, setAmount] = React.useState('');
  const [refusal, setRefusal] = React.useState<{
    field: string | null;
    message: string;
  } | null>(null);

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const value = Number(amount);
    if (amount.trim() === '' || !Number.isFinite(value)) {
      setRefusal({ field: 'amount', message: 'amount: enter a number.' });
      return;
    }
    try {
      await createBudget(props.client, {
        [kind]: subject.trim(),
        amount: value
      });
      setSubject('');
      setAmount('');
      setRefusal(null);
      props.onSaved();
    } catch (error) {
      setRefusal(refusalOf(error));
    }
  };
  return (
    <form
      className="hml-usage-budget-form"
      onSubmit={submit}
      aria-label="New budget"
    >
      <h4>New budget</h4>
      <label>
        For a{' '}
        <select
          name="kind"
          value={kind}
          onChange={event => setKind(event.target.value as 'project' | 'group')}
        >
          <option value="project">project</option>
          <option value="group">group</option>
        </select>
      </label>{' '}
      <input
        name="subject"
        placeholder={kind === 'project' ? 'project key' : 'group name'}
        value={subject}
        onChange={event => setSubject(event.target.value)}
        aria-invalid={refusal?.field === kind}
      />{' '}
      <label>
        Amount per month{' '}
        <input
          name="amount"
          inputMode="decimal"
          value={amount}
          onChange={event => setAmount(event.target.value)}
          aria-invalid={refusal?.field === 'amount'}
        />
      </label>{' '}
      <button type="submit" className="hml-admin-primary">
        Set budget
      </button>
      {refusal && (
        <p className="hml-admin-refusal" role="alert">
          {refusal.message}
        </p>
      )}
    </form>
  );
}

function BudgetRow(props: {
  client: HimaliaClient;
  budget: DescribeBudget;
  admin: boolean;
  onChanged: () => void;
}): React.ReactElement {
  const { budget } = props;
  const [editing, setEditing] = React.useState(false);
  const [amount, setAmount] = React.useState(String(budget.amount));
  const [failure, setFailure] = React.useState<string | null>(null);
  const subject = budget.project
    ? `project ${budget.project}`
    : `group ${budget.group}`;
  const state =
    budget.percent >= 100 ? 'over' : budget.percent >= 75 ? 'near' : 'within';

  const save = async () => {
    const value = Number(amount);
    if (amount.trim() === '' || !Number.isFinite(value)) {
      setFailure('amount: enter a number.');
      return;
    }
    try {
      await updateBudget(props.client, budget.id, value);
      setEditing(false);
      setFailure(null);
      props.onChanged();
    } catch (error) {
      setFailure(errorText(error));
    }
  };
  const remove = async () => {
    if (
      !window.confirm(`Remove the budget of the ${subject} and its alerts?`)
    ) {
      return;
    }
    try {
      await deleteBudget(props.client, budget.id);
      props.onChanged();
    } catch (error) {
      setFailure(errorText(error));
    }
  };
  return (
    <tr data-budget={budget.id} data-state={state}>
      <td>{subject}</td>
      <td>
        {editing ? (
          <input
            name="amount"
            inputMode="decimal"
            value={amount}
            aria-label={`Amount of the ${subject}`}
            onChange={event => setAmount(event.target.value)}
          />
        ) : (
          money(budget.amount, budget.currency)
        )}
      </td>
      <td>{money(budget.spent, budget.currency)}</td>
      <td>
        <meter
          min={0}
          max={100}
          low={75}
          high={100}
          optimum={0}
          value={Math.min(budget.percent, 100)}
          aria-label={`Spent of the ${subject}'s budget`}
        />{' '}
        {budget.percent.toFixed(0)} %
      </td>
      <td>
        {budget.alerts.length === 0
          ? 'none'
          : budget.alerts
              .map(
                alert =>
                  `${alert.threshold} % on ${new Date(alert.raised_at).toLocaleString()}` +
                  (alert.deliveries.every(d => d.ok) ? '' : ' (not mailed)')
              )
              .join('; ')}
      </td>
      {props.admin && (
        <td>
          {editing ? (
            <>
              <button
                type="button"
                className="hml-admin-primary"
                onClick={save}
              >
                Save
              </button>{' '}
              <button type="button" onClick={() => setEditing(false)}>
                Cancel
              </button>
            </>
          ) : (
            <>
              <button type="button" onClick={() => setEditing(true)}>
                Change
              </button>{' '}
              <button
                type="button"
                className="hml-admin-danger"
                onClick={remove}
              >
                Remove
              </button>
            </>
          )}
          {failure && (
            <span className="hml-admin-refusal" role="alert">
              {' '}
              {failure}
            </span>
          )}
        </td>
      )}
    </tr>
  );
}

function Budgets(props: {
  client: HimaliaClient;
  admin: boolean;
}): React.ReactElement {
  const { client, admin } = props;
  const [budgets, setBudgets] = React.useState<DescribeBudget[] | null>(null);
  const [failure, setFailure] = React.useState<string | null>(null);
  const [generation, setGeneration] = React.useState(0);
  React.useEffect(() => {
    let live = true;
    listBudgets(client).then(
      found => live && setBudgets(found),
      error => live && setFailure(errorText(error))
    );
    return () => {
      live = false;
    };
  }, [client, generation]);
  const changed = () => setGeneration(value => value + 1);
  return (
    <section className="hml-usage-budgets">
      <h3>Budgets</h3>
      <p>
        A monthly amount per project or group (its members&apos; usage). At 75 %
        and at 100 % of this month&apos;s amount the administrators and the
        project&apos;s owner and administrators get one mail each.
      </p>
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
      {budgets === null ? (
        !failure && <p>Loading…</p>
      ) : budgets.length === 0 ? (
        <p>There is no budget.</p>
      ) : (
        <table aria-label="Budgets">
          <thead>
            <tr>
              <th scope="col">For</th>
              <th scope="col">Amount</th>
              <th scope="col">Spent in {budgets[0].period}</th>
              <th scope="col">Of the amount</th>
              <th scope="col">Alerts</th>
              {admin && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {budgets.map(budget => (
              <BudgetRow
                key={budget.id}
                client={client}
                budget={budget}
                admin={admin}
                onChanged={changed}
              />
            ))}
          </tbody>
        </table>
      )}
      {admin && <BudgetForm client={client} onSaved={changed} />}
    </section>
  );
}

function UsagePage({ client, me }: IAdminPageProps): React.ReactElement {
  const [month, setMonth] = React.useState(() => thisMonth());
  const [totals, setTotals] = React.useState<Partial<
    Record<UsageDimension, UsageTotals>
  > | null>(null);
  const [failure, setFailure] = React.useState<string | null>(null);
  const admin = Boolean(
    (me.global_permissions as Record<string, boolean>).admin
  );

  React.useEffect(() => {
    let live = true;
    setTotals(null);
    setFailure(null);
    Promise.all(
      DIMENSIONS.map(({ by }) =>
        usageTotals(
          client,
          by,
          by === 'month' ? yearWindow(month) : monthWindow(month)
        )
      )
    ).then(
      found =>
        live &&
        setTotals(Object.fromEntries(found.map(total => [total.by, total]))),
      error => live && setFailure(errorText(error))
    );
    return () => {
      live = false;
    };
  }, [client, month]);

  const everyone = totals?.tier?.everyone ?? true;
  return (
    <div className="hml-admin-usage">
      <h2>Usage and cost</h2>
      <p>
        Hours of workspace servers and scenario runs on each tier, times the
        tier&apos;s cost per hour when they started; running ones count until
        now. Months are in UTC.{' '}
        {!everyone && 'These are your own: managing tiers shows everyone’s.'}
      </p>
      <label>
        Month{' '}
        <input
          type="month"
          name="month"
          value={month}
          max={thisMonth()}
          onChange={event => event.target.value && setMonth(event.target.value)}
        />
      </label>{' '}
      <a href={exportLink(client, monthWindow(month))} download>
        Export {month} as CSV
      </a>
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
      {totals === null
        ? !failure && <p>Loading…</p>
        : DIMENSIONS.map(({ by, title }) => {
            const found = totals[by];
            return found ? (
              <TotalsTable
                key={by}
                title={
                  by === 'month'
                    ? `${title}, the twelve months to ${month}`
                    : `${title}, ${month}`
                }
                totals={found}
              />
            ) : null;
          })}
      <Budgets client={client} admin={admin} />
    </div>
  );
}

export const USAGE_PAGE: IAdminPage = {
  id: 'usage',
  title: 'Usage and cost',
  permissions: ['manage_tiers'],
  component: UsagePage
};
