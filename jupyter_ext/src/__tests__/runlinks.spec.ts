import { parseRunLink } from '../runs/links';

describe('parseRunLink', () => {
  it('reads the run a report link names', () => {
    expect(parseRunLink('?himalia-run=FRAUD/daily_fraud_scoring/12')).toEqual({
      project: 'FRAUD',
      scenario: 'daily_fraud_scoring',
      run: 12
    });
    expect(parseRunLink('?reset&himalia-run=FRAUD%2Fdaily%2F3')).toEqual({
      project: 'FRAUD',
      scenario: 'daily',
      run: 3
    });
  });

  it('ignores addresses that name no run, or not in that shape', () => {
    expect(parseRunLink('')).toBeNull();
    expect(parseRunLink('?reset')).toBeNull();
    expect(parseRunLink('?himalia-run=FRAUD/daily')).toBeNull();
    expect(parseRunLink('?himalia-run=FRAUD/daily/latest')).toBeNull();
    expect(parseRunLink('?himalia-run=FRAUD/a/b/3')).toBeNull();
  });
});
