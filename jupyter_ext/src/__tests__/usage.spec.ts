import {
  money,
  monthWindow,
  thisMonth,
  yearWindow
} from '../admin/pages/usage-api';

describe('the usage page’s months, in UTC', () => {
  it('names the month of an instant in UTC, not in the browser’s zone', () => {
    expect(thisMonth(new Date('2026-03-31T23:30:00-05:00'))).toBe('2026-04');
    expect(thisMonth(new Date('2026-12-01T00:00:00Z'))).toBe('2026-12');
  });

  it('windows a month from its first instant to the next month’s', () => {
    expect(monthWindow('2026-12')).toEqual({
      since: '2026-12-01T00:00:00.000Z',
      until: '2027-01-01T00:00:00.000Z'
    });
    expect(monthWindow('2024-02').until).toBe('2024-03-01T00:00:00.000Z');
  });

  it('windows the twelve months ending with a month across a year', () => {
    expect(yearWindow('2026-03')).toEqual({
      since: '2025-04-01T00:00:00.000Z',
      until: '2026-04-01T00:00:00.000Z'
    });
  });

  it('writes money with two decimals and its currency', () => {
    expect(money(58.25, 'EUR')).toBe('58.25 EUR');
    expect(money(0.005, 'USD')).toBe('0.01 USD');
  });
});
