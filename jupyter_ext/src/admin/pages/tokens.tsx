/**
 * Tokens: everyone's API tokens or one person's, by name, prefix (never the value: the platform
 * keeps only its digest), project, creation, expiry and last use; each revoked after a
 * confirmation naming whose token it is.
 */
import * as React from 'react';

import type { HimaliaClient } from '../../api';
import { errorText } from '../../errors';
import { formatTime } from '../../times';
import type { IAdminPage, IAdminPageProps } from '../page';
import {
  DescribeToken,
  DescribeUser,
  listTokens,
  listUsers,
  revokeToken
} from './identity';

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

export function TokensPage(props: IAdminPageProps): React.ReactElement {
  const { client } = props;
  const [owner, setOwner] = React.useState('');
  const [people, setPeople] = React.useState<DescribeUser[]>([]);
  const [tokens, setTokens] = React.useState<DescribeToken[] | null>(null);
  const [total, setTotal] = React.useState(0);
  const [failure, setFailure] = React.useState('');
  const [generation, setGeneration] = React.useState(0);

  React.useEffect(() => {
    listUsers(client).then(
      page => setPeople(page.items),
      error => setFailure(errorText(error))
    );
  }, [client]);

  React.useEffect(() => {
    let live = true;
    listTokens(client, owner).then(
      page => {
        if (live) {
          setTokens(page.items);
          setTotal(page.total);
          setFailure('');
        }
      },
      error => live && setFailure(errorText(error))
    );
    return () => {
      live = false;
    };
  }, [client, owner, generation]);

  return (
    <div className="hml-admin-tokens">
      <h2>Tokens</h2>
      <p>
        API tokens of people, service accounts and running scenarios. Only a
        token&apos;s first characters are kept to recognise it: its value was
        shown once, when it was issued.
      </p>
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
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
      {tokens === null ? (
        !failure && <p>Loading…</p>
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
                    onRevoked={() => setGeneration(value => value + 1)}
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
