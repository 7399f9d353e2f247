/**
 * Who may open the administration application, without its pages: the lab's sidebar link reads
 * this, so that the lab extension's bundle carries none of the application's code.
 */
import type { DescribeMe, GlobalPermission } from '../types';

/** Where the application is, below the Jupyter server's base URL, in both hosts (a hub user's
 * server sends it on to the hub service's). */
export const ADMIN_PATH = 'himalia/admin/';

/** The global permissions that open at least one page (`admin` opens them all). */
export const ADMIN_PERMISSIONS: readonly GlobalPermission[] = [
  'admin',
  'create_projects',
  'manage_tiers',
  'view_audit',
  'create_connections'
];

/** Whether the person holds a permission that opens a page of the application. */
export function mayAdminister(me: DescribeMe | null): boolean {
  const held = (me?.global_permissions ?? {}) as Record<string, boolean>;
  return ADMIN_PERMISSIONS.some(name => held[name]);
}
