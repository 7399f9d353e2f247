import { pageWindow } from '../hooks/usePagedList';
import { appendLog } from '../hooks/useRunFollow';
import { describeEnvironment, duration, isActive } from '../runs/states';

describe('pages', () => {
  it('says which items a page shows and what is around it', () => {
    expect(pageWindow(0, 20, 45)).toEqual({
      first: 1,
      last: 20,
      hasPrevious: false,
      hasNext: true
    });
    expect(pageWindow(40, 20, 45)).toEqual({
      first: 41,
      last: 45,
      hasPrevious: true,
      hasNext: false
    });
    expect(pageWindow(0, 20, 0)).toEqual({
      first: 0,
      last: 0,
      hasPrevious: false,
      hasNext: false
    });
  });
});

describe('following a run', () => {
  it('appends the log and cuts its oldest output beyond the limit', () => {
    expect(appendLog('a\n', 'b\n')).toBe('a\nb\n');
    expect(appendLog('12345', '678', 4)).toBe('… (earlier output cut)\n5678');
  });

  it('knows which states may still change', () => {
    expect(isActive('queued')).toBe(true);
    expect(isActive('running')).toBe(true);
    expect(isActive('succeeded')).toBe(false);
    expect(isActive(undefined)).toBe(false);
  });

  it('says durations in words', () => {
    const start = '2025-03-01T10:00:00Z';
    expect(duration(start, '2025-03-01T10:00:42Z')).toBe('42 s');
    expect(duration(start, '2025-03-01T10:03:05Z')).toBe('3 min 5 s');
    expect(duration(start, '2025-03-01T11:20:00Z')).toBe('1 h 20 min');
    expect(duration(null, null)).toBe('');
  });
});

describe('describeEnvironment', () => {
  it('says what a notebook step ran on in one line', () => {
    expect(
      describeEnvironment({
        python: '3.11.7',
        kernel: 'python3',
        tier: 'large',
        executor: 'KubernetesExecutor',
        image: 'registry.example.org/himalia:1.2',
        packages: { pandas: '2.2.3', numpy: '2.1.0' },
        digest: 'ab'.repeat(32)
      })
    ).toBe(
      'Python 3.11.7 · python3 · tier large · KubernetesExecutor · registry.example.org/himalia:1.2 · 2 packages'
    );
    expect(
      describeEnvironment({
        kernel: 'ir',
        executor: 'LocalExecutor',
        tier: null
      })
    ).toBe('ir · LocalExecutor');
  });
});
