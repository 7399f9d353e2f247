/** The pages of the administration application, in the order of its navigation. */
import type { IAdminPage } from './page';

export const PAGES: IAdminPage[] = [];
