/** Project permissions as people read them, and grants summarized by their preset. */
import type { DescribeGrant, ProjectPermission } from '../types';

export const PERMISSIONS: ProjectPermission[] = [
  'read_dashboards',
  'read_content',
  'write_content',
  'run_scenarios',
  'export_datasets',
  'admin'
];

export const PERMISSION_LABELS: Record<ProjectPermission, string> = {
  read_dashboards: 'See dashboards, metrics and check outcomes',
  read_content: 'Read datasets, notebooks and scenarios',
  write_content: 'Change datasets, checks, variables and scenarios',
  run_scenarios: 'Run and abort scenarios',
  export_datasets: 'Download and export data',
  admin: 'Administer the project and its grants'
};

/** "contributor" for a preset grant, else the permissions in their canonical order. */
export function grantSummary(grant: DescribeGrant): string {
  if (grant.preset) {
    return grant.preset;
  }
  return PERMISSIONS.filter(permission =>
    grant.permissions.includes(permission)
  ).join(', ');
}
