/**
 * Tokens: everyone's API tokens or one person's, by name, prefix (never the value: the platform
 * keeps only its digest), project, creation, expiry and last use; each revoked after a
 * confirmation naming whose token it is. A new token is issued for a chosen person, its value
 * shown once, with a button copying it.
 */
import * as React from 'react';

import type { HimaliaClient } from '../../api';
import { errorText } from '../../errors';
import { useAsync } from '../../hooks/useAsync';
import { formatTime } from '../../times';
import type { IAdminPage, IAdminPageProps } from '../page';
import {
  CreatedToken,
  createToken,
  DescribeToken,
  DescribeUser,
  listTokens,
  listUsers,
  revokeToken
} from './identity';
import { listProjects } from './projectsadmin';

function when(iso: string | null | undefined, none: string): string {
  return iso ? formatTime(iso) : none;
}

function RevokeButton(props: {
  client: HimaliaClient;
  token: DescribeToken;
  onRevoked: () => void;
}): React.ReactElement {
  const { client, token, onRevoked } = props;
  const [confirming, setConfirming] = React.useState(false);
  const [failure, setFailure] = React.useState('');

  const revoke = async () => {
    setFailure('');
    try {
      await revokeToken(client, token.id);
      onRevoked();
    } catch (error) {
      setFailure(errorText(error));
    }
  };

  if (!confirming) {
    return (
      <button type="button" onClick={() => setConfirming(true)}>
        Revoke…
      </button>
    );
  }
  return (
    <span role="dialog" aria-label={`Revoke token ${token.prefix}`}>
      Revoke {token.user}&apos;s token <code>{token.prefix}…</code>? Whatever
      uses it is refused from now on.{' '}
      <button type="button" className="hml-admin-danger" onClick={revoke}>
        Revoke
      </button>{' '}
      <button type="button" onClick={() => setConfirming(false)}>
        Cancel
      </button>
      {failure && (
        <span className="hml-admin-refusal" role="alert">
          {' '}
          {failure}
        </span>
      )}
    </span>
  );
}

/** The value of a token just issued: shown this once, with a button copying it. */
function IssuedToken(props: {
  token: CreatedToken;
  onDone: () => void;
}): React.ReactElement {
  const { token, onDone } = props;
  const [copied, setCopied] = React.useState('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(token.token);
      setCopied('Copied.');
    } catch {
      setCopied('The browser refused to copy: select the value and copy it.');
    }
  };
  return (
    <div
      className="hml-admin-issued-token"
      role="region"
      aria-label="Token issued"
    >
      <p>
        {token.user}&apos;s token {token.name ? `“${token.name}” ` : ''}
        {token.expires_at
          ? `expires ${formatTime(token.expires_at)}`
          : 'never expires'}
        {token.project ? ` and works on ${token.project} only` : ''}. Copy it
        now: <b>it will not be shown again</b>.
      </p>
      <p>
        <code className="hml-admin-token-value">{token.token}</code>{' '}
        <button type="button" onClick={copy}>
          Copy
        </button>{' '}
        <button type="button" onClick={onDone}>
          Done
        </button>{' '}
        {copied && <span role="status">{copied}</span>}
      </p>
    </div>
  );
}

function NewToken(props: {
  client: HimaliaClient;
  people: DescribeUser[];
  onIssued: (token: CreatedToken) => void;
}): React.ReactElement {
  const { client, people, onIssued } = props;
  const [user, setUser] = React.useState('');
  const [name, setName] = React.useState('');
  const [days, setDays] = React.useState('');
  const [project, setProject] = React.useState('');
  const [projects, setProjects] = React.useState<string[]>([]);
  const [failure, setFailure] = React.useState('');
  const [working, setWorking] = React.useState(false);

  React.useEffect(() => {
    listProjects(client).then(
      page => setProjects(page.items.map(item => item.key)),
      error => setFailure(errorText(error))
    );
  }, [client]);

  const issue = async (event: React.FormEvent) => {
    event.preventDefault();
    setWorking(true);
    setFailure('');
    try {
      const issued = await createToken(client, {
        user,
        name,
        expires_in_days: days ? Number(days) : null,
        project: project || null
      });
      setName('');
      setDays('');
      setProject('');
      onIssued(issued);
    } catch (error) {
      setFailure(errorText(error));
    } finally {
      setWorking(false);
    }
  };

  return (
    <form
      className="hml-admin-new-token"
      aria-label="New token"
      onSubmit={issue}
    >
      <label>
        For{' '}
        <select
          name="for"
          value={user}
          required
          onChange={event => setUser(event.target.value)}
        >
          <option value="">choose a person…</option>
          {people
            .filter(person => person.active)
            .map(person => (
              <option key={person.login} value={person.login}>
                {person.login}
              </option>
            ))}
        </select>
      </label>{' '}
      <label>
        Name{' '}
        <input
          name="name"
          value={name}
          maxLength={200}
          placeholder="what uses it"
          onChange={event => setName(event.target.value)}
        />
      </label>{' '}
      <label>
        Expires in days{' '}
        <input
          name="expires_in_days"
          type="number"
          min={1}
          max={3650}
          value={days}
          placeholder="never"
          onChange={event => setDays(event.target.value)}
        />
      </label>{' '}
      <label>
        Project{' '}
        <select
          name="project"
          value={project}
          onChange={event => setProject(event.target.value)}
        >
          <option value="">every project they may use</option>
          {projects.map(key => (
            <option key={key} value={key}>
              {key} only
            </option>
          ))}
        </select>
      </label>{' '}
      <button
        type="submit"
        className="hml-admin-primary"
        disabled={working || !user}
      >
        Issue token
      </button>
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
    </form>
  );
}

