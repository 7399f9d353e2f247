/**
 * People: users and service accounts with their status, profile, source, groups and when they
 * were last seen (in the browser's zone, named); their profile, name and email edited; and
 * deactivation, which first shows what it will do (tokens revoked, scenarios that stop, servers
 * left running) and waits for the confirmation. Reactivation gives no token back.
 */
import * as React from 'react';

import type { HimaliaClient } from '../../api';
import { errorText } from '../../errors';
import { useAsync } from '../../hooks/useAsync';
import { formatTime } from '../../times';
import type { IAdminPage, IAdminPageProps } from '../page';
import {
  createUser,
  deactivation,
  DescribeDeactivation,
  DescribeUser,
  IUserFilter,
  listUsers,
  Profile,
  PROFILES,
  updateUser
} from './identity';

type KindChoice = 'all' | 'user' | 'service';
type StatusChoice = 'all' | 'active' | 'deactivated';

function filterOf(
  kind: KindChoice,
  status: StatusChoice,
  search: string
): IUserFilter {
  return {
    kind: kind === 'all' ? undefined : kind,
    active: status === 'all' ? undefined : status === 'active',
    search: search.trim() || undefined
  };
}

function lastSeen(user: DescribeUser): string {
  return user.last_seen_at ? formatTime(user.last_seen_at) : 'never';
}

