/**
 * Groups: each group's description, its global permissions as toggles (saved as they are
 * switched) and its members, added and removed; groups created and deleted. A group from
 * JupyterHub gets its members from the identity provider: the page says so and offers no change
 * to them that the next sync would undo.
 */
import * as React from 'react';

import type { HimaliaClient } from '../../api';
import { errorText } from '../../errors';
import type { DescribeGroup, GlobalPermission } from '../../types';
import type { IAdminPage, IAdminPageProps } from '../page';
import {
  addMember,
  createGroup,
  deleteGroup,
  DescribeUser,
  GLOBAL_PERMISSIONS,
  listGroups,
  listUsers,
  removeMember,
  updateGroup
} from './identity';

function PermissionToggles(props: {
  held: GlobalPermission[];
  group: string;
  disabled: boolean;
  onToggle: (permission: GlobalPermission, on: boolean) => void;
}): React.ReactElement {
  return (
    <fieldset
      className="hml-admin-permission-toggles"
      aria-label={`Global permissions of ${props.group}`}
    >
      <legend>Global permissions</legend>
      {GLOBAL_PERMISSIONS.map(({ name, means }) => (
        <label key={name} title={means}>
          <input
            type="checkbox"
            name={name}
            checked={props.held.includes(name)}
            disabled={props.disabled}
            onChange={event => props.onToggle(name, event.target.checked)}
          />{' '}
          <code>{name}</code>: {means}
        </label>
      ))}
    </fieldset>
  );
}

