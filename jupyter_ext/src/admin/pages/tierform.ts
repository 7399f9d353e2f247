/**
 * The tier editor's logic, apart from React: a tier shown in Gi and cores, the editor's fields as
 * typed, and the spec sent back (the settings the editor does not show kept as they are).
 */
import type { DescribeTier, TierSpec } from './resources';

export const GiB = 2 ** 30;

/** The TierSpec fields a described tier carries: what the editor sends back. */
const SPEC_FIELDS: (keyof TierSpec)[] = [
  'display_name',
  'description',
  'cpu_request',
  'cpu_limit',
  'memory_request',
  'memory_limit',
  'gpus',
  'gpu_resource',
  'node_selector',
  'tolerations',
  'shm_size',
  'cost_per_hour',
  'allowed_groups',
  'max_servers_per_user',
  'max_servers',
  'default',
  'archived'
];

export function specOf(tier: DescribeTier): TierSpec {
  const spec: Record<string, unknown> = {};
  for (const field of SPEC_FIELDS) {
    spec[field] = tier[field];
  }
  return spec as TierSpec;
}

/** Bytes in Gi (2^30), as tiers are written; empty for none. */
export function gi(bytes: number | null | undefined): string {
  return bytes ? `${Math.round((bytes / GiB) * 100) / 100}` : '';
}

export function cores(tier: DescribeTier): string {
  return tier.cpu_limit && tier.cpu_limit !== tier.cpu_request
    ? `${tier.cpu_request}–${tier.cpu_limit}`
    : `${tier.cpu_request}`;
}

export function memory(tier: DescribeTier): string {
  const request = gi(tier.memory_request);
  return tier.memory_limit && tier.memory_limit !== tier.memory_request
    ? `${request}–${gi(tier.memory_limit)}`
    : request;
}

export function limits(tier: DescribeTier): string {
  const parts = [];
  if (tier.max_servers_per_user) {
    parts.push(`${tier.max_servers_per_user} per person`);
  }
  if (tier.max_servers) {
    parts.push(`${tier.max_servers} in all`);
  }
  return parts.join(', ') || 'none';
}

/** The editor's fields as typed: text, so that a half-typed number is not lost. */
export interface IDraft {
  name: string;
  display_name: string;
  description: string;
  cpu_request: string;
  cpu_limit: string;
  memory_request: string;
  memory_limit: string;
  gpus: string;
  cost_per_hour: string;
  allowed_groups: string[];
  max_servers_per_user: string;
  max_servers: string;
  default: boolean;
}

export function draftOf(tier: DescribeTier | null): IDraft {
  const text = (value: number | null | undefined) =>
    value === null || value === undefined ? '' : String(value);
  return {
    name: tier?.name ?? '',
    display_name: tier?.display_name ?? '',
    description: tier?.description ?? '',
    cpu_request: text(tier?.cpu_request ?? 1),
    cpu_limit: text(tier?.cpu_limit),
    memory_request: gi(tier?.memory_request ?? GiB),
    memory_limit: gi(tier?.memory_limit),
    gpus: text(tier?.gpus ?? 0),
    cost_per_hour: text(tier?.cost_per_hour ?? 0),
    allowed_groups: tier?.allowed_groups ?? [],
    max_servers_per_user: text(tier?.max_servers_per_user),
    max_servers: text(tier?.max_servers),
    default: tier?.default ?? false
  };
}

export class DraftError extends Error {
  constructor(
    readonly field: string,
    message: string
  ) {
    super(message);
  }
}

function number(
  draft: IDraft,
  field: keyof IDraft,
  optional: boolean
): number | null {
  const text = String(draft[field]).trim();
  if (text === '' && optional) {
    return null;
  }
  const value = Number(text);
  if (text === '' || !Number.isFinite(value)) {
    throw new DraftError(field, `${field}: enter a number.`);
  }
  return value;
}

/** The spec to send: the tier's other settings kept, the edited ones from the draft. */
export function specFrom(draft: IDraft, tier: DescribeTier | null): TierSpec {
  const bytes = (field: keyof IDraft, optional: boolean) => {
    const value = number(draft, field, optional);
    return value === null ? null : Math.round(value * GiB);
  };
  return {
    ...(tier ? specOf(tier) : {}),
    display_name: draft.display_name,
    description: draft.description,
    cpu_request: number(draft, 'cpu_request', false) as number,
    cpu_limit: number(draft, 'cpu_limit', true),
    memory_request: bytes('memory_request', false) as number,
    memory_limit: bytes('memory_limit', true),
    gpus: number(draft, 'gpus', false) as number,
    cost_per_hour: number(draft, 'cost_per_hour', false) as number,
    allowed_groups: draft.allowed_groups.length ? draft.allowed_groups : null,
    max_servers_per_user: number(draft, 'max_servers_per_user', true),
    max_servers: number(draft, 'max_servers', true),
    default: draft.default
  };
}
