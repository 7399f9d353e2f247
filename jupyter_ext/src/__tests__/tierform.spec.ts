import {
  DraftError,
  GiB,
  cores,
  draftOf,
  gi,
  limits,
  memory,
  specFrom,
  specOf
} from '../admin/pages/tierform';
import type { DescribeTier } from '../admin/pages/resources';

function tier(overrides: Partial<DescribeTier> = {}): DescribeTier {
  return {
    name: 'gpu',
    display_name: 'GPU',
    description: 'For training.',
    cpu_request: 4,
    cpu_limit: 8,
    memory_request: 16 * GiB,
    memory_limit: 64 * GiB,
    gpus: 1,
    gpu_resource: 'nvidia.com/gpu',
    node_selector: { 'himalia.io/node-pool': 'gpu' },
    tolerations: [{ key: 'gpu', operator: 'Exists' }],
    shm_size: 8 * GiB,
    cost_per_hour: 3,
    allowed_groups: ['admins'],
    max_servers_per_user: 1,
    max_servers: null,
    default: false,
    archived: false,
    currency: 'EUR',
    updated_at: '2026-12-01T00:00:00Z',
    running_servers: 2,
    running_runs: 1,
    ...overrides
  } as DescribeTier;
}

describe('the tier table', () => {
  it('writes sizes in cores and Gi, a range when the limit is higher', () => {
    expect(cores(tier())).toBe('4–8');
    expect(cores(tier({ cpu_limit: null }))).toBe('4');
    expect(memory(tier())).toBe('16–64');
    expect(memory(tier({ memory_limit: 16 * GiB }))).toBe('16');
    expect(gi(1.5 * GiB)).toBe('1.5');
    expect(gi(null)).toBe('');
  });

  it('names the limits per person and in all', () => {
    expect(limits(tier())).toBe('1 per person');
    expect(limits(tier({ max_servers: 5 }))).toBe('1 per person, 5 in all');
    expect(limits(tier({ max_servers_per_user: null }))).toBe('none');
  });
});

describe('the tier editor', () => {
  it('sends back what it does not show as it was', () => {
    const spec = specFrom(draftOf(tier()), tier());
    expect(spec).toEqual(specOf(tier()));
    expect(Object.keys(spec)).not.toContain('running_servers');
    expect(Object.keys(spec)).not.toContain('currency');
    expect(spec.node_selector).toEqual({ 'himalia.io/node-pool': 'gpu' });
  });

  it('turns Gi into bytes, empty limits into none and no group into everyone', () => {
    const draft = {
      ...draftOf(tier()),
      memory_limit: '',
      cpu_limit: ' ',
      memory_request: '2.5',
      allowed_groups: []
    };
    const spec = specFrom(draft, tier());
    expect(spec.memory_request).toBe(2.5 * GiB);
    expect(spec.memory_limit).toBeNull();
    expect(spec.cpu_limit).toBeNull();
    expect(spec.allowed_groups).toBeNull();
  });

  it('refuses what is not a number, naming the field', () => {
    const draft = { ...draftOf(tier()), cost_per_hour: 'cheap' };
    expect(() => specFrom(draft, tier())).toThrow(DraftError);
    let refused: unknown = null;
    try {
      specFrom({ ...draftOf(tier()), cpu_request: '' }, tier());
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(DraftError);
    expect((refused as DraftError).field).toBe('cpu_request');
  });

  it('starts a new tier from the defaults', () => {
    const spec = specFrom({ ...draftOf(null), name: 'tiny' }, null);
    expect(spec).toMatchObject({
      cpu_request: 1,
      memory_request: GiB,
      memory_limit: null,
      gpus: 0,
      cost_per_hour: 0,
      allowed_groups: null,
      default: false
    });
  });
});