/** One group: description, permission toggles, members, delete. */
function GroupCard(props: {
  client: HimaliaClient;
  group: DescribeGroup;
  people: DescribeUser[];
  onChanged: () => void;
}): React.ReactElement {
  const { client, group, people, onChanged } = props;
  const fromHub = group.source === 'hub';
  const members = group.members ?? [];
  const [description, setDescription] = React.useState(group.description);
  const [newMember, setNewMember] = React.useState('');
  const [confirmingDelete, setConfirmingDelete] = React.useState(false);
  const [failure, setFailure] = React.useState('');
  const [working, setWorking] = React.useState(false);

  React.useEffect(() => setDescription(group.description), [group.description]);

  const act = async (action: () => Promise<unknown>) => {
    setWorking(true);
    setFailure('');
    try {
      await action();
      onChanged();
    } catch (error) {
      setFailure(errorText(error));
    } finally {
      setWorking(false);
    }
  };

  const toggle = (permission: GlobalPermission, on: boolean) =>
    act(() =>
      updateGroup(client, group.name, {
        permissions: on
          ? [...group.permissions, permission]
          : group.permissions.filter(held => held !== permission)
      })
    );

  const candidates = people.filter(
    person => person.active && !members.includes(person.login)
  );

  return (
    <section
      className="hml-admin-group"
      data-group={group.name}
      aria-label={`Group ${group.name}`}
    >
      <h3>
        {group.name}{' '}
        <small>
          ({fromHub ? 'from JupyterHub' : 'managed here'}, {group.member_count}{' '}
          {group.member_count === 1 ? 'member' : 'members'})
        </small>
      </h3>
      <form
        onSubmit={event => {
          event.preventDefault();
          void act(() => updateGroup(client, group.name, { description }));
        }}
      >
        <label>
          Description{' '}
          <input
            name="description"
            value={description}
            size={60}
            onChange={event => setDescription(event.target.value)}
          />
        </label>{' '}
        <button
          type="submit"
          disabled={working || description === group.description}
        >
          Save description
        </button>
      </form>
      <PermissionToggles
        held={group.permissions}
        group={group.name}
        disabled={working}
        onToggle={toggle}
      />
      <h4>Members</h4>
      {fromHub && (
        <p className="hml-admin-hub-note">
          Its members come from JupyterHub (the identity provider): change them
          there; a change made here would be undone at the next sync. Its
          description and permissions are managed here.
        </p>
      )}
      {members.length === 0 ? (
        <p>No member.</p>
      ) : (
        <ul
          className="hml-admin-members"
          aria-label={`Members of ${group.name}`}
        >
          {members.map(login => (
            <li key={login} data-member={login}>
              {login}{' '}
              {!fromHub && (
                <button
                  type="button"
                  disabled={working}
                  aria-label={`Remove ${login} from ${group.name}`}
                  onClick={() =>
                    act(() => removeMember(client, group.name, login))
                  }
                >
                  Remove
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {!fromHub && (
        <form
          className="hml-admin-add-member"
          onSubmit={event => {
            event.preventDefault();
            if (newMember) {
              void act(async () => {
                await addMember(client, group.name, newMember);
                setNewMember('');
              });
            }
          }}
        >
          <label>
            Add{' '}
            <select
              name="member"
              aria-label={`Add a member to ${group.name}`}
              value={newMember}
              onChange={event => setNewMember(event.target.value)}
            >
              <option value="">choose a person…</option>
              {candidates.map(person => (
                <option key={person.login} value={person.login}>
                  {person.login}
                  {person.display_name && person.display_name !== person.login
                    ? ` (${person.display_name})`
                    : ''}
                </option>
              ))}
            </select>
          </label>{' '}
          <button type="submit" disabled={working || !newMember}>
            Add member
          </button>
        </form>
      )}
      {!fromHub &&
        (confirmingDelete ? (
          <p role="dialog" aria-label={`Delete ${group.name}`}>
            Delete {group.name}? Its {group.member_count} members lose what it
            gives them: its global permissions and its project grants.{' '}
            <button
              type="button"
              className="hml-admin-danger"
              disabled={working}
              onClick={() => act(() => deleteGroup(client, group.name))}
            >
              Delete {group.name}
            </button>{' '}
            <button type="button" onClick={() => setConfirmingDelete(false)}>
              Cancel
            </button>
          </p>
        ) : (
          <p>
            <button type="button" onClick={() => setConfirmingDelete(true)}>
              Delete group…
            </button>
          </p>
        ))}
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
    </section>
  );
}

function NewGroup(props: {
  client: HimaliaClient;
  onCreated: () => void;
}): React.ReactElement {
  const [name, setName] = React.useState('');
  const [description, setDescription] = React.useState('');
  const [permissions, setPermissions] = React.useState<GlobalPermission[]>([]);
  const [failure, setFailure] = React.useState('');

  const create = async (event: React.FormEvent) => {
    event.preventDefault();
    setFailure('');
    try {
      await createGroup(props.client, { name, description, permissions });
      setName('');
      setDescription('');
      setPermissions([]);
      props.onCreated();
    } catch (error) {
      setFailure(errorText(error));
    }
  };

  return (
    <form
      className="hml-admin-new-group"
      aria-label="New group"
      onSubmit={create}
    >
      <label>
        Name{' '}
        <input
          name="name"
          value={name}
          required
          maxLength={100}
          onChange={event => setName(event.target.value)}
        />
      </label>{' '}
      <label>
        Description{' '}
        <input
          name="description"
          value={description}
          size={50}
          onChange={event => setDescription(event.target.value)}
        />
      </label>
      <PermissionToggles
        held={permissions}
        group="the new group"
        disabled={false}
        onToggle={(permission, on) =>
          setPermissions(held =>
            on ? [...held, permission] : held.filter(p => p !== permission)
          )
        }
      />
      <button type="submit" className="hml-admin-primary">
        Create group
      </button>
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
    </form>
  );
}

export function GroupsPage(props: IAdminPageProps): React.ReactElement {
  const { client } = props;
  const [groups, setGroups] = React.useState<DescribeGroup[] | null>(null);
  const [people, setPeople] = React.useState<DescribeUser[]>([]);
  const [failure, setFailure] = React.useState('');
  const [generation, setGeneration] = React.useState(0);
  const refresh = () => setGeneration(value => value + 1);

  React.useEffect(() => {
    let live = true;
    Promise.all([listGroups(client), listUsers(client)]).then(
      ([found, everyone]) => {
        if (live) {
          setGroups(found);
          setPeople(everyone.items);
          setFailure('');
        }
      },
      error => live && setFailure(errorText(error))
    );
    return () => {
      live = false;
    };
  }, [client, generation]);

  return (
    <div className="hml-admin-groups">
      <h2>Groups</h2>
      <p>
        A group carries global permissions to its members; projects are granted
        to groups on the Permissions page.
      </p>
      {failure && (
        <p className="hml-admin-refusal" role="alert">
          {failure}
        </p>
      )}
      {groups === null
        ? !failure && <p>Loading…</p>
        : groups.map(group => (
            <GroupCard
              key={group.name}
              client={client}
              group={group}
              people={people}
              onChanged={refresh}
            />
          ))}
      <h3>Create a group</h3>
      <NewGroup client={client} onCreated={refresh} />
    </div>
  );
}

export const GROUPS_PAGE: IAdminPage = {
  id: 'groups',
  title: 'Groups',
  permissions: ['admin'],
  component: GroupsPage
};
