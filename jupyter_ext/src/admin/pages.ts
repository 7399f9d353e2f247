/** The pages of the administration application, in the order of its navigation. */
import type { IAdminPage } from './page';
import { GROUPS_PAGE } from './pages/groups';
import { PEOPLE_PAGE } from './pages/people';
import { PROJECTS_PAGE } from './pages/projects';
import { TOKENS_PAGE } from './pages/tokens';
import { PERMISSIONS_PAGE } from './pages/permissions';
import { CONNECTIONS_PAGE } from './pages/connections';
import { TIERS_PAGE } from './pages/tiers';
import { AUDIT_PAGE } from './pages/audit';
import { USAGE_PAGE } from './pages/usage';
import { PROMOTION_PAGE } from './pages/promotion';

export const PAGES: IAdminPage[] = [
  PEOPLE_PAGE,
  GROUPS_PAGE,
  PROJECTS_PAGE,
  TOKENS_PAGE,
  PERMISSIONS_PAGE,
  CONNECTIONS_PAGE,
  TIERS_PAGE,
  AUDIT_PAGE,
  USAGE_PAGE,
  PROMOTION_PAGE
];
