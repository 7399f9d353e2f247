import { describeFailure } from '../errors';
import { grantSummary } from '../projects/grants';

describe('describeFailure', () => {
  it("keeps the server's message and field", () => {
    expect(
      describeFailure(400, {
        status: 400,
        message: 'name: too long',
        field: 'name'
      })
    ).toEqual({
      message: 'name: too long',
      field: 'name'
    });
  });

  it('says what a bare 403 and 404 mean', () => {
    expect(describeFailure(403, null).message).toMatch(/permission/);
    expect(describeFailure(404, '<html>').message).toMatch(
      /does not exist, or you may not see it/
    );
  });

  it('names server failures without inventing a cause', () => {
    expect(describeFailure(502, {}).message).toBe(
      'The server failed; its log says why.'
    );
    expect(describeFailure(418, {}).message).toBe(
      'The request failed (HTTP 418).'
    );
  });
});

describe('grantSummary', () => {
  it('names the preset when there is one', () => {
    expect(
      grantSummary({
        principal_type: 'group',
        principal: 'readers',
        permissions: ['read_dashboards', 'read_content'],
        preset: 'reader'
      })
    ).toBe('reader');
  });

  it('lists fine permissions in their canonical order', () => {
    expect(
      grantSummary({
        principal_type: 'user',
        principal: 'bob',
        permissions: ['run_scenarios', 'read_dashboards'],
        preset: null
      })
    ).toBe('read_dashboards, run_scenarios');
  });
});
