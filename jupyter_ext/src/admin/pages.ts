/** The pages of the administration application, in the order of its navigation. */
import type { IAdminPage } from './page';
import { PERMISSIONS_PAGE } from './pages/permissions';

export const PAGES: IAdminPage[] = [PERMISSIONS_PAGE];
