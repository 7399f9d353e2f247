/**
 * Audit: the trail of every change, filtered by actor, action (or a prefix of actions), object,
 * project and time (in the browser's zone, which the form names), paged newest first; the
 * filtered trail exported as CSV or JSON lines; the hash chain verified, naming each entry that
 * was edited, deleted or inserted. Details are as the server recorded them: secret-looking
 * values were replaced before they were stored, so none can appear here.
 */
import * as React from 'react';

import type { HimaliaClient } from '../../api';
import { errorText } from '../../errors';
import { formatTime } from '../../times';
import type { IAdminPage, IAdminPageProps } from '../page';
import {
  AuditFacets,
  AuditVerification,
  DescribeAuditEntry,
  ExportFormat,
  IAuditFilter,
  NO_FILTER,
  PAGE_SIZE,
  actionChoices,
  auditFacets,
  exportUrl,
  isFiltered,
  listEntries,
  pageSummary,
  verifyChain
} from './trail';

const BROWSER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

/** The longest value the API takes for each text filter (the trail's column sizes). */
const FILTER_LENGTHS: Partial<Record<keyof IAuditFilter, number>> = {
  actor: 100,
  action: 60,
  objectType: 40,
  objectId: 200,
  project: 40
};

const EXPORTS: { format: ExportFormat; label: string }[] = [
  { format: 'csv', label: 'Export CSV' },
  { format: 'jsonl', label: 'Export JSON lines' }
];

function Choices(props: { id: string; values: string[] }): React.ReactElement {
  return (
    <datalist id={props.id}>
      {props.values.map(value => (
        <option key={value} value={value} />
      ))}
    </datalist>
  );
}

function FilterForm(props: {
  facets: AuditFacets | null;
  applied: IAuditFilter;
  onApply: (filter: IAuditFilter) => void;
}): React.ReactElement {
  const { facets, applied, onApply } = props;
  const [draft, setDraft] = React.useState(applied);
  React.useEffect(() => setDraft(applied), [applied]);

  const field = (name: keyof IAuditFilter) => ({
    name,
    maxLength: FILTER_LENGTHS[name],
    value: draft[name],
    onChange: (event: React.ChangeEvent<HTMLInputElement>) =>
      setDraft({ ...draft, [name]: event.target.value })
  });

  return (
    <form
      className="hml-admin-audit-filter"
      aria-label="Filter the trail"
      onSubmit={event => {
        event.preventDefault();
        onApply(draft);
      }}
    >
      <label>
        Actor <input {...field('actor')} list="hml-audit-actors" />
      </label>
      <label>
        Action or prefix{' '}
        <input
          {...field('action')}
          list="hml-audit-actions"
          placeholder="project"
        />
      </label>
      <label>
        Object type{' '}
        <input {...field('objectType')} list="hml-audit-object-types" />
      </label>
      <label>
        Object id <input {...field('objectId')} />
      </label>
      <label>
        Project <input {...field('project')} list="hml-audit-projects" />
      </label>
      <label>
        Since ({BROWSER_ZONE}){' '}
        <input {...field('since')} type="datetime-local" step="1" />
      </label>
      <label>
        Until ({BROWSER_ZONE}){' '}
        <input {...field('until')} type="datetime-local" step="1" />
      </label>
      <span className="hml-admin-audit-filter-actions">
        <button type="submit" className="hml-admin-primary">
          Filter
        </button>{' '}
        <button type="button" onClick={() => onApply(NO_FILTER)}>
          Clear
        </button>
      </span>
      {facets && (
        <>
          <Choices id="hml-audit-actors" values={facets.actors.values} />
          <Choices
            id="hml-audit-actions"
            values={actionChoices(facets.actions.values)}
          />
          <Choices
            id="hml-audit-object-types"
            values={facets.object_types.values}
          />
          <Choices id="hml-audit-projects" values={facets.projects.values} />
        </>
      )}
    </form>
  );
}

function EntryRow(props: { entry: DescribeAuditEntry }): React.ReactElement {
  const { entry } = props;
  const details = Object.keys(entry.details);
  return (
    <tr data-seq={entry.seq}>
      <td>{entry.seq}</td>
      <td>
        <time dateTime={entry.created_at} title={entry.created_at}>
          {formatTime(entry.created_at)}
        </time>
      </td>
      <td className="hml-admin-audit-actor">{entry.actor}</td>
      <td className="hml-admin-audit-action">
        <code>{entry.action}</code>
      </td>
      <td>
        {entry.object_type} <code>{entry.object_id}</code>
      </td>
      <td>{entry.project_key ?? '—'}</td>
      <td>
        <details>
          <summary>
            {details.length === 0 ? 'none' : details.join(', ')}
            {entry.client_address ? ` · from ${entry.client_address}` : ''}
          </summary>
          <pre className="hml-admin-audit-details">
            {JSON.stringify(entry.details, null, 2)}
          </pre>
          <p className="hml-admin-audit-hash">
            Hash <code>{entry.hash}</code>
          </p>
        </details>
      </td>
    </tr>
  );
}

