/**
 * What every page of the administration application is: a title, the global permissions that
 * open it (any one of them) and a React component given the API client and the person.
 *
 * The server enforces every permission; the application only hides what would be refused.
 */
import type * as React from 'react';

import type { HimaliaClient } from '../api';
import type { DescribeMe, GlobalPermission } from '../types';

export interface IAdminPageProps {
  /** The same client as the lab extension's, pointed at this control plane. */
  client: HimaliaClient;
  /** The person signed in, with their global permissions. */
  me: DescribeMe;
}

export interface IAdminPage {
  /** The page's address in the application: `#/<id>`. */
  id: string;
  title: string;
  /** Any one of these opens the page; `admin` holds them all. */
  permissions: GlobalPermission[];
  component: React.ComponentType<IAdminPageProps>;
}

/** Whether the person may open the page (administrators may open every page). */
export function mayOpen(page: IAdminPage, me: DescribeMe): boolean {
  const held = me.global_permissions as Record<string, boolean>;
  return Boolean(held.admin) || page.permissions.some(name => held[name]);
}