export function TokensPage(props: IAdminPageProps): React.ReactElement {
  const { client } = props;
  const [owner, setOwner] = React.useState('');
  const [people, setPeople] = React.useState<DescribeUser[]>([]);
  const [failure, setFailure] = React.useState('');
  const [issued, setIssued] = React.useState<CreatedToken | null>(null);

  React.useEffect(() => {
    listUsers(client).then(
      page => setPeople(page.items),
      error => setFailure(errorText(error))
    );
  }, [client]);

  const listing = useAsync(() => listTokens(client, owner), [client, owner]);
  const tokens: DescribeToken[] | null = listing.value?.items ?? null;
  const total = listing.value?.total ?? 0;
  const shownFailure = failure || listing.error;

  return (
    <div className="hml-admin-tokens">
      <h2>Tokens</h2>
      <p>
        API tokens of people, service accounts and running scenarios. Only a
        token&apos;s first characters are kept to recognise it: its value was
        shown once, when it was issued.
      </p>
      <h3>Issue a token</h3>
      {issued ? (
        <IssuedToken token={issued} onDone={() => setIssued(null)} />
      ) : (
        <NewToken
          client={client}
          people={people}
          onIssued={token => {
            setIssued(token);
            void listing.reload();
          }}
        />
      )}
      <h3>Issued tokens</h3>
      <label>
        Whose{' '}
        <select
          name="user"
          value={owner}
          onChange={event => setOwner(event.target.value)}
        >
          <option value="">everyone</option>
          {people.map(person => (
            <option key={person.login} value={person.login}>
              {person.login}
            </option>
          ))}
        </select>
      </label>
      {shownFailure && (
        <p className="hml-admin-refusal" role="alert">
          {shownFailure}
        </p>
      )}
      {tokens === null ? (
        !shownFailure && <p>Loading…</p>
      ) : tokens.length === 0 ? (
        <p>{owner ? `${owner} has no token.` : 'There is no token.'}</p>
      ) : (
        <table className="hml-admin-token-table" aria-label="Tokens">
          <thead>
            <tr>
              <th scope="col">Whose</th>
              <th scope="col">Name</th>
              <th scope="col">Prefix</th>
              <th scope="col">Project</th>
              <th scope="col">Created</th>
              <th scope="col">Expires</th>
              <th scope="col">Last used</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {tokens.map(token => (
              <tr key={token.id} data-token={token.id}>
                <td>{token.user}</td>
                <td>{token.name || '—'}</td>
                <td>
                  <code>{token.prefix}…</code>
                </td>
                <td>{token.project ?? 'every project'}</td>
                <td>{formatTime(token.created_at)}</td>
                <td>{when(token.expires_at, 'never')}</td>
                <td>{when(token.last_used_at, 'never')}</td>
                <td>
                  <RevokeButton
                    client={client}
                    token={token}
                    onRevoked={() => void listing.reload()}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {tokens !== null && total > tokens.length && (
        <p>
          Showing the first {tokens.length} of {total}: choose a person to
          narrow them.
        </p>
      )}
    </div>
  );
}

export const TOKENS_PAGE: IAdminPage = {
  id: 'tokens',
  title: 'Tokens',
  permissions: ['admin'],
  component: TokensPage
};
