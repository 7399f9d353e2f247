import { ADMIN_PERMISSIONS, mayAdminister } from '../admin/access';
import { pageIdOf } from '../admin/app';
import { mayOpen } from '../admin/page';
import { PAGES } from '../admin/pages';
import type { DescribeMe } from '../types';

function person(...held: string[]): DescribeMe {
  return {
    login: 'someone',
    global_permissions: Object.fromEntries(held.map(name => [name, true]))
  } as unknown as DescribeMe;
}

describe('the administration shell', () => {
  it('reads the page id of the address', () => {
    expect(pageIdOf('')).toBe('');
    expect(pageIdOf('#')).toBe('');
    expect(pageIdOf('#/people')).toBe('people');
    expect(pageIdOf('#/audit/42')).toBe('audit');
    expect(pageIdOf('#tiers')).toBe('tiers');
    expect(pageIdOf('#/caf%C3%A9')).toBe('café');
  });

  it('links the lab to it for everyone a page opens for', () => {
    // The sidebar knows the permissions without the pages: none may be missing from its list.
    for (const page of PAGES) {
      expect(ADMIN_PERMISSIONS).toEqual(
        expect.arrayContaining(page.permissions)
      );
      for (const name of page.permissions) {
        expect(mayOpen(page, person(name))).toBe(true);
        expect(mayAdminister(person(name))).toBe(true);
      }
      expect(mayOpen(page, person('admin'))).toBe(true);
    }
    const nobody = person('write_isolated_code', 'write_unsafe_code');
    expect(mayAdminister(nobody)).toBe(false);
    expect(PAGES.filter(page => mayOpen(page, nobody))).toEqual([]);
    expect(mayAdminister(null)).toBe(false);
  });

  it('gives every page its own address', () => {
    const ids = PAGES.map(page => page.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every(id => /^[a-z][a-z0-9-]*$/.test(id))).toBe(true);
  });
});