function Verification(props: { client: HimaliaClient }): React.ReactElement {
  const [result, setResult] = React.useState<AuditVerification | null>(null);
  const [checkedAt, setCheckedAt] = React.useState('');
  const [busy, setBusy] = React.useState(false);
  const [failure, setFailure] = React.useState('');

  const verify = async () => {
    setBusy(true);
    setFailure('');
    try {
      setResult(await verifyChain(props.client));
      setCheckedAt(new Date().toISOString());
    } catch (error) {
      setResult(null);
      setFailure(errorText(error));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="hml-admin-audit-verify" aria-label="Verification">
      <button type="button" onClick={verify} disabled={busy}>
        {busy ? 'Verifying…' : 'Verify the chain'}
      </button>
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
      {result && result.ok && (
        <p className="hml-admin-audit-intact" role="status">
          Intact: the {result.entries} entries follow one another, none edited,
          deleted or inserted (verified {formatTime(checkedAt)}).
        </p>
      )}
      {result && !result.ok && (
        <div className="hml-admin-audit-tampered" role="alert">
          <p>
            The chain of {result.entries} entries was tampered with (verified{' '}
            {formatTime(checkedAt)}):
          </p>
          <ul>
            {result.problems.map(problem => (
              <li key={problem}>{problem}</li>
            ))}
          </ul>
        </div>
      )}
    </section>
  );
}

export function AuditPage(props: IAdminPageProps): React.ReactElement {
  const { client } = props;
  const [filter, setFilter] = React.useState<IAuditFilter>(NO_FILTER);
  const [offset, setOffset] = React.useState(0);
  const [entries, setEntries] = React.useState<DescribeAuditEntry[] | null>(
    null
  );
  const [total, setTotal] = React.useState(0);
  const [facets, setFacets] = React.useState<AuditFacets | null>(null);
  const [failure, setFailure] = React.useState('');

  React.useEffect(() => {
    auditFacets(client).then(setFacets, error => setFailure(errorText(error)));
  }, [client]);

  React.useEffect(() => {
    let live = true;
    listEntries(client, filter, offset).then(
      page => {
        if (live) {
          setEntries(page.items);
          setTotal(page.total);
          setFailure('');
        }
      },
      error => {
        if (live) {
          setEntries(null); // rows of another filter would pass for this one's
          setFailure(errorText(error));
        }
      }
    );
    return () => {
      live = false;
    };
  }, [client, filter, offset]);

  const apply = (next: IAuditFilter) => {
    setFilter(next);
    setOffset(0);
  };

  return (
    <div className="hml-admin-audit">
      <h2>Audit</h2>
      <p>
        Every change to people, projects, connections, scenarios and runs, with
        who made it and from where. Each entry is chained to the one before it,
        so that an entry edited, deleted or inserted in the database is found
        when the chain is verified. Times are in your zone, {BROWSER_ZONE}.
      </p>
      <FilterForm facets={facets} applied={filter} onApply={apply} />
      <p className="hml-admin-audit-exports">
        {EXPORTS.map(({ format, label }) => (
          <a
            key={format}
            className="hml-admin-button"
            href={exportUrl(client, filter, format)}
            download={`himalia-audit.${format}`}
          >
            {label}
          </a>
        ))}
        {isFiltered(filter)
          ? 'Either holds the entries matching the filter, oldest first.'
          : 'Either holds the whole trail, oldest first.'}
      </p>
      <Verification client={client} />
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
      {entries === null ? (
        !failure && <p>Loading…</p>
      ) : (
        <>
          <p className="hml-admin-audit-summary" role="status">
            {pageSummary(offset, entries.length, total)}
          </p>
          {entries.length > 0 && (
            <table className="hml-admin-audit-table" aria-label="Audit entries">
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Time</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Action</th>
                  <th scope="col">Object</th>
                  <th scope="col">Project</th>
                  <th scope="col">Details</th>
                </tr>
              </thead>
              <tbody>
                {entries.map(entry => (
                  <EntryRow key={entry.seq} entry={entry} />
                ))}
              </tbody>
            </table>
          )}
          <nav className="hml-admin-audit-paging" aria-label="Pages of entries">
            <button
              type="button"
              disabled={offset === 0}
              onClick={() => setOffset(Math.max(0, offset - PAGE_SIZE))}
            >
              Newer
            </button>{' '}
            <button
              type="button"
              disabled={offset + entries.length >= total}
              onClick={() => setOffset(offset + PAGE_SIZE)}
            >
              Older
            </button>
          </nav>
        </>
      )}
    </div>
  );
}

export const AUDIT_PAGE: IAdminPage = {
  id: 'audit',
  title: 'Audit',
  permissions: ['view_audit'],
  component: AuditPage
};