/** The editor of one person's display name, email and profile. */
function ProfileEditor(props: {
  client: HimaliaClient;
  user: DescribeUser;
  onDone: (changed: boolean) => void;
}): React.ReactElement {
  const { client, user, onDone } = props;
  const [displayName, setDisplayName] = React.useState(user.display_name);
  const [email, setEmail] = React.useState(user.email);
  const [profile, setProfile] = React.useState<Profile>(user.profile);
  const [failure, setFailure] = React.useState('');
  const [saving, setSaving] = React.useState(false);

  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    setSaving(true);
    setFailure('');
    try {
      await updateUser(client, user.login, {
        display_name: displayName,
        email,
        profile
      });
      onDone(true);
    } catch (error) {
      setFailure(errorText(error));
      setSaving(false);
    }
  };

  return (
    <form
      className="hml-admin-person-editor"
      aria-label={`Edit ${user.login}`}
      onSubmit={save}
    >
      <label>
        Display name{' '}
        <input
          name="display_name"
          value={displayName}
          maxLength={200}
          onChange={event => setDisplayName(event.target.value)}
        />
      </label>{' '}
      <label>
        Email{' '}
        <input
          name="email"
          type="email"
          value={email}
          maxLength={320}
          onChange={event => setEmail(event.target.value)}
        />
      </label>{' '}
      <label>
        Profile{' '}
        <select
          name="profile"
          value={profile}
          onChange={event => setProfile(event.target.value as Profile)}
        >
          {PROFILES.map(name => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
      </label>{' '}
      <button type="submit" className="hml-admin-primary" disabled={saving}>
        Save
      </button>{' '}
      <button type="button" onClick={() => onDone(false)}>
        Cancel
      </button>
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
    </form>
  );
}

/** What deactivating a person will do, and the button that does it. */
function DeactivationConfirmation(props: {
  client: HimaliaClient;
  user: DescribeUser;
  onDone: (changed: boolean) => void;
}): React.ReactElement {
  const { client, user, onDone } = props;
  const [plan, setPlan] = React.useState<DescribeDeactivation | null>(null);
  const [failure, setFailure] = React.useState('');
  const [working, setWorking] = React.useState(false);

  React.useEffect(() => {
    let live = true;
    deactivation(client, user.login).then(
      answer => live && setPlan(answer),
      error => live && setFailure(errorText(error))
    );
    return () => {
      live = false;
    };
  }, [client, user.login]);

  const confirm = async () => {
    setWorking(true);
    setFailure('');
    try {
      await updateUser(client, user.login, { active: false });
      onDone(true);
    } catch (error) {
      setFailure(errorText(error));
      setWorking(false);
    }
  };

  const more = (shown: number, total: number) =>
    total > shown ? <li>… and {total - shown} more</li> : null;

  return (
    <section
      className="hml-admin-deactivation"
      role="dialog"
      aria-label={`Deactivate ${user.login}`}
    >
      <h3>Deactivate {user.display_name || user.login}?</h3>
      {!plan && !failure && <p>Reading what it would do…</p>}
      {plan && (
        <>
          <p>
            {user.login} will no longer be able to use Himalia: signing in, the
            API and the lab&apos;s Himalia panels refuse them.
          </p>
          <h4>Tokens revoked ({plan.token_count})</h4>
          {plan.token_count === 0 ? (
            <p>They have no token.</p>
          ) : (
            <ul className="hml-admin-deactivation-tokens">
              {plan.tokens.map(token => (
                <li key={token.id}>
                  {token.name || 'unnamed'} <code>{token.prefix}…</code>
                  {token.project ? ` (project ${token.project})` : ''}
                </li>
              ))}
              {more(plan.tokens.length, plan.token_count)}
            </ul>
          )}
          <h4>Scenarios that stop running as them ({plan.scenario_count})</h4>
          {plan.scenario_count === 0 ? (
            <p>No scenario runs as them.</p>
          ) : (
            <>
              <p>
                Their fires are recorded as skipped (the operations board says
                why) and asking to run them is refused, until an administrator
                makes them run as someone else or reactivates {user.login}.
              </p>
              <ul className="hml-admin-deactivation-scenarios">
                {plan.scenarios.map(scenario => (
                  <li key={`${scenario.project}/${scenario.id}`}>
                    {scenario.project}/{scenario.id} ({scenario.name})
                    {scenario.scheduled ? ', scheduled' : ', run when asked'}
                  </li>
                ))}
                {more(plan.scenarios.length, plan.scenario_count)}
              </ul>
            </>
          )}
          <h4>Servers running ({plan.servers.length})</h4>
          {plan.servers.length === 0 ? (
            <p>No server of theirs is running.</p>
          ) : (
            <>
              <p>
                These keep running until they are stopped in JupyterHub, but can
                no longer reach Himalia as {user.login}.
              </p>
              <ul className="hml-admin-deactivation-servers">
                {plan.servers.map(server => (
                  <li key={server.name}>
                    {server.name || 'default server'} on {server.tier}, since{' '}
                    {formatTime(server.started_at)}
                  </li>
                ))}
              </ul>
            </>
          )}
          {plan.refusal && (
            <p className="hml-admin-refusal" role="alert">
              {plan.refusal}
            </p>
          )}
        </>
      )}
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
      <button
        type="button"
        className="hml-admin-danger"
        disabled={!plan || Boolean(plan.refusal) || working}
        onClick={confirm}
      >
        Deactivate {user.login}
      </button>{' '}
      <button type="button" onClick={() => onDone(false)}>
        Cancel
      </button>
    </section>
  );
}

/** The form that adds a person or a service account managed here. */
function NewAccount(props: {
  client: HimaliaClient;
  onCreated: () => void;
}): React.ReactElement {
  const [login, setLogin] = React.useState('');
  const [displayName, setDisplayName] = React.useState('');
  const [email, setEmail] = React.useState('');
  const [kind, setKind] = React.useState<'user' | 'service'>('user');
  const [failure, setFailure] = React.useState('');

  const create = async (event: React.FormEvent) => {
    event.preventDefault();
    setFailure('');
    try {
      await createUser(props.client, {
        login,
        display_name: displayName,
        email,
        kind
      });
      setLogin('');
      setDisplayName('');
      setEmail('');
      props.onCreated();
    } catch (error) {
      setFailure(errorText(error));
    }
  };

  return (
    <form
      className="hml-admin-new-person"
      aria-label="New account"
      onSubmit={create}
    >
      <label>
        Login{' '}
        <input
          name="login"
          value={login}
          required
          maxLength={100}
          onChange={event => setLogin(event.target.value)}
        />
      </label>{' '}
      <label>
        Display name{' '}
        <input
          name="display_name"
          value={displayName}
          maxLength={200}
          onChange={event => setDisplayName(event.target.value)}
        />
      </label>{' '}
      <label>
        Email{' '}
        <input
          name="email"
          type="email"
          value={email}
          maxLength={320}
          onChange={event => setEmail(event.target.value)}
        />
      </label>{' '}
      <label>
        Kind{' '}
        <select
          name="kind"
          value={kind}
          onChange={event => setKind(event.target.value as 'user' | 'service')}
        >
          <option value="user">person</option>
          <option value="service">service account</option>
        </select>
      </label>{' '}
      <button type="submit" className="hml-admin-primary">
        Add
      </button>
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
    </form>
  );
}

export function PeoplePage(props: IAdminPageProps): React.ReactElement {
  const { client, me } = props;
  const [kind, setKind] = React.useState<KindChoice>('all');
  const [status, setStatus] = React.useState<StatusChoice>('all');
  const [search, setSearch] = React.useState('');
  const [failure, setFailure] = React.useState('');
  const [editing, setEditing] = React.useState<string | null>(null);
  const [deactivating, setDeactivating] = React.useState<string | null>(null);
  const listing = useAsync(
    () => listUsers(client, filterOf(kind, status, search)),
    [client, kind, status, search]
  );
  const users = listing.value?.items ?? null;
  const total = listing.value?.total ?? 0;
  const refresh = () => void listing.reload();
  const shownFailure = failure || listing.error;

  const reactivate = async (user: DescribeUser) => {
    setFailure('');
    try {
      await updateUser(client, user.login, { active: true });
      refresh();
    } catch (error) {
      setFailure(errorText(error));
    }
  };

  const finished = (changed: boolean) => {
    setEditing(null);
    setDeactivating(null);
    if (changed) {
      refresh();
    }
  };

  return (
    <div className="hml-admin-people">
      <h2>People</h2>
      <p>
        People sign in through JupyterHub (source “hub”: kept in step with the
        identity provider) or are added here (source “local”). Service accounts
        are for programs, with tokens.
      </p>
      <div className="hml-admin-filters" role="search">
        <label>
          Show{' '}
          <select
            name="kind"
            value={kind}
            onChange={event => setKind(event.target.value as KindChoice)}
          >
            <option value="all">people and service accounts</option>
            <option value="user">people</option>
            <option value="service">service accounts</option>
          </select>
        </label>{' '}
        <label>
          Status{' '}
          <select
            name="status"
            value={status}
            onChange={event => setStatus(event.target.value as StatusChoice)}
          >
            <option value="all">any</option>
            <option value="active">active</option>
            <option value="deactivated">deactivated</option>
          </select>
        </label>{' '}
        <label>
          Search{' '}
          <input
            name="search"
            type="search"
            value={search}
            maxLength={100}
            placeholder="login, name or email"
            onChange={event => setSearch(event.target.value)}
          />
        </label>
      </div>
      {shownFailure && (
        <p className="hml-admin-refusal" role="alert">
          {shownFailure}
        </p>
      )}
      {users === null ? (
        !shownFailure && <p>Loading…</p>
      ) : (
        <table className="hml-admin-people-table" aria-label="People">
          <thead>
            <tr>
              <th scope="col">Login</th>
              <th scope="col">Name and email</th>
              <th scope="col">Kind</th>
              <th scope="col">Profile</th>
              <th scope="col">Source</th>
              <th scope="col">Groups</th>
              <th scope="col">Last seen</th>
              <th scope="col">Status</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {users.map(user => (
              <React.Fragment key={user.login}>
                <tr data-login={user.login} data-active={String(user.active)}>
                  <td>{user.login}</td>
                  <td>
                    {user.display_name}
                    {user.email && (
                      <>
                        <br />
                        <small>{user.email}</small>
                      </>
                    )}
                  </td>
                  <td>
                    {user.kind === 'service' ? 'service account' : 'person'}
                  </td>
                  <td>{user.profile}</td>
                  <td>{user.source}</td>
                  <td>{user.groups.join(', ') || '—'}</td>
                  <td className="hml-admin-last-seen">{lastSeen(user)}</td>
                  <td className="hml-admin-status">
                    {user.active
                      ? 'active'
                      : `deactivated${user.deactivated_by ? ` by ${user.deactivated_by}` : ''}`}
                  </td>
                  <td>
                    <button
                      type="button"
                      onClick={() => {
                        setDeactivating(null);
                        setEditing(user.login);
                      }}
                    >
                      Edit
                    </button>{' '}
                    {user.active ? (
                      user.login !== me.login && (
                        <button
                          type="button"
                          onClick={() => {
                            setEditing(null);
                            setDeactivating(user.login);
                          }}
                        >
                          Deactivate…
                        </button>
                      )
                    ) : (
                      <button type="button" onClick={() => reactivate(user)}>
                        Reactivate
                      </button>
                    )}
                  </td>
                </tr>
                {(editing === user.login || deactivating === user.login) && (
                  <tr className="hml-admin-people-detail">
                    <td colSpan={9}>
                      {editing === user.login ? (
                        <ProfileEditor
                          client={client}
                          user={user}
                          onDone={finished}
                        />
                      ) : (
                        <DeactivationConfirmation
                          client={client}
                          user={user}
                          onDone={finished}
                        />
                      )}
                    </td>
                  </tr>
                )}
              </React.Fragment>
            ))}
          </tbody>
        </table>
      )}
      {users !== null && total > users.length && (
        <p>
          Showing the first {users.length} of {total}: search to narrow them.
        </p>
      )}
      <h3>Add an account</h3>
      <NewAccount client={client} onCreated={refresh} />
    </div>
  );
}

export const PEOPLE_PAGE: IAdminPage = {
  id: 'people',
  title: 'People',
  permissions: ['admin'],
  component: PeoplePage
};
